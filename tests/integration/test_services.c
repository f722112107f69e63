/* test_services.c -- the foundation contract of every service, against real
 * nats-server, PostgreSQL and an S3 server:
 *   - --config-json lists the variables; a missing DATABASE_URL is named in
 *     one line and the exit status is 2;
 *   - all five become ready; /metrics passes promtool;
 *   - NATS or PostgreSQL going away turns /readyz 503 and coming back turns
 *     it 200 again without a restart; a service started with NATS down
 *     becomes ready within 10 s of NATS starting;
 *   - SIGTERM drains and exits 0.
 */
#include "check.h"
#include "harness.h"
#include "harness_s3.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NSERVICES 5
#define ENV_MAX   24

static const char *const services[NSERVICES] = {"token-issuer", "ingest-recorder", "chunk-store",
                                                "r2-uploader", "muxer"};
static const bool needs_pg[NSERVICES] = {true, false, true, true, true};

static harness *h;
static harness_nats nats;
static harness_pg pg;
static harness_s3 s3;
static int ops_port[NSERVICES];
static int http_port;
static char web_root[400];
static pid_t pids[NSERVICES];

/* A clean environment for a service; `omit` names a variable to leave out. */
static char **service_env(int i, const char *omit)
{
    static char vars[ENV_MAX][512];
    static char *env[ENV_MAX + 1];
    int n = 0;
    const char *path = getenv("PATH");
    const char *asan = getenv("ASAN_OPTIONS");
    const char *ubsan = getenv("UBSAN_OPTIONS");
    snprintf(vars[n++], 512, "PATH=%s", path ? path : "/usr/bin:/bin");
    snprintf(vars[n++], 512, "ASAN_OPTIONS=%s", asan ? asan : "");
    snprintf(vars[n++], 512, "UBSAN_OPTIONS=%s", ubsan ? ubsan : "");
    snprintf(vars[n++], 512, "OPS_LISTEN=127.0.0.1:%d", ops_port[i]);
    snprintf(vars[n++], 512, "NATS_URL=%s", nats.url);
    snprintf(vars[n++], 512, "DATABASE_URL=%s", pg.url);
    snprintf(vars[n++], 512, "HTTP_LISTEN=127.0.0.1:%d", http_port);
    snprintf(vars[n++], 512, "WEB_ROOT=%s", web_root);
    snprintf(vars[n++], 512, "WS_LISTEN=127.0.0.1:%d", harness_free_port());
    snprintf(vars[n++], 512, "INGEST_TOKEN_SECRET=%s", "test-secret-0123456789abcdef0123456789");
    snprintf(vars[n++], 512, "R2_ENDPOINT=%s", s3.endpoint);
    snprintf(vars[n++], 512, "R2_ACCESS_KEY_ID=%s", s3.access_key);
    snprintf(vars[n++], 512, "R2_SECRET_ACCESS_KEY=%s", s3.secret_key);
    snprintf(vars[n++], 512, "R2_BUCKET_NAME=%s", s3.bucket);
    snprintf(vars[n++], 512, "DRAIN_TIMEOUT=5s");
    int out = 0;
    for (int k = 0; k < n; k++) {
        size_t len = omit ? strlen(omit) : 0;
        if (omit && strncmp(vars[k], omit, len) == 0 && vars[k][len] == '=')
            continue;
        env[out++] = vars[k];
    }
    env[out] = NULL;
    return env;
}

static pid_t start_service(int i, const char *omit)
{
    char rel[128];
    snprintf(rel, sizeof rel, "services/%s/%s", services[i], services[i]);
    char *bin = harness_build_path(rel);
    char *argv[] = {bin, NULL};
    pid_t pid = harness_spawn(h, services[i], argv, service_env(i, omit));
    free(bin);
    return pid;
}

static int readyz_status(int i)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ops_port[i]);
    long status = 0;
    if (harness_http_get(url, &status, NULL, NULL) != 0)
        return -1;
    return (int)status;
}

static int wait_ready(int i, long want, int timeout_ms)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ops_port[i]);
    return harness_wait_http_status(url, want, timeout_ms);
}

/* Runs a service to completion; returns its exit status and its output. */
static int run_to_exit(int i, const char *tag, char *const extra_argv, const char *omit,
                       char **output)
{
    char rel[128], name[128], logpath[1024];
    snprintf(rel, sizeof rel, "services/%s/%s", services[i], services[i]);
    snprintf(name, sizeof name, "%s-%s", services[i], tag);
    char *bin = harness_build_path(rel);
    char *argv[] = {bin, extra_argv, NULL};
    pid_t pid = harness_spawn(h, name, argv, service_env(i, omit));
    free(bin);
    int status = -1;
    if (pid <= 0 || harness_wait_exit(h, pid, 10000, &status) != 0)
        return -1;
    snprintf(logpath, sizeof logpath, "%s/%s.log", harness_dir(h), name);
    *output = harness_read_file(logpath, NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_config_json_lists_variables(void)
{
    for (int i = 0; i < NSERVICES; i++) {
        char *out = NULL;
        CHECK_EQ_INT(run_to_exit(i, "config", "--config-json", NULL, &out), 0);
        CHECK_CONTAINS(out, "\"name\": \"NATS_URL\"");
        CHECK_CONTAINS(out, "\"name\": \"OPS_LISTEN\"");
        if (needs_pg[i])
            CHECK_CONTAINS(out, "\"name\": \"DATABASE_URL\"");
        free(out);
    }
}

static void test_missing_database_url_exits_2_naming_it(void)
{
    for (int i = 0; i < NSERVICES; i++) {
        if (!needs_pg[i])
            continue;
        char *out = NULL;
        CHECK_EQ_INT(run_to_exit(i, "nodb", NULL, "DATABASE_URL", &out), 2);
        CHECK_CONTAINS(out, "DATABASE_URL");
        CHECK(out && strchr(out, '\n') == out + strlen(out) - 1); /* one line */
        free(out);
    }
}

static void test_malformed_nats_url_exits_2_naming_it(void)
{
    char *out = NULL;
    char saved[64];
    snprintf(saved, sizeof saved, "%s", nats.url);
    snprintf(nats.url, sizeof nats.url, "http://127.0.0.1:1");
    CHECK_EQ_INT(run_to_exit(2, "badnats", NULL, NULL, &out), 2);
    CHECK_CONTAINS(out, "NATS_URL: URL scheme 'http' is not one of nats,tls");
    free(out);
    snprintf(nats.url, sizeof nats.url, "%s", saved);
}

static void test_all_services_become_ready(void)
{
    for (int i = 0; i < NSERVICES; i++)
        pids[i] = start_service(i, NULL);
    for (int i = 0; i < NSERVICES; i++) {
        CHECK(pids[i] > 0);
        CHECK_EQ_INT(wait_ready(i, 200, 60000), 0);
    }
}

static void test_metrics_pass_promtool(void)
{
    for (int i = 0; i < NSERVICES; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", ops_port[i]);
        long status = 0;
        char *body = NULL;
        size_t len = 0;
        CHECK_EQ_INT(harness_http_get(url, &status, &body, &len), 0);
        CHECK_EQ_INT(status, 200);
        CHECK_CONTAINS(body, "process_resident_memory_bytes");
        FILE *p = popen("promtool check metrics >/dev/null 2>&1", "w");
        fwrite(body, 1, len, p);
        int rc = pclose(p);
        CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
        free(body);
    }
}

/* token-issuer serves the studio's static files, and nothing outside them. */
static void test_studio_page_served(void)
{
    char url[256];
    long status = 0;
    char *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", http_port);
    CHECK_EQ_INT(harness_http_get(url, &status, &body, NULL), 0);
    CHECK_EQ_INT(status, 200);
    CHECK_CONTAINS(body, "Sea Shore studio");
    free(body);
    body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%%2e%%2e/%%2e%%2e/etc/passwd", http_port);
    CHECK_EQ_INT(harness_http_get(url, &status, &body, NULL), 0);
    CHECK(status == 403 || status == 404);
    CHECK(body == NULL || strstr(body, "root:") == NULL);
    free(body);
}

/* NATS stops: every NATS client reports 503; it returns: 200 within 10 s. */
static void test_nats_outage_and_recovery(void)
{
    CHECK_EQ_INT(harness_nats_stop(h, &nats), 0);
    for (int i = 0; i < NSERVICES; i++)
        CHECK_EQ_INT(wait_ready(i, 503, 20000), 0);
    CHECK_EQ_INT(harness_nats_restart(h, &nats), 0);
    for (int i = 0; i < NSERVICES; i++)
        CHECK_EQ_INT(wait_ready(i, 200, 10000), 0);
}

static void test_postgres_outage_and_recovery(void)
{
    CHECK_EQ_INT(harness_pg_stop(h, &pg), 0);
    for (int i = 0; i < NSERVICES; i++)
        CHECK_EQ_INT(wait_ready(i, needs_pg[i] ? 503 : 200, 20000), 0);
    CHECK_EQ_INT(harness_pg_restart(h, &pg), 0);
    for (int i = 0; i < NSERVICES; i++)
        CHECK_EQ_INT(wait_ready(i, 200, 10000), 0);
}

static void test_sigterm_drains_and_exits_0(void)
{
    for (int i = 0; i < NSERVICES; i++) {
        int status = -1;
        CHECK_EQ_INT(harness_signal(h, pids[i], SIGTERM), 0);
        CHECK_EQ_INT(harness_wait_exit(h, pids[i], 10000, &status), 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

/* Started while NATS is down: not ready, then ready within 10 s of NATS. */
static void test_started_without_nats_recovers(void)
{
    CHECK_EQ_INT(harness_nats_stop(h, &nats), 0);
    pid_t pid = start_service(2, NULL);
    CHECK(pid > 0);
    CHECK_EQ_INT(wait_ready(2, 503, 20000), 0);
    sleep(2); /* it keeps running and keeps saying not ready */
    CHECK_EQ_INT(readyz_status(2), 503);
    CHECK_EQ_INT(harness_nats_restart(h, &nats), 0);
    CHECK_EQ_INT(wait_ready(2, 200, 10000), 0);
    CHECK_EQ_INT(harness_stop(h, pid), 0);
}

int main(void)
{
    h = harness_new("services");
    if (!h || harness_nats_start(h, &nats) != 0 || harness_pg_start(h, &pg) != 0 ||
        harness_s3_start(h, &s3) != 0) {
        fprintf(stderr, "cannot start the test servers\n");
        return 1;
    }
    for (int i = 0; i < NSERVICES; i++)
        ops_port[i] = harness_free_port();
    http_port = harness_free_port();
    char *web = harness_source_path("web");
    snprintf(web_root, sizeof web_root, "%s", web);
    free(web);
    TEST_RUN(test_config_json_lists_variables);
    TEST_RUN(test_missing_database_url_exits_2_naming_it);
    TEST_RUN(test_malformed_nats_url_exits_2_naming_it);
    TEST_RUN(test_all_services_become_ready);
    TEST_RUN(test_metrics_pass_promtool);
    TEST_RUN(test_studio_page_served);
    TEST_RUN(test_nats_outage_and_recovery);
    TEST_RUN(test_postgres_outage_and_recovery);
    TEST_RUN(test_sigterm_drains_and_exits_0);
    TEST_RUN(test_started_without_nats_recovers);
    harness_free(h);
    return check_finish();
}
