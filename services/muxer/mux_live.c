/* mux_live.c -- live muxing: a recording track's editor files are made
 * while it is recorded, so that when the guest stops only the tail remains.
 *
 * A claimer thread takes recording tracks no muxer has tried yet
 * (tracks.live_mux_state), up to MUXER_LIVE_TRACKS at once. Each live job
 * reads the raw stream from chunk-store (chunkstore.read, waiting at the
 * durable end while the track records), runs the three output passes at once
 * through mx_out files (mux_out.h) and uploads every part of every output as
 * soon as it is final. When the track ends, it uploads the tail and the
 * parts the muxers patched at the end (headers, sizes, the MP4's moov in the
 * space reserved for it), completes the uploads and records the outputs as
 * the work item does (mx_job_finish).
 *
 * Anything unexpected -- bytes already released from the chunk log, the moov
 * outgrowing its space, an output failing, a drain -- marks the track failed
 * for live muxing; the work item that comes when the raw object is complete
 * then makes the files from it. Live muxing only ever saves time. */
#include "muxer.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libavformat/avio.h>
#include <libavutil/error.h>

#include "mux_out.h"
#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/metrics.h"
#include "seashore/v1/chunks.pb-c.h"

#define LIVE_READ_BYTES      (1024 * 1024) /* chunk-store's default READ_MAX_BYTES */
#define LIVE_READ_TIMEOUT_MS 5000
#define LIVE_WAIT_US         200000 /* at the durable end: ask again after this */
#define LIVE_BEAT_MS         1000
#define LIVE_CLAIM_EVERY_US  1000000
#define LIVE_MAX_JOBS        64

typedef struct live_upload {
    char key[MX_KEY_MAX];
    char upload_id[256];
    ss_s3_part *parts; /* part n at parts[n - 1] */
    uint32_t count;    /* parts 1..count exist */
} live_upload;

typedef struct live_job {
    char track_id[SS_UUID_LEN + 1];
    pthread_t thread;
    atomic_bool finished; /* the thread is done: the slot can be reaped */
    atomic_bool stop;     /* readers give up (failure, drain, deleted session) */
    pthread_mutex_t mu;   /* why */
    char why[300];        /* the first reason live muxing gave up, "" if none */
    mx_worker wk;
    mx_job j;
    mx_out_file out[MX_OUTPUT_KINDS];
    live_upload up[MX_OUTPUT_KINDS];
    int64_t last_beat_ms;
    /* the passes' readers: how far each has read (chunk-store keeps the
     * chunks after the lowest in the log for us) */
    pthread_mutex_t readers_mu;
    struct live_src *readers[MX_OUTPUT_KINDS];
    bool any_reader; /* a pass has started: until then nothing is read */
} live_job;

/* One reader of the track's raw stream (each pass has its own). */
typedef struct live_src {
    live_job *lj;
    uint64_t pos, total;
    bool eof_known; /* the track ended: total is its length */
    uint8_t *buf;   /* bytes [buf_off, buf_off + buf_len) of the stream */
    size_t buf_len;
    uint64_t buf_off;
} live_src;

static pthread_t claimer;
static bool claimer_running;
static live_job *jobs[LIVE_MAX_JOBS];
static ss_metric *m_live_done, *m_live_failed;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records the first reason and stops every reader. */
static void live_give_up(live_job *lj, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void live_give_up(live_job *lj, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&lj->mu);
    if (lj->why[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(lj->why, sizeof lj->why, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&lj->mu);
    atomic_store(&lj->stop, true);
}

/* ---- the raw stream from chunk-store ---- */

/* One chunkstore.read into s->buf. 1 with bytes, 0 at the durable end of a
 * recording track, -1 at the end of an ended one, -2 failed (given up). */
static int read_request(live_src *s)
{
    Seashore__V1__ReadRangeRequest q = SEASHORE__V1__READ_RANGE_REQUEST__INIT;
    uint8_t qbuf[128];
    natsMsg *reply = NULL;
    q.track_id = s->lj->track_id;
    q.offset = s->pos;
    q.length = LIVE_READ_BYTES;
    size_t n = seashore__v1__read_range_request__pack(&q, qbuf);
    natsStatus st = natsConnection_Request(&reply, mx.svc->nats.conn, "chunkstore.read", qbuf,
                                           (int)n, LIVE_READ_TIMEOUT_MS);
    if (st != NATS_OK)
        return 0; /* chunk-store busy or restarting: like no bytes yet */
    Seashore__V1__ReadRangeReply *r = seashore__v1__read_range_reply__unpack(
        NULL, (size_t)natsMsg_GetDataLength(reply), (const uint8_t *)natsMsg_GetData(reply));
    int rc;
    if (r == NULL || (r->error && r->error[0])) {
        live_give_up(s->lj, "chunkstore.read at byte %" PRIu64 ": %s", s->pos,
                     r ? r->error : "not a ReadRangeReply");
        rc = -2;
    } else if (r->data.len > 0) {
        memcpy(s->buf, r->data.data, r->data.len);
        s->buf_off = s->pos;
        s->buf_len = r->data.len;
        if (r->eof) {
            s->eof_known = true;
            s->total = s->pos + r->data.len;
        }
        rc = 1;
    } else if (r->eof) {
        s->eof_known = true;
        s->total = s->pos;
        rc = -1;
    } else {
        rc = 0;
    }
    seashore__v1__read_range_reply__free_unpacked(r, NULL);
    natsMsg_Destroy(reply);
    return rc;
}

static int live_read(void *opaque, uint8_t *buf, int size)
{
    live_src *s = opaque;
    int64_t idle_since = now_ms();
    while (s->pos < s->buf_off || s->pos >= s->buf_off + s->buf_len) {
        if (atomic_load(&s->lj->stop))
            return AVERROR_EXIT;
        if (s->eof_known && s->pos >= s->total)
            return AVERROR_EOF;
        int rc = read_request(s);
        if (rc == -1)
            return AVERROR_EOF;
        if (rc == -2)
            return AVERROR(EIO);
        if (rc == 0) {
            if (now_ms() - idle_since > mx.live_idle_ms) {
                live_give_up(s->lj, "no new bytes for %" PRId64 " ms at byte %" PRIu64,
                             mx.live_idle_ms, s->pos);
                return AVERROR_EXIT;
            }
            usleep(LIVE_WAIT_US);
        }
    }
    size_t avail = (size_t)(s->buf_off + s->buf_len - s->pos);
    size_t n = avail < (size_t)size ? avail : (size_t)size;
    memcpy(buf, s->buf + (s->pos - s->buf_off), n);
    pthread_mutex_lock(&s->lj->readers_mu);
    s->pos += n;
    pthread_mutex_unlock(&s->lj->readers_mu);
    return (int)n;
}

static int64_t live_seek(void *opaque, int64_t offset, int whence)
{
    live_src *s = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return s->eof_known ? (int64_t)s->total : AVERROR(ENOSYS);
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)s->pos;
        break;
    case SEEK_END:
        if (!s->eof_known)
            return AVERROR(ENOSYS); /* still recording: the end is not known */
        base = (int64_t)s->total;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (base + offset < 0)
        return AVERROR(EINVAL);
    pthread_mutex_lock(&s->lj->readers_mu);
    s->pos = (uint64_t)(base + offset);
    pthread_mutex_unlock(&s->lj->readers_mu);
    return base + offset;
}

static void *live_src_new(void *opaque)
{
    live_src *parent = opaque;
    live_src *s = calloc(1, sizeof *s);
    if (s == NULL || (s->buf = malloc(LIVE_READ_BYTES)) == NULL) {
        free(s);
        return NULL;
    }
    s->lj = parent->lj;
    pthread_mutex_lock(&s->lj->readers_mu);
    for (int i = 0; i < MX_OUTPUT_KINDS; i++) {
        if (s->lj->readers[i] == NULL) {
            s->lj->readers[i] = s;
            break;
        }
    }
    s->lj->any_reader = true;
    pthread_mutex_unlock(&s->lj->readers_mu);
    return s;
}

static void live_src_free(void *opaque)
{
    live_src *s = opaque;
    pthread_mutex_lock(&s->lj->readers_mu);
    for (int i = 0; i < MX_OUTPUT_KINDS; i++)
        if (s->lj->readers[i] == s)
            s->lj->readers[i] = NULL;
    pthread_mutex_unlock(&s->lj->readers_mu);
    free(s->buf);
    free(s);
}

/* ---- the outputs, part by part ---- */

/* Retries transient failures; 0, or -1 (given up: permanent, or stopping). */
static int store_retry(live_job *lj, const char *what, int attempt, const ss_s3_result *res)
{
    if (!res->transient || atomic_load(&lj->stop)) {
        live_give_up(lj, "%s: %s: %s", what, res->code, res->message);
        return -1;
    }
    ss_log_warn("object store request failed, retrying", "{s:s, s:s, s:s, s:s}", "request", what,
                "track_id", lj->track_id, "code", res->code, "message", res->message);
    return ss_work_retry_sleep(&lj->wk.w, attempt) != 0 ? -1 : 0;
}

static int upload_create(live_job *lj, int k)
{
    live_upload *u = &lj->up[k];
    ss_s3_result res;
    if (u->upload_id[0])
        return 0;
    mx_output_key(&lj->j, k, u->key, sizeof u->key);
    for (int attempt = 0;; attempt++) {
        if (ss_s3_create_multipart(lj->wk.s3, u->key, mx_output_types[k], u->upload_id,
                                   sizeof u->upload_id, &res) == 0)
            return 0;
        if (store_retry(lj, "CreateMultipartUpload", attempt, &res) != 0)
            return -1;
    }
}

/* Uploads part `part` (0-based) of output k from its file. */
static int upload_part(live_job *lj, int k, uint32_t part, uint64_t len)
{
    live_upload *u = &lj->up[k];
    ss_s3_part *p = &u->parts[part];
    ss_s3_result res;
    if (upload_create(lj, k) != 0)
        return -1;
    ssize_t got = pread(lj->out[k].fd, lj->wk.buf, (size_t)len, (off_t)part * mx.part_size);
    if (got != (ssize_t)len) {
        live_give_up(lj, "reading part %u of the %s output: short read", part + 1,
                     mx_output_kinds[k]);
        return -1;
    }
    p->part_number = (int)part + 1;
    p->size = len;
    for (int attempt = 0;; attempt++) {
        if (ss_s3_upload_part(lj->wk.s3, u->key, u->upload_id, p->part_number, lj->wk.buf, len,
                              p->etag, NULL, &res) == 0)
            break;
        if (store_retry(lj, "UploadPart", attempt, &res) != 0)
            return -1;
    }
    if (part + 1 > u->count)
        u->count = part + 1;
    return 0;
}

/* Every part that is final now, and every part written again since it was
 * uploaded. */
static int upload_ready(live_job *lj)
{
    for (int k = 0; k < MX_OUTPUT_KINDS; k++) {
        uint32_t part;
        uint64_t len;
        while (!atomic_load(&lj->stop) && mx_out_claim(&lj->out[k], &part, &len))
            if (upload_part(lj, k, part, len) != 0)
                return -1;
        while (!atomic_load(&lj->stop) && mx_out_next_dirty(&lj->out[k], &part, &len))
            if (upload_part(lj, k, part, len) != 0)
                return -1;
    }
    return atomic_load(&lj->stop) ? -1 : 0;
}

/* The bytes every running pass has read: the lowest position (a pass seeks
 * back only within what chunk-store still holds); 0 before the passes. */
static uint64_t read_watermark(live_job *lj)
{
    uint64_t low = UINT64_MAX;
    pthread_mutex_lock(&lj->readers_mu);
    for (int i = 0; i < MX_OUTPUT_KINDS; i++)
        if (lj->readers[i] != NULL && lj->readers[i]->pos < low)
            low = lj->readers[i]->pos;
    if (!lj->any_reader)
        low = 0;
    pthread_mutex_unlock(&lj->readers_mu);
    return low == UINT64_MAX ? UINT64_MAX : low;
}

/* Heartbeat in PostgreSQL, and whether to go on. */
static void live_beat(live_job *lj)
{
    char err[256], session_state[16] = "";
    if (ss_drain_requested())
        live_give_up(lj, "the muxer is draining");
    if (now_ms() - lj->last_beat_ms < LIVE_BEAT_MS)
        return;
    lj->last_beat_ms = now_ms();
    uint64_t low = read_watermark(lj);
    if (low == UINT64_MAX) /* every pass is done: nothing more to keep */
        low = lj->j.t.total_bytes > 0 ? lj->j.t.total_bytes : INT64_MAX;
    if (mx_db_live_set(lj->wk.pg, lj->track_id, "running", low, session_state, sizeof session_state,
                       err, sizeof err) != 0)
        ss_log_warn("cannot record the live muxing heartbeat", "{s:s, s:s}", "track_id",
                    lj->track_id, "error", err);
    else if (strcmp(session_state, "deleting") == 0 || strcmp(session_state, "deleted") == 0)
        live_give_up(lj, "the session is being deleted");
}

/* Called about once a second while the passes run. */
static void live_tick(void *opaque)
{
    live_src *s = opaque;
    live_beat(s->lj);
    upload_ready(s->lj);
}

/* The tail, the patched parts, Complete, and the file's sha256 and size. */
static int output_seal(live_job *lj, int k)
{
    live_upload *u = &lj->up[k];
    ss_s3_result res;
    if (upload_ready(lj) != 0)
        return -1;
    if (mx_store_complete(&lj->wk, u->key, u->upload_id, u->parts, u->count, &res) != 0) {
        live_give_up(lj, "CompleteMultipartUpload %s: %s: %s", u->key, res.code, res.message);
        return -1;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint64_t size = 0;
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    for (ssize_t n;
         rc == 0 && (n = pread(lj->out[k].fd, lj->wk.buf, (size_t)mx.part_size, (off_t)size)) > 0;
         size += (uint64_t)n)
        EVP_DigestUpdate(md, lj->wk.buf, (size_t)n);
    if (rc == 0 && EVP_DigestFinal_ex(md, lj->j.shas[k], NULL) != 1)
        rc = -1;
    EVP_MD_CTX_free(md);
    if (rc != 0) {
        live_give_up(lj, "hashing the %s output failed", mx_output_kinds[k]);
        return -1;
    }
    lj->j.sizes[k] = size;
    lj->j.stored[k] = true;
    return 0;
}

static void uploads_abort(live_job *lj)
{
    for (int k = 0; k < MX_OUTPUT_KINDS; k++) {
        ss_s3_result ignored;
        if (lj->up[k].upload_id[0] && !lj->j.stored[k])
            ss_s3_abort_multipart(lj->wk.s3, lj->up[k].key, lj->up[k].upload_id, &ignored);
    }
}

/* ---- one live job ---- */

static int job_open(live_job *lj)
{
    char err[256];
    mx_worker *wk = &lj->wk;
    wk->w.retry_max_ms = mx.retry_max_ms;
    wk->w.ack_wait_ms = mx.ack_wait_ms;
    wk->s3 = ss_s3_conn_new(mx.s3);
    wk->pg = ss_pg_open(mx.svc->database_url);
    wk->buf = malloc((size_t)mx.part_size);
    if (wk->s3 == NULL || wk->pg == NULL || wk->buf == NULL)
        return -1;
    snprintf(lj->j.track_id, sizeof lj->j.track_id, "%s", lj->track_id);
    if (mx_db_track_load(wk->pg, lj->track_id, &lj->j.t, err, sizeof err) != 0 || !lj->j.t.found) {
        live_give_up(lj, "loading the track: %s", lj->j.t.found ? err : "no such track");
        return -1;
    }
    if (mx_job_timeline(wk, &lj->j) != 0 || mx_job_paths(&lj->j) != 0)
        return -1;
    for (int k = 0; k < MX_OUTPUT_KINDS; k++) {
        lj->up[k].parts = calloc(MX_OUT_MAX_PARTS, sizeof *lj->up[k].parts);
        if (lj->up[k].parts == NULL ||
            mx_out_open(&lj->out[k], lj->j.paths[k], (uint64_t)mx.part_size) != 0)
            return -1;
    }
    return 0;
}

static void job_close(live_job *lj)
{
    for (int k = 0; k < MX_OUTPUT_KINDS; k++) {
        mx_out_close(&lj->out[k]);
        free(lj->up[k].parts);
    }
    mx_job_cleanup(&lj->j);
    ss_s3_conn_free(lj->wk.s3);
    ss_pg_close(lj->wk.pg);
    free(lj->wk.buf);
}

/* The passes over the growing stream; then the outputs sealed. 0 when every
 * output is done or skipped and stored. */
static int job_mux(live_job *lj)
{
    char err[512];
    live_src main_src = {.lj = lj};
    main_src.buf = malloc(LIVE_READ_BYTES);
    if (main_src.buf == NULL)
        return -1;
    mx_input in = {live_read,    live_seek,     &main_src, lj->j.t.mime_type,
                   live_src_new, live_src_free, live_tick};
    mx_options opt = {.transcode_video = mx.transcode,
                      .wav_pad_us = lj->j.offset_us,
                      .live_out = {&lj->out[0], &lj->out[1], &lj->out[2]},
                      .moov_reserve = mx.live_moov_reserve};
    int rc = mx_make_outputs(&in, lj->j.paths[0], lj->j.paths[1], lj->j.paths[2], &opt, &lj->j.res,
                             err, sizeof err);
    free(main_src.buf);
    if (rc != 0)
        live_give_up(lj, "%s", err);
    for (int k = 0; k < MX_OUTPUT_KINDS && !atomic_load(&lj->stop); k++) {
        mx_output *o = mx_job_output(&lj->j, k);
        if (o->state == MX_OUT_FAILED)
            live_give_up(lj, "the %s output failed: %s", mx_output_kinds[k], o->reason);
        else if (o->state == MX_OUT_DONE)
            output_seal(lj, k);
    }
    return atomic_load(&lj->stop) ? -1 : 0;
}

static void *job_main(void *arg)
{
    live_job *lj = arg;
    char err[256];
    ss_log_info("live muxing started", "{s:s}", "track_id", lj->track_id);
    lj->last_beat_ms = now_ms();
    bool ok =
        job_open(lj) == 0 && job_mux(lj) == 0 && mx_job_finish(&lj->wk, &lj->j) == SS_WORK_DONE;
    if (!ok) {
        uploads_abort(lj);
        live_give_up(lj, "%s", "the live job could not start or finish");
    }
    if (lj->wk.pg == NULL || mx_db_live_set(lj->wk.pg, lj->track_id, ok ? "done" : "failed", 0,
                                            NULL, 0, err, sizeof err) != 0)
        ss_log_warn("cannot record the end of live muxing", "{s:s}", "track_id", lj->track_id);
    if (ok) {
        ss_series_inc(ss_metric_series(m_live_done));
        ss_log_info("track muxed live", "{s:s}", "track_id", lj->track_id);
    } else {
        ss_series_inc(ss_metric_series(m_live_failed));
        ss_log_warn("live muxing gave up; the work item makes the files when the track is complete",
                    "{s:s, s:s}", "track_id", lj->track_id, "reason", lj->why);
    }
    job_close(lj);
    atomic_store(&lj->finished, true);
    return NULL;
}

/* ---- the claimer ---- */

static int jobs_running(void)
{
    int n = 0;
    for (int i = 0; i < LIVE_MAX_JOBS; i++) {
        if (jobs[i] && atomic_load(&jobs[i]->finished)) {
            pthread_join(jobs[i]->thread, NULL);
            pthread_mutex_destroy(&jobs[i]->mu);
            pthread_mutex_destroy(&jobs[i]->readers_mu);
            free(jobs[i]);
            jobs[i] = NULL;
        }
        n += jobs[i] != NULL;
    }
    return n;
}

static void job_start(const char *track_id)
{
    for (int i = 0; i < LIVE_MAX_JOBS; i++) {
        if (jobs[i] != NULL)
            continue;
        live_job *lj = calloc(1, sizeof *lj);
        if (lj == NULL)
            break;
        snprintf(lj->track_id, sizeof lj->track_id, "%.36s", track_id);
        pthread_mutex_init(&lj->mu, NULL);
        pthread_mutex_init(&lj->readers_mu, NULL);
        atomic_init(&lj->finished, false);
        atomic_init(&lj->stop, false);
        if (pthread_create(&lj->thread, NULL, job_main, lj) != 0) {
            pthread_mutex_destroy(&lj->mu);
            pthread_mutex_destroy(&lj->readers_mu);
            free(lj);
            break;
        }
        jobs[i] = lj;
        return;
    }
    ss_log_warn("cannot start a live muxing job; the work item will make the files", "{s:s}",
                "track_id", track_id);
}

static void *claimer_main(void *arg)
{
    (void)arg;
    char err[256], ids[LIVE_MAX_JOBS][37];
    ss_pg *pg = ss_pg_open(mx.svc->database_url);
    while (pg != NULL && !ss_drain_requested()) {
        int free_slots = (int)mx.live_tracks - jobs_running(), n = 0;
        if (free_slots > 0 && mx_db_live_claim(pg, ids, free_slots, &n, err, sizeof err) != 0)
            ss_log_warn("cannot look for tracks to mux live", "{s:s}", "error", err);
        for (int i = 0; i < n; i++)
            job_start(ids[i]);
        usleep(LIVE_CLAIM_EVERY_US);
    }
    ss_pg_close(pg);
    return NULL;
}

int mx_live_start(void)
{
    m_live_done = ss_metrics_counter("seashore_mux_live_tracks_total",
                                     "Tracks whose files were made while they were recorded", NULL);
    m_live_failed = ss_metrics_counter(
        "seashore_mux_live_given_up_total",
        "Live muxing jobs that gave up (the work item made the files from the raw object)", NULL);
    if (mx.live_tracks <= 0)
        return 0;
    if (pthread_create(&claimer, NULL, claimer_main, NULL) != 0)
        return -1;
    claimer_running = true;
    return 0;
}

void mx_live_stop(void)
{
    if (!claimer_running)
        return;
    pthread_join(claimer, NULL);
    claimer_running = false;
    for (int i = 0; i < LIVE_MAX_JOBS; i++)
        if (jobs[i] != NULL)
            atomic_store(&jobs[i]->stop, true);
    for (int i = 0; i < LIVE_MAX_JOBS; i++) {
        if (jobs[i] == NULL)
            continue;
        pthread_join(jobs[i]->thread, NULL);
        pthread_mutex_destroy(&jobs[i]->mu);
        pthread_mutex_destroy(&jobs[i]->readers_mu);
        free(jobs[i]);
        jobs[i] = NULL;
    }
}
