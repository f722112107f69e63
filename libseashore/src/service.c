/* service.c -- common start-up and shutdown of a service (see service.h). */
#include "seashore/service.h"
#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/metrics.h"

#include <curl/curl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICE_MAX_VARS 64

/* The object store, with the names of the seed's .env.sample. */
static size_t s3_vars(ss_service *svc, ss_config_var *out)
{
    size_t n = 0;
    out[n++] = (ss_config_var){"R2_ENDPOINT",
                               SS_CONFIG_URL,
                               false,
                               false,
                               NULL,
                               0,
                               0,
                               "http,https",
                               "S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com "
                               "(default: derived from R2_ACCOUNT_ID)",
                               &svc->s3.endpoint};
    out[n++] = (ss_config_var){"R2_ACCOUNT_ID",
                               SS_CONFIG_STRING,
                               false,
                               false,
                               NULL,
                               0,
                               0,
                               NULL,
                               "Cloudflare account id, used when R2_ENDPOINT is not set",
                               &svc->r2_account_id};
    out[n++] = (ss_config_var){"R2_ACCESS_KEY_ID", SS_CONFIG_STRING,   true, true, NULL, 0, 0, NULL,
                               "S3 access key id", &svc->s3.access_key};
    out[n++] =
        (ss_config_var){"R2_SECRET_ACCESS_KEY", SS_CONFIG_STRING,   true, true, NULL, 0, 0, NULL,
                        "S3 secret access key", &svc->s3.secret_key};
    out[n++] = (ss_config_var){"R2_BUCKET_NAME",
                               SS_CONFIG_STRING,
                               true,
                               false,
                               NULL,
                               0,
                               0,
                               NULL,
                               "bucket of the raw tracks, editor files and manifests",
                               &svc->s3.bucket};
    out[n++] = (ss_config_var){"R2_REGION",
                               SS_CONFIG_STRING,
                               false,
                               false,
                               "auto",
                               0,
                               0,
                               NULL,
                               "SigV4 region: auto for R2, the bucket's region elsewhere",
                               &svc->s3.region};
    return n;
}

/* R2_ENDPOINT wins; else https://<R2_ACCOUNT_ID>.r2.cloudflarestorage.com. */
static void resolve_s3_endpoint(ss_service *svc)
{
    static char derived[256];
    if (svc->s3.endpoint || !(svc->needs & SS_NEEDS_S3))
        return;
    if (!svc->r2_account_id) {
        ss_log_fatal("invalid configuration", "{s:s, s:s}", "variable", "R2_ENDPOINT", "error",
                     "R2_ENDPOINT: required unless R2_ACCOUNT_ID is set");
        exit(SS_CONFIG_EXIT_CODE);
    }
    snprintf(derived, sizeof derived, "https://%s.r2.cloudflarestorage.com", svc->r2_account_id);
    svc->s3.endpoint = derived;
}

/* The variables every service reads, before its own. */
static size_t common_vars(ss_service *svc, ss_config_var *out)
{
    size_t n = 0;
    out[n++] = (ss_config_var){"LOG_LEVEL",
                               SS_CONFIG_STRING,
                               false,
                               false,
                               "info",
                               0,
                               0,
                               NULL,
                               "minimum log level: debug, info, warn, error",
                               &svc->log_level};
    out[n++] = (ss_config_var){"OPS_LISTEN",
                               SS_CONFIG_LISTEN,
                               false,
                               false,
                               "0.0.0.0:9090",
                               0,
                               0,
                               NULL,
                               "host:port of /healthz, /readyz and /metrics",
                               &svc->ops_listen};
    out[n++] = (ss_config_var){"DRAIN_TIMEOUT",
                               SS_CONFIG_DURATION,
                               false,
                               false,
                               "25s",
                               1000,
                               3600000,
                               NULL,
                               "ingest-recorder: longest its SIGTERM drain (acks, then close "
                               "1001) may take; the other services stop at once, handing "
                               "in-flight work back (redelivered at once)",
                               &svc->drain_timeout_ms};
    if (svc->needs & SS_NEEDS_NATS)
        out[n++] = (ss_config_var){"NATS_URL",
                                   SS_CONFIG_URL,
                                   true,
                                   false,
                                   NULL,
                                   0,
                                   0,
                                   "nats,tls",
                                   "NATS server URL(s), comma separated",
                                   &svc->nats_url};
    if (svc->needs & SS_NEEDS_PG)
        out[n++] = (ss_config_var){"DATABASE_URL",
                                   SS_CONFIG_URL,
                                   true,
                                   true,
                                   NULL,
                                   0,
                                   0,
                                   "postgres,postgresql",
                                   "PostgreSQL connection URL",
                                   &svc->database_url};
    if (svc->needs & SS_NEEDS_S3)
        n += s3_vars(svc, out + n);
    return n;
}

static void load_config(ss_service *svc, int argc, char **argv, const ss_config_var *vars,
                        size_t nvars)
{
    ss_config_var all[SERVICE_MAX_VARS];
    size_t n = common_vars(svc, all);
    for (size_t i = 0; i < nvars && n < SERVICE_MAX_VARS; i++)
        all[n++] = vars[i];
    ss_config_handle_args(argc, argv, svc->name, all, n);
    ss_config_load_or_exit(all, n);
    ss_log_level level;
    if (ss_log_level_parse(svc->log_level, &level) != 0) {
        ss_log_fatal("invalid configuration", "{s:s, s:s}", "variable", "LOG_LEVEL", "error",
                     "LOG_LEVEL: must be one of debug, info, warn, error");
        exit(SS_CONFIG_EXIT_CODE);
    }
    ss_log_init(svc->name, level);
    resolve_s3_endpoint(svc);
}

static int connect_dependencies(ss_service *svc)
{
    if (svc->needs & SS_NEEDS_NATS) {
        if (ss_nats_connect(&svc->nats, svc->nats_url, svc->name) != NATS_OK)
            return -1;
        ss_ops_add_ready_check(svc->ops, "nats", ss_nats_ready, &svc->nats);
    }
    if (svc->needs & SS_NEEDS_PG) {
        svc->pg = ss_pg_open(svc->database_url);
        if (!svc->pg)
            return -1;
        ss_ops_add_ready_check(svc->ops, "postgres", ss_pg_ready, svc->pg);
    }
    if (svc->needs & SS_NEEDS_S3) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -1;
        ss_ops_add_ready_check(svc->ops, "object-store", ss_s3_ready, &svc->s3);
    }
    return 0;
}

int ss_service_init(ss_service *svc, int argc, char **argv, const char *name, unsigned needs,
                    const ss_config_var *vars, size_t nvars)
{
    memset(svc, 0, sizeof *svc);
    /* Chunks (up to MiBs) pass through malloc on every hop; above glibc's
     * default 128 KiB threshold each one would be a fresh mmap, page-faulted
     * in on the copy and unmapped after. Keep them on the heap instead
     * (measured: most of chunk-store's CPU was those page faults). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    svc->name = name;
    svc->needs = needs;
    ss_log_init(name, SS_LOG_INFO);
    load_config(svc, argc, argv, vars, nvars);
    if (ss_drain_init() != 0) {
        ss_log_fatal("cannot install the signal thread", NULL);
        return -1;
    }
    svc->ops = ss_ops_start(svc->ops_listen);
    if (!svc->ops || connect_dependencies(svc) != 0) {
        ss_service_cleanup(svc);
        return -1;
    }
    ss_log_info("started", "{s:s}", "version", SEASHORE_VERSION);
    return 0;
}

void ss_service_cleanup(ss_service *svc)
{
    ss_ops_stop(svc->ops);
    svc->ops = NULL;
    if (svc->needs & SS_NEEDS_NATS) {
        ss_nats_close(&svc->nats);
        nats_CloseAndWait(2000);
    }
    ss_pg_close(svc->pg);
    svc->pg = NULL;
    if (svc->needs & SS_NEEDS_S3)
        curl_global_cleanup();
    ss_drain_shutdown();
    ss_metrics_free();
    ss_config_free();
}
