/* test_make_dev.c -- `make dev`'s script brings the whole stack up on
 * loopback: every service ready within 60 s, every /metrics valid for
 * promtool; SIGTERM stops everything; a second run keeps the first's data.
 * Runs scripts/dev.sh against this build, with its state in a temp dir and
 * free ports so it never meets a developer's own `make dev`. */
#include "check.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NSERVICES 5

static harness *h;
static int ops_base;
static char env_vars[16][1024];
static char *env[17];

/* Free: nothing listens there (SO_REUSEADDR ignores TIME_WAIT leftovers). */
static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* The dev script gives the five ops ports base..base+4. */
static int free_port_range(int n)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int base = 20000 + (int)(random() % 40000);
        int k = 0;
        while (k < n && port_free(base + k))
            k++;
        if (k == n)
            return base;
    }
    return -1;
}

static void build_env(void)
{
    int n = 0;
    const char *path = getenv("PATH");
    snprintf(env_vars[n++], 1024, "PATH=%s", path ? path : "/usr/bin:/bin");
    snprintf(env_vars[n++], 1024, "HOME=%s", harness_dir(h));
    snprintf(env_vars[n++], 1024, "DEV_DIR=%s/dev-state", harness_dir(h));
    snprintf(env_vars[n++], 1024, "DEV_BUILD_DIR=%s", getenv("SEASHORE_BUILD_DIR"));
    snprintf(env_vars[n++], 1024, "DEV_NATS_PORT=%d", harness_free_port());
    snprintf(env_vars[n++], 1024, "DEV_PG_PORT=%d", harness_free_port());
    snprintf(env_vars[n++], 1024, "DEV_S3_PORT=%d", harness_free_port());
    snprintf(env_vars[n++], 1024, "DEV_HTTP_PORT=%d", harness_free_port());
    snprintf(env_vars[n++], 1024, "DEV_WS_PORT=%d", harness_free_port());
    snprintf(env_vars[n++], 1024, "DEV_OPS_PORT_BASE=%d", ops_base);
    snprintf(env_vars[n++], 1024, "ASAN_OPTIONS=%s",
             getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
    for (int i = 0; i < n; i++)
        env[i] = env_vars[i];
    env[n] = NULL;
}

static bool metrics_valid(int port)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    long status = 0;
    char *body = NULL;
    size_t len = 0;
    if (harness_http_get(url, &status, &body, &len) != 0 || status != 200) {
        free(body);
        return false;
    }
    FILE *p = popen("promtool check metrics >/dev/null 2>&1", "w");
    fwrite(body, 1, len, p);
    int rc = pclose(p);
    free(body);
    return WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

/* One `make dev` run: up, checked, stopped with SIGTERM. */
/* The services answer /readyz a moment before the script has seen them
 * all and printed the URLs: stop it only once it has. */
static int wait_script_up(const char *name, int timeout_ms)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.log", harness_dir(h), name);
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        char *out = harness_read_file(path, NULL);
        bool up = out && strstr(out, "Ctrl-C stops everything") != NULL;
        free(out);
        if (up)
            return 0;
        usleep(100000);
    }
    fprintf(stderr, "%s: no \"Ctrl-C stops everything\" in %s after %d ms\n", name, path,
            timeout_ms);
    return -1;
}

static void run_dev_once(const char *name)
{
    char *script = harness_source_path("scripts/dev.sh");
    char *argv[] = {"bash", script, NULL};
    pid_t pid = harness_spawn(h, name, argv, env);
    free(script);
    CHECK(pid > 0);
    for (int i = 0; i < NSERVICES; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ops_base + i);
        CHECK_EQ_INT(harness_wait_http_status(url, 200, 60000), 0);
        CHECK(metrics_valid(ops_base + i));
    }
    CHECK_EQ_INT(wait_script_up(name, 30000), 0);
    int status = -1;
    CHECK_EQ_INT(harness_signal(h, pid, SIGTERM), 0);
    CHECK_EQ_INT(harness_wait_exit(h, pid, 30000, &status), 0);
    for (int i = 0; i < NSERVICES; i++)
        CHECK(port_free(ops_base + i)); /* nothing left running */
}

static void test_dev_stack_comes_up_and_stops(void)
{
    run_dev_once("dev-1");
    char path[1024];
    snprintf(path, sizeof path, "%s/dev-1.log", harness_dir(h));
    char *out = harness_read_file(path, NULL);
    CHECK_CONTAINS(out, "http://127.0.0.1:");
    CHECK_CONTAINS(out, "Ctrl-C stops everything");
    free(out);
}

static void test_second_run_keeps_data(void)
{
    run_dev_once("dev-2");
    char path[1024];
    snprintf(path, sizeof path, "%s/dev-state/pg/PG_VERSION", harness_dir(h));
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/dev-2.log", harness_dir(h));
    char *out = harness_read_file(path, NULL);
    CHECK(out && strstr(out, "initdb") == NULL); /* the cluster of run 1 was reused */
    free(out);
}

int main(void)
{
    srandom((unsigned)getpid());
    h = harness_new("make-dev");
    ops_base = free_port_range(NSERVICES);
    if (!h || ops_base < 0)
        return 1;
    chmod(harness_dir(h), 0755); /* postgres runs as its own user when we are root */
    build_env();
    TEST_RUN(test_dev_stack_comes_up_and_stops);
    TEST_RUN(test_second_run_keeps_data);
    harness_free(h);
    return check_finish();
}
