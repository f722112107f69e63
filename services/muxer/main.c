/* muxer -- remuxes a finished raw track into the editor files (seekable
 * WebM, MP4, WAV) and writes the session manifest (docs/muxer.md). */
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <stdlib.h>
#include <string.h>

#include "muxer.h"
#include "seashore/drain.h"
#include "seashore/log.h"

mx_ctx mx;

static const ss_config_var muxer_vars[] = {
    {"MUXER_CONCURRENCY", SS_CONFIG_INT, false, false, "1", 1, 32, NULL,
     "tracks muxed at once (each takes about a core while it transcodes audio)", &mx.concurrency},
    {"MUXER_TRANSCODE", SS_CONFIG_BOOL, false, false, "false", 0, 0, NULL,
     "re-encode VP8/VP9/AV1 video to H.264 (libx264) for the MP4; off: no MP4 for those, the "
     "reason recorded",
     &mx.transcode},
    {"MUXER_TMP_DIR", SS_CONFIG_STRING, false, false, "/tmp", 0, 0, NULL,
     "where the outputs are written before upload (needs about 2x a track's size free)",
     &mx.tmp_dir},
    {"MUXER_READ_WINDOW", SS_CONFIG_SIZE, false, false, "4MiB", 65536, 64 << 20, NULL,
     "bytes fetched per ranged GET of the raw object", &mx.read_window},
    {"MUXER_PART_SIZE", SS_CONFIG_SIZE, false, false, "8MiB", 5 << 20, 512 << 20, NULL,
     "multipart part size of the uploaded outputs", &mx.part_size},
    {"MUXER_ACK_WAIT", SS_CONFIG_DURATION, false, false, "60s", 1000, 3600000, NULL,
     "work items of a crashed muxer are redelivered after this (live ones are kept alive)",
     &mx.ack_wait_ms},
    {"MUXER_RETRY_MAX_DELAY", SS_CONFIG_DURATION, false, false, "30s", 100, 600000, NULL,
     "longest wait between retries of a transient store or database failure", &mx.retry_max_ms},
    {"MUXER_MAX_ALLOC", SS_CONFIG_SIZE, false, false, "256MiB", 16 << 20, 4LL << 30, NULL,
     "largest single allocation FFmpeg may make: a raw track that claims a huge packet or "
     "header fails with a reason instead of exhausting memory",
     &mx.max_alloc},
    {"MUXER_LIVE_TRACKS", SS_CONFIG_INT, false, false, "4", 0, 64, NULL,
     "recording tracks whose files are made while they are recorded (live muxing), at once; "
     "0: only when a track is complete. Each holds three FFmpeg passes and a part buffer",
     &mx.live_tracks},
    {"MUXER_LIVE_MOOV_RESERVE", SS_CONFIG_SIZE, false, false, "4MiB", 65536, 64 << 20, NULL,
     "space kept at the front of a live MP4 for its moov (4 MiB held a 60-minute 1080p30 track "
     "with AAC); a track whose moov outgrows it is made again from the complete raw object",
     &mx.live_moov_reserve},
    {"MUXER_LIVE_IDLE", SS_CONFIG_DURATION, false, false, "10m", 10000, 86400000, NULL,
     "a live job whose track sends nothing new for this long gives up (the work item makes the "
     "files when the track completes)",
     &mx.live_idle_ms},
    {"MUXER_STALL_TIMEOUT", SS_CONFIG_DURATION, false, false, "30s", 1000, 600000, NULL,
     "a store request moving under 1 KiB/s for this long is cut and retried", &mx.stall_timeout_ms},
};

/* FFmpeg's warnings and errors as our JSON log lines (its own go to stderr
 * as plain text); its informational chatter is dropped. */
static void ffmpeg_log(void *avcl, int level, const char *fmt, va_list vl)
{
    char line[1024];
    int print_prefix = 1;
    if (level > AV_LOG_WARNING)
        return;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    line[strcspn(line, "\n")] = '\0';
    if (level <= AV_LOG_ERROR)
        ss_log_error("ffmpeg", "{s:s}", "message", line);
    else
        ss_log_warn("ffmpeg", "{s:s}", "message", line);
}

static int progress(void *arg)
{
    return ss_work_heartbeat(arg);
}

static int thread_init(ss_work_item *w)
{
    mx_worker *wk = (mx_worker *)w;
    wk->s3 = ss_s3_conn_new(mx.s3);
    wk->pg = ss_pg_open(mx.svc->database_url);
    wk->buf = malloc((size_t)mx.part_size);
    if (wk->s3 == NULL || wk->pg == NULL || wk->buf == NULL)
        return -1;
    ss_s3_conn_set_progress(wk->s3, progress, &wk->w);
    return 0;
}

static void thread_fini(ss_work_item *w)
{
    mx_worker *wk = (mx_worker *)w;
    ss_s3_conn_free(wk->s3);
    ss_pg_close(wk->pg);
    free(wk->buf);
}

static ss_work_verdict track_entry(ss_work_item *w, const uint8_t *data, size_t len)
{
    return mx_handle_track((mx_worker *)w, data, len);
}

static ss_work_verdict delete_entry(ss_work_item *w, const uint8_t *data, size_t len)
{
    return mx_handle_session_delete((mx_worker *)w, data, len);
}

static int workers_start(void)
{
    const ss_work_spec specs[] = {
        {MX_STREAM_WORK, "work.mux", MX_CONSUMER_MUX, (int)mx.concurrency, sizeof(mx_worker),
         track_entry, thread_init, thread_fini},
        {MX_STREAM_SESSIONS, "work.session.delete", MX_CONSUMER_DELETE, 1, sizeof(mx_worker),
         delete_entry, thread_init, thread_fini},
    };
    ss_work_opts opts = {.ack_wait_ms = mx.ack_wait_ms, .retry_max_ms = mx.retry_max_ms};
    return ss_work_start(mx.svc, specs, sizeof specs / sizeof specs[0], &opts);
}

int main(int argc, char **argv)
{
    ss_service svc;
    char err[256];
    int rc = 1;
    if (ss_service_init(&svc, argc, argv, "muxer", SS_NEEDS_NATS | SS_NEEDS_PG | SS_NEEDS_S3,
                        muxer_vars, sizeof muxer_vars / sizeof muxer_vars[0]) != 0)
        return 1;
    mx.svc = &svc;
    av_log_set_callback(ffmpeg_log);
    av_max_alloc((size_t)mx.max_alloc);
    ss_s3_client_opts opts = {.connect_timeout_ms = 10000, .stall_timeout_ms = mx.stall_timeout_ms};
    if (ss_s3_client_new(&svc.s3, &opts, &mx.s3, err, sizeof err) != 0) {
        ss_log_error("cannot create the object store client", "{s:s}", "error", err);
        goto out;
    }
    if (workers_start() != 0 || mx_live_start() != 0)
        goto out;
    ss_log_info("muxer running", "{s:I, s:I, s:b, s:s}", "concurrency", (long long)mx.concurrency,
                "live_tracks", (long long)mx.live_tracks, "transcode", mx.transcode, "tmp_dir",
                mx.tmp_dir);
    ss_drain_wait(-1);
    rc = 0;
out:
    ss_drain_request(); /* workers stop fetching; in-flight items are nak'ed */
    ss_work_join();
    mx_live_stop();
    ss_s3_client_free(mx.s3);
    ss_log_info(rc == 0 ? "drained" : "stopped on error", NULL);
    ss_service_cleanup(&svc);
    return rc;
}
