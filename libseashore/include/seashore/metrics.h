/* metrics.h -- a small Prometheus metrics registry.
 *
 * Metric families are registered once at start (ss_metrics_counter() ...)
 * and live until ss_metrics_free(). Each family has a fixed list of label
 * names; a series is looked up by its label values (ss_metric_labels()) and
 * created on first use, up to SS_METRICS_MAX_SERIES per family so a bad
 * label value cannot grow memory without bound (the extra series are
 * counted in seashore_metrics_dropped_series_total). Updates are lock-free
 * atomics; registration and series creation take the registry lock.
 * ss_metrics_render() writes the text exposition format 0.0.4.
 */
#ifndef SEASHORE_METRICS_H
#define SEASHORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define SS_METRICS_MAX_LABELS  4
#define SS_METRICS_MAX_SERIES  1024
#define SS_METRICS_MAX_BUCKETS 16

typedef struct ss_metric ss_metric; /* one family: name, help, type, label names */
typedef struct ss_series ss_series; /* one labelled time series of a family */

/* Registers a family. `labels` is a NULL-terminated list of label names (or
 * NULL for none). Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; returns NULL on
 * a bad name or when registered twice. The registry owns the family. */
ss_metric *ss_metrics_counter(const char *name, const char *help, const char *const *labels);
ss_metric *ss_metrics_gauge(const char *name, const char *help, const char *const *labels);
/* `bounds` are the upper bounds of the buckets, ascending, at most
 * SS_METRICS_MAX_BUCKETS; +Inf is implicit. */
ss_metric *ss_metrics_histogram(const char *name, const char *help, const char *const *labels,
                                const double *bounds, size_t nbounds);

/* The series with these label values (as many as the family has label
 * names), created on first use. Returns NULL when the family is full. */
ss_series *ss_metric_labels(ss_metric *m, const char *const *values);
/* The unlabelled series of a family that has no labels. */
ss_series *ss_metric_series(ss_metric *m);

void ss_series_inc(ss_series *s);
void ss_series_add(ss_series *s, double v);     /* counters: v >= 0 */
void ss_series_set(ss_series *s, double v);     /* gauges */
void ss_series_observe(ss_series *s, double v); /* histograms */
double ss_series_value(const ss_series *s);     /* counters/gauges; for tests */

/* Renders every family into a malloc'ed NUL-terminated string; caller frees.
 * Returns NULL on allocation failure. */
char *ss_metrics_render(size_t *len_out);

/* Frees every family; for tests and clean shutdown. */
void ss_metrics_free(void);

#endif
