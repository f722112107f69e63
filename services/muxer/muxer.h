/* muxer.h -- what the parts of the muxer service share (docs/muxer.md).
 *
 * Flow: TrackUploaded (work.mux) -> the raw object, read by ranged GETs
 * (mux_source.c) -> the FFmpeg core (mux_core.h) writes WebM, MP4 and WAV
 * to temporary files -> each uploaded to muxed/<session>/<participant>/
 * <track>.<kind> (mux_store.c) -> outputs rows (mux_db.c) -> the session
 * manifest (mux_manifest.c) -> track.muxed.<track>. SessionDelete removes
 * the muxed objects and the manifest (mux_delete.c). */
#ifndef MUXER_H
#define MUXER_H

#include <stdbool.h>
#include <stdint.h>

#include "mux_core.h"
#include "seashore/ingest_token.h"
#include "seashore/s3_client.h"
#include "seashore/service.h"
#include "seashore/work.h"

/* A session zero that moved by less than this keeps the files made against
 * it: offsets are exact to the millisecond, and every refinement of a
 * track's clock offset (its End reports the best one) moves its start by
 * microseconds, which would otherwise make every live-muxed file again. */
#define MX_ZERO_SLACK_US     1000
#define MX_ZERO_SLACK_US_STR "1000"

#define MX_STREAM_WORK     "WORK"
#define MX_STREAM_SESSIONS "SESSIONS"
#define MX_CONSUMER_MUX    "muxer"
#define MX_CONSUMER_DELETE "muxer"
#define MX_KEY_MAX         512
#define MX_OUTPUT_KINDS    3

typedef struct mx_ctx {
    ss_service *svc;
    ss_s3_client *s3;
    int64_t concurrency, ack_wait_ms, retry_max_ms, stall_timeout_ms;
    int64_t read_window, part_size, max_alloc;
    int64_t live_tracks, live_moov_reserve, live_idle_ms;
    bool transcode;
    const char *tmp_dir;
} mx_ctx;

extern mx_ctx mx;

/* One worker thread's state. */
typedef struct mx_worker {
    ss_work_item w; /* first: the pool hands out &w */
    ss_s3_conn *s3;
    ss_pg *pg;
    uint8_t *buf; /* part_size bytes, for uploads */
} mx_worker;

ss_work_verdict mx_handle_track(mx_worker *wk, const uint8_t *data, size_t len);

/* ---- one track's outputs (mux_track.c), shared by the work item and live
 * muxing (mux_live.c) ---- */

typedef struct mx_track mx_track;

extern const char *const mx_output_kinds[MX_OUTPUT_KINDS]; /* webm, mp4, wav */
extern const char *const mx_output_types[MX_OUTPUT_KINDS]; /* their Content-Types */

typedef struct mx_job mx_job;

/* The session time zero and the track's offset from it (j->t loaded). */
int mx_job_timeline(mx_worker *wk, mx_job *j);
/* Temporary files for the outputs (removed by mx_job_cleanup). */
int mx_job_paths(mx_job *j);
void mx_job_cleanup(mx_job *j);
mx_output *mx_job_output(mx_job *j, int k);
void mx_output_key(const mx_job *j, int k, char *key, size_t len);
/* Uploads the outputs not stored yet, writes their rows, realigns other
 * tracks, writes the manifest, announces track.muxed. */
ss_work_verdict mx_job_finish(mx_worker *wk, mx_job *j);
ss_work_verdict mx_handle_session_delete(mx_worker *wk, const uint8_t *data, size_t len);
/* Once a job's files are recorded and the manifest written: if the
 * session is being deleted by now, its files go (the SessionDelete may have
 * listed them before they existed). 0, or -2 draining. */
int mx_delete_if_session_deleted(mx_worker *wk, const char *session_id);

/* ---- object store (mux_store.c) ---- */

/* Uploads the file at path to key (multipart, mx.part_size parts through
 * wk->buf), retrying transient failures; *size_out and sha256_out (32
 * bytes) describe what was uploaded. 0, -1 failed for good (res), -2
 * draining. */
int mx_store_put_file(mx_worker *wk, const char *key, const char *path, const char *content_type,
                      uint64_t *size_out, uint8_t *sha256_out, ss_s3_result *res);

/* CompleteMultipartUpload, retried while transient; an earlier attempt
 * that went through although its answer was lost (a timeout while a large
 * object is assembled) counts as done. Same results. */
int mx_store_complete(mx_worker *wk, const char *key, const char *upload_id,
                      const ss_s3_part *parts, size_t n, ss_s3_result *res);

/* Uploads len bytes as key (one part). Same results. */
int mx_store_put(mx_worker *wk, const char *key, const uint8_t *data, size_t len,
                 const char *content_type, ss_s3_result *res);

/* ---- PostgreSQL (mux_db.c) ---- */

struct mx_track {
    bool found;
    char session_id[SS_UUID_LEN + 1], participant_id[SS_UUID_LEN + 1];
    char state[16], session_state[16], mime_type[256], raw_key[MX_KEY_MAX];
    uint64_t total_bytes;
    bool has_start;
    int64_t start_unix_us;    /* capture start + clock offset: server clock */
    char live_state[16];      /* live muxing: "", running, done, failed */
    int64_t live_beat_age_ms; /* since the live job last reported, -1 if never */
};

/* One track's job: the rows, the temporary files, the results. */
struct mx_job {
    char track_id[SS_UUID_LEN + 1];
    mx_track t;
    int64_t zero_us, offset_us;
    char paths[MX_OUTPUT_KINDS][600];
    mx_result res;
    bool stored[MX_OUTPUT_KINDS]; /* already in the store (live): sizes, shas */
    uint64_t sizes[MX_OUTPUT_KINDS];
    uint8_t shas[MX_OUTPUT_KINDS][32];
};

int mx_db_track_load(ss_pg *pg, const char *track_id, mx_track *t, char *err, size_t errlen);

/* The session's time zero: the earliest start of its tracks (server clock).
 * *found false when no track has a start. */
int mx_db_session_zero(ss_pg *pg, const char *session_id, int64_t *zero_us, bool *found, char *err,
                       size_t errlen);

/* What one output row gets. */
typedef struct mx_output_row {
    const char *kind;  /* webm, mp4, wav */
    const char *state; /* done, failed, skipped */
    const char *object_key;
    uint64_t size;
    const uint8_t *sha256; /* 32 bytes, or NULL */
    int64_t duration_us;
    const char *codecs;
    int width, height, sample_rate, channels;
    const char *failure_reason;
    int64_t zero_unix_us, start_offset_us;
} mx_output_row;

int mx_db_output_upsert(ss_pg *pg, const char *track_id, const mx_output_row *o, char *err,
                        size_t errlen);

/* Tracks of the session whose outputs were aligned to a zero later than
 * zero_us by MX_ZERO_SLACK_US or more (they must be made again): an array
 * of UUID strings, caller frees. */
int mx_db_tracks_to_realign(ss_pg *pg, const char *session_id, int64_t zero_us, char (**ids)[37],
                            int *n, char *err, size_t errlen);

/* ---- session manifest (mux_manifest.c) ---- */

/* Builds manifests/<session>.json from PostgreSQL, uploads it and records
 * it in session_manifests; nothing for a session being deleted. 0, -1
 * (err), -2 draining. */
int mx_manifest_write(mx_worker *wk, const char *session_id, char *err, size_t errlen);

/* The zero a track's outputs were aligned to; *found false without rows. */
int mx_db_outputs_zero(ss_pg *pg, const char *track_id, int64_t *zero_us, bool *found, char *err,
                       size_t errlen);

/* ---- live muxing (mux_live.c) ---- */

/* Claims recording tracks (up to MUXER_LIVE_TRACKS at once) and makes their
 * outputs while they are recorded. 0, or -1 when the thread cannot start. */
int mx_live_start(void);
void mx_live_stop(void); /* after drain: waits for the live jobs */
/* live_state running/done/failed, and the heartbeat (mux_db.c). */
int mx_db_live_claim(ss_pg *pg, char (*ids)[37], int max, int *n, char *err, size_t errlen);
int mx_db_live_set(ss_pg *pg, const char *track_id, const char *state, uint64_t read_bytes,
                   char *session_state, size_t sslen, char *err, size_t errlen);

/* ---- notices ---- */

/* TrackUploaded again for track_id (msg id "<track>:realign:<zero>"), so
 * its outputs are made against the new zero; nothing for a track whose
 * upload is not complete yet (its own TrackUploaded is still to come). */
int mx_requeue_track(mx_worker *wk, const char *track_id, int64_t zero_us, char *err,
                     size_t errlen);

#endif
