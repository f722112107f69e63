/* track_end.c -- chunkstore.end: verifies a client's End against the
 * index (count, bytes, sha256 of the whole stream), marks the track ended,
 * and hands the tail part and the completion to the uploader. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: the running hash is stored */
#include "chunk_store.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "seashore/log.h"
#include "seashore/v1/chunks.pb-c.h"
#include "seashore/v1/work.pb-c.h"

static void hex32(const uint8_t *b, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int reply_fail(Seashore__V1__TrackEndReply *rep, Seashore__V1__ErrorCode code,
                      bool retryable)
{
    rep->ok = false;
    rep->code = code;
    rep->retryable = retryable;
    return -1;
}

/* Loads the track once the indexer has indexed everything the log holds.
 * If the indexer makes no progress for CS_CATCH_UP_AFTER_MS, the missing
 * chunks are indexed from the log here. The log's tail is read once: ingest
 * sends End only after every chunk of the track is durable, and reading it
 * fetches a whole chunk, too dear to repeat at every poll. */
static int load_caught_up(const char *track_id, cs_track *t, cs_log_tail *lt, char *text,
                          size_t len)
{
    uint64_t last_seq = UINT64_MAX;
    int still_since = 0;
    if (cs_log_tail_read(cs_requests_ctx, track_id, lt, text, len) != 0)
        return -1;
    for (int waited = 0, poll_us = CS_INDEX_POLL_US;;
         waited += poll_us / 1000, poll_us = cs_index_poll_next(poll_us)) {
        if (cs_track_load(cs_requests_ctx->pg_requests, track_id, t, text, len) != 0)
            return -1;
        if (!lt->any || (t->found && t->durable_seq >= lt->next_seq))
            return 0;
        if (t->durable_seq != last_seq) {
            last_seq = t->durable_seq;
            still_since = waited;
        } else if (waited - still_since >= CS_CATCH_UP_AFTER_MS && /* chunk 0 may be missing too */
                   cs_index_catch_up(cs_requests_ctx, track_id, t->found ? t->durable_seq : 0,
                                     lt->next_seq) > 0) {
            continue;
        }
        if (waited >= CS_INDEX_WAIT_MS) {
            snprintf(text, len,
                     "track %s: the index is behind the chunk log (%" PRIu64 " of %" PRIu64
                     " chunks); retry",
                     track_id, t->found ? t->durable_seq : 0, lt->next_seq);
            return -1;
        }
        usleep((useconds_t)poll_us);
    }
}

/* Compares End with the stored chunks; 0 when they agree. */
static int end_compare(const Seashore__V1__TrackEndRecord *e, const cs_track *t,
                       const uint8_t digest[32], char *text, size_t len)
{
    char a[65], b[65];
    if (e->chunk_count != t->durable_seq) {
        snprintf(text, len, "End.chunk_count is %" PRIu64 ", the server has %" PRIu64 " chunks",
                 e->chunk_count, t->durable_seq);
        return -1;
    }
    if (e->total_bytes != t->durable_bytes) {
        snprintf(text, len, "End.total_bytes is %" PRIu64 ", the server has %" PRIu64 " bytes",
                 e->total_bytes, t->durable_bytes);
        return -1;
    }
    if (e->sha256.len != 32 || memcmp(e->sha256.data, digest, 32) != 0) {
        hex32(digest, b);
        if (e->sha256.len == 32)
            hex32(e->sha256.data, a);
        else
            snprintf(a, sizeof a, "(%zu bytes, not 32)", e->sha256.len);
        snprintf(text, len, "End.sha256 is %s, the stored stream's sha256 is %s", a, b);
        return -1;
    }
    return 0;
}

static void stream_digest(const cs_track *t, uint8_t out[32])
{
    SHA256_CTX ctx;
    if (t->durable_seq > 0 && t->sha_state_len == (int)sizeof ctx)
        memcpy(&ctx, t->sha_state, sizeof ctx);
    else
        SHA256_Init(&ctx);
    SHA256_Final(out, &ctx);
}

static int mark_ended(const char *track_id, const Seashore__V1__TrackEndRecord *e, char *text,
                      size_t len)
{
    char count[24], bytes[24], dur[24], off[24];
    snprintf(count, sizeof count, "%" PRIu64, e->chunk_count);
    snprintf(bytes, sizeof bytes, "%" PRIu64, e->total_bytes);
    snprintf(dur, sizeof dur, "%" PRId64, e->duration_us > 0 ? e->duration_us : 0);
    snprintf(off, sizeof off, "%" PRId64, e->clock_offset_us);
    const char *values[] = {track_id, count, bytes, (const char *)e->sha256.data, dur, off};
    const int lengths[] = {0, 0, 0, 32, 0, 0};
    const int formats[] = {0, 0, 0, 1, 0, 0};
    PGresult *r = ss_pg_query_bin(
        cs_requests_ctx->pg_requests,
        "UPDATE tracks SET state = 'ended', chunk_count = $2::bigint, total_bytes = $3::bigint, "
        "sha256 = $4, duration_us = nullif($5::bigint, 0), "
        "clock_offset_us = CASE WHEN $6::bigint <> 0 THEN $6::bigint ELSE clock_offset_us END, "
        "ended_at = now(), end_failure = NULL "
        "WHERE id = $1 AND state = 'recording' AND durable_seq = $2::bigint",
        6, values, lengths, formats, 0, text, len);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

static void note_failure(const char *track_id, const char *text)
{
    char err[256];
    const char *values[] = {track_id, text};
    PGresult *r =
        ss_pg_query(cs_requests_ctx->pg_requests,
                    "UPDATE tracks SET end_failure = $2 WHERE id = $1", 2, values, err, sizeof err);
    PQclear(r);
}

static int publish_complete(const cs_track *t, const char *track_id)
{
    Seashore__V1__TrackComplete tc = SEASHORE__V1__TRACK_COMPLETE__INIT;
    char key[256], msg_id[64];
    uint8_t buf[2048];
    cs_object_key(t, track_id, key, sizeof key);
    tc.session_id = (char *)t->session_id;
    tc.participant_id = (char *)t->participant_id;
    tc.track_id = (char *)track_id;
    tc.total_bytes = t->total_bytes;
    tc.part_count = (uint32_t)((t->total_bytes + t->part_size - 1) / t->part_size);
    tc.part_size = t->part_size;
    tc.sha256.data = (uint8_t *)t->sha256;
    tc.sha256.len = 32;
    tc.object_key = key;
    tc.mime_type = (char *)t->mime_type;
    tc.kind = strcmp(t->kind, "audio") == 0   ? SEASHORE__V1__TRACK_KIND__TRACK_KIND_AUDIO
              : strcmp(t->kind, "video") == 0 ? SEASHORE__V1__TRACK_KIND__TRACK_KIND_VIDEO
                                              : SEASHORE__V1__TRACK_KIND__TRACK_KIND_AUDIO_VIDEO;
    tc.capture_start_unix_us = t->capture_start_unix_us;
    tc.clock_offset_us = t->clock_offset_us;
    tc.duration_us = t->duration_us;
    if (seashore__v1__track_complete__get_packed_size(&tc) > sizeof buf)
        return -1;
    size_t n = seashore__v1__track_complete__pack(&tc, buf);
    snprintf(msg_id, sizeof msg_id, "%s:complete", track_id);
    return cs_publish(cs_requests_ctx, "work.complete", msg_id, buf, n);
}

/* The track is ended: (re)announce its tail part and its completion (both
 * deduplicated by message id, so a repeated End is harmless). */
static int announce_end(const char *track_id, char *text, size_t len)
{
    cs_track t;
    if (cs_track_load(cs_requests_ctx->pg_requests, track_id, &t, text, len) != 0)
        return -1;
    if (cs_publish_last_part(cs_requests_ctx, &t, track_id) != 0 ||
        publish_complete(&t, track_id) != 0) {
        snprintf(text, len, "track %s ended, but its work items could not be published; retry",
                 track_id);
        return -1;
    }
    return 0;
}

int cs_end_handle(const Seashore__V1__TrackEndRecord *e, Seashore__V1__TrackEndReply *rep,
                  char *text, size_t len)
{
    cs_track t;
    cs_log_tail lt;
    uint8_t digest[32];
    if (load_caught_up(e->track_id, &t, &lt, text, len) != 0)
        return reply_fail(rep, SEASHORE__V1__ERROR_CODE__ERROR_CODE_INTERNAL, true);
    if (!t.found) {
        snprintf(text, len, "track %s: no chunk of it was received", e->track_id);
        return reply_fail(rep, SEASHORE__V1__ERROR_CODE__ERROR_CODE_END_MISMATCH, false);
    }
    if (t.ended) {
        memcpy(digest, t.sha256, 32);
        t.durable_seq = t.chunk_count;
        t.durable_bytes = t.total_bytes;
    } else {
        stream_digest(&t, digest);
    }
    if (end_compare(e, &t, digest, text, len) != 0) {
        ss_log_warn("end refused", "{s:s, s:s}", "track_id", e->track_id, "reason", text);
        if (!t.ended)
            note_failure(e->track_id, text);
        return reply_fail(rep, SEASHORE__V1__ERROR_CODE__ERROR_CODE_END_MISMATCH, false);
    }
    if (!t.ended && mark_ended(e->track_id, e, text, len) != 0)
        return reply_fail(rep, SEASHORE__V1__ERROR_CODE__ERROR_CODE_INTERNAL, true);
    if (announce_end(e->track_id, text, len) != 0)
        return reply_fail(rep, SEASHORE__V1__ERROR_CODE__ERROR_CODE_INTERNAL, true);
    cs_admission_release(cs_requests_ctx, e->track_id);
    if (!t.ended)
        ss_log_info("track ended", "{s:s, s:I, s:I}", "track_id", e->track_id, "chunks",
                    (long long)e->chunk_count, "bytes", (long long)e->total_bytes);
    rep->ok = true;
    text[0] = '\0';
    return 0;
}
