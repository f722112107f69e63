/* admission.c -- how many tracks may record at once. The log releases a
 * track's bytes only once they lie in an uploaded part, and a part is
 * uploaded only once it is whole (every part but the last the same size).
 * If every recording track held an unfinished part and together they
 * filled the log, nothing could ever be uploaded or released: the
 * 400-recorder scale run deadlocked that way on a 2 GiB log. So a new
 * track starts only while the log can hold a whole part, plus the chunks
 * retention keeps, for every recording track.
 *
 * Each admitted track holds one message on admit.<track_id> in the
 * ADMISSION stream, whose max_msgs is that count and which discards new:
 * JetStream decides atomically for all chunk-store replicas. The message
 * goes when the track's End is accepted (its tail becomes the last part,
 * uploadable whatever its size), when its connection closes before any
 * chunk of it is durable (ingest's chunkstore.admission.release notice) and,
 * as a backstop, when it is muxed. */
#include "chunk_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/metrics.h"
#include "seashore/work.h"

static cs_ctx *ctx;
static ss_metric *m_refused;
static natsSubscription *release_sub;

/* The log bytes one recording track may need before it can be uploaded:
 * a whole part, the chunk that straddles the previous part's end, chunk 0
 * and the newest chunk (both kept until muxed), and record overhead
 * (generous: a 64 KiB chunk costs about 100 bytes of headers). */
static int64_t bytes_per_track(const cs_ctx *cs)
{
    return cs->part_size + cs->part_size / 16 + 3 * cs->max_chunk_bytes;
}

/* Recording tracks the log can hold a whole part for. */
static int64_t safe_tracks(const cs_ctx *cs)
{
    int64_t room = cs->log_max_bytes - cs->max_chunk_bytes; /* one publish of headroom */
    return room > 0 ? room / bytes_per_track(cs) : 0;
}

int64_t cs_admission_tracks(const cs_ctx *cs)
{
    int64_t safe = safe_tracks(cs);
    if (cs->max_tracks > 0) {
        if (cs->max_tracks > safe)
            ss_log_warn("CHUNK_LOG_MAX_TRACKS admits more recording tracks than the log can hold "
                        "a whole part for: if they all stall mid-part the log deadlocks",
                        "{s:I, s:I}", "max_tracks", (long long)cs->max_tracks, "safe",
                        (long long)safe);
        return cs->max_tracks;
    }
    if (safe < 1) {
        ss_log_warn("CHUNK_LOG_MAX_BYTES cannot hold one whole upload part: parts are uploaded "
                    "only when tracks end",
                    "{s:I, s:I}", "log_max_bytes", (long long)cs->log_max_bytes, "bytes_per_track",
                    (long long)bytes_per_track(cs));
        return 1;
    }
    return safe;
}

int cs_admission_init(void)
{
    m_refused = ss_metrics_counter("seashore_chunk_log_admissions_refused_total",
                                   "New tracks refused because the chunk log has no room for "
                                   "another recording track (ingest answers BACK_PRESSURE)",
                                   NULL);
    return m_refused ? 0 : -1;
}

static void admit_subject(const char *track_id, char *out, size_t len)
{
    snprintf(out, len, "admit.%s", track_id);
}

int cs_admit(cs_ctx *cs, const char *track_id, bool *admitted, char *err, size_t errlen)
{
    char subject[64];
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    admit_subject(track_id, subject, sizeof subject);
    natsStatus s = js_GetLastMsg(&m, cs->js, CS_STREAM_ADMISSION, subject, NULL, &jerr);
    natsMsg_Destroy(m);
    if (s == NATS_OK) {
        *admitted = true;
        return 0;
    }
    if (s != NATS_NOT_FOUND && jerr != JSNoMessageFoundErr) {
        snprintf(err, errlen, "admission of track %s: %s", track_id, natsStatus_GetText(s));
        return -1;
    }
    jerr = 0;
    s = js_Publish(&pa, cs->js, subject, track_id, (int)strlen(track_id), NULL, &jerr);
    jsPubAck_Destroy(pa);
    *admitted = s == NATS_OK;
    if (s == NATS_OK)
        return 0;
    if (jerr == JSStreamStoreFailedErr || jerr == JSInsufficientResourcesErr) {
        ss_series_inc(ss_metric_series(m_refused));
        return 0;
    }
    snprintf(err, errlen, "admission of track %s: %s", track_id, natsStatus_GetText(s));
    return -1;
}

void cs_admission_release(cs_ctx *cs, const char *track_id)
{
    char subject[64];
    jsOptions o;
    jsErrCode jerr = 0;
    admit_subject(track_id, subject, sizeof subject);
    jsOptions_Init(&o);
    o.Stream.Purge.Subject = subject;
    natsStatus s = js_PurgeStream(cs->js, CS_STREAM_ADMISSION, &o, &jerr);
    if (s != NATS_OK)
        ss_log_warn("cannot release the track's admission", "{s:s, s:s}", "track_id", track_id,
                    "error", natsStatus_GetText(s));
}

/* No chunk of the track in the log. */
static bool log_empty(cs_ctx *cs, const char *track_id)
{
    char err[256];
    cs_log_tail lt;
    return cs_log_tail_read(cs, track_id, &lt, err, sizeof err) == 0 && !lt.any;
}

/* No chunk of the track anywhere: none in the log, no row in the index
 * (chunk 0 creates it). */
static bool admission_empty(cs_ctx *cs, const char *track_id)
{
    char err[256];
    cs_track t;
    return cs_track_load(cs->pg_requests, track_id, &t, err, sizeof err) == 0 && !t.found &&
           log_empty(cs, track_id);
}

/* A new track's connection closed before any chunk was durable: its
 * admission goes unless the log (or the index) has a chunk of it after
 * all (a publish that landed as the connection went). */
static void on_release_notice(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    char track_id[SS_UUID_LEN + 1];
    (void)nc, (void)sub, (void)arg;
    snprintf(track_id, sizeof track_id, "%.*s", natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
    if (ss_uuid_valid(track_id) && admission_empty(ctx, track_id))
        cs_admission_release(ctx, track_id);
    natsMsg_Destroy(msg);
}

/* Admissions without a chunk, and since when (this replica's view). */
#define ORPHANS_MAX 4096

typedef struct orphan {
    char track_id[SS_UUID_LEN + 1];
    int64_t since_ms;
} orphan;

static orphan orphans[ORPHANS_MAX], orphans_next[ORPHANS_MAX];
static int norphans;

static int64_t orphan_since(const char *track_id, int64_t now)
{
    for (int i = 0; i < norphans; i++)
        if (strcmp(orphans[i].track_id, track_id) == 0)
            return orphans[i].since_ms;
    return now;
}

/* The admitted tracks (subjects admit.<id>) that have no row in the index,
 * in one query rather than one per track: the sweep runs on the indexer's
 * thread. NULL on a database error. */
static PGresult *admitted_without_row(cs_ctx *cs, const jsStreamStateSubjects *subjects)
{
    char err[256];
    size_t cap = (size_t)subjects->Count * (SS_UUID_LEN + 1) + 3, len = 0;
    char *ids = malloc(cap);
    if (ids == NULL)
        return NULL;
    ids[len++] = '{';
    for (int i = 0; i < subjects->Count; i++) {
        const char *id = subjects->List[i].Subject + strlen("admit.");
        if (ss_uuid_valid(id))
            len += (size_t)snprintf(ids + len, cap - len, "%s%s", len > 1 ? "," : "", id);
    }
    snprintf(ids + len, cap - len, "}");
    const char *params[] = {ids};
    PGresult *r = ss_pg_query(cs->pg_index,
                              "SELECT a.id::text FROM unnest($1::uuid[]) AS a(id) "
                              "WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.id = a.id)",
                              1, params, err, sizeof err);
    if (r == NULL)
        ss_log_warn("cannot look up the admitted tracks", "{s:s}", "error", err);
    free(ids);
    return r;
}

void cs_admission_sweep(cs_ctx *cs)
{
    jsOptions o;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int nnext = 0, released = 0;
    int64_t now = ss_work_now_ms();
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = "admit.*";
    if (js_GetStreamInfo(&si, cs->js, CS_STREAM_ADMISSION, &o, &jerr) != NATS_OK) {
        ss_log_warn("cannot list the admitted tracks", "{s:i}", "js_error", (int)jerr);
        return;
    }
    PGresult *r = NULL;
    if (si->State.Subjects != NULL && (r = admitted_without_row(cs, si->State.Subjects)) == NULL) {
        jsStreamInfo_Destroy(si); /* keep what the last sweeps saw */
        return;
    }
    for (int i = 0; r != NULL && i < PQntuples(r); i++) {
        const char *track_id = PQgetvalue(r, i, 0);
        if (!log_empty(cs, track_id)) /* no row, but a chunk on its way to the index */
            continue;
        int64_t since = orphan_since(track_id, now);
        if (now - since >= cs->admission_timeout_ms) {
            cs_admission_release(cs, track_id);
            released++;
        } else if (nnext < ORPHANS_MAX) {
            snprintf(orphans_next[nnext].track_id, sizeof orphans_next[nnext].track_id, "%s",
                     track_id);
            orphans_next[nnext++].since_ms = since;
        }
    }
    PQclear(r);
    jsStreamInfo_Destroy(si);
    memcpy(orphans, orphans_next, sizeof(orphan) * (size_t)nnext);
    norphans = nnext;
    if (released > 0)
        ss_log_warn("admissions without a chunk released (an ingest-recorder died before the "
                    "first chunk)",
                    "{s:i}", "tracks", released);
}

int cs_admission_start(cs_ctx *cs)
{
    ctx = cs;
    return natsConnection_QueueSubscribe(&release_sub, cs->svc->nats.conn,
                                         "chunkstore.admission.release", CS_QUEUE,
                                         on_release_notice, NULL) == NATS_OK
               ? 0
               : -1;
}

void cs_admission_stop(void)
{
    if (release_sub == NULL)
        return;
    natsSubscription_Drain(release_sub);
    natsSubscription_WaitForDrainCompletion(release_sub, 5000);
    natsSubscription_Destroy(release_sub);
    release_sub = NULL;
}
