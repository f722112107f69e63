/* retention.c -- the chunk log holds only what the object store does not:
 * when the uploader reports progress (track.committed.<id>), the chunks
 * that PostgreSQL records as committed are deleted from CHUNKS, except
 * chunk 0 (the container header, read by the muxer) and the newest chunk
 * (the anchor of the next publish's expected-last-sequence check); when the
 * muxer reports a track done (track.muxed.<id>) and PostgreSQL agrees, the
 * rest goes. While a live muxing job reads the track, the chunks it has not
 * read yet stay too (live_bound). The tracks of a deleted session go
 * whole (the indexer's sweep calls cs_retention_sweep_deleted). Never
 * driven by a message alone: PostgreSQL decides. */
#include "chunk_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/metrics.h"

#define LIVE_RETAIN_MAX_BYTES (256LL * 1024 * 1024)

static cs_ctx *ctx;
static natsSubscription *committed_sub, *muxed_sub;
static ss_metric *m_deleted;

/* Deletes chunks [from, to) of the track from the log. */
static int delete_range(const char *track_id, uint64_t from, uint64_t to, char *err, size_t errlen)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%" PRIu64, from);
    snprintf(b, sizeof b, "%" PRIu64, to);
    const char *params[] = {track_id, a, b};
    PGresult *r = ss_pg_query(ctx->pg_requests,
                              "SELECT stream_seq FROM chunks WHERE track_id = $1 "
                              "AND seq >= $2::bigint AND seq < $3::bigint ORDER BY seq",
                              3, params, err, errlen);
    if (r == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        jsErrCode jerr = 0;
        uint64_t seq = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        natsStatus s = js_DeleteMsg(ctx->js, CS_STREAM_CHUNKS, seq, NULL, &jerr);
        if (s == NATS_OK)
            ss_series_inc(ss_metric_series(m_deleted));
        else if (jerr != JSNoMessageFoundErr && s != NATS_NOT_FOUND) {
            snprintf(err, errlen, "delete of stream message %" PRIu64 ": %s", seq,
                     natsStatus_GetText(s));
            rc = -1;
        }
    }
    PQclear(r);
    return rc;
}

static void mark(const char *sql, const char *track_id, uint64_t value)
{
    char v[24], err[256];
    snprintf(v, sizeof v, "%" PRIu64, value);
    const char *params[] = {track_id, v};
    PGresult *r = ss_pg_query(ctx->pg_requests, sql, 2, params, err, sizeof err);
    PQclear(r);
}

/* The first chunk a live muxing job (docs/muxer.md) still has to read, or
 * `upto` when no job reports or it lags more than LIVE_RETAIN_MAX_BYTES
 * behind the upload (it then finds its bytes gone and gives up: a slow
 * muxer must not fill the log and hold back recordings). */
static uint64_t live_bound(const char *track_id, uint64_t upto)
{
    char err[256], cap[24];
    snprintf(cap, sizeof cap, "%lld", (long long)LIVE_RETAIN_MAX_BYTES);
    const char *params[] = {track_id, cap};
    PGresult *r = ss_pg_query(
        ctx->pg_requests,
        "SELECT (SELECT min(c.seq) FROM chunks c WHERE c.track_id = t.id "
        "AND c.byte_offset + c.size > t.live_mux_read_bytes) FROM tracks t WHERE t.id = $1 "
        "AND t.live_mux_state = 'running' AND t.live_mux_beat > now() - interval '30 seconds' "
        "AND t.committed_bytes - t.live_mux_read_bytes <= $2::bigint",
        2, params, err, sizeof err);
    if (r != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        uint64_t first_unread = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        if (first_unread < upto)
            upto = first_unread;
    }
    PQclear(r);
    return upto;
}

static void release_committed(const char *track_id)
{
    cs_track t;
    char err[256];
    if (ctx->keep_committed ||
        cs_track_load(ctx->pg_requests, track_id, &t, err, sizeof err) != 0 || !t.found ||
        t.log_released)
        return;
    uint64_t upto = t.committed_seq;
    if (upto + 1 > t.durable_seq) /* keep the newest chunk */
        upto = t.durable_seq > 0 ? t.durable_seq - 1 : 0;
    upto = live_bound(track_id, upto);
    uint64_t from = t.purged_seq > 1 ? t.purged_seq : 1; /* keep chunk 0 */
    if (upto <= from)
        return;
    if (delete_range(track_id, from, upto, err, sizeof err) != 0) {
        ss_log_warn("cannot release committed chunks", "{s:s, s:s}", "track_id", track_id, "error",
                    err);
        return;
    }
    mark("UPDATE tracks SET purged_seq = $2::bigint WHERE id = $1 AND purged_seq < $2::bigint",
         track_id, upto);
}

/* Muxed: only when PostgreSQL says the track is complete and no output is
 * still pending. */
static bool muxed_in_db(const char *track_id)
{
    char err[256];
    const char *params[] = {track_id};
    PGresult *r = ss_pg_query(ctx->pg_requests,
                              "SELECT t.state = 'complete' AND t.committed_seq = t.chunk_count "
                              "AND EXISTS (SELECT 1 FROM outputs o WHERE o.track_id = t.id) "
                              "AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.track_id = t.id "
                              "AND o.state = 'pending') FROM tracks t WHERE t.id = $1",
                              1, params, err, sizeof err);
    bool yes = r && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return yes;
}

/* Chunk 0 and chunks [purged_seq, to) leave the log: the ones between are
 * gone already. */
static int delete_up_to(const char *track_id, const cs_track *t, uint64_t to, char *err,
                        size_t errlen)
{
    uint64_t from = t->purged_seq > 1 ? t->purged_seq : 1;
    if (to > 0 && delete_range(track_id, 0, 1, err, errlen) != 0)
        return -1;
    return to > from ? delete_range(track_id, from, to, err, errlen) : 0;
}

/* Nothing of the track is left in the log: recorded, and its room given back. */
static void mark_released(const char *track_id)
{
    mark("UPDATE tracks SET log_released = true, purged_seq = $2::bigint WHERE id = $1", track_id,
         0);
    cs_admission_release(ctx, track_id);
}

/* The rest of a muxed track goes message by message, not with a subject
 * purge: nats-server 2.9 moves every consumer of the stream past the
 * purge, so the indexer's consumer skipped other tracks' chunks that were
 * not delivered yet. */
static void release_all(const char *track_id)
{
    cs_track t;
    char err[256];
    if (!muxed_in_db(track_id)) {
        ss_log_info("muxed notice ignored: track not complete or outputs pending", "{s:s}",
                    "track_id", track_id);
        return;
    }
    if (cs_track_load(ctx->pg_requests, track_id, &t, err, sizeof err) != 0 || !t.found ||
        delete_up_to(track_id, &t, t.durable_seq, err, sizeof err) != 0) {
        ss_log_warn("cannot release a muxed track from the chunk log", "{s:s, s:s}", "track_id",
                    track_id, "error", err);
        return;
    }
    mark_released(track_id);
    ss_log_info("track released from the chunk log", "{s:s}", "track_id", track_id);
}

/* A deleted session's track: every chunk goes, except the newest of one
 * still recording (the anchor of ingest's next publish, which a guest who
 * has not stopped may still make); that one goes at a later sweep. */
static void release_deleted(const char *track_id)
{
    cs_track t;
    char err[256];
    if (cs_track_load(ctx->pg_requests, track_id, &t, err, sizeof err) != 0 || !t.found)
        return;
    bool recording = strcmp(t.state, "recording") == 0;
    uint64_t to = recording && t.durable_seq > 0 ? t.durable_seq - 1 : t.durable_seq;
    if (delete_up_to(track_id, &t, to, err, sizeof err) != 0) {
        ss_log_warn("cannot release a deleted session's track from the chunk log", "{s:s, s:s}",
                    "track_id", track_id, "error", err);
        return;
    }
    if (!recording) {
        mark_released(track_id);
        return;
    }
    mark("UPDATE tracks SET purged_seq = $2::bigint WHERE id = $1 AND purged_seq < $2::bigint",
         track_id, to);
    cs_admission_release(ctx, track_id);
}

void cs_retention_sweep_deleted(void)
{
    char err[256];
    PGresult *r = ss_pg_query(ctx->pg_requests,
                              "SELECT t.id FROM tracks t JOIN sessions s ON s.id = t.session_id "
                              "WHERE s.state IN ('deleting', 'deleted') AND NOT t.log_released "
                              "AND (t.state <> 'recording' OR t.purged_seq + 1 < t.durable_seq) "
                              "ORDER BY t.id LIMIT 100",
                              0, NULL, err, sizeof err);
    if (r == NULL) {
        ss_log_warn("cannot list deleted sessions' tracks", "{s:s}", "error", err);
        return;
    }
    for (int i = 0; i < PQntuples(r); i++)
        release_deleted(PQgetvalue(r, i, 0));
    if (PQntuples(r) > 0)
        ss_log_info("deleted sessions' tracks released from the chunk log", "{s:i}", "tracks",
                    PQntuples(r));
    PQclear(r);
}

static void on_notice(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *track_id = strrchr(subject, '.');
    (void)nc, (void)sub;
    if (track_id != NULL && ss_uuid_valid(track_id + 1)) {
        if (arg == &committed_sub)
            release_committed(track_id + 1);
        else
            release_all(track_id + 1);
    }
    natsMsg_Destroy(msg);
}

int cs_retention_start(cs_ctx *cs)
{
    ctx = cs;
    m_deleted = ss_metrics_counter("seashore_chunks_released_total",
                                   "Chunk records deleted from the chunk log after upload", NULL);
    if (natsConnection_QueueSubscribe(&committed_sub, cs->svc->nats.conn, "track.committed.*",
                                      CS_QUEUE, on_notice, &committed_sub) != NATS_OK ||
        natsConnection_QueueSubscribe(&muxed_sub, cs->svc->nats.conn, "track.muxed.*", CS_QUEUE,
                                      on_notice, &muxed_sub) != NATS_OK)
        return -1;
    return 0;
}

void cs_retention_stop(void)
{
    natsSubscription *subs[] = {committed_sub, muxed_sub};
    for (int i = 0; i < 2; i++) {
        if (subs[i] == NULL)
            continue;
        natsSubscription_Drain(subs[i]);
        natsSubscription_WaitForDrainCompletion(subs[i], 5000);
        natsSubscription_Destroy(subs[i]);
    }
    committed_sub = muxed_sub = NULL;
}
