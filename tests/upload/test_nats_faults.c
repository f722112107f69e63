/* test_nats_faults.c -- network faults between the services and
 * nats-server. ingest-recorder, chunk-store and r2-uploader reach NATS
 * through a loopback TCP proxy (tests/harness/blackhole_proxy.mjs) while
 * seashore-send clients post:
 *   - their connections are cut, again and again, a set number of bytes
 *     after each order (so in the middle of a PUB or MSG frame and its
 *     payload, the proxy logs where), and they reconnect;
 *   - their connections go half-open (established, silent, no FIN): each
 *     service must find out by itself (the client's PING interval, nats.c)
 *     and reconnect.
 * Either way every track's raw object in S3 (s3rver) is byte-exact. The
 * test itself talks to nats-server directly. */
#include "check.h"
#include "upload_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define MEDIA_BYTES ((long)UP_PART + 3 * 1000 * 1000 + 123)
#define RATE        4 /* chunks of 256 KiB per second: about 8 s a track */
#define WAIT_MS     150000
#define NSERVICES   3

static ingest_stack stack = {
    .with_issuer = true, /* s3rver (and token-issuer, which talks to NATS directly) */
    .extra_env = {"UPLOAD_PART_SIZE=5MiB", NULL /* NATS_URL through the proxy */,
                  NULL /* LSAN_OPTIONS */},
};
static const char *services[NSERVICES] = {"ingest-recorder", "chunk-store", "r2-uploader"};
static char nats_via_proxy[96], lsan_options[1200], control[1024], media[2][1024];

static long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec * 1000L + tv.tv_usec / 1000;
}

static size_t log_len(const char *name)
{
    char *log = stack_log(&stack, name);
    size_t n = log ? strlen(log) : 0;
    free(log);
    return n;
}

/* How many times `what` occurs in <name>.log after byte `from`. */
static int log_count(const char *name, size_t from, const char *what)
{
    char *log = stack_log(&stack, name);
    int n = 0;
    for (const char *p = log && strlen(log) >= from ? log + from : NULL; p && (p = strstr(p, what));
         p += strlen(what))
        n++;
    free(log);
    return n;
}

static void proxy_order(const char *what)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", control);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fputs(what, f);
    fclose(f);
    rename(tmp, control); /* whole, never half-written */
}

/* The proxy in front of nats-server; ingest-recorder and chunk-store
 * restarted behind it, r2-uploader started behind it. */
static int through_proxy(void)
{
    char target[16];
    snprintf(control, sizeof control, "%s/nats-proxy-order", harness_dir(stack.h));
    snprintf(target, sizeof target, "%d", stack.nats.port);
    char *script = harness_source_path("tests/harness/blackhole_proxy.mjs");
    char *argv[] = {"node", script, "--target", target, "--control", control, NULL};
    pid_t pid = stack_spawn(&stack, "nats-proxy", argv);
    free(script);
    int port = 0;
    for (int waited = 0; pid > 0 && port <= 0 && waited < 10000; waited += 100) {
        char *log = stack_log(&stack, "nats-proxy");
        const char *p = log ? strstr(log, "PROXY_PORT=") : NULL;
        port = p ? atoi(p + strlen("PROXY_PORT=")) : 0;
        free(log);
        if (port <= 0)
            usleep(100000);
    }
    if (port <= 0)
        return -1;
    snprintf(nats_via_proxy, sizeof nats_via_proxy, "NATS_URL=nats://127.0.0.1:%d", port);
    stack.extra_env[1] = nats_via_proxy;
    /* libnats leaks a partial message per connection lost mid-payload (see
     * the file): the services behind the proxy run with that suppressed */
    char *supp = harness_source_path("tests/upload/lsan_libnats_parser.supp");
    snprintf(lsan_options, sizeof lsan_options, "LSAN_OPTIONS=suppressions=%s:print_suppressions=1",
             supp);
    free(supp);
    stack.extra_env[2] = lsan_options;
    if (stack_stop_service(&stack, &stack.ingest_pid, "ingest-recorder") != 0 ||
        stack_stop_service(&stack, &stack.store_pid, "chunk-store") != 0 ||
        stack_start_store(&stack) <= 0 || stack_start_ingest(&stack) <= 0 ||
        stack_start_uploader(&stack) <= 0 || stack_wait_ready(stack.store_ops_port, 30000) != 0 ||
        stack_wait_ready(stack.ingest_ops_port, 30000) != 0 ||
        harness_wait_port(stack.ws_port, 30000) != 0)
        return -1;
    return 0;
}

/* Both tracks' senders exit 0, the uploads complete, the objects match. */
static void tracks_end_exact(pid_t pids[2], char tracks[2][37])
{
    char sql[256];
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(up_send_wait(&stack, pids[i], WAIT_MS), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof sql, "SELECT state FROM tracks WHERE id = '%s'", tracks[i]);
        CHECK(up_wait_sql(&stack, sql, "complete", WAIT_MS, NULL, 0));
        CHECK(up_object_matches(&stack, tracks[i], media[i]));
    }
}

static int start_tracks(const char *tag, pid_t pids[2], char tracks[2][37])
{
    char name[32];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "send-%s-%d", tag, i);
        pids[i] = up_send_track(&stack, name, media[i], RATE, NULL,
                                i ? stack.other_participant_id : NULL, NULL, tracks[i]);
        if (pids[i] <= 0)
            return -1;
    }
    return 0;
}

/* bad-input: services to NATS | connections cut in the middle of a NATS
 * frame (proxy: FIN both ways N bytes after the order), ten times while two
 * tracks are posted | each service reconnects; un-acked publishes are
 * retried | both raw objects byte-exact */
static void test_cut_mid_frame(void)
{
    pid_t pids[2];
    char tracks[2][37], order[32];
    size_t mark[NSERVICES], proxy_mark = log_len("nats-proxy");
    for (int i = 0; i < NSERVICES; i++)
        mark[i] = log_len(services[i]);
    if (!CHECK_EQ_INT(start_tracks("cut", pids, tracks), 0))
        return;
    for (int round = 0; round < 10; round++) {
        /* from 1 kB (inside a header or a small frame) to about 500 kB */
        snprintf(order, sizeof order, "cut %d", 1000 + round * round * 6000 + round * 77);
        proxy_order(order);
        usleep(900000);
    }
    tracks_end_exact(pids, tracks);
    int cuts = log_count("nats-proxy", proxy_mark, "\ncut "),
        mid = log_count("nats-proxy", proxy_mark, "(mid-line)");
    printf("connections cut: %d (%d in the middle of a line)\n", cuts, mid);
    CHECK(cuts >= 10);
    CHECK(mid >= 5);
    for (int i = 0; i < NSERVICES; i++) {
        int n = log_count(services[i], mark[i], "nats reconnected");
        printf("%s: reconnected %d times\n", services[i], n);
        CHECK(n >= 1);
    }
}

/* bad-input: services to NATS | a half-open NATS connection (established,
 * silent, no FIN) while two tracks are posted | each service notices by its
 * PING interval and reconnects | both raw objects byte-exact */
static void test_half_open(void)
{
    pid_t pids[2];
    char tracks[2][37], sql[256];
    size_t mark[NSERVICES], proxy_mark = log_len("nats-proxy");
    for (int i = 0; i < NSERVICES; i++)
        mark[i] = log_len(services[i]);
    if (!CHECK_EQ_INT(start_tracks("hole", pids, tracks), 0))
        return;
    snprintf(sql, sizeof sql, "SELECT durable_seq >= 3 FROM tracks WHERE id = '%s'", tracks[1]);
    CHECK(up_wait_sql(&stack, sql, "t", 30000, NULL, 0));
    proxy_order("hole");
    long t0 = now_ms(), noticed = -1;
    while (noticed < 0 && now_ms() - t0 < 60000) {
        int all = 1;
        for (int i = 0; i < NSERVICES; i++)
            all &= log_count(services[i], mark[i], "nats reconnected") > 0;
        if (all)
            noticed = now_ms() - t0;
        else
            usleep(200000);
    }
    printf("all three services reconnected %ld ms after the black hole\n", noticed);
    CHECK(noticed >= 0 && noticed < 30000);
    int holed = 0;
    char *log = stack_log(&stack, "nats-proxy");
    const char *at =
        log && strlen(log) >= proxy_mark ? strstr(log + proxy_mark, "black-holed ") : NULL;
    holed = at ? atoi(at + strlen("black-holed ")) : 0;
    free(log);
    printf("connections black-holed: %d\n", holed);
    CHECK(holed >= NSERVICES);
    tracks_end_exact(pids, tracks);
}

int main(void)
{
    if (stack_start(&stack, "test_nats_faults") != 0 ||
        up_make_media(&stack, "a.bin", MEDIA_BYTES, media[0], sizeof media[0]) != 0 ||
        up_make_media(&stack, "b.bin", MEDIA_BYTES + 4567, media[1], sizeof media[1]) != 0 ||
        through_proxy() != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_cut_mid_frame);
    TEST_RUN(test_half_open);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
