/* chunk_store.h -- what the parts of chunk-store share: configuration,
 * connections, and the PostgreSQL view of a track. */
#ifndef CHUNK_STORE_H
#define CHUNK_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "seashore/ingest_token.h"
#include "seashore/service.h"

#define CS_STREAM_CHUNKS     "CHUNKS"
#define CS_STREAM_WORK       "WORK"
#define CS_STREAM_SESSIONS   "SESSIONS"
#define CS_STREAM_ADMISSION  "ADMISSION"
#define CS_CONSUMER          "chunk-store"
#define CS_QUEUE             "chunk-store"
#define CS_SHA_STATE_MAX     256
#define CS_INDEX_WAIT_MS     10000 /* longest a request waits for the indexer */
#define CS_INDEX_POLL_US     20000
#define CS_CATCH_UP_AFTER_MS 2000 /* no indexer progress this long: index from the log */

/* The next poll interval while a request waits for the indexer: from
 * CS_INDEX_POLL_US up to 5x that, since many waiting requests share one
 * PostgreSQL connection. */
static inline int cs_index_poll_next(int poll_us)
{
    return poll_us < 5 * CS_INDEX_POLL_US ? poll_us + poll_us / 4 : poll_us;
}

typedef struct cs_ctx {
    ss_service *svc;
    jsCtx *js;          /* the service's JetStream context */
    ss_pg *pg_index;    /* the indexer's own connection (one thread) */
    ss_pg *pg_requests; /* request handlers' connection (serialised by ss_pg) */
    ss_pg *pg_reads;    /* chunkstore.read handlers' connection, so that reads
                           do not queue ingest's requests behind them */
    int64_t log_max_bytes, max_chunk_bytes, part_size, read_max_bytes;
    int64_t replicas, read_threads, index_wait_threads, index_sweep_ms;
    int64_t max_tracks;           /* CHUNK_LOG_MAX_TRACKS; 0: as many as the log holds */
    int64_t admission_timeout_ms; /* CHUNK_LOG_ADMISSION_TIMEOUT */
    bool keep_committed;          /* CHUNK_LOG_KEEP_COMMITTED: release only once muxed */
} cs_ctx;

/* A track's row in PostgreSQL. */
typedef struct cs_track {
    bool found;
    char session_id[SS_UUID_LEN + 1], participant_id[SS_UUID_LEN + 1];
    char state[16];
    char kind[16];
    char mime_type[256];
    char ext[16];
    uint64_t durable_seq, durable_bytes, committed_seq, committed_bytes;
    uint64_t chunk_count, total_bytes, part_size;
    bool ended; /* chunk_count/total_bytes/sha256 set */
    unsigned char sha256[32];
    unsigned char sha_state[CS_SHA_STATE_MAX];
    int sha_state_len;
    int64_t capture_start_unix_us, clock_offset_us, duration_us;
    char failure[512];
    uint64_t purged_seq; /* chunks 1..purged_seq-1 left the log (committed) */
    bool log_released;   /* every chunk left the log (uploaded and muxed) */
} cs_track;

/* Reads the track's row; returns 0 (found or not, see t->found) or -1 on
 * a database error (message in err). */
int cs_track_load(ss_pg *pg, const char *track_id, cs_track *t, char *err, size_t errlen);

/* The raw object's key and extension for a track. */
void cs_object_key(const cs_track *t, const char *track_id, char *out, size_t outlen);
const char *cs_ext_for_mime(const char *mime);

/* Publishes a protobuf-encoded body to JetStream with a message id; retries
 * transient failures a few times. Returns 0 or -1. */
int cs_publish(cs_ctx *cs, const char *subject, const char *msg_id, const void *body, size_t len);

/* Publishes PartReady for every part boundary in (from_bytes, to_bytes]. */
int cs_publish_parts_crossed(cs_ctx *cs, const cs_track *t, const char *track_id,
                             uint64_t from_bytes, uint64_t to_bytes);

int cs_publish_last_part(cs_ctx *cs, const cs_track *t, const char *track_id);

/* What the chunk log itself says about a track: its last chunk. */
typedef struct cs_log_tail {
    bool any;
    uint64_t next_seq, bytes, stream_seq;
    char session_id[SS_UUID_LEN + 1], participant_id[SS_UUID_LEN + 1];
    int kind;
} cs_log_tail;

/* Reads the last record of chunks.<track_id>: 0 (lt->any tells whether
 * there is one) or -1 when the log cannot be read (err). */
int cs_log_tail_read(cs_ctx *ctx, const char *track_id, cs_log_tail *lt, char *err, size_t errlen);

/* Hex text to bytes; returns the byte count or -1. */
int cs_unhex(const char *hex, unsigned char *out, size_t cap);

/* streams.c */
int cs_streams_ensure(cs_ctx *cs);

/* admission.c: how many tracks may record at once (see there). */
int cs_admission_init(void);
/* The ADMISSION stream's limit: CHUNK_LOG_MAX_TRACKS or the safe count. */
int64_t cs_admission_tracks(const cs_ctx *cs);
/* Admits a track (idempotent): 0 with *admitted set, or -1 when JetStream
 * cannot be asked (err). */
int cs_admit(cs_ctx *cs, const char *track_id, bool *admitted, char *err, size_t errlen);
/* The track no longer needs room for a whole part (ended or muxed). */
void cs_admission_release(cs_ctx *cs, const char *track_id);

/* Admitted tracks with no chunk anywhere (no tracks row, nothing in the
 * log) for CHUNK_LOG_ADMISSION_TIMEOUT lose their admission: the
 * ingest-recorder that asked died before its release notice. Called by
 * the indexer's sweep (its thread, its database connection). */
void cs_admission_sweep(cs_ctx *cs);
/* Serves chunkstore.admission.release notices (a new track's connection
 * closed before any chunk was durable). */
int cs_admission_start(cs_ctx *cs);
void cs_admission_stop(void);

/* indexer.c: the consumer thread. */
int cs_indexer_start(cs_ctx *cs);
/* Indexes chunks durable_seq..log_next_seq-1 of a track straight from the
 * chunk log, when the indexer's consumer does not bring them (its state
 * was lost or is stuck); safe beside the indexer (appends are CAS on
 * durable_seq). Returns how many it indexed. */
int cs_index_catch_up(cs_ctx *cs, const char *track_id, uint64_t durable_seq,
                      uint64_t log_next_seq);
void cs_indexer_stop(void);

/* requests.c: chunkstore.status/chunk/end/read. The handlers' context. */
extern cs_ctx *cs_requests_ctx;
int cs_requests_start(cs_ctx *cs);
void cs_requests_stop(void);

/* retention.c: chunks leave the log once committed (and the header and
 * newest chunk once the track is muxed). */
int cs_retention_start(cs_ctx *cs);
void cs_retention_stop(void);

/* The tracks of sessions being deleted leave the log and give back their
 * admission: nothing of them will be uploaded or muxed. Called by the
 * indexer's sweep, so a chunk that arrives after the delete goes at the
 * next one. */
void cs_retention_sweep_deleted(void);

/* track_end.c, read_range.c: bodies of chunkstore.end and chunkstore.read.
 * Fill rep (and text/err); return 0 or -1. */
struct Seashore__V1__TrackEndRecord;
struct Seashore__V1__TrackEndReply;
struct Seashore__V1__ReadRangeRequest;
struct Seashore__V1__ReadRangeReply;
int cs_end_handle(const struct Seashore__V1__TrackEndRecord *e,
                  struct Seashore__V1__TrackEndReply *rep, char *text, size_t len);
int cs_read_handle(const struct Seashore__V1__ReadRangeRequest *req,
                   struct Seashore__V1__ReadRangeReply *rep, char *err, size_t errlen);

#endif
