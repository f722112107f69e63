/* test_mux_live.c -- live muxing: the editor files made while the track is
 * still being recorded (seashore-send at a few chunks a second), uploaded
 * part by part (5 MiB parts, so the outputs span several) with the parts the
 * muxers patch at the end (the MP4's moov in its reserved space, the
 * WebM's duration and cues, the WAV's sizes) uploaded again:
 *   - H.264 in Matroska: an editor-ready MP4 (moov before mdat) and a WAV,
 *     whose bytes in the store are the ones PostgreSQL and the manifest name;
 *   - VP8 WebM: a seekable WebM with the input's frames and a WAV;
 *   - the muxer killed while it muxes live: the work item makes the files
 *     from the complete raw object (live muxing only ever saves time). */
#include "check.h"
#include "mux_util.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECONDS 20.0
#define RATE    4 /* chunks of 256 KiB a second: a few seconds of recording */

static ingest_stack stack = {
    .with_uploader = true,
    .with_muxer = true,
    .with_issuer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB"},
    .muxer_env = {"MUXER_PART_SIZE=5MiB", "MUXER_ACK_WAIT=3s"},
};

static char *live_state(const char *track, char *v, size_t len)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT coalesce(live_mux_state, '') FROM tracks WHERE id = '%s'",
             track);
    if (up_sql(&stack, sql, v, len) != 0)
        snprintf(v, len, "?");
    return v;
}

/* How many multipart uploads s3rver holds open for the track's keys (each
 * in <s3>/<bucket>/._S3rver_uploads/<id>/key). */
static int open_uploads(const char *track)
{
    char dir[1200], path[1600];
    int n = 0;
    snprintf(dir, sizeof dir, "%s/s3/%s/._S3rver_uploads", harness_dir(stack.h), stack.s3.bucket);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/key", dir, e->d_name);
        char *key = harness_read_file(path, NULL);
        if (key && strstr(key, track))
            n++;
        free(key);
    }
    if (d)
        closedir(d);
    return n;
}

/* The muxer logged that the track's files made live were kept when the
 * track completed (not made again from the raw object), within 30 s. */
static bool live_files_kept(const char *track)
{
    for (int i = 0; i < 60; i++) {
        char *log = stack_log(&stack, "muxer");
        bool kept = false;
        for (char *line = log; line && *line && !kept;) {
            char *end = strchr(line, '\n');
            if (end)
                *end = '\0';
            kept = strstr(line, "its files were made live") && strstr(line, track);
            line = end ? end + 1 : NULL;
        }
        free(log);
        if (kept)
            return true;
        usleep(500000);
    }
    fprintf(stderr, "track %s: its live files were not kept at completion\n", track);
    return false;
}

/* Posts media slowly; waits for its files; true if they were made live. */
static bool post_live(const char *media, const char *mime, char *track)
{
    char v[32];
    pid_t sender = up_send_track(&stack, "send-live", media, RATE, NULL, NULL,
                                 (const char *const[]){"--mime", mime, NULL}, track);
    if (!CHECK(sender > 0))
        return false;
    CHECK_EQ_INT(up_send_wait(&stack, sender, 120000), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return false;
    /* the clock offset its End reports moves the start by microseconds:
     * that must not make the files again */
    return CHECK_EQ_STR(live_state(track, v, sizeof v), "done") && CHECK(live_files_kept(track));
}

static void test_live_h264(void)
{
    char media[1024], track[37], out[1024];
    CHECK_EQ_INT(
        mt_make_media(&stack, "live-h264.mkv",
                      "-t 20 -c:v libx264 -pix_fmt yuv420p -b:v 3M -minrate 3M -maxrate 3M "
                      "-bufsize 1M -x264-params nal-hrd=cbr -bsf:v h264_mp4toannexb "
                      "-c:a libopus -f matroska",
                      media, sizeof media),
        0);
    if (!post_live(media, "video/x-matroska;codecs=avc1,opus", track))
        return;
    CHECK(mt_output_state_is(&stack, track, "mp4", "done"));
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "mp4", out, sizeof out), 0);
    CHECK(mt_mp4_is_editor_ready(out));
    CHECK(mt_decodes_cleanly(out));
    CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
    CHECK(mt_duration_is(out, SECONDS, 0.1));
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "wav", out, sizeof out), 0);
    CHECK(mt_is_wav_48k(out));
    CHECK(mt_manifest_lists(&stack, track));
}

static void test_live_vp8(void)
{
    char media[1024], track[37], out[1024];
    CHECK_EQ_INT(
        mt_make_media(&stack, "live-vp8.webm",
                      "-t 20 -c:v libvpx -b:v 3M -minrate 3M -maxrate 3M -deadline realtime "
                      "-c:a libopus -f webm -live 1",
                      media, sizeof media),
        0);
    if (!post_live(media, "video/webm;codecs=vp8,opus", track))
        return;
    CHECK(mt_output_state_is(&stack, track, "webm", "done"));
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "webm", out, sizeof out), 0);
    CHECK(mt_has_cues(out));
    CHECK(mt_duration_is(out, SECONDS, 1.0 / 30 + 0.03));
    CHECK(mt_decodes_cleanly(out));
    CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "wav", out, sizeof out), 0);
    CHECK(mt_manifest_lists(&stack, track));
    /* the MP4 is skipped (VP8 without MUXER_TRANSCODE): no upload begun
     * for it is left open (they cost storage on R2 until a lifecycle rule) */
    CHECK(mt_output_state_is(&stack, track, "mp4", "skipped"));
    CHECK_EQ_INT(open_uploads(track), 0);
}

static void test_live_muxer_killed(void)
{
    char media[1024], track[37], out[1024], sql[256], v[32];
    CHECK_EQ_INT(mt_make_media(&stack, "live-kill.webm",
                               "-t 20 -c:v libvpx -b:v 2M -deadline realtime -c:a libopus -f webm "
                               "-live 1",
                               media, sizeof media),
                 0);
    pid_t sender = up_send_track(&stack, "send-live-kill", media, RATE, NULL, NULL,
                                 (const char *const[]){"--mime", "video/webm", NULL}, track);
    if (!CHECK(sender > 0))
        return;
    snprintf(sql, sizeof sql, "SELECT coalesce(live_mux_state, '') FROM tracks WHERE id = '%s'",
             track);
    if (CHECK(up_wait_sql(&stack, sql, "running", 30000, v, sizeof v))) {
        CHECK_EQ_INT(harness_signal(stack.h, stack.muxer_pid, SIGKILL), 0);
        harness_wait_exit(stack.h, stack.muxer_pid, 10000, NULL);
        stack.muxer_pid = 0;
        CHECK(stack_start_muxer(&stack) > 0);
    }
    CHECK_EQ_INT(up_send_wait(&stack, sender, 120000), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 180000)))
        return;
    CHECK_EQ_STR(live_state(track, v, sizeof v), "running"); /* nobody finished it live */
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "webm", out, sizeof out), 0);
    CHECK(mt_decodes_cleanly(out));
    CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
}

int main(void)
{
    if (stack_start(&stack, "test_mux_live") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_live_h264);
    TEST_RUN(test_live_vp8);
    TEST_RUN(test_live_muxer_killed);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
