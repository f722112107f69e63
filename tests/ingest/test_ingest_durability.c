/* test_ingest_durability.c -- seashore-send posting real media (a WebM made
 * by ffmpeg here) through ingest-recorder and chunk-store, read back through
 * chunkstore.read and compared byte for byte:
 *   - a plain round trip;
 *   - kill -9 of ingest-recorder in the middle (client reconnects, resumes);
 *   - kill -9 of chunk-store in the middle;
 *   - SIGTERM of ingest-recorder in the middle (drains: exit 0, client
 *     resumes on the restarted instance);
 *   - 200 concurrent clients with two chunk-store replicas;
 *   - chunk-store stalled while a track ends (no reconnect). */
#include "check.h"
#include "ingest_stack.h"

#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEND_TIMEOUT_MS 180000
#define MAX_TRACKS      256

static ingest_stack stack;
static char media[1024], small_media[1024];

static int make_media(const char *path, const char *size, int seconds)
{
    char dur[16];
    snprintf(dur, sizeof dur, "%d", seconds);
    char *argv[] = {"ffmpeg",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    (char *)size,
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000",
                    "-t",
                    dur,
                    "-c:v",
                    "libvpx",
                    "-b:v",
                    "3M",
                    "-c:a",
                    "libopus",
                    "-f",
                    "webm",
                    (char *)path,
                    NULL};
    return stack_run(&stack, "ffmpeg", argv, 120000);
}

/* The track ids in seashore-send's result lines "<id> <count> <bytes> <sha>". */
static int result_tracks(const char *log, char ids[][37], int max)
{
    int n = 0;
    for (const char *line = log; line && *line && n < max;) {
        char id[64], sha[80];
        unsigned long long count, bytes;
        if (sscanf(line, "%63s %llu %llu %79s", id, &count, &bytes, sha) == 4 && strlen(id) == 36 &&
            strlen(sha) == 64)
            memcpy(ids[n++], id, 37);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return n;
}

static bool track_matches(const char *track_id, const char *path)
{
    size_t want_len = 0, got_len = 0;
    uint8_t *got = NULL;
    char *want = harness_read_file(path, &want_len);
    bool same = stack_read_track(&stack, track_id, &got, &got_len) == 0 && want &&
                got_len == want_len && memcmp(got, want, want_len) == 0;
    if (!same)
        fprintf(stderr, "track %s: read back %zu bytes, file has %zu\n", track_id, got_len,
                want_len);
    free(got);
    free(want);
    return same;
}

/* Starts seashore-send on `path` as log `name`; extra options appended. */
static pid_t start_send(const char *name, const char *path, const char *const *extra)
{
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *tok = stack_token(&stack, NULL, 3600);
    char *argv[32] = {bin, "--url", stack.ws_url, "--token", tok, "--quiet"};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = (char *)extra[i];
    argv[n++] = (char *)path;
    argv[n] = NULL;
    pid_t pid = stack_spawn(&stack, name, argv);
    free(bin);
    free(tok);
    return pid;
}

static int wait_send(pid_t pid)
{
    int status = -1;
    if (harness_wait_exit(stack.h, pid, SEND_TIMEOUT_MS, &status) != 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void check_one_track(const char *name, const char *path)
{
    char ids[1][37];
    char *log = stack_log(&stack, name);
    if (CHECK_EQ_INT(result_tracks(log, ids, 1), 1))
        CHECK(track_matches(ids[0], path));
    free(log);
}

static void test_round_trip(void)
{
    const char *opts[] = {"--chunk-size", "262144", NULL};
    pid_t pid = start_send("send-plain", media, opts);
    CHECK_EQ_INT(wait_send(pid), 0);
    check_one_track("send-plain", media);
}

/* A fault in the middle of a slow stream; the client must finish. */
static void fault_mid_stream(const char *name, void (*fault)(void))
{
    char stats[1100];
    snprintf(stats, sizeof stats, "%s/%s.json", harness_dir(stack.h), name);
    const char *opts[] = {"--chunk-size", "65536", "--rate", "10", "--stats-json", stats, NULL};
    pid_t pid = start_send(name, media, opts);
    sleep(1);
    CHECK(kill(pid, 0) == 0); /* still sending: the fault lands mid-stream */
    fault();
    CHECK_EQ_INT(wait_send(pid), 0);
    check_one_track(name, media);
    char *json = harness_read_file(stats, NULL);
    printf("%s: %s\n", name, json ? json : "(no stats)");
    free(json);
}

/* kill -9, a pause, a restart, and ready again. */
static void kill_and_restart(pid_t pid, pid_t (*start)(ingest_stack *), int ops_port,
                             useconds_t pause_us)
{
    harness_signal(stack.h, pid, SIGKILL);
    harness_wait_exit(stack.h, pid, 10000, NULL);
    usleep(pause_us);
    start(&stack);
    CHECK_EQ_INT(stack_wait_ready(ops_port, 30000), 0);
}

static void kill_ingest(void)
{
    kill_and_restart(stack.ingest_pid, stack_start_ingest, stack.ingest_ops_port, 300000);
}

static void kill_store(void)
{
    kill_and_restart(stack.store_pid, stack_start_store, stack.store_ops_port, 500000);
}

static void term_ingest(void)
{
    CHECK_EQ_INT(stack_stop_service(&stack, &stack.ingest_pid, "ingest-recorder"), 0);
    stack_start_ingest(&stack);
    CHECK_EQ_INT(stack_wait_ready(stack.ingest_ops_port, 30000), 0);
}

static void test_kill_ingest(void)
{
    fault_mid_stream("send-kill-ingest", kill_ingest);
}

static void test_kill_store(void)
{
    fault_mid_stream("send-kill-store", kill_store);
}

static void test_drain_ingest(void)
{
    fault_mid_stream("send-drain-ingest", term_ingest);
}

/* A permanent error (here a bad token) ends seashore-send with status 1
 * and a message naming the error code, instead of retrying forever. */
static void test_permanent_error(void)
{
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *argv[] = {bin, "--url", stack.ws_url, "--token", "not-a-token", "--quiet", media, NULL};
    CHECK_EQ_INT(stack_run(&stack, "send-bad-token", argv, 30000), 1);
    char *log = stack_log(&stack, "send-bad-token");
    CHECK_CONTAINS(log, "BAD_TOKEN");
    free(log);
    free(bin);
}

static void test_200_clients(void)
{
    static char ids[MAX_TRACKS][37];
    char *bin = harness_build_path("services/chunk-store/chunk-store");
    char *argv[] = {bin, NULL};
    pid_t second = stack_spawn(&stack, "chunk-store-2", argv); /* a second replica */
    free(bin);
    const char *opts[] = {"--chunk-size", "65536", "--copies", "200", NULL};
    pid_t pid = start_send("send-200", small_media, opts);
    CHECK_EQ_INT(wait_send(pid), 0);
    char *log = stack_log(&stack, "send-200");
    int n = result_tracks(log, ids, MAX_TRACKS);
    CHECK_EQ_INT(n, 200);
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += !track_matches(ids[i], small_media);
    CHECK_EQ_INT(bad, 0);
    free(log);
    harness_signal(stack.h, second, SIGTERM);
    harness_wait_exit(stack.h, second, 30000, NULL);
}

/* Polls a service's log for `text`; true once it appears. */
static bool log_shows(const char *name, const char *text, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        char *log = stack_log(&stack, name);
        bool found = log && strstr(log, text);
        free(log);
        if (found)
            return true;
        usleep(100000);
    }
    return false;
}

/* chunk-store stopped (SIGSTOP) while a track ends: ingest asks for the End
 * again when its wait runs out instead of closing the connection, and the
 * client finishes without a single reconnect. */
static void test_end_outlasts_a_stalled_store(void)
{
    char stats[1100];
    stack.extra_env[0] = "END_TIMEOUT=2s";
    term_ingest();
    snprintf(stats, sizeof stats, "%s/send-stalled-end.json", harness_dir(stack.h));
    const char *opts[] = {"--chunk-size", "65536", "--rate", "10", "--stats-json", stats, NULL};
    pid_t pid = start_send("send-stalled-end", media, opts);
    sleep(1); /* welcomed: a Hello needs chunk-store, the chunks after it do not */
    harness_signal(stack.h, stack.store_pid, SIGSTOP);
    bool asked_again = log_shows("ingest-recorder", "End not confirmed yet", 60000);
    harness_signal(stack.h, stack.store_pid, SIGCONT);
    CHECK(asked_again);
    CHECK_EQ_INT(wait_send(pid), 0);
    check_one_track("send-stalled-end", media);
    char *json = harness_read_file(stats, NULL);
    CHECK_CONTAINS(json, "\"reconnects\": 0,");
    free(json);
    stack.extra_env[0] = NULL;
}

int main(void)
{
    if (!CHECK_EQ_INT(stack_start(&stack, "test_ingest_durability"), 0)) {
        stack_stop(&stack);
        return check_finish();
    }
    snprintf(media, sizeof media, "%s/media.webm", harness_dir(stack.h));
    snprintf(small_media, sizeof small_media, "%s/small.webm", harness_dir(stack.h));
    /* noise keeps the encoder busy: ~3 MB, so a stream lasts seconds */
    if (CHECK_EQ_INT(make_media(media, "testsrc=size=640x360:rate=30,noise=alls=40:allf=t+u", 8),
                     0) &&
        CHECK_EQ_INT(make_media(small_media, "testsrc=size=160x120:rate=15", 2), 0)) {
        TEST_RUN(test_round_trip);
        TEST_RUN(test_kill_ingest);
        TEST_RUN(test_kill_store);
        TEST_RUN(test_drain_ingest);
        TEST_RUN(test_permanent_error);
        TEST_RUN(test_200_clients);
        TEST_RUN(test_end_outlasts_a_stalled_store);
    }
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
