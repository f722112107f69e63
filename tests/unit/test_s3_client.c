/* test_s3_client.c -- the S3 client (ss_s3_*) against OpenStack Swift's
 * s3api, which verifies SigV4 signatures, x-amz-content-sha256 where it is
 * a hash and Content-MD5 (tests/harness/swift/), and against a fake server in
 * this file for what a real store will not do on demand: refuse, stall,
 * answer 503, send a wrong ETag, an <Error> inside a 200, a huge body. */
#include "check.h"
#include "harness.h"
#include "seashore/s3_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB              (1024u * 1024u)
#define BUCKET           "seashore-s3-client"
#define WRONG_SECRET     "not-the-secret-Qx7vZ"
#define SWIFT_START_MS   60000
#define FAKE_REQUEST_MAX (64 * 1024) /* request headers the fake server reads */

static harness *h;
static char swift_dir[512];
static char endpoint[128], access_key[64], secret_key[64], region[32];
static ss_s3_client *client; /* Swift, bucket BUCKET */
static ss_s3_conn *conn;

/* ---- helpers ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* For CHECK(s3_ok(...)): on failure, what the store or libcurl said. */
static bool s3_ok(int rc, const ss_s3_result *r)
{
    if (rc != 0)
        fprintf(stderr, "  -> HTTP %ld, curl %d, %s, code %s: %s\n", r->http_status, r->curl_code,
                r->transient ? "transient" : "permanent", r->code, r->message);
    return rc == 0;
}
#define CHECK_S3(call) CHECK(s3_ok((call), &res))

static void md5_of(const uint8_t *p, size_t n, uint8_t out[16])
{
    unsigned int len = 0;
    EVP_Digest(p, n, out, &len, EVP_md5(), NULL);
}

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n);
    if (p && RAND_bytes(p, (int)n) != 1) {
        free(p);
        return NULL;
    }
    return p;
}

/* A client and one conn for endpoint/bucket/secret, other settings from Swift. */
static ss_s3_conn *conn_for(ss_s3_client **c, const char *ep, const char *bucket,
                            const char *secret, const ss_s3_client_opts *opts)
{
    ss_s3_config cfg = {.endpoint = ep,
                        .access_key = access_key[0] ? access_key : "test:tester",
                        .secret_key = secret,
                        .bucket = bucket,
                        .region = region[0] ? region : "us-east-1"};
    char err[256];
    if (ss_s3_client_new(&cfg, opts, c, err, sizeof err) != 0) {
        fprintf(stderr, "ss_s3_client_new: %s\n", err);
        return NULL;
    }
    ss_s3_conn *cn = ss_s3_conn_new(*c);
    if (!cn) {
        ss_s3_client_free(*c);
        *c = NULL;
    }
    return cn;
}

static void conn_done(ss_s3_client *c, ss_s3_conn *cn)
{
    ss_s3_conn_free(cn);
    ss_s3_client_free(c);
}

/* ---- Swift ---- */

/* start-swift.sh detaches Swift's daemons: they are not our children, so
 * the harness cannot stop them if this test dies outright (SIGKILL, a ctest
 * timeout), even during startup. A watcher, reparented to init at once
 * (double fork), notes the daemons' pids from DIR/run every second and kills
 * them when its pipe from this process reaches EOF; swift_stop() writes
 * "stopped" first and it leaves quietly. */
static const char watch_script[] =
    "pids=; while :; do read -r -t 1 line <&3; rc=$?; [ \"$line\" = stopped ] && exit 0; "
    "for f in \"$1\"/run/*.pid; do [ -r \"$f\" ] && read -r p <\"$f\" && "
    "case \" $pids \" in *\" $p \"*) ;; *) pids=\"$pids $p\" ;; esac; done; "
    "[ $rc -gt 128 ] || break; done; "
    "for p in $pids; do tr '\\0' ' ' </proc/$p/cmdline 2>/dev/null | "
    "grep -Eq 'swift-server\\.py|^memcached ' && kill \"$p\"; done";

static int watch_fd = -1; /* the pipe's write end */

static void swift_watch(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    pid_t mid = fork();
    if (mid == 0) {
        if (fork() == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 0), dup2(null, 1), dup2(null, 2), dup2(p[0], 3);
            fcntl(3, F_SETFD, 0); /* dup2 keeps O_CLOEXEC when p[0] already is 3 */
            setsid();
            execl("/bin/bash", "bash", "-c", watch_script, "swift-watch", swift_dir, (char *)NULL);
        }
        _exit(0);
    }
    close(p[0]);
    if (mid > 0) {
        waitpid(mid, NULL, 0);
        watch_fd = p[1];
    } else {
        close(p[1]);
    }
}

/* One "NAME=value" line of start-swift.sh's output into out. */
static int swift_setting(const char *log, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *l = log; *l;) {
        if (strncmp(l, name, n) == 0 && l[n] == '=') {
            size_t len = strcspn(l + n + 1, "\n");
            if (len >= outlen)
                return -1;
            memcpy(out, l + n + 1, len);
            out[len] = '\0';
            return 0;
        }
        const char *nl = strchr(l, '\n');
        if (!nl)
            break;
        l = nl + 1;
    }
    fprintf(stderr, "start-swift.sh printed no %s\n", name);
    return -1;
}

static int swift_start(void)
{
    char port[16], logpath[600];
    char *script = harness_source_path("tests/harness/swift/start-swift.sh");
    int status = -1, rc = -1;
    char *log = NULL;
    snprintf(port, sizeof port, "%d", harness_free_port());
    snprintf(swift_dir, sizeof swift_dir, "%s/swift", harness_dir(h));
    snprintf(logpath, sizeof logpath, "%s/start-swift.log", harness_dir(h));
    char *argv[] = {script, swift_dir, port, NULL};
    swift_watch();
    pid_t pid = script ? harness_spawn(h, "start-swift", argv, NULL) : -1;
    if (pid < 0 || harness_wait_exit(h, pid, SWIFT_START_MS, &status) != 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "start-swift.sh failed; see %s\n", logpath);
        goto out;
    }
    log = harness_read_file(logpath, NULL);
    if (!log || swift_setting(log, "S3_ENDPOINT", endpoint, sizeof endpoint) != 0 ||
        swift_setting(log, "S3_ACCESS_KEY", access_key, sizeof access_key) != 0 ||
        swift_setting(log, "S3_SECRET_KEY", secret_key, sizeof secret_key) != 0 ||
        swift_setting(log, "S3_REGION", region, sizeof region) != 0)
        goto out;
    rc = 0;
out:
    free(log);
    free(script);
    return rc;
}

static void swift_stop(void)
{
    char *script = harness_source_path("tests/harness/swift/stop-swift.sh");
    char *argv[] = {script, swift_dir, NULL};
    if (watch_fd >= 0 && write(watch_fd, "stopped\n", 8) != 8)
        fprintf(stderr, "swift watcher: %s\n", strerror(errno));
    pid_t pid = script ? harness_spawn(h, "stop-swift", argv, NULL) : -1;
    if (pid > 0)
        harness_wait_exit(h, pid, 15000, NULL);
    free(script);
    if (watch_fd >= 0)
        close(watch_fd);
}

/* ---- a fake store: one thread, one keep-alive connection at a time ---- */

typedef struct fake_server {
    int fd; /* listening socket on 127.0.0.1 */
    int port;
    pthread_t thread;
    pthread_mutex_t lock; /* guards what follows: the test and the server thread */
    char *answer;         /* the whole HTTP answer to every request; NULL: never answer */
    int trickle_ms;       /* > 0: after the head, the body's leading spaces one at a time */
    int client;           /* connection being served, -1 when none */
    bool stopping;
    int accepts;  /* connections accepted */
    int requests; /* requests read */
} fake_server;

/* Reads one request (headers, then Content-Length body bytes): 0, or -1
 * when the client closed or the server stops. */
static int fake_read_request(int c)
{
    static _Thread_local char buf[FAKE_REQUEST_MAX + 1];
    size_t len = 0, body;
    char *end = NULL;
    while (!end) {
        ssize_t n = len < FAKE_REQUEST_MAX ? recv(c, buf + len, FAKE_REQUEST_MAX - len, 0) : -1;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    unsigned long long want = 0;
    for (char *l = strstr(buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            want = strtoull(l + 17, NULL, 10);
    for (body = len - (size_t)(end + 4 - buf); body < want;) {
        size_t chunk = want - body < FAKE_REQUEST_MAX ? want - body : FAKE_REQUEST_MAX;
        ssize_t n = recv(c, buf, chunk, 0);
        if (n <= 0)
            return -1;
        body += (size_t)n;
    }
    return 0;
}

static void fake_send(int c, const char *p, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = send(c, p + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

static void fake_serve(fake_server *s, int c)
{
    while (fake_read_request(c) == 0) {
        pthread_mutex_lock(&s->lock);
        s->requests++;
        char *answer = s->answer ? strdup(s->answer) : NULL;
        int trickle_ms = s->trickle_ms;
        pthread_mutex_unlock(&s->lock);
        /* No answer: the next read waits until the client gives up. */
        size_t len = answer ? strlen(answer) : 0, off = 0;
        if (answer && trickle_ms > 0) { /* the head, then the body's leading spaces slowly */
            const char *head_end = strstr(answer, "\r\n\r\n");
            off = head_end ? (size_t)(head_end + 4 - answer) : len;
            fake_send(c, answer, off);
            for (; off < len && answer[off] == ' '; off++) {
                usleep((useconds_t)trickle_ms * 1000);
                fake_send(c, answer + off, 1);
            }
        }
        fake_send(c, answer ? answer + off : NULL, len - off);
        free(answer);
    }
}

static void *fake_run(void *arg)
{
    fake_server *s = arg;
    for (;;) {
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (c < 0)
            return NULL; /* fake_stop shut the socket down */
        pthread_mutex_lock(&s->lock);
        bool stop = s->stopping;
        if (!stop) {
            s->client = c;
            s->accepts++;
        }
        pthread_mutex_unlock(&s->lock);
        if (!stop)
            fake_serve(s, c);
        pthread_mutex_lock(&s->lock);
        s->client = -1;
        pthread_mutex_unlock(&s->lock);
        close(c);
        if (stop)
            return NULL;
    }
}

static int fake_start(fake_server *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    memset(s, 0, sizeof *s);
    s->client = -1;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 8) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) != 0) {
        fprintf(stderr, "fake server: %s\n", strerror(errno));
        if (s->fd >= 0)
            close(s->fd);
        return -1;
    }
    s->port = ntohs(a.sin_port);
    pthread_mutex_init(&s->lock, NULL);
    if (pthread_create(&s->thread, NULL, fake_run, s) != 0) {
        fprintf(stderr, "fake server: pthread_create failed\n");
        close(s->fd);
        return -1;
    }
    return 0;
}

static void fake_stop(fake_server *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    if (s->client >= 0)
        shutdown(s->client, SHUT_RDWR);
    pthread_mutex_unlock(&s->lock);
    shutdown(s->fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(s->thread, NULL);
    close(s->fd);
    free(s->answer);
    pthread_mutex_destroy(&s->lock);
}

/* From now on every request gets this answer (status NULL: none at all). */
static void fake_answer(fake_server *s, const char *status, const char *headers, const char *body)
{
    char *a = NULL;
    if (status && asprintf(&a, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n%s", status, headers,
                           strlen(body), body) < 0)
        a = NULL;
    pthread_mutex_lock(&s->lock);
    free(s->answer);
    s->answer = a;
    pthread_mutex_unlock(&s->lock);
}

static int fake_count(fake_server *s, const int *field)
{
    pthread_mutex_lock(&s->lock);
    int n = *field;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- against Swift ---- */

static const char *const roundtrip_key = "tracks/roundtrip.bin";

static void check_range(const char *key, const uint8_t *data, size_t size, uint64_t off, size_t len,
                        size_t want)
{
    ss_s3_result res;
    size_t got = 12345;
    uint8_t *buf = malloc(len ? len : 1);
    if (!CHECK(buf != NULL))
        return;
    if (CHECK_S3(ss_s3_get_range(conn, key, off, len, buf, &got, &res)) && CHECK_EQ_INT(got, want))
        CHECK(off >= size || memcmp(buf, data + off, got) == 0);
    free(buf);
}

/* 1. Parts out of order, listed with their sizes and ETags, completed, read
 * back by ranges. */
static void test_multipart_roundtrip(void)
{
    const size_t sizes[3] = {5 * MIB, 5 * MIB, 1024}, total = 10 * MIB + 1024;
    const size_t offsets[3] = {0, 5 * MIB, 10 * MIB};
    const int order[3] = {3, 1, 2};
    ss_s3_part sent[3] = {0}, *listed = NULL;
    ss_s3_result res;
    char id[256], etag[80];
    size_t nlisted = 0;
    uint64_t size = 0;
    uint8_t *data = random_bytes(total), md5[16], want_md5[16];
    if (!CHECK(data != NULL) ||
        !CHECK_S3(ss_s3_create_multipart(conn, roundtrip_key, "video/webm", id, sizeof id, &res)))
        goto out;
    for (int k = 0; k < 3; k++) {
        int i = order[k] - 1;
        sent[i].part_number = i + 1;
        sent[i].size = sizes[i];
        if (!CHECK_S3(ss_s3_upload_part(conn, roundtrip_key, id, i + 1, data + offsets[i], sizes[i],
                                        sent[i].etag, md5, &res)))
            goto out;
        md5_of(data + offsets[i], sizes[i], want_md5);
        CHECK(memcmp(md5, want_md5, 16) == 0);
    }
    if (CHECK_S3(ss_s3_list_parts(conn, roundtrip_key, id, &listed, &nlisted, &res)) &&
        CHECK_EQ_INT(nlisted, 3)) {
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(listed[i].part_number, i + 1);
            CHECK_EQ_INT(listed[i].size, sizes[i]);
            CHECK_EQ_STR(listed[i].etag, sent[i].etag);
        }
    }
    if (!CHECK_S3(ss_s3_complete_multipart(conn, roundtrip_key, id, sent, 3, &res)) ||
        !CHECK_S3(ss_s3_head_object(conn, roundtrip_key, &size, etag, &res)))
        goto out;
    CHECK_EQ_INT(size, total);
    CHECK_CONTAINS(etag, "-3\""); /* a multipart ETag: md5-of-md5s-3 */
    check_range(roundtrip_key, data, total, 5 * MIB - 100, 300, 300); /* across parts 1|2 */
    check_range(roundtrip_key, data, total, 0, total, total);
    check_range(roundtrip_key, data, total, total - 10, 100, 10); /* past the end */
    check_range(roundtrip_key, data, total, total, 10, 0);        /* at the end: 416 */
out:
    free(listed);
    free(data);
}

/* 11. Parts go as UNSIGNED-PAYLOAD, so the signed Content-MD5 is what
 * makes the store check the body: a part whose MD5 is not its body's is
 * refused (BadDigest, transient: the caller still has the bytes) and not
 * stored; the same part with its own MD5 then goes through. */
/* bad-input: S3 client | a part body that does not match its Content-MD5 (damaged on the way) |
 * transient `BadDigest` from the store, retried | the part is not stored */
static void test_bad_digest(void)
{
    static const char key[] = "tracks/bad-digest.bin";
    const size_t size = 5 * MIB;
    ss_s3_part *listed = NULL;
    ss_s3_digests wrong, right;
    ss_s3_result res;
    char id[256], etag[80];
    size_t nlisted = 0;
    uint8_t *data = random_bytes(size);
    if (!CHECK(data != NULL) ||
        !CHECK_S3(ss_s3_create_multipart(conn, key, "video/webm", id, sizeof id, &res)))
        goto out;
    md5_of(data, size, right.md5);
    data[size / 2] ^= 1; /* the bytes hashed are not the bytes sent */
    md5_of(data, size, wrong.md5);
    data[size / 2] ^= 1;
    CHECK(ss_s3_upload_part_hashed(conn, key, id, 1, data, size, &wrong, etag, &res) != 0);
    CHECK_EQ_STR(res.code, "BadDigest");
    CHECK(res.transient);
    if (CHECK_S3(ss_s3_list_parts(conn, key, id, &listed, &nlisted, &res)))
        CHECK_EQ_INT(nlisted, 0);
    CHECK_S3(ss_s3_upload_part_hashed(conn, key, id, 1, data, size, &right, etag, &res));
    CHECK_S3(ss_s3_abort_multipart(conn, key, id, &res));
out:
    free(listed);
    free(data);
}

/* 2. ListParts pages of 1 and 2 parts give the same list as one page. */
static void test_list_parts_paging(void)
{
    const char *key = "tracks/paging.bin";
    ss_s3_result res;
    char id[256];
    uint8_t data[3][100];
    ss_s3_part sent[3];
    if (!CHECK_S3(ss_s3_create_multipart(conn, key, NULL, id, sizeof id, &res)))
        return;
    for (int i = 0; i < 3; i++) {
        memset(data[i], 'a' + i, sizeof data[i]);
        CHECK_S3(ss_s3_upload_part(conn, key, id, i + 1, data[i], sizeof data[i], sent[i].etag,
                                   NULL, &res));
    }
    for (int page = 1; page <= 3; page++) {
        ss_s3_client_opts opts = {.list_parts_page = page};
        ss_s3_client *c = NULL;
        ss_s3_conn *cn = conn_for(&c, endpoint, BUCKET, secret_key, &opts);
        ss_s3_part *parts = NULL;
        size_t n = 0;
        if (CHECK(cn != NULL) && CHECK_S3(ss_s3_list_parts(cn, key, id, &parts, &n, &res)) &&
            CHECK_EQ_INT(n, 3))
            for (int i = 0; i < 3; i++) {
                CHECK_EQ_INT(parts[i].part_number, i + 1);
                CHECK_EQ_STR(parts[i].etag, sent[i].etag);
            }
        free(parts);
        conn_done(c, cn);
    }
    CHECK_S3(ss_s3_abort_multipart(conn, key, id, &res));
}

/* 3. A wrong secret: permanent SignatureDoesNotMatch, the secret in no message. */
/* bad-input: S3 client | a wrong secret key | permanent `SignatureDoesNotMatch` with the store's
 * message, not retried | none */
static void test_wrong_secret(void)
{
    ss_s3_client *c = NULL;
    ss_s3_conn *cn = conn_for(&c, endpoint, BUCKET, WRONG_SECRET, NULL);
    ss_s3_result res;
    char id[256];
    if (!CHECK(cn != NULL))
        return;
    CHECK_EQ_INT(ss_s3_create_multipart(cn, "tracks/x", NULL, id, sizeof id, &res), -1);
    CHECK_EQ_INT(res.http_status, 403);
    CHECK(!res.transient);
    CHECK_EQ_STR(res.code, "SignatureDoesNotMatch");
    CHECK_CONTAINS(res.message, "CreateMultipartUpload \"" BUCKET "/tracks/x\"");
    CHECK(strstr(res.message, WRONG_SECRET) == NULL);
    CHECK(strstr(res.message, secret_key) == NULL);
    printf("  message: %s\n", res.message);
    conn_done(c, cn);
}

/* 4. A bucket that does not exist: permanent NoSuchBucket, also for a delete. */
static void test_no_such_bucket(void)
{
    ss_s3_client *c = NULL;
    ss_s3_conn *cn = conn_for(&c, endpoint, "seashore-no-such-bucket", secret_key, NULL);
    ss_s3_result res;
    char id[256];
    if (!CHECK(cn != NULL))
        return;
    CHECK_EQ_INT(ss_s3_create_multipart(cn, "tracks/x", NULL, id, sizeof id, &res), -1);
    CHECK_EQ_INT(res.http_status, 404);
    CHECK(!res.transient);
    CHECK_EQ_STR(res.code, "NoSuchBucket");
    CHECK_EQ_INT(ss_s3_delete_object(cn, "tracks/x", &res), -1);
    CHECK_EQ_STR(res.code, "NoSuchBucket");
    conn_done(c, cn);
}

/* 5. Abort: the upload is gone (NoSuchUpload); aborting again succeeds. */
static void test_abort(void)
{
    const char *key = "tracks/aborted.bin";
    ss_s3_result res;
    ss_s3_part *parts = NULL;
    size_t n = 0;
    char id[256], etag[80];
    uint8_t data[1000] = {1};
    if (!CHECK_S3(ss_s3_create_multipart(conn, key, NULL, id, sizeof id, &res)) ||
        !CHECK_S3(ss_s3_upload_part(conn, key, id, 1, data, sizeof data, etag, NULL, &res)) ||
        !CHECK_S3(ss_s3_abort_multipart(conn, key, id, &res)))
        return;
    CHECK_EQ_INT(ss_s3_list_parts(conn, key, id, &parts, &n, &res), -1);
    CHECK_EQ_INT(res.http_status, 404);
    CHECK_EQ_STR(res.code, "NoSuchUpload");
    CHECK(!res.transient);
    CHECK(parts == NULL);
    CHECK_S3(ss_s3_abort_multipart(conn, key, id, &res));
}

/* 6. Delete: HEAD then says 404 NoSuchKey; deleting again succeeds. */
static void test_delete(void)
{
    ss_s3_result res;
    uint64_t size = 0;
    CHECK_S3(ss_s3_delete_object(conn, roundtrip_key, &res));
    CHECK_EQ_INT(ss_s3_head_object(conn, roundtrip_key, &size, NULL, &res), -1);
    CHECK_EQ_INT(res.http_status, 404);
    CHECK_EQ_STR(res.code, "NoSuchKey");
    CHECK(!res.transient);
    CHECK_CONTAINS(res.message, roundtrip_key);
    CHECK_CONTAINS(res.message, "HEAD");
    CHECK_S3(ss_s3_delete_object(conn, roundtrip_key, &res));
}

/* 10. A key needing encoding (space, '+', '%', '=', '&', '?', unicode)
 * round-trips: signed, stored and read back under the same name. */
static void test_awkward_key(void)
{
    const char *key = "awkward/a b+c/\xc3\xbc\xe2\x82\xac \xf0\x9f\x98\x80 100%/x=y&z?.txt";
    ss_s3_result res;
    ss_s3_part part = {.part_number = 1}, *listed = NULL;
    size_t nlisted = 0, got = 0;
    uint64_t size = 0;
    char id[256];
    uint8_t data[3000], back[3000];
    memset(data, 'k', sizeof data);
    if (!CHECK_S3(ss_s3_create_multipart(conn, key, "text/plain", id, sizeof id, &res)) ||
        !CHECK_S3(ss_s3_upload_part(conn, key, id, 1, data, sizeof data, part.etag, NULL, &res)))
        return;
    if (CHECK_S3(ss_s3_list_parts(conn, key, id, &listed, &nlisted, &res)))
        CHECK_EQ_INT(nlisted, 1);
    free(listed);
    if (!CHECK_S3(ss_s3_complete_multipart(conn, key, id, &part, 1, &res)))
        return;
    if (CHECK_S3(ss_s3_head_object(conn, key, &size, NULL, &res)))
        CHECK_EQ_INT(size, sizeof data);
    if (CHECK_S3(ss_s3_get_range(conn, key, 0, sizeof back, back, &got, &res)) &&
        CHECK_EQ_INT(got, sizeof data))
        CHECK(memcmp(back, data, sizeof data) == 0);
    CHECK_S3(ss_s3_delete_object(conn, key, &res));
    CHECK_EQ_INT(ss_s3_head_object(conn, key, &size, NULL, &res), -1);
    CHECK_EQ_STR(res.code, "NoSuchKey");
}

/* ---- transport failures ---- */

/* 7. Nothing listens: transient, with libcurl's code. */
static void test_connection_refused(void)
{
    char ep[64];
    ss_s3_client *c = NULL;
    ss_s3_result res;
    uint64_t size;
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", harness_free_port());
    ss_s3_conn *cn = conn_for(&c, ep, BUCKET, secret_key, NULL);
    if (!CHECK(cn != NULL))
        return;
    CHECK_EQ_INT(ss_s3_head_object(cn, "tracks/x", &size, NULL, &res), -1);
    CHECK(res.transient);
    CHECK_EQ_INT(res.curl_code, CURLE_COULDNT_CONNECT);
    CHECK_EQ_INT(res.http_status, 0);
    CHECK_EQ_STR(res.code, "curl_7");
    CHECK_CONTAINS(res.message, "HeadObject");
    conn_done(c, cn);
}

static int progress_calls;

static int count_progress(void *arg)
{
    progress_calls++;
    return *(const int *)arg;
}

/* A GET against the fake server that never answers: how long it took. */
static long long stalled_get(fake_server *s, long stall_ms, int progress_rc, ss_s3_result *res)
{
    ss_s3_client_opts opts = {.stall_timeout_ms = stall_ms};
    ss_s3_client *c = NULL;
    char ep[64];
    uint8_t buf[16];
    size_t got;
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", s->port);
    ss_s3_conn *cn = conn_for(&c, ep, BUCKET, secret_key, &opts);
    if (!cn)
        return -1;
    progress_calls = 0;
    ss_s3_conn_set_progress(cn, count_progress, &progress_rc);
    long long t0 = now_ms();
    int rc = ss_s3_get_range(cn, "tracks/stalled", 0, sizeof buf, buf, &got, res);
    long long took = now_ms() - t0;
    conn_done(c, cn);
    printf("  stalled GET: %s after %lld ms, %d progress calls\n", rc == 0 ? "ok" : res->code, took,
           progress_calls);
    return rc == 0 ? -1 : took;
}

/* 8. A store that accepts and never answers: cut after the stall timeout
 * (1 s), transient. 9. The progress callback is called about once a second,
 * and returning non-zero aborts the request: transient, "aborted". */
static void test_stall_and_progress(void)
{
    fake_server s;
    ss_s3_result res;
    if (!CHECK_EQ_INT(fake_start(&s), 0))
        return;
    fake_answer(&s, NULL, NULL, NULL);
    long long took = stalled_get(&s, 1000, 0, &res);
    CHECK(took >= 900 && took < 5000);
    CHECK(res.transient);
    CHECK_EQ_INT(res.curl_code, CURLE_OPERATION_TIMEDOUT);
    CHECK_EQ_STR(res.code, "curl_28");

    took = stalled_get(&s, 3000, 0, &res); /* progress calls at ~1 s and ~2 s */
    CHECK(took >= 2900 && took < 7000);
    CHECK(progress_calls >= 1 && progress_calls <= 4);

    took = stalled_get(&s, 10000, 1, &res);
    CHECK(took >= 900 && took < 4000);
    CHECK_EQ_INT(progress_calls, 1);
    CHECK(res.transient);
    CHECK_EQ_STR(res.code, "aborted");
    CHECK_EQ_INT(res.curl_code, CURLE_ABORTED_BY_CALLBACK);
    fake_stop(&s);
}

/* 10. A Complete the store keeps alive with a space now and then (S3 does
 * over a large one) is not cut as a stall: 8 spaces 300 ms apart take 2.4 s
 * against a 1 s stall timeout, then the result. An UploadPart answered the
 * same way is cut: its answer has no reason to be slow. */
static void test_complete_kept_alive(void)
{
    fake_server s;
    ss_s3_result res;
    ss_s3_client_opts opts = {.stall_timeout_ms = 1000};
    ss_s3_client *c = NULL;
    ss_s3_part part = {.part_number = 1, .etag = "\"e\""};
    char ep[64], etag[80];
    if (!CHECK_EQ_INT(fake_start(&s), 0))
        return;
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", s.port);
    ss_s3_conn *cn = conn_for(&c, ep, BUCKET, secret_key, &opts);
    pthread_mutex_lock(&s.lock);
    s.trickle_ms = 300;
    pthread_mutex_unlock(&s.lock);
    fake_answer(&s, "200 OK", "Content-Type: application/xml\r\n",
                "        <CompleteMultipartUploadResult><ETag>\"abc-1\"</ETag>"
                "</CompleteMultipartUploadResult>");
    if (CHECK(cn != NULL)) {
        long long t0 = now_ms();
        CHECK_S3(ss_s3_complete_multipart(cn, "tracks/slow", "id", &part, 1, &res));
        CHECK(now_ms() - t0 >= 2000);
        uint8_t body[4] = "abcd", md5[16];
        CHECK_EQ_INT(ss_s3_upload_part(cn, "tracks/slow", "id", 1, body, 4, etag, md5, &res), -1);
        CHECK_EQ_INT(res.curl_code, CURLE_OPERATION_TIMEDOUT);
    }
    conn_done(c, cn);
    fake_stop(&s);
}

/* ---- answers a real store gives only on a bad day ---- */

static const char xml_hdr[] = "Content-Type: application/xml\r\n";

/* 503 SlowDown: transient with S3's code; the conn kept its one connection
 * across requests (curl_easy_reset does not drop it). */
static void test_fake_slowdown(ss_s3_conn *cn, fake_server *s)
{
    ss_s3_result res;
    fake_answer(s, "503 Service Unavailable", xml_hdr,
                "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>");
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(ss_s3_delete_object(cn, "tracks/x", &res), -1);
        CHECK(res.transient);
        CHECK_EQ_STR(res.code, "SlowDown");
        CHECK_CONTAINS(res.message, "Reduce your request rate.");
    }
    CHECK_EQ_INT(fake_count(s, &s->accepts), 1);
    CHECK_EQ_INT(fake_count(s, &s->requests), 3);
}

/* An UploadPart ETag that is an MD5, but not the part's: transient BadETag.
 * Sent at once although the server never says "100 Continue". */
static void test_fake_bad_etag(ss_s3_conn *cn, fake_server *s)
{
    ss_s3_result res;
    char etag[80] = "";
    uint8_t data[100] = {0};
    fake_answer(s, "200 OK", "ETag: \"0123456789abcdef0123456789abcdef\"\r\n", "");
    long long t0 = now_ms();
    CHECK_EQ_INT(ss_s3_upload_part(cn, "tracks/x", "id", 7, data, sizeof data, etag, NULL, &res),
                 -1);
    /* The fake server sends no "100 Continue": the body must not wait for one. */
    CHECK(now_ms() - t0 < 500);
    CHECK(res.transient);
    CHECK_EQ_STR(res.code, "BadETag");
    CHECK_CONTAINS(res.message, "UploadPart \"" BUCKET "/tracks/x\" part 7");
    CHECK_EQ_STR(etag, "");
}

/* CompleteMultipartUpload answered 200 with an <Error> inside: a failure,
 * transient for InternalError, permanent for other codes. */
static void test_fake_complete_error(ss_s3_conn *cn, fake_server *s)
{
    ss_s3_result res;
    ss_s3_part part = {.part_number = 1, .etag = "\"e\""};
    fake_answer(s, "200 OK", xml_hdr,
                "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code>"
                "<Message>We encountered an internal error.</Message></Error>");
    CHECK_EQ_INT(ss_s3_complete_multipart(cn, "tracks/x", "id", &part, 1, &res), -1);
    CHECK_EQ_INT(res.http_status, 200);
    CHECK(res.transient);
    CHECK_EQ_STR(res.code, "InternalError");
    fake_answer(s, "200 OK", xml_hdr,
                "<Error><Code>InvalidPart</Code><Message>One part is missing.</Message></Error>");
    CHECK_EQ_INT(ss_s3_complete_multipart(cn, "tracks/x", "id", &part, 1, &res), -1);
    CHECK(!res.transient);
    CHECK_EQ_STR(res.code, "InvalidPart");
}

/* 4xx answers that pass with time are transient for every request, not
 * only for part uploads: clocks that disagree for a while (403), a
 * conflicting request still running (409). A plain 403 is not. */
static void test_fake_transient_4xx(ss_s3_conn *cn, fake_server *s)
{
    ss_s3_result res;
    ss_s3_part *parts = NULL;
    size_t n = 0;
    fake_answer(s, "403 Forbidden", xml_hdr,
                "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the "
                "request time and the current time is too large.</Message></Error>");
    CHECK_EQ_INT(ss_s3_list_parts(cn, "tracks/x", "id", &parts, &n, &res), -1);
    CHECK(res.transient);
    CHECK_EQ_STR(res.code, "RequestTimeTooSkewed");
    fake_answer(s, "409 Conflict", xml_hdr,
                "<Error><Code>OperationAborted</Code><Message>A conflicting conditional "
                "operation is currently in progress against this resource.</Message></Error>");
    CHECK_EQ_INT(ss_s3_abort_multipart(cn, "tracks/x", "id", &res), -1);
    CHECK(res.transient);
    CHECK_EQ_STR(res.code, "OperationAborted");
    fake_answer(s, "403 Forbidden", xml_hdr,
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>");
    CHECK_EQ_INT(ss_s3_delete_object(cn, "tracks/x", &res), -1);
    CHECK(!res.transient);
    free(parts);
}

/* A ListParts page that says "truncated" without moving on: an error, not
 * an endless loop; an answer above 1 MiB: an error, not unbounded memory. */
static void test_fake_bad_listing(ss_s3_conn *cn, fake_server *s)
{
    ss_s3_result res;
    ss_s3_part *parts = NULL;
    size_t n = 0;
    fake_answer(s, "200 OK", xml_hdr,
                "<ListPartsResult><IsTruncated>true</IsTruncated>"
                "<NextPartNumberMarker>0</NextPartNumberMarker></ListPartsResult>");
    CHECK_EQ_INT(ss_s3_list_parts(cn, "tracks/x", "id", &parts, &n, &res), -1);
    CHECK_EQ_STR(res.code, "BadResponse");
    char *huge = malloc(2 * MIB + 1);
    if (!CHECK(huge != NULL))
        return;
    memset(huge, ' ', 2 * MIB);
    huge[2 * MIB] = '\0';
    fake_answer(s, "200 OK", xml_hdr, huge);
    free(huge);
    CHECK_EQ_INT(ss_s3_list_parts(cn, "tracks/x", "id", &parts, &n, &res), -1);
    CHECK_EQ_STR(res.code, "ResponseTooLarge");
    CHECK(!res.transient);
    CHECK(parts == NULL);
}

/* bad-input: S3 client | 503 SlowDown; an ETag that is not the part's MD5; an `<Error>` inside a
 * 200 Complete; 403 RequestTimeTooSkewed, 409 OperationAborted; a malformed listing | retried /
 * `BadETag` / the store's error / retried / an error naming the answer | nothing recorded as
 * uploaded */
static void test_fake_answers(void)
{
    fake_server s;
    ss_s3_client *c = NULL;
    char ep[64];
    if (!CHECK_EQ_INT(fake_start(&s), 0))
        return;
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", s.port);
    ss_s3_conn *cn = conn_for(&c, ep, BUCKET, secret_key, NULL);
    if (CHECK(cn != NULL)) {
        test_fake_slowdown(cn, &s);
        test_fake_bad_etag(cn, &s);
        test_fake_complete_error(cn, &s);
        test_fake_transient_4xx(cn, &s);
        test_fake_bad_listing(cn, &s);
    }
    conn_done(c, cn);
    fake_stop(&s);
}

int main(void)
{
    ss_s3_result res;
    signal(SIGPIPE, SIG_IGN); /* a dead watcher or fake-server peer: EPIPE, not death */
    h = harness_new("s3_client");
    if (!CHECK(h != NULL) || !CHECK_EQ_INT(swift_start(), 0))
        goto out;
    conn = conn_for(&client, endpoint, BUCKET, secret_key, NULL);
    if (!CHECK(conn != NULL) || !CHECK_S3(ss_s3_create_bucket(conn, &res)) ||
        !CHECK_S3(ss_s3_create_bucket(conn, &res))) /* again: already ours, success */
        goto out;
    TEST_RUN(test_multipart_roundtrip);
    TEST_RUN(test_list_parts_paging);
    TEST_RUN(test_wrong_secret);
    TEST_RUN(test_no_such_bucket);
    TEST_RUN(test_abort);
    TEST_RUN(test_delete);
    TEST_RUN(test_connection_refused);
    TEST_RUN(test_stall_and_progress);
    TEST_RUN(test_complete_kept_alive);
    TEST_RUN(test_awkward_key);
    TEST_RUN(test_bad_digest);
    TEST_RUN(test_fake_answers);
out:
    conn_done(client, conn);
    if (swift_dir[0])
        swift_stop();
    harness_free(h);
    return check_finish();
}
