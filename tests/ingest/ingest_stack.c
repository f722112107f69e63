/* ingest_stack.c -- see ingest_stack.h. */
#include "ingest_stack.h"

#include <curl/curl.h>
#include <nats/nats.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seashore/ingest_token.h"
#include "seashore/s3_client.h"
#include "seashore/v1/chunks.pb-c.h"

#define READY_TIMEOUT_MS   30000
#define READ_PIECE         (1 << 20)
#define STACK_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Sets NAME=value in vars[0..*n), replacing an entry of the same name. */
static void env_put(char vars[][4096], int *n, const char *entry)
{
    size_t name_len = strcspn(entry, "=");
    for (int i = 0; i < *n; i++)
        if (strncmp(vars[i], entry, name_len + 1) == 0) {
            snprintf(vars[i], 4096, "%s", entry);
            return;
        }
    if (*n < STACK_MAX_ENV)
        snprintf(vars[(*n)++], 4096, "%s", entry);
}

static char **service_env(ingest_stack *s, int ops_port, const char *name)
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
    /* a loopback port nothing listens on: the pages' call fails, recording goes on */
    snprintf(vars[n++], 4096, "LIVEKIT_URL=ws://127.0.0.1:%d", harness_free_port());
    if (s->s3.endpoint[0]) {
        snprintf(vars[n++], 4096, "R2_ENDPOINT=%s", s->s3.endpoint);
        snprintf(vars[n++], 4096, "R2_ACCESS_KEY_ID=%s", s->s3.access_key);
        snprintf(vars[n++], 4096, "R2_SECRET_ACCESS_KEY=%s", s->s3.secret_key);
        snprintf(vars[n++], 4096, "R2_BUCKET_NAME=%s", s->s3.bucket);
        snprintf(vars[n++], 4096, "R2_REGION=%s", STACK_S3_REGION);
    }
    snprintf(vars[n++], 4096, "LIVEKIT_API_KEY=APItestkey");
    snprintf(vars[n++], 4096, "LIVEKIT_API_SECRET=livekit-test-secret-0123456789abcdef0123");
    for (int i = 0; i < 8 && s->extra_env[i]; i++)
        env_put(vars, &n, s->extra_env[i]);
    bool uploader = name && strcmp(name, "r2-uploader") == 0;
    bool muxer = name && strcmp(name, "muxer") == 0;
    for (int i = 0; uploader && i < 6 && s->uploader_env[i]; i++)
        env_put(vars, &n, s->uploader_env[i]);
    for (int i = 0; muxer && i < 4 && s->muxer_env[i]; i++)
        env_put(vars, &n, s->muxer_env[i]);
    for (int i = 0; i < n; i++)
        env[i] = vars[i];
    env[n] = NULL;
    return env;
}

static char **stack_env(ingest_stack *s, int ops_port)
{
    return service_env(s, ops_port, NULL);
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
    pid_t pid = harness_spawn(s->h, name, argv, service_env(s, ops_port, name));
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

/* A service that did not get ready in time is killed: a caller that tries
 * again must not leave a second copy running (or fail to bind for it). */
static pid_t abandon(ingest_stack *s, pid_t pid, const char *name)
{
    fprintf(stderr, "%s (pid %d) is not ready after %d ms: killed\n", name, (int)pid,
            READY_TIMEOUT_MS);
    if (harness_signal(s->h, pid, SIGKILL) == 0)
        harness_wait_exit(s->h, pid, 10000, NULL);
    return -1;
}

/* Starts a worker service and waits until it runs: its /readyz may stay
 * 503 when the env points it at a broken store, so /healthz. */
static pid_t start_worker(ingest_stack *s, const char *name, int ops_port)
{
    char url[64];
    pid_t pid = start_service(s, name, ops_port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", ops_port);
    if (pid > 0 && harness_wait_http_status(url, 200, READY_TIMEOUT_MS) != 0)
        return abandon(s, pid, name);
    return pid;
}

pid_t stack_start_issuer(ingest_stack *s)
{
    pid_t pid = start_service(s, "token-issuer", s->issuer_ops_port);
    if (pid > 0 && (stack_wait_ready(s->issuer_ops_port, READY_TIMEOUT_MS) != 0 ||
                    harness_wait_port(s->http_port, READY_TIMEOUT_MS) != 0))
        pid = abandon(s, pid, "token-issuer");
    return s->issuer_pid = pid;
}

pid_t stack_start_uploader(ingest_stack *s)
{
    s->uploader_pid = start_worker(s, "r2-uploader", s->uploader_ops_port);
    return s->uploader_pid;
}

pid_t stack_start_muxer(ingest_stack *s)
{
    s->muxer_pid = start_worker(s, "muxer", s->muxer_ops_port);
    return s->muxer_pid;
}

/* Swift's s3api in <dir>/swift (tests/harness/swift), with the bucket. */
/* Copies src whole into dst, or leaves dst empty if it does not fit. */
static void field_copy(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src);
    dst[0] = '\0';
    if (n < dstlen)
        memcpy(dst, src, n + 1);
}

static int swift_start(ingest_stack *s)
{
    char port[16], line[256];
    snprintf(s->swift_dir, sizeof s->swift_dir, "%s/swift", harness_dir(s->h));
    snprintf(port, sizeof port, "%d", harness_free_port());
    char *script = harness_source_path("tests/harness/swift/start-swift.sh");
    char *argv[] = {script, s->swift_dir, port, NULL};
    int rc = stack_run(s, "swift-start", argv, 90000);
    free(script);
    char *out = rc == 0 ? stack_log(s, "swift-start") : NULL;
    if (out == NULL) {
        fprintf(stderr, "Swift did not start (see swift-start.log)\n");
        return -1;
    }
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        snprintf(line, sizeof line, "%s", l);
        if (strncmp(line, "S3_ENDPOINT=", 12) == 0)
            field_copy(s->s3.endpoint, sizeof s->s3.endpoint, line + 12);
        else if (strncmp(line, "S3_ACCESS_KEY=", 14) == 0)
            field_copy(s->swift_access_key, sizeof s->swift_access_key, line + 14);
        else if (strncmp(line, "S3_SECRET_KEY=", 14) == 0)
            field_copy(s->swift_secret_key, sizeof s->swift_secret_key, line + 14);
    }
    free(out);
    s->s3.access_key = s->swift_access_key;
    s->s3.secret_key = s->swift_secret_key;
    s->s3.bucket = "seashore-test";
    return stack_s3_create_bucket(s, s->s3.bucket);
}

static void swift_stop(ingest_stack *s)
{
    if (s->swift_dir[0] == '\0')
        return;
    char *script = harness_source_path("tests/harness/swift/stop-swift.sh");
    char *argv[] = {script, s->swift_dir, NULL};
    stack_run(s, "swift-stop", argv, 30000);
    free(script);
    s->swift_dir[0] = '\0';
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
    s->uploader_ops_port = harness_free_port();
    if (s->with_swift ? swift_start(s) != 0
                      : (s->with_issuer || s->with_uploader) && harness_s3_start(s->h, &s->s3) != 0)
        return -1;
    if (s->with_uploader && stack_start_uploader(s) <= 0)
        return -1;
    s->muxer_ops_port = harness_free_port();
    if (s->with_muxer && stack_start_muxer(s) <= 0)
        return -1;
    if (s->with_issuer && stack_start_issuer(s) <= 0)
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
    problems += stack_stop_service(s, &s->muxer_pid, "muxer");
    problems += stack_stop_service(s, &s->uploader_pid, "r2-uploader");
    problems += stack_stop_service(s, &s->issuer_pid, "token-issuer");
    problems += stack_stop_service(s, &s->ingest_pid, "ingest-recorder");
    problems += stack_stop_service(s, &s->store_pid, "chunk-store");
    swift_stop(s);
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

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

long stack_api_status(ingest_stack *s, const char *method, const char *path, const char *key)
{
    char url[512], auth[256];
    long status = -1;
    snprintf(url, sizeof url, "%s%s", s->api_url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    CURL *curl = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, auth);
    if (curl != NULL && hdr != NULL) {
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
        if (curl_easy_perform(curl) == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(curl);
    return status;
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

int stack_s3_create_bucket(ingest_stack *s, const char *bucket)
{
    char url[256], sigv4[64];
    long status = 0;
    snprintf(url, sizeof url, "%s/%s", s->s3.endpoint, bucket);
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", STACK_S3_REGION);
    CURL *curl = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "x-amz-content-sha256: " STACK_EMPTY_SHA256);
    if (curl == NULL || hdr == NULL)
        goto out;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(curl, CURLOPT_USERNAME, s->s3.access_key);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, s->s3.secret_key);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
out:
    curl_slist_free_all(hdr);
    curl_easy_cleanup(curl);
    if (status != 200)
        fprintf(stderr, "cannot create bucket %s: HTTP %ld\n", bucket, status);
    return status == 200 ? 0 : -1;
}

ss_s3_client *stack_s3_client(ingest_stack *s)
{
    ss_s3_config cfg = {s->s3.endpoint, s->s3.access_key, s->s3.secret_key, s->s3.bucket,
                        STACK_S3_REGION};
    ss_s3_client_opts opts = {.connect_timeout_ms = 5000, .stall_timeout_ms = 10000};
    ss_s3_client *c = NULL;
    char err[256];
    if (ss_s3_client_new(&cfg, &opts, &c, err, sizeof err) != 0)
        fprintf(stderr, "S3 client: %s\n", err);
    return c;
}

int stack_s3_object_sha256(ingest_stack *s, const char *key, uint8_t digest[32], uint64_t *size)
{
    ss_s3_client *c = stack_s3_client(s);
    ss_s3_conn *conn = c ? ss_s3_conn_new(c) : NULL;
    uint8_t *buf = malloc(READ_PIECE);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = -1;
    *size = 0;
    if (conn == NULL || buf == NULL || md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
        goto out;
    for (;;) {
        size_t got = 0;
        ss_s3_result res;
        if (ss_s3_get_range(conn, key, *size, READ_PIECE, buf, &got, &res) != 0) {
            fprintf(stderr, "GET %s at %llu: %s %s\n", key, (unsigned long long)*size, res.code,
                    res.message);
            goto out;
        }
        EVP_DigestUpdate(md, buf, got);
        *size += got;
        if (got < READ_PIECE)
            break;
    }
    rc = EVP_DigestFinal_ex(md, digest, NULL) ? 0 : -1;
out:
    EVP_MD_CTX_free(md);
    free(buf);
    ss_s3_conn_free(conn);
    ss_s3_client_free(c);
    return rc;
}
