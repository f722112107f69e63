/* test_web.c -- the studio in Debian's Chromium (fake camera and
 * microphone) against the whole stack: token-issuer serving web/,
 * ingest-recorder, chunk-store, r2-uploader, muxer, nats-server,
 * PostgreSQL and s3rver. The cases are in tests/web/studio.mjs
 * (playwright-core); this program starts the stack, runs the script, and
 * does what the script asks of the stack through a control directory:
 * "stop-ingest" and "start-ingest" (ingest-recorder down and back in the
 * middle of a recording), and "start-uploader". Screenshots of every page
 * go to <test dir>/screenshots (SEASHORE_KEEP_TMP=1 keeps them).
 *
 * Built twice: test_web runs studio.mjs against the whole stack;
 * test_web_backpressure (WEB_BACKPRESSURE) runs backpressure.mjs against a
 * chunk log that holds one 5 MiB part and a little more, with r2-uploader
 * started only when the script asks, so the log fills while the page
 * records. */
#include "check.h"
#include "ingest_stack.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SCRIPT_TIMEOUT_MS 540000
#define POLL_MS           100

#ifdef WEB_BACKPRESSURE
#define SCRIPT    "tests/web/backpressure.mjs"
#define TEST_NAME "test_web_backpressure"
static ingest_stack stack = {
    .with_issuer = true,
    .with_muxer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB", "CHUNK_LOG_MAX_BYTES=7MiB", "CHUNK_LOG_MAX_TRACKS=1"},
};
#else
#define SCRIPT    "tests/web/studio.mjs"
#define TEST_NAME "test_web"
static ingest_stack stack = {
    .with_issuer = true,
    .with_uploader = true,
    .with_muxer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB"},
};
#endif

/* Carries out one request; 0 when done. */
static int control_do(const char *cmd)
{
    if (strcmp(cmd, "stop-ingest") == 0)
        return stack_stop_service(&stack, &stack.ingest_pid, "ingest-recorder") == 0 ? 0 : -1;
    if (strcmp(cmd, "start-ingest") == 0)
        return stack_start_ingest(&stack) > 0 &&
                       stack_wait_ready(stack.ingest_ops_port, 30000) == 0 &&
                       harness_wait_port(stack.ws_port, 30000) == 0
                   ? 0
                   : -1;
    if (strcmp(cmd, "start-uploader") == 0)
        return stack.uploader_pid > 0 || stack_start_uploader(&stack) > 0 ? 0 : -1;
    fprintf(stderr, "control: unknown request '%s'\n", cmd);
    return -1;
}

/* Requests are <n>.req files holding a command; the answer is <n>.done
 * holding "ok" or "failed". */
static void control_poll(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".req") != 0)
            continue;
        char req[1200], ans[1200], cmd[64] = "";
        snprintf(req, sizeof req, "%s/%s", dir, e->d_name);
        snprintf(ans, sizeof ans, "%s/%.*s.done", dir, (int)(n - 4), e->d_name);
        FILE *f = fopen(req, "r");
        if (f && fgets(cmd, sizeof cmd, f))
            cmd[strcspn(cmd, "\r\n")] = '\0';
        if (f)
            fclose(f);
        unlink(req);
        int rc = control_do(cmd);
        fprintf(stderr, "control: %s: %s\n", cmd, rc == 0 ? "ok" : "failed");
        f = fopen(ans, "w");
        if (f) {
            fputs(rc == 0 ? "ok" : "failed", f);
            fclose(f);
        }
    }
    if (d)
        closedir(d);
}

static void test_studio_in_chromium(void)
{
    char control[1024], shots[1024];
    snprintf(control, sizeof control, "%s/control", harness_dir(stack.h));
    snprintf(shots, sizeof shots, "%s/screenshots", harness_dir(stack.h));
    mkdir(control, 0700);
    mkdir(shots, 0700);
    char *build = harness_source_path("scripts/web-build.sh");
    char *build_argv[] = {"bash", build, NULL};
    CHECK_EQ_INT(stack_run(&stack, "web-build", build_argv, 60000), 0);
    free(build);

    char metrics[128];
    snprintf(metrics, sizeof metrics, "http://127.0.0.1:%d/metrics", stack.ingest_ops_port);
    char *script = harness_source_path(SCRIPT);
    char *argv[] = {"node", script, control, shots, metrics, NULL};
    pid_t pid = stack_spawn(&stack, "studio", argv);
    free(script);
    if (!CHECK(pid > 0))
        return;
    int status = -1;
    for (int waited = 0; waited < SCRIPT_TIMEOUT_MS; waited += POLL_MS) {
        control_poll(control);
        if (harness_wait_exit(stack.h, pid, POLL_MS, &status) == 0)
            break;
    }
    if (status == -1) {
        fprintf(stderr, SCRIPT " did not finish in %d s\n", SCRIPT_TIMEOUT_MS / 1000);
        harness_signal(stack.h, pid, SIGKILL);
        harness_wait_exit(stack.h, pid, 5000, NULL);
    }
    char *log = stack_log(&stack, "studio");
    printf("%s", log ? log : "");
    free(log);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    if (stack_start(&stack, TEST_NAME) != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_studio_in_chromium);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
