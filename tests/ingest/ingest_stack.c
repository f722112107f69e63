/* ingest_stack.c -- see ingest_stack.h. */
#include "ingest_stack.h"

#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seashore/ingest_token.h"
#include "seashore/v1/chunks.pb-c.h"

#define READY_TIMEOUT_MS 30000
#define READ_PIECE       (1 << 20)

static char **stack_env(ingest_stack *s, int ops_port)
{
    static char vars[STACK_MAX_ENV][4096];
    static char *env[STACK_MAX_ENV + 1];
    const char *path = getenv("PATH"), *asan = getenv("ASAN_OPTIONS");
    const char *ubsan = getenv("UBSAN_OPTIONS"), *tmp = getenv("TMPDIR");
    int n = 0;
    snprintf(vars[n++], 4096, "PATH=%s", path ? path : "/usr/bin:/bin");
    snprintf(vars[n++], 4096, "ASAN_OPTIONS=%s", asan ? asan : "");
    snprintf(vars[n++], 4096, "UBSAN_OPTIONS=%s", ubsan ? ubsan : "");
    snprintf(vars[n++], 4096, "TMPDIR=%s", tmp ? tmp : "/tmp");
    snprintf(vars[n++], 4096, "OPS_LISTEN=127.0.0.1:%d", ops_port);
    snprintf(vars[n++], 4096, "NATS_URL=%s", s->nats.url);
    snprintf(vars[n++], 4096, "NODE_PATH=%s/node_modules", getenv("SEASHORE_SOURCE_DIR"));
    snprintf(vars[n++], 4096, "DATABASE_URL=%s", s->pg.url);
    snprintf(vars[n++], 4096, "WS_LISTEN=127.0.0.1:%d", s->ws_port);
    snprintf(vars[n++], 4096, "INGEST_TOKEN_SECRET=%s", STACK_SECRET);
    snprintf(vars[n++], 4096, "DRAIN_TIMEOUT=10s");
    snprintf(vars[n++], 4096, "LOG_LEVEL=info");
    snprintf(vars[n++], 4096, "SEASHORE_SOURCE_DIR=%s", getenv("SEASHORE_SOURCE_DIR"));
    snprintf(vars[n++], 4096, "SEASHORE_BUILD_DIR=%s", getenv("SEASHORE_BUILD_DIR"));
    snprintf(vars[n++], 4096, "INGEST_URL=%s", s->ws_url);
    snprintf(vars[n++], 4096, "INGEST_TOKEN_SECRET_FOR_TEST=%s", STACK_SECRET);
    snprintf(vars[n++], 4096, "SESSION_ID=%s", s->session_id);
    snprintf(vars[n++], 4096, "PARTICIPANT_ID=%s", s->participant_id);
    snprintf(vars[n++], 4096, "OTHER_PARTICIPANT_ID=%s", s->other_participant_id);
    snprintf(vars[n++], 4096, "HTTP_LISTEN=127.0.0.1:%d", s->http_port);
    snprintf(vars[n++], 4096, "API_URL=%s", s->api_url);
    snprintf(vars[n++], 4096, "INGEST_PUBLIC_URL=%s", s->ws_url);
    snprintf(vars[n++], 4096, "WEB_ROOT=%s/web", getenv("SEASHORE_SOURCE_DIR"));
    snprintf(vars[n++], 4096, "LIVEKIT_URL=ws://127.0.0.1:7880");
    if (s->s3.endpoint[0]) {
        snprintf(vars[n++], 4096, "R2_ENDPOINT=%s", s->s3.endpoint);
        snprintf(vars[n++], 4096, "R2_ACCESS_KEY_ID=%s", s->s3.access_key);
        snprintf(vars[n++], 4096, "R2_SECRET_ACCESS_KEY=%s", s->s3.secret_key);
        snprintf(vars[n++], 4096, "R2_BUCKET_NAME=%s", s->s3.bucket);
    }
    snprintf(vars[n++], 4096, "LIVEKIT_API_KEY=APItestkey");
    snprintf(vars[n++], 4096, "LIVEKIT_API_SECRET=livekit-test-secret-0123456789abcdef0123");
    for (int i = 0; i < 8 && s->extra_env[i]; i++)
        snprintf(vars[n++], 4096, "%s", s->extra_env[i]);
    for (int i = 0; i < n; i++)
        env[i] = vars[i];
    env[n] = NULL;
    return env;
}

pid_t stack_spawn(ingest_stack *s, const char *name, char *const argv[])
{
    return harness_spawn(s->h, name, argv, stack_env(s, harness_free_port()));
}

int stack_run(ingest_stack *s, const char *name, char *const argv[], int timeout_ms)
{
    int status = -1;
    pid_t pid = stack_spawn(s, name, argv);
    if (pid <= 0 || harness_wait_exit(s->h, pid, timeout_ms, &status) != 0) {
        if (pid > 0) {
            harness_signal(s->h, pid, SIGKILL);
            harness_wait_exit(s->h, pid, 5000, NULL);
        }
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *stack_log(ingest_stack *s, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.log", harness_dir(s->h), name);
    return harness_read_file(path, NULL);
}

static pid_t start_service(ingest_stack *s, const char *name, int ops_port)
{
    char rel[128];
    snprintf(rel, sizeof rel, "services/%s/%s", name, name);
    char *bin = harness_build_path(rel);
    char *argv[] = {bin, NULL};
    pid_t pid = harness_spawn(s->h, name, argv, stack_env(s, ops_port));
    free(bin);
    return pid;
}

pid_t stack_start_ingest(ingest_stack *s)
{
    return s->ingest_pid = start_service(s, "ingest-recorder", s->ingest_ops_port);
}

pid_t stack_start_store(ingest_stack *s)
{
    return s->store_pid = start_service(s, "chunk-store", s->store_ops_port);
}

int stack_wait_ready(int ops_port, int timeout_ms)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ops_port);
    return harness_wait_http_status(url, 200, timeout_ms);
}

static int migrate(ingest_stack *s)
{
    char *dir = harness_source_path("migrations");
    char *bin = harness_build_path("tools/migrate/seashore-migrate");
    char *argv[] = {bin, "--dir", dir, NULL};
    int rc = stack_run(s, "migrate", argv, 60000);
    free(dir);
    free(bin);
    return rc;
}

static int make_participants(ingest_stack *s)
{
    char *host = NULL, *sid = NULL, *p1 = NULL, *p2 = NULL;
    int rc = -1;
    if (harness_pg_exec(&s->pg,
                        "INSERT INTO hosts (email) VALUES ('host@example.test') "
                        "RETURNING id",
                        &host) != 0)
        goto out;
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO sessions (host_id, title) VALUES ('%s', 'test') "
             "RETURNING id",
             host);
    if (harness_pg_exec(&s->pg, sql, &sid) != 0)
        goto out;
    snprintf(sql, sizeof sql,
             "INSERT INTO participants (session_id, identity, role) VALUES "
             "('%s', 'guest-1', 'guest') RETURNING id",
             sid);
    if (harness_pg_exec(&s->pg, sql, &p1) != 0)
        goto out;
    snprintf(sql, sizeof sql,
             "INSERT INTO participants (session_id, identity, role) VALUES "
             "('%s', 'guest-2', 'guest') RETURNING id",
             sid);
    if (harness_pg_exec(&s->pg, sql, &p2) != 0)
        goto out;
    snprintf(s->session_id, sizeof s->session_id, "%s", sid);
    snprintf(s->participant_id, sizeof s->participant_id, "%s", p1);
    snprintf(s->other_participant_id, sizeof s->other_participant_id, "%s", p2);
    rc = 0;
out:
    free(host);
    free(sid);
    free(p1);
    free(p2);
    return rc;
}

int stack_start(ingest_stack *s, const char *test_name)
{
    s->h = harness_new(test_name);
    if (s->h == NULL || harness_nats_start(s->h, &s->nats) != 0 ||
        harness_pg_start(s->h, &s->pg) != 0 || migrate(s) != 0 || make_participants(s) != 0)
        return -1;
    s->ws_port = harness_free_port();
    s->ingest_ops_port = harness_free_port();
    s->store_ops_port = harness_free_port();
    snprintf(s->ws_url, sizeof s->ws_url, "ws://127.0.0.1:%d/v1/ingest", s->ws_port);
    s->http_port = harness_free_port();
    s->issuer_ops_port = harness_free_port();
    snprintf(s->api_url, sizeof s->api_url, "http://127.0.0.1:%d", s->http_port);
    if (stack_start_store(s) <= 0 || stack_start_ingest(s) <= 0)
        return -1;
    if (s->with_issuer && harness_s3_start(s->h, &s->s3) != 0)
        return -1;
    if (s->with_issuer &&
        ((s->issuer_pid = start_service(s, "token-issuer", s->issuer_ops_port)) <= 0 ||
         stack_wait_ready(s->issuer_ops_port, READY_TIMEOUT_MS) != 0 ||
         harness_wait_port(s->http_port, READY_TIMEOUT_MS) != 0))
        return -1;
    if (stack_wait_ready(s->store_ops_port, READY_TIMEOUT_MS) != 0 ||
        stack_wait_ready(s->ingest_ops_port, READY_TIMEOUT_MS) != 0 ||
        harness_wait_port(s->ws_port, READY_TIMEOUT_MS) != 0)
        return -1;
    return 0;
}

int stack_stop_service(ingest_stack *s, pid_t *pid, const char *name)
{
    int status = -1, problems = 0;
    if (*pid <= 0)
        return 0;
    harness_signal(s->h, *pid, SIGTERM);
    if (harness_wait_exit(s->h, *pid, 30000, &status) != 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s did not exit 0 after SIGTERM (status %d)\n", name, status);
        problems++;
    }
    *pid = 0;
    char *log = stack_log(s, name);
    if (log && (strstr(log, "Sanitizer") || strstr(log, "runtime error"))) {
        fprintf(stderr, "%s logged a sanitizer report:\n%s\n", name, log);
        problems++;
    }
    free(log);
    return problems;
}

int stack_stop(ingest_stack *s)
{
    int problems = 0;
    if (s->h == NULL)
        return 0;
    problems += stack_stop_service(s, &s->issuer_pid, "token-issuer");
    problems += stack_stop_service(s, &s->ingest_pid, "ingest-recorder");
    problems += stack_stop_service(s, &s->store_pid, "chunk-store");
    harness_free(s->h); /* stops every other process it started */
    s->h = NULL;
    return problems;
}

char *stack_token(const ingest_stack *s, const char *participant_id, int64_t ttl_s)
{
    return ss_ingest_token_issue(STACK_SECRET, strlen(STACK_SECRET), s->session_id,
                                 participant_id ? participant_id : s->participant_id, NULL,
                                 (int64_t)time(NULL), ttl_s);
}

static int read_piece(natsConnection *nc, const char *track_id, uint64_t off, uint32_t want,
                      uint8_t **buf, size_t *len, int *eof)
{
    Seashore__V1__ReadRangeRequest req = SEASHORE__V1__READ_RANGE_REQUEST__INIT;
    uint8_t enc[128];
    natsMsg *reply = NULL;
    req.track_id = (char *)track_id;
    req.offset = off;
    req.length = want;
    size_t n = seashore__v1__read_range_request__pack(&req, enc);
    if (natsConnection_Request(&reply, nc, "chunkstore.read", enc, (int)n, 10000) != NATS_OK)
        return -1;
    Seashore__V1__ReadRangeReply *r = seashore__v1__read_range_reply__unpack(
        NULL, (size_t)natsMsg_GetDataLength(reply), (const uint8_t *)natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
    int rc = -1;
    if (r != NULL && r->error[0] == '\0') {
        uint8_t *p = realloc(*buf, *len + r->data.len + 1);
        if (p != NULL) {
            memcpy(p + *len, r->data.data, r->data.len);
            *buf = p;
            *len += r->data.len;
            *eof = r->eof || r->data.len == 0;
            rc = 0;
        }
    } else if (r != NULL) {
        fprintf(stderr, "chunkstore.read: %s\n", r->error);
    }
    seashore__v1__read_range_reply__free_unpacked(r, NULL);
    return rc;
}

int stack_read_track(ingest_stack *s, const char *track_id, uint8_t **out, size_t *len)
{
    natsConnection *nc = NULL;
    int eof = 0, rc = 0;
    *out = NULL;
    *len = 0;
    if (natsConnection_ConnectTo(&nc, s->nats.url) != NATS_OK)
        return -1;
    while (!eof && rc == 0)
        rc = read_piece(nc, track_id, *len, READ_PIECE, out, len, &eof);
    natsConnection_Destroy(nc);
    return rc;
}

int stack_read_range(ingest_stack *s, const char *track_id, uint64_t offset, uint32_t length,
                     uint8_t **out, size_t *len)
{
    natsConnection *nc = NULL;
    int eof = 0;
    *out = NULL;
    *len = 0;
    if (natsConnection_ConnectTo(&nc, s->nats.url) != NATS_OK)
        return -1;
    int rc = read_piece(nc, track_id, offset, length, out, len, &eof);
    natsConnection_Destroy(nc);
    return rc;
}

int stack_send(ingest_stack *s, const char *name, const char *file, const char *chunk_size,
               const char *track_id)
{
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *tok = stack_token(s, NULL, 600);
    char *argv[12] = {bin, "--url",   s->ws_url,      "--token",
                      tok, "--quiet", "--chunk-size", (char *)chunk_size};
    int n = 8;
    if (track_id) {
        argv[n++] = "--track-id";
        argv[n++] = (char *)track_id;
    }
    argv[n++] = (char *)file;
    argv[n] = NULL;
    int rc = stack_run(s, name, argv, 120000);
    free(bin);
    free(tok);
    return rc;
}

char *stack_api_key(ingest_stack *s, const char *email)
{
    char name[96];
    snprintf(name, sizeof name, "api-key-%s", email);
    char *bin = harness_build_path("services/token-issuer/token-issuer");
    char *argv[] = {bin, "create-api-key", "--email", (char *)email, "--name", "test", NULL};
    int rc = stack_run(s, name, argv, 30000);
    free(bin);
    char *log = rc == 0 ? stack_log(s, name) : NULL;
    char *key = NULL;
    if (log && strncmp(log, "ssk_", 4) == 0) {
        log[strcspn(log, "\n")] = '\0';
        key = strdup(log);
    }
    free(log);
    return key;
}

int stack_run_node(ingest_stack *s, const char *name, const char *script_rel, int timeout_ms)
{
    char *script = harness_source_path(script_rel);
    char *argv[] = {"node", script, NULL};
    int rc = stack_run(s, name, argv, timeout_ms);
    char *log = stack_log(s, name);
    printf("%s", log ? log : "");
    free(log);
    free(script);
    return rc;
}
