/* jetstream_peer.c -- what JetStream alone costs for the ingest load, the
 * baseline of bench/ingest/run.sh.
 *
 *   jetstream_peer --url NATS_URL --publishers N --size BYTES --seconds S
 *                  [--rate CHUNKS_PER_SEC] [--stream NAME] [--timeout-ms MS]
 *
 * N publisher threads share one connection (as ingest-recorder's publish
 * threads do) and publish S messages each of BYTES random bytes to
 * "bench.<i>" of a file-storage stream (default BENCHPEER, subjects bench.>,
 * configured like CHUNKS: limits, discard new, 2 min duplicate window), at
 * most RATE per second each. Each publisher is serial, exactly as ingest is
 * per track: it waits for the PubAck of a message before the next, and
 * publishes with Nats-Msg-Id "<i>:<seq>" and, after the first, the expected
 * last subject sequence of its previous message. The stream is created
 * fresh (deleted first if it exists) and deleted at the end.
 *
 * Prints one JSON object on stdout:
 *   {"publishers", "messages", "bytes", "seconds", "errors",
 *    "latency_us": {"p50", "p99", "max"}}
 * (latency: publish to PubAck; percentiles are nearest-rank, as in
 * seashore-send). Exit status: 0 every message acked, 1 otherwise, 2 usage. */
#include <nats/nats.h>
#include <openssl/rand.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG           "jetstream_peer"
#define DUP_WINDOW_NS  (120LL * 1000 * 1000 * 1000)
#define START_DELAY_US 200000 /* publishers start after this, spread over one period */

typedef struct {
    const char *url, *stream;
    unsigned publishers;
    uint64_t size, seconds;
    double rate;
    int64_t timeout_ms;
} options;

typedef struct {
    unsigned index;
    jsCtx *js;
    const options *o;
    int64_t start_us;
    uint8_t *payload;
    int64_t *lat_us; /* one per message sent and acked */
    uint64_t acked, bytes, errors;
    char last_error[256];
} publisher;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t at)
{
    int64_t now;
    while ((now = mono_us()) < at) {
        int64_t d = at - now;
        struct timespec ts = {.tv_sec = d / 1000000, .tv_nsec = (d % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

static void *publish_loop(void *arg)
{
    publisher *p = arg;
    const options *o = p->o;
    char subject[64], msg_id[64];
    int64_t step = o->rate > 0 ? (int64_t)(1e6 / o->rate) : 0, next = p->start_us;
    uint64_t last_seq = 0;
    snprintf(subject, sizeof subject, "bench.%u", p->index);
    for (uint64_t seq = 0; seq < o->seconds; seq++) {
        if (step > 0)
            sleep_until_us(next);
        memcpy(p->payload, &seq, o->size < sizeof seq ? o->size : sizeof seq); /* all distinct */
        jsPubOptions po;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        jsPubOptions_Init(&po);
        snprintf(msg_id, sizeof msg_id, "%u:%" PRIu64, p->index, seq);
        po.MsgId = msg_id;
        po.ExpectLastSubjectSeq = last_seq;
        po.MaxWait = o->timeout_ms;
        int64_t at = mono_us();
        natsStatus s = js_Publish(&pa, p->js, subject, p->payload, (int)o->size, &po, &jerr);
        int64_t done = mono_us();
        if (s == NATS_OK) {
            p->lat_us[p->acked++] = done - at;
            p->bytes += o->size;
            last_seq = pa->Sequence;
        } else {
            /* The next publish would be refused for its expected sequence:
             * this publisher stops, like a track whose publish failed. */
            p->errors += o->seconds - seq;
            snprintf(p->last_error, sizeof p->last_error, "%s: %s (JetStream error %d)", subject,
                     natsStatus_GetText(s), (int)jerr);
            jsPubAck_Destroy(pa);
            break;
        }
        jsPubAck_Destroy(pa);
        if (step > 0)
            next = (next > at ? next : at) + step; /* as seashore-send --rate */
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t percentile(const int64_t *sorted, uint64_t n, double pct)
{
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t)(pct / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, PROG ": %s\n", why);
    fprintf(stderr, "usage: " PROG " --url NATS_URL --publishers N --size BYTES --seconds S "
                    "[--rate CHUNKS_PER_SEC] [--stream NAME] [--timeout-ms MS]\n");
    return 2;
}

static int parse_u64(const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || *end || errno || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"url", required_argument, NULL, 'u'},        {"publishers", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},       {"seconds", required_argument, NULL, 't'},
        {"rate", required_argument, NULL, 'r'},       {"stream", required_argument, NULL, 'S'},
        {"timeout-ms", required_argument, NULL, 'w'}, {NULL, 0, NULL, 0}};
    uint64_t v;
    int c;
    *o = (options){.stream = "BENCHPEER", .rate = 1, .timeout_ms = 5000};
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 'n':
            if (parse_u64(optarg, 1, 100000, &v) != 0)
                return usage("--publishers: a whole number from 1 to 100000");
            o->publishers = (unsigned)v;
            break;
        case 's':
            if (parse_u64(optarg, 1, 64 << 20, &o->size) != 0)
                return usage("--size: a whole number of bytes from 1 to 67108864");
            break;
        case 't':
            if (parse_u64(optarg, 1, 86400, &o->seconds) != 0)
                return usage("--seconds: a whole number from 1 to 86400");
            break;
        case 'r': {
            char *end;
            o->rate = strtod(optarg, &end);
            if (end == optarg || *end || !(o->rate >= 0 && o->rate <= 1e6))
                return usage("--rate: a number from 0 (unlimited) to 1000000");
            break;
        }
        case 'S':
            o->stream = optarg;
            break;
        case 'w':
            if (parse_u64(optarg, 1, 600000, &v) != 0)
                return usage("--timeout-ms: a whole number from 1 to 600000");
            o->timeout_ms = (int64_t)v;
            break;
        default:
            return usage(NULL);
        }
    }
    if (optind != argc)
        return usage("unexpected argument");
    if (!o->url || !o->publishers || !o->size || !o->seconds)
        return usage("--url, --publishers, --size and --seconds are required");
    return 0;
}

/* A fresh stream: any leftover of an earlier run is deleted first. */
static int stream_create(jsCtx *js, const options *o)
{
    static const char *subjects[] = {"bench.>"};
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    js_DeleteStream(js, o->stream, NULL, &jerr); /* not found is fine */
    jsStreamConfig_Init(&cfg);
    cfg.Name = o->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardNew;
    cfg.Duplicates = DUP_WINDOW_NS;
    jerr = 0;
    natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        fprintf(stderr, PROG ": cannot create stream %s: %s (JetStream error %d)\n", o->stream,
                natsStatus_GetText(s), (int)jerr);
        return -1;
    }
    return 0;
}

static int stream_delete(jsCtx *js, const options *o)
{
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteStream(js, o->stream, NULL, &jerr);
    if (s != NATS_OK) {
        fprintf(stderr, PROG ": cannot delete stream %s: %s (JetStream error %d)\n", o->stream,
                natsStatus_GetText(s), (int)jerr);
        return -1;
    }
    return 0;
}

static int run(const options *o, jsCtx *js)
{
    publisher *pubs = calloc(o->publishers, sizeof *pubs);
    pthread_t *threads = calloc(o->publishers, sizeof *threads);
    int64_t *all = calloc(o->publishers * o->seconds, sizeof *all);
    unsigned started = 0;
    int rc = 1;
    if (!pubs || !threads || !all) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    int64_t start = mono_us() + START_DELAY_US;
    for (unsigned i = 0; i < o->publishers; i++) {
        publisher *p = &pubs[i];
        /* spread over one period, as seashore-send --copies --rate does */
        int64_t spread = o->rate > 0 ? (int64_t)(1e6 / o->rate * i / o->publishers) : 0;
        *p = (publisher){.index = i, .js = js, .o = o, .start_us = start + spread};
        p->payload = malloc(o->size);
        p->lat_us = calloc(o->seconds, sizeof *p->lat_us);
        if (!p->payload || !p->lat_us || RAND_bytes(p->payload, (int)o->size) != 1) {
            fprintf(stderr, PROG ": cannot prepare publisher %u (memory or RAND_bytes)\n", i);
            goto join;
        }
    }
    for (; started < o->publishers; started++) {
        int err = pthread_create(&threads[started], NULL, publish_loop, &pubs[started]);
        if (err != 0) {
            fprintf(stderr, PROG ": cannot start publisher %u: %s\n", started, strerror(err));
            goto join;
        }
    }
    rc = 0;
join:
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (rc != 0)
        goto out;
    double seconds = (double)(mono_us() - start) / 1e6;
    uint64_t n = 0, bytes = 0, errors = 0;
    for (unsigned i = 0; i < o->publishers; i++) {
        memcpy(all + n, pubs[i].lat_us, pubs[i].acked * sizeof *all);
        n += pubs[i].acked;
        bytes += pubs[i].bytes;
        errors += pubs[i].errors;
        if (pubs[i].errors)
            fprintf(stderr, PROG ": %s\n", pubs[i].last_error);
    }
    qsort(all, n, sizeof *all, cmp_i64);
    printf("{\"publishers\": %u, \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64
           ", \"seconds\": %.6f, \"errors\": %" PRIu64 ", \"latency_us\": {\"p50\": %" PRId64
           ", \"p99\": %" PRId64 ", \"max\": %" PRId64 "}}\n",
           o->publishers, n, bytes, seconds, errors, percentile(all, n, 50), percentile(all, n, 99),
           n ? all[n - 1] : 0);
    if (fflush(stdout) != 0)
        rc = 1;
    if (errors)
        rc = 1;
out:
    for (unsigned i = 0; pubs && i < o->publishers; i++) {
        free(pubs[i].payload);
        free(pubs[i].lat_us);
    }
    free(pubs);
    free(threads);
    free(all);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    rc = 1;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, o.url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, PROG);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, opts);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK) {
        fprintf(stderr, PROG ": cannot connect to %s: %s\n", o.url, natsStatus_GetText(s));
        goto out;
    }
    if (stream_create(js, &o) != 0)
        goto out;
    rc = run(&o, js);
    if (stream_delete(js, &o) != 0)
        rc = 1;
out:
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    nats_Close();
    return rc;
}
