/* metrics.c -- Prometheus registry and text exposition (see metrics.h). */
#include "seashore/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

struct ss_series {
    char *label_values[SS_METRICS_MAX_LABELS];
    _Atomic uint64_t
        value_bits;         /* double, as bits, for counters and gauges; the sum for histograms */
    _Atomic uint64_t count; /* histograms: observations */
    _Atomic uint64_t buckets[SS_METRICS_MAX_BUCKETS]; /* histograms: per bucket, not cumulative */
    const ss_metric *family;
};

struct ss_metric {
    char *name;
    char *help;
    metric_type type;
    char *label_names[SS_METRICS_MAX_LABELS];
    size_t nlabels;
    double bounds[SS_METRICS_MAX_BUCKETS];
    size_t nbounds;
    ss_series **series; /* owned; grows up to SS_METRICS_MAX_SERIES, guarded by registry_lock */
    size_t nseries, cap;
    struct ss_metric *next;
};

/* registry_lock guards the family list and each family's series array;
 * series values are atomics and are updated without it. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ss_metric *families, *families_tail;
static _Atomic uint64_t dropped_series;
static time_t process_start;

static uint64_t double_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bits_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static bool valid_name(const char *name, bool allow_colon)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                  (allow_colon && *p == ':') || (p != name && *p >= '0' && *p <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static ss_metric *find_family(const char *name)
{
    for (ss_metric *m = families; m; m = m->next) {
        if (strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

static void family_free(ss_metric *m)
{
    for (size_t i = 0; i < m->nseries; i++) {
        for (size_t j = 0; j < m->nlabels; j++)
            free(m->series[i]->label_values[j]);
        free(m->series[i]);
    }
    free(m->series);
    for (size_t j = 0; j < m->nlabels; j++)
        free(m->label_names[j]);
    free(m->name);
    free(m->help);
    free(m);
}

static ss_metric *family_new(const char *name, const char *help, metric_type type,
                             const char *const *labels)
{
    ss_metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    bool ok = m->name && m->help;
    for (size_t i = 0; ok && labels && labels[i]; i++) {
        ok = i < SS_METRICS_MAX_LABELS && valid_name(labels[i], false) &&
             strcmp(labels[i], "le") != 0 && (m->label_names[i] = strdup(labels[i])) != NULL;
        m->nlabels = i + 1;
    }
    if (!ok) {
        if (m->nlabels > SS_METRICS_MAX_LABELS)
            m->nlabels = SS_METRICS_MAX_LABELS;
        family_free(m);
        return NULL;
    }
    return m;
}

static ss_metric *register_family(const char *name, const char *help, metric_type type,
                                  const char *const *labels, const double *bounds, size_t nbounds)
{
    if (!valid_name(name, true) || nbounds > SS_METRICS_MAX_BUCKETS)
        return NULL;
    for (size_t i = 1; i < nbounds; i++) {
        if (!(bounds[i] > bounds[i - 1]))
            return NULL;
    }
    ss_metric *m = family_new(name, help, type, labels);
    if (!m)
        return NULL;
    if (nbounds)
        memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
    m->nbounds = nbounds;
    pthread_mutex_lock(&registry_lock);
    if (find_family(name)) {
        pthread_mutex_unlock(&registry_lock);
        family_free(m);
        return NULL;
    }
    if (!process_start)
        process_start = time(NULL);
    if (families_tail)
        families_tail->next = m;
    else
        families = m;
    families_tail = m;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

ss_metric *ss_metrics_counter(const char *name, const char *help, const char *const *labels)
{
    return register_family(name, help, METRIC_COUNTER, labels, NULL, 0);
}

ss_metric *ss_metrics_gauge(const char *name, const char *help, const char *const *labels)
{
    return register_family(name, help, METRIC_GAUGE, labels, NULL, 0);
}

ss_metric *ss_metrics_histogram(const char *name, const char *help, const char *const *labels,
                                const double *bounds, size_t nbounds)
{
    return register_family(name, help, METRIC_HISTOGRAM, labels, bounds, nbounds);
}

static ss_series *series_find(ss_metric *m, const char *const *values)
{
    for (size_t i = 0; i < m->nseries; i++) {
        size_t j = 0;
        while (j < m->nlabels && strcmp(m->series[i]->label_values[j], values[j]) == 0)
            j++;
        if (j == m->nlabels)
            return m->series[i];
    }
    return NULL;
}

static ss_series *series_add(ss_metric *m, const char *const *values)
{
    if (m->nseries == SS_METRICS_MAX_SERIES) {
        dropped_series++;
        return NULL;
    }
    if (m->nseries == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4;
        ss_series **grown = realloc(m->series, cap * sizeof *grown);
        if (!grown)
            return NULL;
        m->series = grown;
        m->cap = cap;
    }
    ss_series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->family = m;
    for (size_t j = 0; j < m->nlabels; j++) {
        s->label_values[j] = strdup(values[j] ? values[j] : "");
        if (!s->label_values[j]) {
            while (j-- > 0)
                free(s->label_values[j]);
            free(s);
            return NULL;
        }
    }
    m->series[m->nseries++] = s;
    return s;
}

ss_series *ss_metric_labels(ss_metric *m, const char *const *values)
{
    if (!m)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    ss_series *s = series_find(m, values);
    if (!s)
        s = series_add(m, values);
    pthread_mutex_unlock(&registry_lock);
    return s;
}

ss_series *ss_metric_series(ss_metric *m)
{
    static const char *const none[SS_METRICS_MAX_LABELS] = {0};
    return ss_metric_labels(m, none);
}

static void atomic_add_double(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load(bits);
    while (!atomic_compare_exchange_weak(bits, &old, double_bits(bits_double(old) + v)))
        ;
}

void ss_series_inc(ss_series *s)
{
    ss_series_add(s, 1.0);
}

void ss_series_add(ss_series *s, double v)
{
    if (s)
        atomic_add_double(&s->value_bits, v);
}

void ss_series_set(ss_series *s, double v)
{
    if (s)
        atomic_store(&s->value_bits, double_bits(v));
}

void ss_series_observe(ss_series *s, double v)
{
    if (!s)
        return;
    const ss_metric *m = s->family;
    size_t i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    if (i < m->nbounds)
        s->buckets[i]++;
    s->count++;
    atomic_add_double(&s->value_bits, v);
}

double ss_series_value(const ss_series *s)
{
    return s ? bits_double(atomic_load(&s->value_bits)) : 0.0;
}

static void write_value(FILE *f, double v)
{
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else
        fprintf(f, "%.17g", v);
}

/* HELP text escapes backslash and newline; label values also escape '"'. */
static void write_escaped(FILE *f, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (quote && *s == '"')
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

/* Writes name{labels[,le="x"]} with the series' label pairs. */
static void write_sample_name(FILE *f, const ss_metric *m, const ss_series *s, const char *suffix,
                              const char *le)
{
    fprintf(f, "%s%s", m->name, suffix);
    if (m->nlabels == 0 && !le)
        return;
    fputc('{', f);
    for (size_t j = 0; j < m->nlabels; j++) {
        fprintf(f, "%s%s=\"", j ? "," : "", m->label_names[j]);
        write_escaped(f, s->label_values[j], true);
        fputc('"', f);
    }
    if (le)
        fprintf(f, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    fputc('}', f);
}

static void write_histogram(FILE *f, const ss_metric *m, const ss_series *s)
{
    uint64_t cumulative = 0;
    char le[64];
    for (size_t i = 0; i < m->nbounds; i++) {
        cumulative += s->buckets[i];
        snprintf(le, sizeof le, "%.17g", m->bounds[i]);
        write_sample_name(f, m, s, "_bucket", le);
        fprintf(f, " %llu\n", (unsigned long long)cumulative);
    }
    write_sample_name(f, m, s, "_bucket", "+Inf");
    fprintf(f, " %llu\n", (unsigned long long)s->count);
    write_sample_name(f, m, s, "_sum", NULL);
    fputc(' ', f);
    write_value(f, bits_double(s->value_bits));
    fputc('\n', f);
    write_sample_name(f, m, s, "_count", NULL);
    fprintf(f, " %llu\n", (unsigned long long)s->count);
}

static void write_family(FILE *f, const ss_metric *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    fprintf(f, "# HELP %s ", m->name);
    write_escaped(f, m->help, false);
    fprintf(f, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    for (size_t i = 0; i < m->nseries; i++) {
        const ss_series *s = m->series[i];
        if (m->type == METRIC_HISTOGRAM) {
            write_histogram(f, m, s);
            continue;
        }
        write_sample_name(f, m, s, "", NULL);
        fputc(' ', f);
        write_value(f, bits_double(s->value_bits));
        fputc('\n', f);
    }
}

/* The standard process_* metrics, read at scrape time. */
static void write_process_metrics(FILE *f)
{
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm) {
        long size;
        if (fscanf(statm, "%ld %ld", &size, &pages) != 2)
            pages = 0;
        fclose(statm);
    }
    fprintf(f, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
               "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
    write_value(f, cpu);
    fprintf(f,
            "\n# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n",
            (long long)pages * sysconf(_SC_PAGESIZE));
    fprintf(f,
            "# HELP process_start_time_seconds Start time of the process since unix epoch.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %lld\n",
            (long long)process_start);
    fprintf(f,
            "# HELP seashore_metrics_dropped_series_total Series not created because a "
            "family reached its limit.\n# TYPE seashore_metrics_dropped_series_total counter\n"
            "seashore_metrics_dropped_series_total %llu\n",
            (unsigned long long)dropped_series);
}

char *ss_metrics_render(size_t *len_out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    if (!process_start)
        process_start = time(NULL);
    for (const ss_metric *m = families; m; m = m->next)
        write_family(f, m);
    pthread_mutex_unlock(&registry_lock);
    write_process_metrics(f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    if (len_out)
        *len_out = len;
    return buf;
}

void ss_metrics_free(void)
{
    pthread_mutex_lock(&registry_lock);
    ss_metric *m = families;
    families = families_tail = NULL;
    pthread_mutex_unlock(&registry_lock);
    while (m) {
        ss_metric *next = m->next;
        family_free(m);
        m = next;
    }
}
