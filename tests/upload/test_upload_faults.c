/* test_upload_faults.c -- a fault-injecting proxy (tests/harness/
 * fault_proxy.mjs) sits between r2-uploader and Swift and, on a seeded
 * schedule, answers 500/503, resets connections, stalls, trickles and cuts
 * responses. Two recordings still end up byte-exact in the bucket, and the
 * uploader shows it retried. SEED=n in the environment picks another
 * schedule (the default is printed). */
#include "check.h"
#include "upload_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MEDIA_BYTES ((long)UP_PART * 5 + 4321)
#define WAIT_MS     180000

static ingest_stack stack = {
    .with_swift = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB"},
    .uploader_env = {"UPLOAD_ACK_WAIT=5s", "UPLOAD_RETRY_MAX_DELAY=1s", "UPLOAD_STALL_TIMEOUT=2s",
                     "UPLOAD_CONCURRENCY=3"},
};
static char media[1024], seed[16] = "7";
static pid_t proxy_pid;
static char endpoint_env[128];

static int proxy_start(void)
{
    const char *opts[] = {"--seed",     seed,       "--fault-rate",
                          "0.5",        "--faults", "500,503,reset,stall,slow,truncate",
                          "--stall-ms", "30000",    NULL};
    proxy_pid = up_fault_proxy_start(&stack, opts, endpoint_env, sizeof endpoint_env);
    stack.uploader_env[4] = endpoint_env;
    return proxy_pid > 0 ? 0 : -1;
}

static double uploader_retries(void)
{
    char url[64];
    long status = 0;
    char *body = NULL;
    size_t len = 0;
    double v = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", stack.uploader_ops_port);
    if (harness_http_get(url, &status, &body, &len) == 0 && body) {
        const char *at = strstr(body, "\nseashore_upload_retries_total ");
        v = at ? atof(at + strlen("\nseashore_upload_retries_total ")) : 0;
    }
    free(body);
    return v;
}

/* bad-input: r2-uploader to S3 | 500, 503, reset connections, stalled, slow and truncated answers
 * (seeded proxy) | retried with backoff and jitter | the object byte-exact */
static void test_faults_leave_objects_exact(void)
{
    char tracks[2][37], other[1024], sql[256];
    CHECK_EQ_INT(up_make_media(&stack, "other.bin", MEDIA_BYTES + 777, other, sizeof other), 0);
    pid_t a = up_send_track(&stack, "send-a", media, 16, NULL, NULL, NULL, tracks[0]);
    pid_t b = up_send_track(&stack, "send-b", other, 16, NULL, stack.other_participant_id, NULL,
                            tracks[1]);
    CHECK(a > 0 && b > 0);
    CHECK_EQ_INT(up_send_wait(&stack, a, WAIT_MS), 0);
    CHECK_EQ_INT(up_send_wait(&stack, b, WAIT_MS), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof sql, "SELECT state FROM tracks WHERE id = '%s'", tracks[i]);
        CHECK(up_wait_sql(&stack, sql, "complete", WAIT_MS, NULL, 0));
    }
    CHECK(up_object_matches(&stack, tracks[0], media));
    CHECK(up_object_matches(&stack, tracks[1], other));
    double retries = uploader_retries();
    int kinds = 0, faults = up_proxy_faults(&stack, proxy_pid, seed, &kinds);
    printf("uploader retries: %.0f; faults injected: %d of %d kinds\n", retries, faults, kinds);
    CHECK(faults >= 5);
    CHECK(kinds >= 3);
    CHECK(retries >= 1);
}

int main(void)
{
    if (getenv("SEED"))
        snprintf(seed, sizeof seed, "%s", getenv("SEED"));
    if (stack_start(&stack, "test_upload_faults") != 0 ||
        up_make_media(&stack, "media.bin", MEDIA_BYTES, media, sizeof media) != 0 ||
        proxy_start() != 0 || stack_start_uploader(&stack) <= 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_faults_leave_objects_exact);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
