/* mux_track.c -- TrackUploaded: the raw object in, the editor files out.
 * Idempotent: a redelivered item makes the same files again under the same
 * keys and overwrites the rows. */
#include "muxer.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mux_core.h"
#include "mux_source.h"

#define LIVE_STALE_MS 30000 /* a live job that has not reported for this long died */
#include "seashore/log.h"
#include "seashore/metrics.h"
#include "seashore/v1/work.pb-c.h"

static ss_metric *m_tracks, *m_failed;

static void metrics_init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    m_tracks = ss_metrics_counter("seashore_mux_tracks_total", "Tracks the muxer finished", NULL);
    m_failed = ss_metrics_counter("seashore_mux_failed_outputs_total",
                                  "Editor files that could not be made (reason recorded)", NULL);
}

const char *const mx_output_kinds[MX_OUTPUT_KINDS] = {"webm", "mp4", "wav"};
const char *const mx_output_types[MX_OUTPUT_KINDS] = {"video/webm", "video/mp4", "audio/wav"};

void mx_output_key(const mx_job *j, int k, char *key, size_t len)
{
    snprintf(key, len, "muxed/%s/%s/%s.%s", j->t.session_id, j->t.participant_id, j->track_id,
             mx_output_kinds[k]);
}

mx_output *mx_job_output(mx_job *j, int k)
{
    return k == 0 ? &j->res.webm : k == 1 ? &j->res.mp4 : &j->res.wav;
}

static void notify_failed(const char *track_id, const char *message)
{
    Seashore__V1__UploadFailed f = SEASHORE__V1__UPLOAD_FAILED__INIT;
    char subject[64];
    uint8_t buf[1024];
    f.track_id = (char *)track_id;
    f.stage = "mux";
    f.code = "MuxFailed";
    f.message = (char *)message;
    if (seashore__v1__upload_failed__get_packed_size(&f) > sizeof buf)
        f.message = "the raw track cannot be read as media";
    size_t n = seashore__v1__upload_failed__pack(&f, buf);
    snprintf(subject, sizeof subject, "track.failed.%s", track_id);
    natsConnection_Publish(mx.svc->nats.conn, subject, buf, (int)n);
}

static bool msg_valid(const Seashore__V1__TrackUploaded *m)
{
    return m != NULL && ss_uuid_valid(m->track_id) && ss_uuid_valid(m->session_id) &&
           ss_uuid_valid(m->participant_id);
}

/* The track's row, retried while the database is unreachable. */
static int track_load(mx_worker *wk, const char *track_id, mx_track *t)
{
    char err[256];
    for (int attempt = 0; mx_db_track_load(wk->pg, track_id, t, err, sizeof err) != 0; attempt++)
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -1;
    return 0;
}

/* The track's place on the session timeline. */
int mx_job_timeline(mx_worker *wk, mx_job *j)
{
    char err[256];
    bool found = false;
    for (int attempt = 0;
         mx_db_session_zero(wk->pg, j->t.session_id, &j->zero_us, &found, err, sizeof err) != 0;
         attempt++)
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -1;
    if (!found)
        j->zero_us = j->t.has_start ? j->t.start_unix_us : 0;
    j->offset_us = j->t.has_start ? j->t.start_unix_us - j->zero_us : 0;
    return 0;
}

/* The raw object as the core's input: the worker's reader, and one more
 * reader with its own connection per output pass (run at once). */
typedef struct job_source {
    mx_s3_source src; /* first: the read and seek callbacks take it */
    mx_worker *wk;
    atomic_bool stop;           /* draining: the passes' transfers give up */
    atomic_bool pass_transient; /* a pass's reads failed transiently: retry */
} job_source;

typedef struct pass_source {
    mx_s3_source src; /* first, as above */
    ss_s3_conn *conn;
    job_source *js;
} pass_source;

static int pass_progress(void *arg)
{
    return atomic_load((atomic_bool *)arg) ? 1 : 0;
}

static void *pass_source_open(void *opaque)
{
    job_source *js = opaque;
    char err[256];
    pass_source *ps = calloc(1, sizeof *ps);
    if (ps == NULL || (ps->conn = ss_s3_conn_new(mx.s3)) == NULL) {
        free(ps);
        return NULL;
    }
    ps->js = js;
    ss_s3_conn_set_progress(ps->conn, pass_progress, &js->stop);
    if (mx_s3_source_open(&ps->src, ps->conn, js->src.key, js->src.win_cap, err, sizeof err) != 0) {
        mx_s3_source_close(&ps->src);
        ss_s3_conn_free(ps->conn);
        free(ps);
        return NULL;
    }
    return ps;
}

static void pass_source_close(void *another)
{
    pass_source *ps = another;
    if (ps->src.last_error.code[0] != '\0' && ps->src.last_error.transient)
        atomic_store(&ps->js->pass_transient, true);
    mx_s3_source_close(&ps->src);
    ss_s3_conn_free(ps->conn);
    free(ps);
}

static void job_source_tick(void *opaque)
{
    job_source *js = opaque;
    if (ss_work_heartbeat(&js->wk->w) != 0)
        atomic_store(&js->stop, true);
}

/* Runs the FFmpeg core over the raw object. 0, 1 when the store failed
 * transiently (retry the item), -1 when the input is not usable media. */
static int job_transcode(mx_worker *wk, mx_job *j, char *err, size_t errlen)
{
    job_source js = {.wk = wk};
    atomic_init(&js.stop, false);
    atomic_init(&js.pass_transient, false);
    if (mx_s3_source_open(&js.src, wk->s3, j->t.raw_key, (size_t)mx.read_window, err, errlen) !=
        0) {
        /* The store refusing for good (no such object, access denied) fails
         * the outputs; a store that is down or no memory is retried. */
        bool refused = js.src.last_error.code[0] != '\0' && !js.src.last_error.transient;
        mx_s3_source_close(&js.src);
        if (!refused)
            return 1;
        for (int k = 0; k < MX_OUTPUT_KINDS; k++)
            mx_set(mx_job_output(j, k), MX_OUT_FAILED, "%s", err);
        return -1;
    }
    mx_input in = {mx_s3_read,        mx_s3_seek,     &js, j->t.mime_type, pass_source_open,
                   pass_source_close, job_source_tick};
    mx_options opt = {.transcode_video = mx.transcode, .wav_pad_us = j->offset_us};
    int rc =
        mx_make_outputs(&in, j->paths[0], j->paths[1], j->paths[2], &opt, &j->res, err, errlen);
    bool store_failed = js.src.last_error.code[0] != '\0';
    if ((store_failed && js.src.last_error.transient) || atomic_load(&js.pass_transient))
        rc = 1;
    if (atomic_load(&js.stop))
        rc = 1; /* draining: outputs may be cut short; the item is redone */
    mx_s3_source_close(&js.src);
    return rc;
}

/* Uploads one finished output and records it. 0, -1 (recorded failed), -2. */
static int job_store_output(mx_worker *wk, mx_job *j, int k)
{
    mx_output *o = mx_job_output(j, k);
    char key[MX_KEY_MAX], err[512];
    uint8_t sha[32];
    uint64_t size = 0;
    ss_s3_result res;
    mx_output_key(j, k, key, sizeof key);
    int rc = 0;
    if (o->state == MX_OUT_DONE && j->stored[k]) { /* uploaded while it was written (live) */
        size = j->sizes[k];
        memcpy(sha, j->shas[k], sizeof sha);
    } else if (o->state == MX_OUT_DONE) {
        rc = mx_store_put_file(wk, key, j->paths[k], mx_output_types[k], &size, sha, &res);
    }
    if (rc == -2)
        return -2;
    if (rc == -1) {
        o->state = MX_OUT_FAILED;
        snprintf(o->reason, sizeof o->reason, "upload to the store failed: %.60s: %.160s", res.code,
                 res.message);
    }
    mx_output_row row = {mx_output_kinds[k],
                         o->state == MX_OUT_DONE     ? "done"
                         : o->state == MX_OUT_FAILED ? "failed"
                                                     : "skipped",
                         key,
                         size,
                         o->state == MX_OUT_DONE ? sha : NULL,
                         o->duration_us,
                         o->codecs,
                         o->width,
                         o->height,
                         o->sample_rate,
                         o->channels,
                         o->reason,
                         j->zero_us,
                         j->offset_us};
    for (int attempt = 0; mx_db_output_upsert(wk->pg, j->track_id, &row, err, sizeof err) != 0;
         attempt++)
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -2;
    if (o->state == MX_OUT_FAILED)
        ss_series_inc(ss_metric_series(m_failed));
    return 0;
}

int mx_job_paths(mx_job *j)
{
    for (int k = 0; k < MX_OUTPUT_KINDS; k++) {
        snprintf(j->paths[k], sizeof j->paths[k], "%s/muxer-%s-XXXXXX", mx.tmp_dir, j->track_id);
        int fd = mkstemp(j->paths[k]);
        if (fd < 0) {
            j->paths[k][0] = '\0';
            return -1;
        }
        close(fd);
    }
    return 0;
}

void mx_job_cleanup(mx_job *j)
{
    for (int k = 0; k < MX_OUTPUT_KINDS; k++)
        if (j->paths[k][0])
            unlink(j->paths[k]);
}

/* Requeues the session's tracks whose files are aligned to a later zero
 * than the session's zero now: those of tracks that started later, and
 * this one if an earlier track arrived while it was made. */
static int realign_try(mx_worker *wk, const mx_job *j, char *err, size_t errlen)
{
    char(*ids)[37] = NULL;
    int64_t zero = 0;
    bool found = false;
    int n = 0, rc = 0;
    if (mx_db_session_zero(wk->pg, j->t.session_id, &zero, &found, err, errlen) != 0)
        return -1;
    if (!found)
        return 0;
    if (mx_db_tracks_to_realign(wk->pg, j->t.session_id, zero, &ids, &n, err, errlen) != 0)
        return -1;
    for (int i = 0; i < n && rc == 0; i++)
        rc = mx_requeue_track(wk, ids[i], zero, err, errlen);
    free(ids);
    return rc;
}

/* realign_try until it succeeds: a lost requeue would leave a WAV
 * misaligned for good. 0, or -1 draining. */
static int realign_session(mx_worker *wk, const mx_job *j)
{
    char err[256];
    for (int attempt = 0; realign_try(wk, j, err, sizeof err) != 0; attempt++) {
        ss_log_warn("cannot requeue tracks for realignment, retrying", "{s:s, s:s}", "session_id",
                    j->t.session_id, "error", err);
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -1;
    }
    return 0;
}

/* The session manifest written (retried); the files removed again if the
 * session was deleted meanwhile; then track.muxed.<track>, which lets
 * chunk-store release the track from the chunk log. 0, or -1 draining. */
static int manifest_and_announce(mx_worker *wk, const mx_job *j)
{
    char err[512], subject[64];
    for (int attempt = 0;; attempt++) {
        int rc = mx_manifest_write(wk, j->t.session_id, err, sizeof err);
        if (rc == 0)
            break;
        if (rc == -2 || ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -1;
        ss_log_warn("cannot write the session manifest, retrying", "{s:s, s:s}", "session_id",
                    j->t.session_id, "error", err);
    }
    if (mx_delete_if_session_deleted(wk, j->t.session_id) != 0)
        return -1;
    snprintf(subject, sizeof subject, "track.muxed.%s", j->track_id);
    natsStatus s = natsConnection_Publish(mx.svc->nats.conn, subject, NULL, 0);
    if (s != NATS_OK) /* the track keeps its first chunk in the chunk log meanwhile */
        ss_log_warn("cannot publish track.muxed", "{s:s, s:s}", "track_id", j->track_id, "error",
                    natsStatus_GetText(s));
    return 0;
}

/* The steps after the files exist: rows, manifest, notices. */
ss_work_verdict mx_job_finish(mx_worker *wk, mx_job *j)
{
    for (int k = 0; k < MX_OUTPUT_KINDS; k++)
        if (job_store_output(wk, j, k) == -2)
            return SS_WORK_ABANDON;
    if (realign_session(wk, j) != 0 || manifest_and_announce(wk, j) != 0)
        return SS_WORK_ABANDON;
    ss_series_inc(ss_metric_series(m_tracks));
    ss_log_info("track muxed", "{s:s, s:s, s:s, s:s, s:I}", "track_id", j->track_id, "webm",
                j->res.webm.state == MX_OUT_DONE ? "done" : j->res.webm.reason, "mp4",
                j->res.mp4.state == MX_OUT_DONE ? "done" : j->res.mp4.reason, "wav",
                j->res.wav.state == MX_OUT_DONE ? "done" : j->res.wav.reason, "start_offset_us",
                (long long)j->offset_us);
    return SS_WORK_DONE;
}

static ss_work_verdict job_run(mx_worker *wk, mx_job *j)
{
    char err[512];
    if (mx_job_timeline(wk, j) != 0)
        return SS_WORK_ABANDON;
    if (mx_job_paths(j) != 0) {
        ss_log_error("cannot create temporary files", "{s:s}", "dir", mx.tmp_dir);
        return SS_WORK_LATER;
    }
    int rc;
    for (int attempt = 0; (rc = job_transcode(wk, j, err, sizeof err)) == 1; attempt++) {
        ss_log_warn("reading the raw track failed, retrying", "{s:s, s:s}", "track_id", j->track_id,
                    "error", err);
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return SS_WORK_ABANDON;
    }
    if (rc == -1) { /* every output is FAILED with the reason */
        ss_log_warn("raw track cannot be muxed; outputs failed", "{s:s, s:s}", "track_id",
                    j->track_id, "reason", err);
        notify_failed(j->track_id, err);
    }
    return mx_job_finish(wk, j);
}

/* Whether the files live muxing made are aligned to the session's zero as
 * it is now: 1 yes, 0 no (make them again), -1 draining. */
static int live_files_aligned(mx_worker *wk, mx_job *j)
{
    char err[256];
    int64_t zero = 0;
    bool found = false;
    if (mx_job_timeline(wk, j) != 0)
        return -1;
    for (int attempt = 0;
         mx_db_outputs_zero(wk->pg, j->track_id, &zero, &found, err, sizeof err) != 0; attempt++)
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -1;
    return found && llabs(zero - j->zero_us) < MX_ZERO_SLACK_US ? 1 : 0;
}

/* The files exist (made live); the raw object is complete now: the
 * manifest names it, and chunk-store may release the track's log. */
static ss_work_verdict live_files_announce(mx_worker *wk, mx_job *j)
{
    if (manifest_and_announce(wk, j) != 0)
        return SS_WORK_ABANDON;
    ss_log_info("track complete; its files were made live", "{s:s}", "track_id", j->track_id);
    return SS_WORK_DONE;
}

ss_work_verdict mx_handle_track(mx_worker *wk, const uint8_t *data, size_t len)
{
    mx_job j = {0};
    ss_work_verdict v = SS_WORK_DONE;
    metrics_init();
    Seashore__V1__TrackUploaded *m = seashore__v1__track_uploaded__unpack(NULL, len, data);
    if (!msg_valid(m)) {
        ss_log_error("work item refused: not a valid TrackUploaded", NULL);
        goto out;
    }
    snprintf(j.track_id, sizeof j.track_id, "%s", m->track_id);
    if (track_load(wk, m->track_id, &j.t) != 0) {
        v = SS_WORK_ABANDON;
        goto out;
    }
    if (!j.t.found || strcmp(j.t.session_state, "deleting") == 0 ||
        strcmp(j.t.session_state, "deleted") == 0) {
        ss_log_info("track not muxed: gone or its session deleted", "{s:s}", "track_id",
                    m->track_id);
        goto out;
    }
    if (strcmp(j.t.state, "complete") != 0 || j.t.raw_key[0] == '\0') {
        v = SS_WORK_LATER; /* the uploader's rows are not committed yet */
        goto out;
    }
    if (strcmp(j.t.live_state, "running") == 0 && j.t.live_beat_age_ms >= 0 &&
        j.t.live_beat_age_ms < LIVE_STALE_MS) {
        v = SS_WORK_LATER; /* a live job (mux_live.c) is finishing the files */
        goto out;
    }
    if (strcmp(j.t.live_state, "done") == 0) {
        int aligned = live_files_aligned(wk, &j);
        if (aligned < 0) {
            v = SS_WORK_ABANDON;
            goto out;
        }
        if (aligned == 1) {
            v = live_files_announce(wk, &j);
            goto out;
        }
    }
    v = job_run(wk, &j);
out:
    mx_job_cleanup(&j);
    seashore__v1__track_uploaded__free_unpacked(m, NULL);
    return v;
}
