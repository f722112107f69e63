/* test_metrics.c -- the registry renders valid Prometheus text format 0.0.4. */
#include "check.h"
#include "harness.h"
#include "seashore/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static void test_exact_exposition(void)
{
    static const char *const labels[] = {"service", "code", NULL};
    ss_metric *acks = ss_metrics_counter("seashore_acks_total", "Chunks acked.", labels);
    ss_metric *conns = ss_metrics_gauge("seashore_connections", "Open connections.", NULL);
    static const double bounds[] = {0.01, 0.1, 1};
    ss_metric *lat = ss_metrics_histogram("seashore_ack_seconds", "Ack latency.", NULL, bounds, 3);
    CHECK(acks && conns && lat);
    ss_series_add(ss_metric_labels(acks, (const char *const[]){"ingest", "ok"}), 3);
    ss_series_inc(ss_metric_labels(acks, (const char *const[]){"ingest", "a\"b\\c\nd"}));
    ss_series_set(ss_metric_series(conns), 7);
    ss_series *h = ss_metric_series(lat);
    ss_series_observe(h, 0.005);
    ss_series_observe(h, 0.05);
    ss_series_observe(h, 5);
    char *text = ss_metrics_render(NULL);
    CHECK_CONTAINS(text, "# HELP seashore_acks_total Chunks acked.\n"
                         "# TYPE seashore_acks_total counter\n"
                         "seashore_acks_total{service=\"ingest\",code=\"ok\"} 3\n"
                         "seashore_acks_total{service=\"ingest\",code=\"a\\\"b\\\\c\\nd\"} 1\n");
    CHECK_CONTAINS(text, "# TYPE seashore_connections gauge\nseashore_connections 7\n");
    CHECK_CONTAINS(text, "seashore_ack_seconds_bucket{le=\"0.01\"} 1\n"
                         "seashore_ack_seconds_bucket{le=\"0.10000000000000001\"} 2\n"
                         "seashore_ack_seconds_bucket{le=\"1\"} 2\n"
                         "seashore_ack_seconds_bucket{le=\"+Inf\"} 3\n"
                         "seashore_ack_seconds_sum 5.0549999999999997\n"
                         "seashore_ack_seconds_count 3\n");
    CHECK_CONTAINS(text, "# TYPE process_resident_memory_bytes gauge\n");
    free(text);
}

static void test_bad_registrations_refused(void)
{
    CHECK(ss_metrics_counter("seashore_acks_total", "twice", NULL) == NULL);
    CHECK(ss_metrics_counter("9starts_with_digit", "bad", NULL) == NULL);
    CHECK(ss_metrics_gauge("has-dash", "bad", NULL) == NULL);
    CHECK(ss_metrics_gauge("bad_label", "bad", (const char *const[]){"le", NULL}) == NULL);
    static const double unsorted[] = {1, 0.5};
    CHECK(ss_metrics_histogram("bad_hist", "bad", NULL, unsorted, 2) == NULL);
}

/* A label fed from user input can never grow memory without bound. */
static void test_series_are_bounded(void)
{
    ss_metric *m =
        ss_metrics_counter("seashore_bounded_total", "b", (const char *const[]){"id", NULL});
    int created = 0;
    for (int i = 0; i < SS_METRICS_MAX_SERIES + 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        created += ss_metric_labels(m, (const char *const[]){id}) != NULL;
    }
    CHECK_EQ_INT(created, SS_METRICS_MAX_SERIES);
    char *text = ss_metrics_render(NULL);
    CHECK_CONTAINS(text, "seashore_metrics_dropped_series_total 10\n");
    free(text);
}

/* promtool (Debian's prometheus package) is the reference parser. */
static void test_promtool_accepts_output(void)
{
    char *text = ss_metrics_render(NULL);
    FILE *p = popen("promtool check metrics >/dev/null 2>&1", "w");
    CHECK(p != NULL);
    fputs(text, p);
    int status = pclose(p);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(text);
}

int main(void)
{
    TEST_RUN(test_exact_exposition);
    TEST_RUN(test_bad_registrations_refused);
    TEST_RUN(test_series_are_bounded);
    TEST_RUN(test_promtool_accepts_output);
    ss_metrics_free();
    return check_finish();
}
