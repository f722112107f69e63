/* r2-uploader -- S3 multipart uploads of each track's raw byte stream,
 * part by part while the recording runs (docs/upload.md). */
#include "uploader.h"

#include <stdio.h>

#include "seashore/drain.h"
#include "seashore/log.h"

up_ctx up;

static const ss_config_var uploader_vars[] = {
    {"UPLOAD_CONCURRENCY", SS_CONFIG_INT, false, false, "4", 1, 64, NULL,
     "parts uploaded at once; part data in memory is about part size x (this + 1)",
     &up.concurrency},
    {"UPLOAD_READ_TIMEOUT", SS_CONFIG_DURATION, false, false, "5s", 100, 600000, NULL,
     "how long one read of a chunk from the chunk log may take before it is retried",
     &up.store_timeout_ms},
    {"UPLOAD_ACK_WAIT", SS_CONFIG_DURATION, false, false, "30s", 1000, 3600000, NULL,
     "work items of a crashed uploader are redelivered after this (live ones are kept alive)",
     &up.ack_wait_ms},
    {"UPLOAD_RETRY_MAX_DELAY", SS_CONFIG_DURATION, false, false, "30s", 100, 600000, NULL,
     "longest wait between retries of a transient store failure (retries never give up)",
     &up.retry_max_ms},
    {"UPLOAD_STALL_TIMEOUT", SS_CONFIG_DURATION, false, false, "30s", 1000, 600000, NULL,
     "a store request moving under 1 KiB/s for this long is cut and retried", &up.stall_timeout_ms},
};

int main(int argc, char **argv)
{
    ss_service svc;
    char err[256];
    int rc = 1;
    if (ss_service_init(&svc, argc, argv, "r2-uploader", SS_NEEDS_NATS | SS_NEEDS_PG | SS_NEEDS_S3,
                        uploader_vars, sizeof uploader_vars / sizeof uploader_vars[0]) != 0)
        return 1;
    up.svc = &svc;
    ss_s3_client_opts opts = {.connect_timeout_ms = 10000, .stall_timeout_ms = up.stall_timeout_ms};
    if (ss_s3_client_new(&svc.s3, &opts, &up.s3, err, sizeof err) != 0) {
        ss_log_error("cannot create the object store client", "{s:s}", "error", err);
        goto out;
    }
    if (up_workers_start() != 0)
        goto out;
    ss_log_info("r2-uploader running", "{s:I, s:s}", "concurrency", (long long)up.concurrency,
                "bucket", svc.s3.bucket);
    ss_drain_wait(-1);
    rc = 0;
out:
    ss_drain_request(); /* workers stop fetching; in-flight items are nak'ed */
    up_workers_join();
    ss_s3_client_free(up.s3);
    ss_log_info(rc == 0 ? "drained" : "stopped on error", NULL);
    ss_service_cleanup(&svc);
    return rc;
}
