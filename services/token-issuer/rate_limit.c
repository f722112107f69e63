/* rate_limit.c -- a token bucket per caller (host API key, or client
 * address for invite calls): API_RATE_LIMIT requests per second on average,
 * API_RATE_BURST at once. A fixed table; the least recently seen caller is
 * forgotten first, so memory does not grow with the number of callers. */
#include "api.h"

#include <pthread.h>
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

int api_rate_check(const char *who, int *retry_after_s)
{
    double now = now_s();
    int allowed;
    pthread_mutex_lock(&lock);
    bucket *b = find(who, now);
    b->tokens += (now - b->last_s) * (double)api_cfg.rate_per_s;
    if (b->tokens > (double)api_cfg.rate_burst)
        b->tokens = (double)api_cfg.rate_burst;
    b->last_s = now;
    allowed = b->tokens >= 1.0;
    if (allowed)
        b->tokens -= 1.0;
    else
        *retry_after_s = (int)((1.0 - b->tokens) / (double)api_cfg.rate_per_s) + 1;
    pthread_mutex_unlock(&lock);
    return allowed ? 0 : -1;
}
