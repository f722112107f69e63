/* service.h -- the start-up and shutdown every Sea Shore service shares.
 *
 * A service's main() is:
 *     ss_service svc;
 *     if (ss_service_init(&svc, argc, argv, "chunk-store", SS_NEEDS_NATS | SS_NEEDS_PG,
 *                         my_vars, nmy_vars) != 0) return 1;
 *     ... start its own work, register readiness checks with svc.ops ...
 *     ss_drain_wait(-1);   ... stop taking work, finish what is in flight ...
 *     ss_service_cleanup(&svc);
 * ss_service_init() handles --config-json/--help, loads the common and the
 * service's variables (exiting 2 naming a bad one), sets up logging, the
 * drain signal thread, the ops endpoint, and the NATS and PostgreSQL
 * connections the service needs, with their readiness checks.
 */
#ifndef SEASHORE_SERVICE_H
#define SEASHORE_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "nats.h"
#include "ops.h"
#include "pg.h"
#include "s3.h"

#define SS_NEEDS_NATS 0x1u
#define SS_NEEDS_PG   0x2u
#define SS_NEEDS_S3   0x4u /* the R2_* variables and an object store readiness check */

typedef struct ss_service {
    const char *name;          /* e.g. "chunk-store" */
    unsigned needs;            /* SS_NEEDS_* */
    const char *log_level;     /* LOG_LEVEL */
    const char *ops_listen;    /* OPS_LISTEN */
    const char *nats_url;      /* NATS_URL, when SS_NEEDS_NATS */
    const char *database_url;  /* DATABASE_URL, when SS_NEEDS_PG (secret) */
    int64_t drain_timeout_ms;  /* DRAIN_TIMEOUT: longest a drain may take */
    ss_ops *ops;               /* owned */
    ss_nats nats;              /* owned, when SS_NEEDS_NATS */
    ss_pg *pg;                 /* owned, when SS_NEEDS_PG */
    const char *r2_account_id; /* R2_ACCOUNT_ID: derives the endpoint when R2_ENDPOINT is unset */
    ss_s3_config s3;           /* R2_* variables, when SS_NEEDS_S3 */
} ss_service;

/* Returns 0 when the service should run; exits the process itself for
 * --config-json/--help (status 0) and for a bad configuration (status 2);
 * returns -1 when a resource could not be set up (logged). */
int ss_service_init(ss_service *svc, int argc, char **argv, const char *name, unsigned needs,
                    const ss_config_var *vars, size_t nvars) __attribute__((warn_unused_result));

/* Closes the connections, stops the ops endpoint and the drain thread,
 * frees the registry and the configuration. */
void ss_service_cleanup(ss_service *svc);

#endif
