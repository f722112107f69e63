/* ops.h -- the operations HTTP endpoint every service serves.
 *
 *   GET /healthz  200 while the process runs (liveness)
 *   GET /readyz   200 when every registered readiness check passes and the
 *                 service is not draining, else 503 with the failing checks
 *   GET /metrics  the metrics registry in Prometheus text format
 *
 * Served by libmicrohttpd on its own thread, so a busy or blocked service
 * loop never makes a probe time out. Readiness checks run on that thread:
 * they must be thread-safe and fast (they read state the service keeps
 * current, e.g. the NATS connection status).
 */
#ifndef SEASHORE_OPS_H
#define SEASHORE_OPS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ss_ops ss_ops;

/* A readiness check: returns true when the dependency answers; may write a
 * short reason into why (whylen bytes) when it does not. */
typedef bool (*ss_ready_fn)(void *arg, char *why, size_t whylen);

/* Starts listening on `listen` ("host:port"; port 0 picks a free one).
 * Returns NULL and logs the reason on failure. Caller owns the result. */
ss_ops *ss_ops_start(const char *listen);

/* Adds a named readiness check (name e.g. "nats", "postgres"); at most 8. */
int ss_ops_add_ready_check(ss_ops *ops, const char *name, ss_ready_fn fn, void *arg);

/* The port actually bound (useful with port 0). */
int ss_ops_port(const ss_ops *ops);

/* Stops the server and frees it; accepts NULL. */
void ss_ops_stop(ss_ops *ops);

#endif
