/* test_ops.c -- /healthz, /readyz (checks and drain) and /metrics over HTTP. */
#include "check.h"
#include "harness.h"
#include "seashore/drain.h"
#include "seashore/metrics.h"
#include "seashore/ops.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic bool dependency_up;

static bool fake_dependency(void *arg, char *why, size_t whylen)
{
    (void)arg;
    if (dependency_up)
        return true;
    snprintf(why, whylen, "down for the test");
    return false;
}

static char base[64];

static long get(const char *path, char **body)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    long status = 0;
    size_t len;
    if (harness_http_get(url, &status, body, &len) != 0)
        return -1;
    return status;
}

static void test_endpoints(void)
{
    char *body = NULL;
    CHECK_EQ_INT(get("/healthz", &body), 200);
    free(body);
    CHECK_EQ_INT(get("/readyz", &body), 503);
    CHECK_CONTAINS(body, "dep: down for the test");
    free(body);
    dependency_up = true;
    CHECK_EQ_INT(get("/readyz", &body), 200);
    free(body);
    ss_series_inc(ss_metric_series(ss_metrics_counter("seashore_test_total", "t", NULL)));
    CHECK_EQ_INT(get("/metrics", &body), 200);
    CHECK_CONTAINS(body, "seashore_test_total 1\n");
    free(body);
    CHECK_EQ_INT(get("/nope", &body), 404);
    free(body);
}

static void test_draining_is_not_ready(void)
{
    char *body = NULL;
    ss_drain_request();
    CHECK_EQ_INT(get("/readyz", &body), 503);
    CHECK_CONTAINS(body, "draining");
    free(body);
    CHECK_EQ_INT(get("/healthz", &body), 200); /* still alive while draining */
    free(body);
}

int main(void)
{
    ss_ops *ops = ss_ops_start("127.0.0.1:0");
    CHECK(ops != NULL);
    if (!ops)
        return check_finish();
    CHECK(ss_ops_port(ops) > 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", ss_ops_port(ops));
    CHECK_EQ_INT(ss_ops_add_ready_check(ops, "dep", fake_dependency, NULL), 0);
    TEST_RUN(test_endpoints);
    TEST_RUN(test_draining_is_not_ready);
    ss_ops_stop(ops);
    ss_metrics_free();
    return check_finish();
}
