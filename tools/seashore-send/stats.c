/* stats.c -- ack latencies, the --progress line, --stats-json and the
 * per-track result lines.
 *
 * Ack latency: from the write of a chunk to the first Ack that covers it.
 * The samples are a reservoir (algorithm R) of RESERVOIR_SIZE, so the
 * percentiles stay bounded in memory for any run length; max is exact. */
#include "sender.h"

#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRESS_US 250000

int latency_init(latency *l)
{
    memset(l, 0, sizeof *l);
    l->samples = malloc(RESERVOIR_SIZE * sizeof *l->samples);
    if (!l->samples) {
        fprintf(stderr, PROG ": out of memory for the latency samples\n");
        return -1;
    }
    return 0;
}

void latency_add(sender *s, int64_t us)
{
    latency *l = &s->lat;
    if (us < 0)
        us = 0;
    if (us > l->max)
        l->max = us;
    l->seen++;
    if (l->n < RESERVOIR_SIZE) {
        l->samples[l->n++] = us;
        return;
    }
    uint64_t j = sender_rand(s) % l->seen;
    if (j < RESERVOIR_SIZE)
        l->samples[j] = us;
}

void latency_free(latency *l)
{
    free(l->samples);
    l->samples = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted samples; 0 without samples. */
static int64_t percentile(const latency *l, double p)
{
    if (l->n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)l->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return l->samples[rank - 1];
}

/* ---- totals over the tracks ---- */

typedef struct totals {
    uint64_t sent, durable, committed, committed_updates, committed_rerequests, chunks_acked,
        chunks_sent;
    unsigned reconnects, ended;
    int64_t last_end_sent_us, last_ended_us, first_ack_us, last_ack_us; /* wall clock, 0 = none */
} totals;

static void sum_tracks(const sender *s, totals *t)
{
    memset(t, 0, sizeof *t);
    for (unsigned i = 0; i < s->ntracks; i++) {
        const track *k = &s->tracks[i];
        t->sent += k->bytes_sent;
        t->durable += k->durable_bytes;
        t->committed += k->committed_bytes;
        t->committed_updates += k->committed_updates;
        t->committed_rerequests += k->committed_rerequests;
        t->chunks_acked += k->acked;
        t->chunks_sent += k->chunks_sent;
        t->reconnects += k->reconnects;
        t->ended += k->state == TS_DONE;
        if (k->end_sent_unix_us > t->last_end_sent_us)
            t->last_end_sent_us = k->end_sent_unix_us;
        if (k->ended_unix_us > t->last_ended_us)
            t->last_ended_us = k->ended_unix_us;
        if (k->last_ack_unix_us > t->last_ack_us)
            t->last_ack_us = k->last_ack_unix_us;
        if (k->first_ack_unix_us && (!t->first_ack_us || k->first_ack_unix_us < t->first_ack_us))
            t->first_ack_us = k->first_ack_unix_us;
    }
}

/* End -> Ended of every ended track, sorted, in `out` (ntracks slots, the
 * caller's); how many. */
static size_t end_latencies(const sender *s, int64_t *out)
{
    size_t n = 0;
    for (unsigned i = 0; i < s->ntracks; i++) {
        const track *k = &s->tracks[i];
        if (k->end_sent_unix_us && k->ended_unix_us)
            out[n++] = k->ended_unix_us - k->end_sent_unix_us;
    }
    qsort(out, n, sizeof *out, cmp_i64);
    return n;
}

/* ---- --progress ---- */

static void human_bytes(uint64_t b, char *out, size_t n)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

static void progress_print(sender *s, bool final)
{
    totals t;
    char sent[32], durable[32], committed[32];
    int64_t now = mono_us();
    sum_tracks(s, &t);
    if (final || s->rate_bytes == 0) { /* the average until a window is full */
        int64_t dt = now - s->start_us;
        s->rate_mbs = dt > 0 ? (double)t.durable / (double)dt : 0;
    }
    if (!final && now - s->rate_at_us >= 1000000) {
        uint64_t moved = t.durable > s->rate_bytes ? t.durable - s->rate_bytes : 0;
        s->rate_mbs = (double)moved / (double)(now - s->rate_at_us);
        s->rate_at_us = now;
        s->rate_bytes = t.durable;
    }
    human_bytes(t.sent, sent, sizeof sent);
    human_bytes(t.durable, durable, sizeof durable);
    human_bytes(t.committed, committed, sizeof committed);
    fprintf(stderr,
            "\rsent %s (%llu chunks)  acked %s (%llu)  committed %s  %.2f MB/s  reconnects %u  "
            "ended %u/%u\033[K",
            sent, (unsigned long long)t.chunks_sent, durable, (unsigned long long)t.chunks_acked,
            committed, s->rate_mbs, t.reconnects, t.ended, s->ntracks);
    s->progress_shown = true;
}

static void progress_tick(lws_sorted_usec_list_t *sul)
{
    sender *s = lws_container_of(sul, sender, sul_progress);
    progress_print(s, false);
    lws_sul_schedule(s->ctx, 0, &s->sul_progress, progress_tick, PROGRESS_US);
}

void progress_start(sender *s)
{
    if (!s->o->progress)
        return;
    s->rate_at_us = mono_us();
    lws_sul_schedule(s->ctx, 0, &s->sul_progress, progress_tick, PROGRESS_US);
}

/* Erases the progress line before another message goes to stderr. */
void progress_clear(sender *s)
{
    if (s->progress_shown)
        fputs("\r\033[K", stderr);
    s->progress_shown = false;
}

void progress_final(sender *s)
{
    if (!s->o->progress)
        return;
    progress_print(s, true);
    fputs("\n", stderr);
    s->progress_shown = false;
}

/* ---- --stats-json ---- */

int stats_write(sender *s)
{
    totals t;
    int rc = -1;
    if (!s->o->stats_json)
        return 0;
    latency ends = {.samples = calloc(s->ntracks ? s->ntracks : 1, sizeof(int64_t))};
    if (!ends.samples) {
        error_msg(s, "--stats-json: out of memory");
        return -1;
    }
    sum_tracks(s, &t);
    ends.n = end_latencies(s, ends.samples);
    qsort(s->lat.samples, s->lat.n, sizeof *s->lat.samples, cmp_i64);
    double seconds = (double)(mono_us() - s->start_us) / 1e6;
    json_t *j = json_pack(
        "{s:I, s:I, s:I, s:f, s:I, s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
        " s:I, s:{s:I, s:I, s:I}}",
        "tracks", (json_int_t)s->ntracks, "chunks", (json_int_t)t.chunks_acked, "bytes",
        (json_int_t)t.durable, "seconds", seconds, "reconnects", (json_int_t)t.reconnects,
        "ack_latency_us", "p50", (json_int_t)percentile(&s->lat, 50), "p99",
        (json_int_t)percentile(&s->lat, 99), "max", (json_int_t)s->lat.max, "ended",
        (json_int_t)t.ended, "chunks_sent", (json_int_t)t.chunks_sent, "bytes_sent",
        (json_int_t)t.sent, "committed_bytes", (json_int_t)t.committed, "committed_updates",
        (json_int_t)t.committed_updates, "committed_rerequested",
        (json_int_t)t.committed_rerequests, "last_end_sent_unix_us", (json_int_t)t.last_end_sent_us,
        "last_ended_unix_us", (json_int_t)t.last_ended_us, "first_ack_unix_us",
        (json_int_t)t.first_ack_us, "last_ack_unix_us", (json_int_t)t.last_ack_us, "end_latency_us",
        "p50", (json_int_t)percentile(&ends, 50), "p99", (json_int_t)percentile(&ends, 99), "max",
        (json_int_t)(ends.n ? ends.samples[ends.n - 1] : 0));
    free(ends.samples);
    if (!j) {
        error_msg(s, "--stats-json: cannot build the JSON object");
        return -1;
    }
    if (json_dump_file(j, s->o->stats_json, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0) {
        error_msg(s, "--stats-json: cannot write %s: %s", s->o->stats_json, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* ---- result lines ---- */

int report_tracks(sender *s)
{
    for (unsigned i = 0; i < s->ntracks; i++) {
        const track *t = &s->tracks[i];
        char hex[2 * SHA256_LEN + 1];
        if (t->state != TS_DONE)
            continue;
        hex_encode(t->digest, SHA256_LEN, hex);
        printf("%s %llu %llu %s\n", t->id, (unsigned long long)track_chunk_count(t),
               (unsigned long long)s->src.avail, hex);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        error_msg(s, "cannot write the results to stdout: %s", strerror(errno));
        return -1;
    }
    return 0;
}
