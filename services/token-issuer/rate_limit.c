/* rate_limit.c -- a token bucket per caller (host API key, client address
 * for invite calls, client address for failed authentications):
 * API_RATE_LIMIT requests per second on average, API_RATE_BURST at once. A
 * fixed table; the least recently seen caller is forgotten first, so memory
 * does not grow with the number of callers. Also the client's address. */
#include "api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BUCKETS 4096

typedef struct bucket {
    char who[64];
    double tokens;
    double last_s;
} bucket;

static bucket table[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bucket *find(const char *who, double now)
{
    bucket *oldest = &table[0];
    for (int i = 0; i < BUCKETS; i++) {
        if (strcmp(table[i].who, who) == 0)
            return &table[i];
        if (table[i].last_s < oldest->last_s)
            oldest = &table[i];
    }
    snprintf(oldest->who, sizeof oldest->who, "%s", who);
    oldest->tokens = (double)api_cfg.rate_burst;
    oldest->last_s = now;
    return oldest;
}

/* The caller's bucket, refilled up to now. Lock held. */
static bucket *refilled(const char *who, double now)
{
    bucket *b = find(who, now);
    b->tokens += (now - b->last_s) * (double)api_cfg.rate_per_s;
    if (b->tokens > (double)api_cfg.rate_burst)
        b->tokens = (double)api_cfg.rate_burst;
    b->last_s = now;
    return b;
}

static int retry_after(const bucket *b)
{
    return (int)((1.0 - b->tokens) / (double)api_cfg.rate_per_s) + 1;
}

/* Whether `who` has a request left now; take: use it. When not, the seconds
 * until it has one. */
static bool bucket_allows(const char *who, bool take, int *retry_after_s)
{
    pthread_mutex_lock(&lock);
    bucket *b = refilled(who, now_s());
    bool allowed = b->tokens >= 1.0;
    if (allowed && take)
        b->tokens -= 1.0;
    else if (!allowed)
        *retry_after_s = retry_after(b);
    pthread_mutex_unlock(&lock);
    return allowed;
}

static void reply_429(struct MHD_Connection *conn, int retry, enum MHD_Result *res)
{
    char msg[160], retry_s[16];
    snprintf(msg, sizeof msg,
             "{\"error\":{\"code\":\"rate_limited\",\"message\":\"more than %lld requests "
             "per second (burst %lld); retry after %d s\"}}",
             (long long)api_cfg.rate_per_s, (long long)api_cfg.rate_burst, retry);
    snprintf(retry_s, sizeof retry_s, "%d", retry);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(msg), msg, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_s);
    *res = MHD_queue_response(conn, MHD_HTTP_TOO_MANY_REQUESTS, r);
    MHD_destroy_response(r);
}

static bool limited_reply(struct MHD_Connection *conn, const char *who, bool take,
                          enum MHD_Result *res)
{
    int retry = 1;
    if (bucket_allows(who, take, &retry))
        return false;
    reply_429(conn, retry, res);
    return true;
}

bool api_rate_limited(struct MHD_Connection *conn, const char *who, enum MHD_Result *res)
{
    return limited_reply(conn, who, true, res);
}

bool api_rate_exhausted_reply(struct MHD_Connection *conn, const char *who, enum MHD_Result *res)
{
    return limited_reply(conn, who, false, res);
}

void api_rate_take(const char *who)
{
    int retry;
    (void)bucket_allows(who, true, &retry);
}

static void peer_address(struct MHD_Connection *conn, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, len, "?");
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, out,
                  (socklen_t)len);
    else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, out,
                  (socklen_t)len);
}

void api_client_address(struct MHD_Connection *conn, char *out, size_t len)
{
    const char *xff = api_cfg.trusted_proxies > 0
                          ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For")
                          : NULL;
    if (xff == NULL || !api_forwarded_entry(xff, api_cfg.trusted_proxies, out, len))
        peer_address(conn, out, len);
}
