/* ops.c -- /healthz, /readyz and /metrics over libmicrohttpd (see ops.h). */
#include "seashore/ops.h"
#include "seashore/http.h"
#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/metrics.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS_MAX_CHECKS      8
#define OPS_MAX_CONNECTIONS 64 /* probes and scrapers, not users */
#define OPS_TIMEOUT_S       10

struct ss_ops {
    struct MHD_Daemon *daemon;
    int port;
    struct {
        const char *name;
        ss_ready_fn fn;
        void *arg;
    } checks[OPS_MAX_CHECKS]; /* an entry is complete before nchecks counts it */
    _Atomic int nchecks;      /* read by the MHD thread */
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                               const char *content_type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* "ok\n" or one line per failing check: "nats: not connected". */
static enum MHD_Result serve_readyz(ss_ops *ops, struct MHD_Connection *conn)
{
    char report[1024] = "";
    size_t used = 0;
    bool ready = true;
    if (ss_drain_requested()) {
        ready = false;
        used += (size_t)snprintf(report, sizeof report, "draining\n");
    }
    for (int i = 0; i < ops->nchecks; i++) {
        char why[200] = "not ready";
        if (ops->checks[i].fn(ops->checks[i].arg, why, sizeof why))
            continue;
        ready = false;
        if (used < sizeof report)
            used += (size_t)snprintf(report + used, sizeof report - used, "%s: %s\n",
                                     ops->checks[i].name, why);
    }
    return ss_http_respond_text(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                                ready ? "ok\n" : report);
}

static enum MHD_Result serve_metrics(struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text = ss_metrics_render(&len);
    if (!text)
        return ss_http_respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return respond(conn, MHD_HTTP_OK, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)req_cls;
    ss_ops *ops = cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* ops endpoints take no body; drop it */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return ss_http_respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/healthz") == 0)
        return ss_http_respond_text(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return serve_readyz(ops, conn);
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(conn);
    return ss_http_respond_text(conn, MHD_HTTP_NOT_FOUND,
                                "not found: try /healthz, /readyz, /metrics\n");
}

ss_ops *ss_ops_start(const char *listen)
{
    ss_ops *ops = calloc(1, sizeof *ops);
    if (!ops)
        return NULL;
    ops->daemon =
        ss_http_start(listen, handle_request, ops, OPS_MAX_CONNECTIONS, OPS_TIMEOUT_S, &ops->port);
    if (!ops->daemon) {
        free(ops);
        return NULL;
    }
    ss_log_info("ops endpoint listening", "{s:s, s:i}", "listen", listen, "port", ops->port);
    return ops;
}

int ss_ops_add_ready_check(ss_ops *ops, const char *name, ss_ready_fn fn, void *arg)
{
    if (!ops || ops->nchecks == OPS_MAX_CHECKS)
        return -1;
    ops->checks[ops->nchecks].name = name;
    ops->checks[ops->nchecks].fn = fn;
    ops->checks[ops->nchecks].arg = arg;
    ops->nchecks++;
    return 0;
}

int ss_ops_port(const ss_ops *ops)
{
    return ops ? ops->port : 0;
}

void ss_ops_stop(ss_ops *ops)
{
    if (!ops)
        return;
    MHD_stop_daemon(ops->daemon);
    free(ops);
}
