/* indexer.c -- consumes the CHUNKS stream (durable pull consumer shared by
 * every replica) and indexes each chunk in PostgreSQL; publishes PartReady
 * as a track's durable bytes pass part boundaries. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: the running hash is stored */
#include "chunk_store.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/metrics.h"
#include "seashore/v1/chunks.pb-c.h"

#define FETCH_WAIT_MS        1000
#define AHEAD_NAK_DELAY_NS   (200LL * 1000 * 1000)
#define RETRY_NAK_DELAY_NS   (1000LL * 1000 * 1000)
#define ACK_WAIT_NS          (30LL * 1000 * 1000 * 1000)
#define MAX_AHEAD_DELIVERIES 3000 /* about 10 minutes of 200 ms NAK delays */
#define SWEEP_MAX_TRACKS     1000
#define SWEEP_TAIL_READS     16

typedef enum { IDX_ACK, IDX_NAK_AHEAD, IDX_RETRY, IDX_TERM } idx_verdict;

static pthread_t indexer_thread;
static bool indexer_running;
static ss_metric *m_indexed, *m_duplicates, *m_refused;

static const char *kind_text(Seashore__V1__TrackKind k)
{
    switch (k) {
    case SEASHORE__V1__TRACK_KIND__TRACK_KIND_AUDIO:
        return "audio";
    case SEASHORE__V1__TRACK_KIND__TRACK_KIND_VIDEO:
        return "video";
    default:
        return "audio_video";
    }
}

/* Creates the track's row from its chunk 0 (idempotent). */
static int track_create(cs_ctx *cs, const Seashore__V1__ChunkRecord *c, char *err, size_t errlen)
{
    char part_size[24], capture[24], offset[24];
    snprintf(part_size, sizeof part_size, "%" PRId64, cs->part_size);
    snprintf(capture, sizeof capture, "%" PRId64, c->capture_start_unix_us);
    snprintf(offset, sizeof offset, "%" PRId64, c->clock_offset_us);
    const char *mime = c->mime_type[0] ? c->mime_type : "application/octet-stream";
    const char *params[] = {c->track_id,        c->session_id, c->participant_id,
                            kind_text(c->kind), mime,          cs_ext_for_mime(mime),
                            part_size,          capture,       offset};
    PGresult *r = ss_pg_query(cs->pg_index,
                              "INSERT INTO tracks (id, session_id, participant_id, kind, "
                              "mime_type, ext, part_size, capture_start_unix_us, "
                              "clock_offset_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                              "ON CONFLICT (id) DO NOTHING",
                              9, params, err, errlen);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

/* The running sha256 after this chunk, serialised into out. */
static void sha_state_advance(const cs_track *t, const Seashore__V1__ChunkRecord *c,
                              unsigned char out[sizeof(SHA256_CTX)])
{
    SHA256_CTX ctx;
    if (c->seq == 0 || t->sha_state_len != (int)sizeof ctx)
        SHA256_Init(&ctx);
    else
        memcpy(&ctx, t->sha_state, sizeof ctx);
    SHA256_Update(&ctx, c->data.data, c->data.len);
    memcpy(out, &ctx, sizeof ctx);
}

/* Appends chunk seq == durable_seq in one statement: the track's counters
 * move only if nobody else indexed it first. Returns 1 appended, 0 lost a
 * race, -1 error. */
static int chunk_append(cs_ctx *cs, const cs_track *t, const Seashore__V1__ChunkRecord *c,
                        uint64_t stream_seq)
{
    unsigned char state[sizeof(SHA256_CTX)];
    char seq[24], off[24], size[24], sseq[24], err[256];
    sha_state_advance(t, c, state);
    snprintf(seq, sizeof seq, "%" PRIu64, c->seq);
    snprintf(off, sizeof off, "%" PRIu64, c->offset);
    snprintf(size, sizeof size, "%zu", c->data.len);
    snprintf(sseq, sizeof sseq, "%" PRIu64, stream_seq);
    const char *values[] = {c->track_id,        seq, off, size, (const char *)c->sha256.data, sseq,
                            (const char *)state};
    const int lengths[] = {0, 0, 0, 0, 32, 0, (int)sizeof state};
    const int formats[] = {0, 0, 0, 0, 1, 0, 1};
    PGresult *r = ss_pg_query_bin(
        cs->pg_index,
        "WITH t AS (UPDATE tracks SET durable_seq = durable_seq + 1, "
        "durable_bytes = durable_bytes + $4::bigint, sha256_state = $7 "
        "WHERE id = $1 AND durable_seq = $2::bigint AND durable_bytes = $3::bigint "
        "AND state = 'recording' RETURNING id) "
        "INSERT INTO chunks (track_id, seq, byte_offset, size, sha256, stream_seq) "
        "SELECT id, $2::bigint, $3::bigint, $4::int, $5, $6::bigint FROM t RETURNING seq",
        7, values, lengths, formats, 0, err, sizeof err);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    return n == 1 ? 1 : 0;
}

/* A chunk already indexed: identical (ack, and re-announce its parts in
 * case the first attempt died before publishing) or different (refused). */
static idx_verdict chunk_duplicate(cs_ctx *cs, const cs_track *t,
                                   const Seashore__V1__ChunkRecord *c)
{
    char seq[24], err[256];
    snprintf(seq, sizeof seq, "%" PRIu64, c->seq);
    const char *params[] = {c->track_id, seq};
    PGresult *r =
        ss_pg_query_bin(cs->pg_index, "SELECT sha256 FROM chunks WHERE track_id = $1 AND seq = $2",
                        2, params, NULL, NULL, 1, err, sizeof err);
    if (r == NULL)
        return IDX_RETRY;
    bool same = PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 32 &&
                memcmp(PQgetvalue(r, 0, 0), c->sha256.data, 32) == 0;
    bool missing = PQntuples(r) == 0;
    PQclear(r);
    ss_series_inc(ss_metric_series(m_duplicates));
    if (missing) /* purged after upload: nothing to compare with */
        return IDX_ACK;
    if (!same) {
        ss_log_error("chunk log holds a different copy of an indexed chunk; kept the indexed one",
                     "{s:s, s:I}", "track_id", c->track_id, "seq", (long long)c->seq);
        return IDX_TERM;
    }
    if (cs_publish_parts_crossed(cs, t, c->track_id, c->offset, c->offset + c->data.len) != 0)
        return IDX_RETRY;
    return IDX_ACK;
}

static idx_verdict chunk_refuse(const Seashore__V1__ChunkRecord *c, const char *why)
{
    ss_series_inc(ss_metric_series(m_refused));
    ss_log_error("chunk record refused by the indexer", "{s:s, s:I, s:s}", "track_id", c->track_id,
                 "seq", (long long)c->seq, "reason", why);
    return IDX_TERM;
}

static bool record_valid(const Seashore__V1__ChunkRecord *c, const char *subject, cs_ctx *cs,
                         const char **why)
{
    unsigned char digest[32];
    *why = NULL;
    if (!ss_uuid_valid(c->track_id) || strcmp(subject + strlen("chunks."), c->track_id) != 0)
        *why = "track_id is not a UUID or does not match the subject";
    else if (!ss_uuid_valid(c->session_id) || !ss_uuid_valid(c->participant_id))
        *why = "session_id or participant_id is not a UUID";
    else if (c->data.len == 0 || (int64_t)c->data.len > cs->max_chunk_bytes)
        *why = "data is empty or larger than MAX_CHUNK_BYTES";
    else if (c->sha256.len != 32 ||
             memcmp(SHA256(c->data.data, c->data.len, digest), c->sha256.data, 32) != 0)
        *why = "sha256 does not match the data";
    return *why == NULL;
}

static idx_verdict index_record(cs_ctx *cs, const Seashore__V1__ChunkRecord *c, uint64_t stream_seq)
{
    char err[256];
    cs_track t;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (cs_track_load(cs->pg_index, c->track_id, &t, err, sizeof err) != 0)
            return IDX_RETRY;
        if (!t.found && c->seq != 0)
            return IDX_NAK_AHEAD;
        if (!t.found) {
            if (track_create(cs, c, err, sizeof err) != 0)
                return strncmp(ss_pg_last_sqlstate(cs->pg_index), "23", 2) == 0
                           ? chunk_refuse(c, err)
                           : IDX_RETRY;
            continue;
        }
        if (strcmp(t.session_id, c->session_id) != 0 ||
            strcmp(t.participant_id, c->participant_id) != 0)
            return chunk_refuse(c, "track belongs to another session or participant");
        if (c->seq < t.durable_seq)
            return chunk_duplicate(cs, &t, c);
        if (c->seq > t.durable_seq)
            return IDX_NAK_AHEAD;
        if (c->offset != t.durable_bytes)
            return chunk_refuse(c, "offset differs from the track's durable length");
        int rc = chunk_append(cs, &t, c, stream_seq);
        if (rc < 0)
            return IDX_RETRY;
        if (rc == 1) {
            ss_series_inc(ss_metric_series(m_indexed));
            if (cs_publish_parts_crossed(cs, &t, c->track_id, c->offset, c->offset + c->data.len) !=
                0)
                return IDX_RETRY; /* redelivered: the duplicate path publishes */
            return IDX_ACK;
        }
    }
    return IDX_RETRY;
}

/* The stream sequence of chunk seq-1 of the track (0 for seq 0), from
 * which the next chunk is looked up in the log. -1 on a database error. */
static int64_t stream_seq_before(cs_ctx *cs, const char *track_id, uint64_t seq)
{
    char s[24], err[256];
    if (seq == 0)
        return 0;
    snprintf(s, sizeof s, "%" PRIu64, seq - 1);
    const char *params[] = {track_id, s};
    PGresult *r =
        ss_pg_query(cs->pg_index, "SELECT stream_seq FROM chunks WHERE track_id = $1 AND seq = $2",
                    2, params, err, sizeof err);
    if (r == NULL)
        return -1;
    int64_t v = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return v;
}

int cs_index_catch_up(cs_ctx *cs, const char *track_id, uint64_t durable_seq, uint64_t log_next_seq)
{
    char subject[64];
    int64_t after = stream_seq_before(cs, track_id, durable_seq);
    int indexed = 0;
    snprintf(subject, sizeof subject, "chunks.%s", track_id);
    for (uint64_t seq = durable_seq; after >= 0 && seq < log_next_seq; seq++) {
        jsDirectGetMsgOptions dg;
        natsMsg *m = NULL;
        jsDirectGetMsgOptions_Init(&dg);
        dg.Sequence = (uint64_t)after + 1;
        dg.NextBySubject = subject;
        if (js_DirectGetMsg(&m, cs->js, CS_STREAM_CHUNKS, NULL, &dg) != NATS_OK)
            break;
        Seashore__V1__ChunkRecord *c = seashore__v1__chunk_record__unpack(
            NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
        const char *why = NULL;
        after = (int64_t)natsMsg_GetSequence(m);
        idx_verdict v = c != NULL && record_valid(c, subject, cs, &why) && c->seq == seq
                            ? index_record(cs, c, (uint64_t)after)
                            : IDX_TERM;
        seashore__v1__chunk_record__free_unpacked(c, NULL);
        natsMsg_Destroy(m);
        if (v != IDX_ACK)
            break;
        indexed++;
    }
    if (indexed > 0)
        ss_log_warn("index caught up from the chunk log: chunks the indexer had not indexed",
                    "{s:s, s:I, s:i}", "track_id", track_id, "from_seq", (long long)durable_seq,
                    "chunks", indexed);
    return indexed;
}

static void handle_msg(cs_ctx *cs, natsMsg *msg)
{
    jsMsgMetaData *meta = NULL;
    idx_verdict v = IDX_TERM;
    const char *why = NULL;
    Seashore__V1__ChunkRecord *c = seashore__v1__chunk_record__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));

    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK)
        ss_log_error("chunk record without JetStream metadata", NULL);
    else if (c == NULL)
        ss_log_error("chunk record is not a ChunkRecord; dropped from the index", "{s:s, s:I}",
                     "subject", natsMsg_GetSubject(msg), "stream_seq",
                     (long long)meta->Sequence.Stream);
    else if (!record_valid(c, natsMsg_GetSubject(msg), cs, &why))
        v = chunk_refuse(c, why);
    else
        v = index_record(cs, c, meta->Sequence.Stream);

    if (v == IDX_NAK_AHEAD && meta != NULL && meta->NumDelivered > MAX_AHEAD_DELIVERIES) {
        /* its predecessors never arrive (e.g. chunk 0 was refused): stop
         * the redelivery loop; the track's End will report the gap */
        ss_log_error("chunk record waited too long for its predecessors; dropped from the index",
                     "{s:s, s:I, s:I}", "track_id", c ? c->track_id : "?", "seq",
                     c ? (long long)c->seq : -1LL, "deliveries", (long long)meta->NumDelivered);
        v = IDX_TERM;
    }
    if (v == IDX_ACK)
        natsMsg_Ack(msg, NULL);
    else if (v == IDX_NAK_AHEAD)
        natsMsg_NakWithDelay(msg, AHEAD_NAK_DELAY_NS / 1000000, NULL);
    else if (v == IDX_RETRY)
        natsMsg_NakWithDelay(msg, RETRY_NAK_DELAY_NS / 1000000, NULL);
    else
        natsMsg_Term(msg, NULL);
    jsMsgMetaData_Destroy(meta);
    seashore__v1__chunk_record__free_unpacked(c, NULL);
}

static natsSubscription *subscribe(cs_ctx *cs)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = CS_STREAM_CHUNKS;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = ACK_WAIT_NS;
    so.Config.MaxAckPending = 20000;
    so.Config.MaxDeliver = -1;
    while (!ss_drain_requested()) {
        jsErrCode jerr = 0;
        natsStatus s = js_PullSubscribe(&sub, cs->js, "chunks.>", CS_CONSUMER, NULL, &so, &jerr);
        if (s == NATS_OK)
            return sub;
        ss_log_warn("cannot subscribe to the chunk log, retrying", "{s:s, s:i}", "error",
                    natsStatus_GetText(s), "js_error", (int)jerr);
        sleep(1);
    }
    return NULL;
}

/* A recording track the sweep saw behind its log, and since when. */
typedef struct sweep_seen {
    char track_id[SS_UUID_LEN + 1];
    uint64_t durable_seq;
    int sweeps; /* consecutive sweeps without progress */
} sweep_seen;

static sweep_seen seen[SWEEP_MAX_TRACKS];
static int nseen;

/* How many sweeps in a row this track stood still (0 after progress). */
static int sweep_note(const char *track_id, uint64_t durable_seq, sweep_seen *next, int *nnext)
{
    int sweeps = 0;
    for (int i = 0; i < nseen; i++)
        if (strcmp(seen[i].track_id, track_id) == 0 && seen[i].durable_seq == durable_seq)
            sweeps = seen[i].sweeps + 1;
    if (*nnext < SWEEP_MAX_TRACKS) {
        snprintf(next[*nnext].track_id, sizeof next[*nnext].track_id, "%s", track_id);
        next[*nnext].durable_seq = durable_seq;
        next[*nnext].sweeps = sweeps;
        (*nnext)++;
    }
    return sweeps;
}

/* Recording tracks whose index stood still for two sweeps in a row
 * (longer than the consumer's redelivery) and whose log holds chunks the
 * index does not: the consumer will not bring them (its state was lost in
 * a server restart), so they are indexed from the log. The log, not the
 * consumer, is the truth. Reading a log tail fetches a whole chunk and this
 * runs on the indexer's thread, so only still tracks are looked at, at most
 * SWEEP_TAIL_READS of them per sweep, in turn. */
static void index_sweep(cs_ctx *cs)
{
    static sweep_seen next[SWEEP_MAX_TRACKS];
    static unsigned turn;
    char err[256];
    int nnext = 0, reads = 0;
    PGresult *r = ss_pg_query(cs->pg_index,
                              "SELECT id, durable_seq FROM tracks WHERE state = 'recording' "
                              "ORDER BY id LIMIT 1000",
                              0, NULL, err, sizeof err);
    int n = r != NULL ? PQntuples(r) : 0;
    for (int k = 0; k < n; k++) {
        int i = (int)((turn + (unsigned)k) % (unsigned)n);
        const char *id = PQgetvalue(r, i, 0);
        uint64_t durable = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        cs_log_tail lt;
        if (sweep_note(id, durable, next, &nnext) < 2 || reads >= SWEEP_TAIL_READS)
            continue;
        reads++;
        if (cs_log_tail_read(cs, id, &lt, err, sizeof err) == 0 && lt.any && lt.next_seq > durable)
            cs_index_catch_up(cs, id, durable, lt.next_seq);
    }
    turn += SWEEP_TAIL_READS;
    PQclear(r);
    memcpy(seen, next, sizeof(sweep_seen) * (size_t)nnext);
    nseen = nnext;
}

static void *indexer_main(void *arg)
{
    cs_ctx *cs = arg;
    natsSubscription *sub = subscribe(cs);
    int64_t last_sweep = 0;
    while (sub != NULL && !ss_drain_requested()) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (now - last_sweep >= cs->index_sweep_ms) {
            index_sweep(cs);
            cs_retention_sweep_deleted();
            cs_admission_sweep(cs);
            last_sweep = now;
        }
        natsMsg *msg = NULL;
        jsErrCode jerr = 0;
        natsStatus s = ss_js_fetch_one(sub, FETCH_WAIT_MS, &msg, &jerr);
        if (msg != NULL)
            handle_msg(cs, msg);
        natsMsg_Destroy(msg);
        if (s != NATS_OK && s != NATS_TIMEOUT) {
            ss_log_warn("fetch from the chunk log failed", "{s:s, s:i}", "error",
                        natsStatus_GetText(s), "js_error", (int)jerr);
            usleep(200000);
        }
    }
    natsSubscription_Destroy(sub);
    return NULL;
}

int cs_indexer_start(cs_ctx *cs)
{
    m_indexed =
        ss_metrics_counter("seashore_chunks_indexed_total", "Chunks added to the index", NULL);
    m_duplicates = ss_metrics_counter("seashore_chunk_duplicates_total",
                                      "Chunk records that were already indexed", NULL);
    m_refused =
        ss_metrics_counter("seashore_chunk_records_refused_total",
                           "Chunk records the indexer refused (invalid or conflicting)", NULL);
    if (pthread_create(&indexer_thread, NULL, indexer_main, cs) != 0)
        return -1;
    indexer_running = true;
    return 0;
}

void cs_indexer_stop(void)
{
    if (indexer_running)
        pthread_join(indexer_thread, NULL);
    indexer_running = false;
}
