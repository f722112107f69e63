/* test_ingest_halfopen.c -- a half-open connection between a recorder and
 * ingest-recorder (both ends established, nothing moves: the peer vanished
 * without a FIN) in the middle of a recording. ingest-recorder drops its
 * side after IDLE_TIMEOUT; seashore-send notices the silence, reconnects
 * and resumes; the track ends byte-exact. The connection runs through a
 * loopback proxy (tests/harness/blackhole_proxy.mjs) that black-holes it.
 * (The browser recorder has the same watchdog: 30 s without a frame.) */
#include "check.h"
#include "upload_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MEDIA_BYTES (3L << 20)

static ingest_stack stack = {
    .extra_env = {"IDLE_TIMEOUT=5s"},
};

static int proxy_port(const char *log_name)
{
    for (int waited = 0; waited < 10000; waited += 100) {
        char *log = stack_log(&stack, log_name);
        const char *p = log ? strstr(log, "PROXY_PORT=") : NULL;
        int port = p ? atoi(p + strlen("PROXY_PORT=")) : 0;
        free(log);
        if (port > 0)
            return port;
        usleep(100000);
    }
    return -1;
}

/* seashore_ingest_connections from ingest-recorder's /metrics, or -1. */
static int ingest_connections(void)
{
    char url[64];
    long status = 0;
    char *body = NULL;
    int v = -1;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", stack.ingest_ops_port);
    if (harness_http_get(url, &status, &body, NULL) == 0 && status == 200 && body) {
        const char *at = strstr(body, "\nseashore_ingest_connections ");
        v = at ? atoi(at + strlen("\nseashore_ingest_connections ")) : -1;
    }
    free(body);
    return v;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void test_half_open_mid_recording(void)
{
    char media[1024], control[1024], target[16], url[128], track[37], sql[256];
    CHECK_EQ_INT(up_make_media(&stack, "media.bin", MEDIA_BYTES, media, sizeof media), 0);
    snprintf(control, sizeof control, "%s/blackhole-now", harness_dir(stack.h));
    snprintf(target, sizeof target, "%d", stack.ws_port);
    char *script = harness_source_path("tests/harness/blackhole_proxy.mjs");
    char *argv[] = {"node", script, "--target", target, "--control", control, NULL};
    CHECK(stack_spawn(&stack, "proxy", argv) > 0);
    free(script);
    int port = proxy_port("proxy");
    if (!CHECK(port > 0))
        return;
    /* seashore-send through the proxy, 256 KiB chunks at 4/s: about 3 s */
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/v1/ingest", port);
    const char *saved = strdup(stack.ws_url);
    snprintf(stack.ws_url, sizeof stack.ws_url, "%s", url);
    pid_t pid = up_send_track(&stack, "send", media, 4, NULL, NULL, NULL, track);
    snprintf(stack.ws_url, sizeof stack.ws_url, "%s", saved);
    free((void *)saved);
    if (!CHECK(pid > 0))
        return;
    snprintf(sql, sizeof sql, "SELECT durable_seq >= 3 FROM tracks WHERE id = '%s'", track);
    CHECK(up_wait_sql(&stack, sql, "t", 30000, NULL, 0));
    CHECK_EQ_INT(ingest_connections(), 1);
    FILE *f = fopen(control, "w"); /* black-hole the connection */
    if (f)
        fclose(f);
    /* ingest drops its side at IDLE_TIMEOUT (5 s), long before the sender's
     * watchdog (45 s) makes a new connection */
    long t0 = now_ms(), dropped = -1;
    while (dropped < 0 && now_ms() - t0 < 30000) {
        if (ingest_connections() == 0)
            dropped = now_ms() - t0;
        else
            usleep(100000);
    }
    printf("ingest dropped the half-open connection after %ld ms\n", dropped);
    CHECK(dropped >= 4000 && dropped < 15000);
    /* the sender's silence watchdog (45 s) fires, it reconnects and ends */
    CHECK_EQ_INT(up_send_wait(&stack, pid, 150000), 0);
    char *log = stack_log(&stack, "proxy");
    CHECK(log && strstr(log, "black-holed 1 connection"));
    free(log);
    uint8_t *got = NULL;
    size_t len = 0;
    size_t want_len = 0;
    char *want = harness_read_file(media, &want_len);
    CHECK_EQ_INT(stack_read_track(&stack, track, &got, &len), 0);
    CHECK(want && len == want_len && memcmp(got, want, len) == 0);
    free(got);
    free(want);
}

int main(void)
{
    if (stack_start(&stack, "test_ingest_halfopen") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_half_open_mid_recording);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
