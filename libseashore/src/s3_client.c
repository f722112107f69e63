/* s3_client.c -- S3 object and multipart requests through libcurl (see
 * s3_client.h).
 *
 * Every request goes through s3_do(): the URL (path-style, the key encoded
 * as SigV4 canonicalises it), the headers (x-amz-content-sha256 of the real
 * payload, Content-MD5 where asked), the options on the conn's easy handle
 * (reset first, so nothing leaks from one request into the next), perform,
 * and then the outcome in ss_s3_result. libcurl 7.88 signs the path and the
 * query exactly as given, so queries are written sorted by parameter name
 * with their values percent-encoded, and a bare flag is written "uploads=". */
#include "seashore/s3_client.h"

#include "s3_xml.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S3_CONNECT_TIMEOUT_MS 10000      /* opts->connect_timeout_ms 0 */
#define S3_STALL_TIMEOUT_MS   30000      /* opts->stall_timeout_ms 0 */
#define S3_LOW_SPEED_BYTES    1024L      /* slower than this many bytes/s for the stall time: cut */
#define S3_PROGRESS_EVERY_MS  1000       /* the conn's progress fn, at most this often */
#define S3_XML_MAX            (1u << 20) /* largest XML answer (or error body) kept */
#define S3_URL_MAX            16384      /* endpoint, bucket, encoded key and query */
#define S3_QUERY_MAX          2048       /* parameters and the encoded upload id */
#define S3_KEY_MAX            1024       /* S3's longest key, in bytes */
#define S3_UPLOAD_ID_MAX      1024       /* longest upload id we send (before encoding) */
#define S3_LIST_PARTS_PAGE    1000       /* max-parts: S3's largest page */
#define S3_MAX_PART_NUMBER    10000
#define S3_DEFAULT_TYPE       "application/octet-stream"

#ifndef SEASHORE_VERSION
#define SEASHORE_VERSION "dev"
#endif

struct ss_s3_client {
    char *endpoint;      /* scheme://host[:port], no trailing slash */
    char *access_key;    /* secret: never in a message */
    char *secret_key;    /* secret: never in a message */
    char *bucket;        /* path-style: endpoint/bucket/key */
    char sigv4[96];      /* CURLOPT_AWS_SIGV4: "aws:amz:<region>:s3" */
    long connect_ms;     /* CURLOPT_CONNECTTIMEOUT_MS */
    long stall_s;        /* CURLOPT_LOW_SPEED_TIME, >= 1 */
    int list_parts_page; /* max-parts of one ListParts request */
    CURLSH *share;       /* DNS cache and TLS sessions of every conn */
    bool locks_ready;    /* locks initialised (ss_s3_client_free) */
    /* One mutex per kind of shared data, taken and released by libcurl
     * through share_lock/share_unlock from whichever thread runs a conn. */
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct ss_s3_conn {
    ss_s3_client *c;
    CURL *curl;                 /* kept between requests: its connection is reused */
    ss_s3_progress_fn progress; /* may be NULL */
    void *progress_arg;
    long long next_progress_ms; /* monotonic time of the next progress call */
    bool aborted;               /* the progress fn stopped the current request */
    char errbuf[CURL_ERROR_SIZE];
};

/* A growing, NUL-terminated byte buffer with a hard limit. */
typedef struct s3_buf {
    char *data;
    size_t len; /* bytes in data, without the NUL */
    size_t cap; /* room in data */
    size_t max; /* len never exceeds this */
} s3_buf;

typedef enum { S3_GET, S3_HEAD, S3_PUT, S3_POST, S3_DELETE } s3_method;

static const char *const method_names[] = {"GET", "HEAD", "PUT", "POST", "DELETE"};

/* One request and its answer. */
typedef struct s3_req {
    const char *op; /* S3 operation, for messages: "UploadPart" */
    s3_method method;
    const char *key;     /* NULL: the bucket itself */
    const char *query;   /* sorted by name, values encoded; NULL: none */
    int part_number;     /* > 0: named in messages */
    const uint8_t *body; /* PUT/POST payload; may be NULL when body_len is 0 */
    size_t body_len;
    const char *content_type;     /* NULL: none */
    bool content_md5;             /* send Content-MD5 (md5 below) */
    const ss_s3_digests *digests; /* the body's, from the caller; NULL: computed */
    const char *range;            /* "first-last" byte range, or NULL */
    bool slow_answer;             /* the store may keep the answer alive with a byte now and
                                     then (Complete): only silence is a stall */
    uint8_t *out;                 /* get_range: a 2xx body goes here ... */
    size_t out_cap;               /* ... and never more than this */
    /* filled by s3_do */
    CURL *curl;
    size_t sent;     /* body bytes handed to libcurl */
    size_t out_len;  /* bytes in out */
    bool too_long;   /* the answer did not fit (out_cap or S3_XML_MAX) */
    long status;     /* HTTP status, 0 before an answer */
    s3_buf xml;      /* any other body, up to S3_XML_MAX */
    uint8_t md5[16]; /* MD5 of body, when content_md5 */
} s3_req;

/* ---- small helpers ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends n bytes: 0, or -1 past b->max or out of memory. */
static int buf_add(s3_buf *b, const void *p, size_t n)
{
    if (n > b->max - b->len)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_str(s3_buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

static void buf_free(s3_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void req_free(s3_req *rq)
{
    buf_free(&rq->xml);
}

static int digest(const EVP_MD *md, const void *p, size_t n, unsigned char *out)
{
    unsigned int len = 0;
    return EVP_Digest(p ? p : "", n, out, &len, md, NULL) == 1 ? 0 : -1;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Printable ASCII only: a value that cannot smuggle a header line. */
static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static int slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

/* ---- outcomes ---- */

/* Every occurrence of secret in s (of size cap) replaced by "[redacted]":
 * no store's message may carry a credential into our logs. */
static void scrub(char *s, size_t cap, const char *secret)
{
    static const char mark[] = "[redacted]";
    size_t n = strlen(secret);
    char *at = s;
    while (n > 0 && (at = strstr(at, secret)) != NULL) {
        char rest[sizeof((ss_s3_result *)0)->message];
        snprintf(rest, sizeof rest, "%s", at + n);
        snprintf(at, cap - (size_t)(at - s), "%s%s", mark, rest);
        size_t left = strlen(at); /* the mark itself may have been cut */
        at += left < sizeof mark - 1 ? left : sizeof mark - 1;
    }
}

/* Fills res with what failed (operation, bucket/key, part) and why. */
static void fail(const ss_s3_conn *conn, const s3_req *rq, ss_s3_result *res, bool transient,
                 const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void fail(const ss_s3_conn *conn, const s3_req *rq, ss_s3_result *res, bool transient,
                 const char *code, const char *fmt, ...)
{
    char why[400], part[24] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (rq->part_number > 0)
        snprintf(part, sizeof part, " part %d", rq->part_number);
    res->transient = transient;
    snprintf(res->code, sizeof res->code, "%s", code);
    snprintf(res->message, sizeof res->message, "%s \"%s%s%s\"%s: %s", rq->op, conn->c->bucket,
             rq->key ? "/" : "", rq->key ? rq->key : "", part, why);
    const char *secrets[] = {conn->c->secret_key, conn->c->access_key};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        scrub(res->code, sizeof res->code, secrets[i]);
        scrub(res->message, sizeof res->message, secrets[i]);
    }
}

/* S3 error codes that mean "try again" whatever the status says (AWS
 * answers 400 RequestTimeout; a 200 to CompleteMultipartUpload can carry
 * InternalError; a 400 BadDigest is a body damaged on the way, and the
 * caller still has the bytes). */
static bool code_transient(const char *code)
{
    /* 4xx among them: the body was damaged or slow on the way, the clocks
     * disagree for a while (403), a conflicting request is still running
     * (409); each passes with time. */
    static const char *const codes[] = {
        "InternalError",        "SlowDown",        "ServiceUnavailable",
        "RequestTimeout",       "BadDigest",       "XAmzContentSHA256Mismatch",
        "RequestTimeTooSkewed", "OperationAborted"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

/* Transport failures a retry can cure: the network, the store's
 * availability, a stall. Anything else (a bad URL, a certificate that does
 * not verify, our own write errors) will fail the same way again. */
static bool curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

static void fail_transport(const ss_s3_conn *conn, const s3_req *rq, CURLcode cc, ss_s3_result *res)
{
    char code[16];
    res->curl_code = (int)cc;
    if (cc == CURLE_ABORTED_BY_CALLBACK && conn->aborted) {
        fail(conn, rq, res, true, "aborted", "stopped by the progress callback");
    } else if (cc == CURLE_WRITE_ERROR && rq->too_long) {
        fail(conn, rq, res, false, "ResponseTooLarge", "HTTP %ld answer longer than %zu bytes",
             rq->status, rq->out ? rq->out_cap : (size_t)S3_XML_MAX);
    } else {
        snprintf(code, sizeof code, "curl_%d", (int)cc);
        fail(conn, rq, res, curl_transient(cc), code, "%s %s (curl %d)", method_names[rq->method],
             conn->errbuf[0] ? conn->errbuf : curl_easy_strerror(cc), (int)cc);
    }
}

/* A non-2xx answer: S3's <Error> body, or for a body-less answer (HEAD) a
 * code made from the status. */
static void fail_http(const ss_s3_conn *conn, const s3_req *rq, ss_s3_result *res)
{
    char code[64] = "", msg[320] = "";
    long st = rq->status;
    if (s3_xml_error(rq->xml.data, rq->xml.len, code, sizeof code, msg, sizeof msg) != 0 ||
        code[0] == '\0') {
        if (st == 404)
            snprintf(code, sizeof code, "NoSuchKey");
        else
            snprintf(code, sizeof code, "HTTP_%ld", st);
        snprintf(msg, sizeof msg, "%s answered HTTP %ld without an error body",
                 method_names[rq->method], st);
    }
    bool transient = (st >= 500 && st != 501) || st == 408 || st == 429 || code_transient(code);
    fail(conn, rq, res, transient, code, "HTTP %ld %s: %s", st, code, msg);
}

/* ---- one request ---- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    s3_req *rq = arg;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(rq->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rq->out && status / 100 == 2) {
        if (n > rq->out_cap - rq->out_len) {
            rq->too_long = true;
            return 0; /* CURLE_WRITE_ERROR */
        }
        memcpy(rq->out + rq->out_len, p, n);
        rq->out_len += n;
        return n;
    }
    if (buf_add(&rq->xml, p, n) != 0) {
        rq->too_long = true;
        return 0;
    }
    return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
    s3_req *rq = arg;
    size_t n = size * nmemb, left = rq->body_len - rq->sent;
    if (n > left)
        n = left;
    if (n > 0)
        memcpy(p, rq->body + rq->sent, n);
    rq->sent += n;
    return n;
}

/* libcurl rewinds the body when it resends a request on a fresh connection
 * (a reused one the store had closed). */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
    s3_req *rq = arg;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > rq->body_len)
        return CURL_SEEKFUNC_FAIL;
    rq->sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    ss_s3_conn *conn = arg;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (!conn->progress)
        return 0;
    long long now = now_ms();
    if (now < conn->next_progress_ms)
        return 0;
    conn->next_progress_ms = now + S3_PROGRESS_EVERY_MS;
    if (conn->progress(conn->progress_arg) != 0) {
        conn->aborted = true;
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

/* endpoint/bucket[/key][?query]; the key percent-encoded segment by segment
 * ('/' kept, unreserved characters kept, uppercase hex), which is also its
 * SigV4 canonical form. */
static int build_url(const ss_s3_conn *conn, const s3_req *rq, s3_buf *url)
{
    const ss_s3_client *c = conn->c;
    if (buf_str(url, c->endpoint) != 0 || buf_str(url, "/") != 0 || buf_str(url, c->bucket) != 0)
        return -1;
    for (const char *k = rq->key; k;) {
        size_t n = strcspn(k, "/");
        if (buf_str(url, "/") != 0)
            return -1;
        if (n > 0) { /* curl_easy_escape takes length 0 as "use strlen" */
            char *seg = curl_easy_escape(conn->curl, k, (int)n);
            int rc = seg ? buf_str(url, seg) : -1;
            curl_free(seg);
            if (rc != 0)
                return -1;
        }
        k = k[n] ? k + n + 1 : NULL;
    }
    if (rq->query && (buf_str(url, "?") != 0 || buf_str(url, rq->query) != 0))
        return -1;
    return 0;
}

/* x-amz-content-sha256, Content-MD5, Content-Type; libcurl signs every
 * header set here. A body sent with Content-MD5 goes as UNSIGNED-PAYLOAD:
 * the store refuses a body that does not match the signed MD5, so SHA-256
 * over the same bytes would be a second pass (0.8 s per GiB on our
 * machines, and the store's own pass again) that catches nothing more.
 * Other requests carry their real sha256, which S3 wants on every request. */
static int build_headers(s3_req *rq, struct curl_slist **headers)
{
    unsigned char sha[32];
    char line[600], shahex[65] = "UNSIGNED-PAYLOAD", b64[32];
    if (rq->content_md5 && rq->digests)
        memcpy(rq->md5, rq->digests->md5, sizeof rq->md5);
    else if (rq->content_md5 && digest(EVP_md5(), rq->body, rq->body_len, rq->md5) != 0)
        return -1;
    if (!rq->content_md5) {
        if (digest(EVP_sha256(), rq->body, rq->body_len, sha) != 0)
            return -1;
        hex(sha, sizeof sha, shahex);
    }
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", shahex);
    if (slist_add(headers, line) != 0)
        return -1;
    if (rq->content_md5) {
        EVP_EncodeBlock((unsigned char *)b64, rq->md5, sizeof rq->md5);
        snprintf(line, sizeof line, "Content-MD5: %s", b64);
        if (slist_add(headers, line) != 0)
            return -1;
    }
    if (rq->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", rq->content_type);
        if (slist_add(headers, line) != 0)
            return -1;
    }
    return 0;
}

static void set_method(CURL *h, s3_req *rq)
{
    switch (rq->method) {
    case S3_GET:
        break;
    case S3_HEAD:
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        break;
    case S3_PUT:
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, rq);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, rq);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
        break;
    case S3_POST:
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        break;
    case S3_DELETE:
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    }
    if (rq->range)
        curl_easy_setopt(h, CURLOPT_RANGE, rq->range);
}

/* Every option, every request: curl_easy_reset keeps the handle's
 * connections and its share, and forgets the previous request. */
static void set_options(ss_s3_conn *conn, s3_req *rq, const char *url, struct curl_slist *headers)
{
    const ss_s3_client *c = conn->c;
    CURL *h = conn->curl;
    curl_easy_reset(h);
    conn->errbuf[0] = '\0';
    conn->aborted = false;
    conn->next_progress_ms = now_ms() + S3_PROGRESS_EVERY_MS;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* keys may hold "." and ".." segments */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, conn->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "seashore/" SEASHORE_VERSION);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, c->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret_key);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    /* Send the body at once instead of waiting up to 1 s for a 100
     * Continue. (An empty "Expect:" header would do the same, but libcurl
     * 7.88 signs every header in the list, also one it then does not send,
     * and the store rejects a signed header that is missing.) */
    curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, rq->slow_answer ? 1L : S3_LOW_SPEED_BYTES);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->stall_s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, conn);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rq);
    set_method(h, rq);
}

/* Sends rq and reads its answer: 0 on a 2xx answer, or -1 with res filled.
 * The caller frees rq (req_free) either way. */
static int s3_do(ss_s3_conn *conn, s3_req *rq, ss_s3_result *res)
{
    s3_buf url = {.max = S3_URL_MAX};
    struct curl_slist *headers = NULL;
    int rc = -1;
    rq->curl = conn->curl;
    rq->xml.max = S3_XML_MAX;
    if (rq->key && (rq->key[0] == '\0' || strlen(rq->key) > S3_KEY_MAX)) {
        fail(conn, rq, res, false, "InvalidArgument", "a key is 1 to %d bytes", S3_KEY_MAX);
        goto out;
    }
    if (build_url(conn, rq, &url) != 0) {
        fail(conn, rq, res, false, "InvalidArgument", "URL longer than %d bytes", S3_URL_MAX);
        goto out;
    }
    if (build_headers(rq, &headers) != 0) {
        fail(conn, rq, res, true, "OutOfMemory", "cannot build the request headers");
        goto out;
    }
    set_options(conn, rq, url.data, headers);
    CURLcode cc = curl_easy_perform(conn->curl);
    curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &rq->status);
    res->http_status = rq->status;
    if (cc != CURLE_OK)
        fail_transport(conn, rq, cc, res);
    else if (rq->status / 100 != 2)
        fail_http(conn, rq, res);
    else
        rc = 0;
out:
    curl_slist_free_all(headers);
    buf_free(&url);
    return rc;
}

/* prefix + "uploadId=<encoded id>" into query: the parameters in prefix
 * must sort before uploadId (libcurl signs the query as written). */
static int upload_query(ss_s3_conn *conn, char *query, size_t qlen, const char *prefix,
                        const char *upload_id)
{
    if (!upload_id || upload_id[0] == '\0' || strlen(upload_id) > S3_UPLOAD_ID_MAX)
        return -1;
    char *id = curl_easy_escape(conn->curl, upload_id, (int)strlen(upload_id));
    if (!id)
        return -1;
    int n = snprintf(query, qlen, "%suploadId=%s", prefix, id);
    curl_free(id);
    return n >= 0 && (size_t)n < qlen ? 0 : -1;
}

/* The ETag header of the last answer into out (with its quotes): 0 or -1. */
static int answer_etag(ss_s3_conn *conn, char *out, size_t outlen)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(conn->curl, "ETag", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h->value)
        return -1;
    int n = snprintf(out, outlen, "%s", h->value);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* ---- the client and its conns ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
    ss_s3_client *c = arg;
    (void)h, (void)access;
    pthread_mutex_lock(&c->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
    ss_s3_client *c = arg;
    (void)h;
    pthread_mutex_unlock(&c->locks[data]);
}

/* DNS answers and TLS sessions are shared by every conn. Connections are
 * not (CURL_LOCK_DATA_CONNECT): libcurl 7.88 documents a shared connection
 * cache as unsafe between concurrent threads (KNOWN_BUGS 11.11, curl issue
 * 4915); each conn's easy handle keeps and reuses its own connection. */
static int share_new(ss_s3_client *c)
{
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        if (pthread_mutex_init(&c->locks[i], NULL) != 0)
            return -1; /* never on Linux with default attributes */
    c->locks_ready = true;
    c->share = curl_share_init();
    if (!c->share)
        return -1;
    if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
        return -1;
    return 0;
}

static int config_check(const ss_s3_config *cfg, char *err, size_t errlen)
{
    const char *missing = !cfg                                      ? "the configuration"
                          : !cfg->endpoint || !cfg->endpoint[0]     ? "endpoint"
                          : !cfg->access_key || !cfg->access_key[0] ? "access key"
                          : !cfg->secret_key || !cfg->secret_key[0] ? "secret key"
                          : !cfg->bucket || !cfg->bucket[0]         ? "bucket"
                          : !cfg->region || !cfg->region[0]         ? "region"
                                                                    : NULL;
    if (missing) {
        snprintf(err, errlen, "S3 client: %s is missing", missing);
        return -1;
    }
    if (strncmp(cfg->endpoint, "http://", 7) != 0 && strncmp(cfg->endpoint, "https://", 8) != 0) {
        snprintf(err, errlen, "S3 client: endpoint %s is not an http:// or https:// URL",
                 cfg->endpoint);
        return -1;
    }
    /* CURLOPT_AWS_SIGV4 splits on ':' and takes at most 64 bytes a part. */
    if (strlen(cfg->region) > 64 || strchr(cfg->region, ':')) {
        snprintf(err, errlen, "S3 client: region \"%s\" is not a SigV4 region", cfg->region);
        return -1;
    }
    if (!header_safe(cfg->bucket) || strchr(cfg->bucket, '/') || strlen(cfg->bucket) > 255) {
        snprintf(err, errlen, "S3 client: bucket name \"%s\" is not valid", cfg->bucket);
        return -1;
    }
    return 0;
}

static void client_settings(ss_s3_client *c, const ss_s3_config *cfg, const ss_s3_client_opts *opts)
{
    long stall = opts && opts->stall_timeout_ms > 0 ? opts->stall_timeout_ms : S3_STALL_TIMEOUT_MS;
    int page = opts ? opts->list_parts_page : 0;
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/')
        c->endpoint[--n] = '\0';
    snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", cfg->region);
    c->connect_ms =
        opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : S3_CONNECT_TIMEOUT_MS;
    c->stall_s = (stall + 999) / 1000; /* libcurl counts whole seconds; stall > 0 */
    c->list_parts_page = page > 0 && page < S3_LIST_PARTS_PAGE ? page : S3_LIST_PARTS_PAGE;
}

int ss_s3_client_new(const ss_s3_config *cfg, const ss_s3_client_opts *opts, ss_s3_client **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (config_check(cfg, err, errlen) != 0)
        return -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "S3 client: curl_global_init failed");
        return -1;
    }
    s3_xml_init();
    ss_s3_client *c = calloc(1, sizeof *c);
    if (!c) {
        curl_global_cleanup();
        snprintf(err, errlen, "S3 client: out of memory");
        return -1;
    }
    c->endpoint = strdup(cfg->endpoint);
    c->access_key = strdup(cfg->access_key);
    c->secret_key = strdup(cfg->secret_key);
    c->bucket = strdup(cfg->bucket);
    if (!c->endpoint || !c->access_key || !c->secret_key || !c->bucket || share_new(c) != 0) {
        snprintf(err, errlen, "S3 client: out of memory creating the client");
        ss_s3_client_free(c); /* also balances curl_global_init */
        return -1;
    }
    client_settings(c, cfg, opts);
    *out = c;
    return 0;
}

static void free_secret(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void ss_s3_client_free(ss_s3_client *c)
{
    if (!c)
        return;
    if (c->share)
        curl_share_cleanup(c->share); /* every conn must be freed before */
    if (c->locks_ready)
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
            pthread_mutex_destroy(&c->locks[i]);
    free(c->endpoint);
    free_secret(c->access_key);
    free_secret(c->secret_key);
    free(c->bucket);
    free(c);
    curl_global_cleanup();
}

ss_s3_conn *ss_s3_conn_new(ss_s3_client *c)
{
    ss_s3_conn *conn = calloc(1, sizeof *conn);
    if (!conn)
        return NULL;
    conn->c = c;
    conn->curl = curl_easy_init();
    /* Set once: curl_easy_reset keeps the share. */
    if (!conn->curl || curl_easy_setopt(conn->curl, CURLOPT_SHARE, c->share) != CURLE_OK) {
        ss_s3_conn_free(conn);
        return NULL;
    }
    return conn;
}

void ss_s3_conn_free(ss_s3_conn *conn)
{
    if (!conn)
        return;
    if (conn->curl)
        curl_easy_cleanup(conn->curl);
    free(conn);
}

void ss_s3_conn_set_progress(ss_s3_conn *conn, ss_s3_progress_fn fn, void *arg)
{
    conn->progress = fn;
    conn->progress_arg = arg;
}

/* ---- operations ---- */

int ss_s3_create_bucket(ss_s3_conn *conn, ss_s3_result *res)
{
    s3_req rq = {.op = "CreateBucket", .method = S3_PUT};
    *res = (ss_s3_result){0};
    int rc = s3_do(conn, &rq, res);
    if (rc != 0 && res->http_status == 409 && strcmp(res->code, "BucketAlreadyOwnedByYou") == 0) {
        *res = (ss_s3_result){0};
        rc = 0;
    }
    req_free(&rq);
    return rc;
}

int ss_s3_create_multipart(ss_s3_conn *conn, const char *key, const char *content_type,
                           char *upload_id_out, size_t idlen, ss_s3_result *res)
{
    s3_req rq = {.op = "CreateMultipartUpload",
                 .method = S3_POST,
                 .key = key,
                 .query = "uploads=", /* "uploads" alone is signed differently */
                 .content_type = content_type ? content_type : S3_DEFAULT_TYPE};
    char err[160];
    int rc = -1;
    *res = (ss_s3_result){0};
    if (!header_safe(rq.content_type) || strlen(rq.content_type) > 255) {
        fail(conn, &rq, res, false, "InvalidArgument", "content type is not a header value");
        goto out;
    }
    if (s3_do(conn, &rq, res) != 0)
        goto out;
    /* A 200 answer we cannot read: the store's fault, retrying may help. */
    if (s3_xml_upload_id(rq.xml.data, rq.xml.len, upload_id_out, idlen, err, sizeof err) != 0) {
        fail(conn, &rq, res, true, "BadResponse", "%s", err);
        goto out;
    }
    rc = 0;
out:
    req_free(&rq);
    return rc;
}

/* An ETag of 32 hex digits in quotes is the MD5 of the part (S3, R2, Swift):
 * it must be the MD5 of what we sent. Other shapes are not checked. */
static bool etag_matches(const char *etag, const uint8_t md5[16])
{
    char want[33];
    if (strlen(etag) != 34 || etag[0] != '"' || etag[33] != '"' ||
        strspn(etag + 1, "0123456789abcdefABCDEF") != 32)
        return true;
    hex(md5, 16, want);
    return strncasecmp(etag + 1, want, 32) == 0;
}

static int part_etag(ss_s3_conn *conn, const s3_req *rq, char *etag_out, ss_s3_result *res)
{
    char etag[sizeof((ss_s3_part *)0)->etag];
    if (answer_etag(conn, etag, sizeof etag) != 0) {
        fail(conn, rq, res, true, "BadETag", "answer has no ETag, or one longer than %zu bytes",
             sizeof etag - 1);
        return -1;
    }
    if (!etag_matches(etag, rq->md5)) {
        char want[33];
        hex(rq->md5, sizeof rq->md5, want);
        fail(conn, rq, res, true, "BadETag", "ETag %s is not the MD5 of the part sent (\"%s\")",
             etag, want);
        return -1;
    }
    memcpy(etag_out, etag, sizeof etag);
    return 0;
}

static int upload_part(ss_s3_conn *conn, const char *key, const char *upload_id, int part_number,
                       const uint8_t *data, size_t len, const ss_s3_digests *digests,
                       char *etag_out, uint8_t *md5_out, ss_s3_result *res)
{
    char query[S3_QUERY_MAX] = "", prefix[32];
    s3_req rq = {.op = "UploadPart",
                 .method = S3_PUT,
                 .key = key,
                 .query = query,
                 .part_number = part_number,
                 .body = data,
                 .body_len = len,
                 .content_md5 = true,
                 .digests = digests};
    int rc = -1;
    *res = (ss_s3_result){0};
    snprintf(prefix, sizeof prefix, "partNumber=%d&", part_number);
    if (part_number < 1 || part_number > S3_MAX_PART_NUMBER) {
        fail(conn, &rq, res, false, "InvalidArgument", "part numbers are 1 to %d",
             S3_MAX_PART_NUMBER);
        goto out;
    }
    if (upload_query(conn, query, sizeof query, prefix, upload_id) != 0) {
        fail(conn, &rq, res, false, "InvalidArgument", "upload id is empty or too long");
        goto out;
    }
    if (s3_do(conn, &rq, res) != 0 || part_etag(conn, &rq, etag_out, res) != 0)
        goto out;
    if (md5_out)
        memcpy(md5_out, rq.md5, sizeof rq.md5);
    rc = 0;
out:
    req_free(&rq);
    return rc;
}

int ss_s3_upload_part(ss_s3_conn *conn, const char *key, const char *upload_id, int part_number,
                      const uint8_t *data, size_t len, char *etag_out, uint8_t *md5_out,
                      ss_s3_result *res)
{
    return upload_part(conn, key, upload_id, part_number, data, len, NULL, etag_out, md5_out, res);
}

int ss_s3_upload_part_hashed(ss_s3_conn *conn, const char *key, const char *upload_id,
                             int part_number, const uint8_t *data, size_t len,
                             const ss_s3_digests *digests, char *etag_out, ss_s3_result *res)
{
    return upload_part(conn, key, upload_id, part_number, data, len, digests, etag_out, NULL, res);
}

/* A 2xx answer to CompleteMultipartUpload is a success only when it is a
 * CompleteMultipartUploadResult: S3 may send 200 at once and an <Error>
 * later in the same body. */
static int complete_answer(const ss_s3_conn *conn, const s3_req *rq, ss_s3_result *res)
{
    char code[64] = "", msg[320] = "";
    if (s3_xml_error(rq->xml.data, rq->xml.len, code, sizeof code, msg, sizeof msg) == 0) {
        fail(conn, rq, res, code_transient(code), code[0] ? code : "InternalError",
             "HTTP %ld with an error in the body: %s: %s", rq->status, code, msg);
        return -1;
    }
    if (s3_xml_root_is(rq->xml.data, rq->xml.len, "CompleteMultipartUploadResult") != 0) {
        fail(conn, rq, res, true, "BadResponse", "HTTP %ld without a CompleteMultipartUploadResult",
             rq->status);
        return -1;
    }
    return 0;
}

static bool parts_ascending(const ss_s3_part *parts, size_t nparts)
{
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].part_number < 1 || parts[i].part_number > S3_MAX_PART_NUMBER ||
            (i > 0 && parts[i].part_number <= parts[i - 1].part_number))
            return false;
    return true;
}

int ss_s3_complete_multipart(ss_s3_conn *conn, const char *key, const char *upload_id,
                             const ss_s3_part *parts, size_t nparts, ss_s3_result *res)
{
    char query[S3_QUERY_MAX] = "", *body = NULL;
    /* S3 may take minutes over a large Complete, sending whitespace to keep
     * the connection: cutting it as a slow transfer would only start over */
    s3_req rq = {.op = "CompleteMultipartUpload",
                 .method = S3_POST,
                 .key = key,
                 .query = query,
                 .content_type = "application/xml",
                 .content_md5 = true,
                 .slow_answer = true};
    int rc = -1;
    *res = (ss_s3_result){0};
    if (nparts == 0 || nparts > S3_MAX_PART_NUMBER || !parts_ascending(parts, nparts)) {
        fail(conn, &rq, res, false, "InvalidPartOrder",
             "%zu parts: 1 to %d parts in ascending order expected", nparts, S3_MAX_PART_NUMBER);
        goto out;
    }
    if (upload_query(conn, query, sizeof query, "", upload_id) != 0) {
        fail(conn, &rq, res, false, "InvalidArgument", "upload id is empty or too long");
        goto out;
    }
    if (s3_xml_complete_body(parts, nparts, &body, &rq.body_len) != 0) {
        fail(conn, &rq, res, true, "OutOfMemory", "cannot build the body for %zu parts", nparts);
        goto out;
    }
    rq.body = (const uint8_t *)body;
    if (s3_do(conn, &rq, res) != 0 || complete_answer(conn, &rq, res) != 0)
        goto out;
    rc = 0;
out:
    free(body);
    req_free(&rq);
    return rc;
}

int ss_s3_abort_multipart(ss_s3_conn *conn, const char *key, const char *upload_id,
                          ss_s3_result *res)
{
    char query[S3_QUERY_MAX] = "";
    s3_req rq = {.op = "AbortMultipartUpload", .method = S3_DELETE, .key = key, .query = query};
    int rc = -1;
    *res = (ss_s3_result){0};
    if (upload_query(conn, query, sizeof query, "", upload_id) != 0) {
        fail(conn, &rq, res, false, "InvalidArgument", "upload id is empty or too long");
        goto out;
    }
    rc = s3_do(conn, &rq, res);
    /* No such upload: the goal (no upload) holds. */
    if (rc != 0 && res->http_status == 404 && strcmp(res->code, "NoSuchUpload") == 0) {
        *res = (ss_s3_result){0};
        rc = 0;
    }
out:
    req_free(&rq);
    return rc;
}

/* One ListParts page after *marker: parts appended, *marker and *more
 * moved on. */
static int list_parts_page(ss_s3_conn *conn, const char *key, const char *upload_id, int *marker,
                           bool *more, s3_parts *parts, ss_s3_result *res)
{
    char query[S3_QUERY_MAX] = "", prefix[64], err[160];
    s3_req rq = {.op = "ListParts", .method = S3_GET, .key = key, .query = query};
    int next = 0, rc = -1;
    size_t before = parts->n;
    if (*marker > 0) /* parameters sorted by name: max-parts, part-number-marker, uploadId */
        snprintf(prefix, sizeof prefix, "max-parts=%d&part-number-marker=%d&",
                 conn->c->list_parts_page, *marker);
    else
        snprintf(prefix, sizeof prefix, "max-parts=%d&", conn->c->list_parts_page);
    if (upload_query(conn, query, sizeof query, prefix, upload_id) != 0) {
        fail(conn, &rq, res, false, "InvalidArgument", "upload id is empty or too long");
        goto out;
    }
    if (s3_do(conn, &rq, res) != 0)
        goto out;
    if (s3_xml_list_parts(rq.xml.data, rq.xml.len, parts, more, &next, err, sizeof err) != 0) {
        fail(conn, &rq, res, true, "BadResponse", "after part %d: %s", *marker, err);
        goto out;
    }
    /* A truncated page must move forward, or the listing would never end. */
    if (*more && (next <= *marker || parts->n == before)) {
        fail(conn, &rq, res, true, "BadResponse", "truncated page after part %d does not advance",
             *marker);
        goto out;
    }
    *marker = next;
    rc = 0;
out:
    req_free(&rq);
    return rc;
}

static int part_cmp(const void *a, const void *b)
{
    const ss_s3_part *x = a, *y = b;
    return (x->part_number > y->part_number) - (x->part_number < y->part_number);
}

int ss_s3_list_parts(ss_s3_conn *conn, const char *key, const char *upload_id,
                     ss_s3_part **parts_out, size_t *nparts_out, ss_s3_result *res)
{
    s3_parts parts = {0};
    int marker = 0;
    bool more = true;
    *res = (ss_s3_result){0};
    *parts_out = NULL;
    *nparts_out = 0;
    while (more) {
        if (list_parts_page(conn, key, upload_id, &marker, &more, &parts, res) != 0) {
            free(parts.v);
            return -1;
        }
    }
    if (parts.n > 1)
        qsort(parts.v, parts.n, sizeof *parts.v, part_cmp);
    *parts_out = parts.v;
    *nparts_out = parts.n;
    return 0;
}

int ss_s3_head_object(ss_s3_conn *conn, const char *key, uint64_t *size_out, char *etag_out,
                      ss_s3_result *res)
{
    s3_req rq = {.op = "HeadObject", .method = S3_HEAD, .key = key};
    curl_off_t size = -1;
    int rc = -1;
    *res = (ss_s3_result){0};
    if (s3_do(conn, &rq, res) != 0)
        goto out;
    curl_easy_getinfo(conn->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &size);
    if (size < 0) {
        fail(conn, &rq, res, true, "BadResponse", "answer has no Content-Length");
        goto out;
    }
    if (etag_out && answer_etag(conn, etag_out, sizeof((ss_s3_part *)0)->etag) != 0) {
        fail(conn, &rq, res, true, "BadResponse", "answer has no usable ETag");
        goto out;
    }
    if (size_out)
        *size_out = (uint64_t)size;
    rc = 0;
out:
    req_free(&rq);
    return rc;
}

int ss_s3_get_range(ss_s3_conn *conn, const char *key, uint64_t offset, size_t len, uint8_t *buf,
                    size_t *got_out, ss_s3_result *res)
{
    char range[48];
    s3_req rq = {.op = "GetObject",
                 .method = S3_GET,
                 .key = key,
                 .range = range,
                 .out = buf,
                 .out_cap = len};
    int rc = -1;
    *res = (ss_s3_result){0};
    *got_out = 0;
    if (len == 0)
        return 0;
    if (len - 1 > UINT64_MAX - offset) {
        fail(conn, &rq, res, false, "InvalidArgument", "range past 2^64 bytes");
        goto out;
    }
    snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, offset, offset + (len - 1));
    if (s3_do(conn, &rq, res) != 0) {
        if (res->http_status == 416) { /* the range starts at or past the end: nothing there */
            *res = (ss_s3_result){0};
            rc = 0;
        }
        goto out;
    }
    if (rq.status != 206 && offset != 0) {
        fail(conn, &rq, res, false, "BadResponse", "HTTP %ld instead of 206 for bytes %s",
             rq.status, range);
        goto out;
    }
    *got_out = rq.out_len;
    rc = 0;
out:
    req_free(&rq);
    return rc;
}

int ss_s3_delete_object(ss_s3_conn *conn, const char *key, ss_s3_result *res)
{
    s3_req rq = {.op = "DeleteObject", .method = S3_DELETE, .key = key};
    *res = (ss_s3_result){0};
    int rc = s3_do(conn, &rq, res);
    /* A missing key is the goal; a missing bucket is not. */
    if (rc != 0 && res->http_status == 404 && strcmp(res->code, "NoSuchBucket") != 0) {
        *res = (ss_s3_result){0};
        rc = 0;
    }
    req_free(&rq);
    return rc;
}
