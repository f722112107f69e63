/* chunk-store -- the durable chunk log (JetStream) and its index
 * (PostgreSQL): which bytes of a track are durable, ended, uploaded
 * (docs/chunk-path.md). */
#include "chunk_store.h"

#include "seashore/drain.h"
#include "seashore/log.h"

#include <stdio.h>

static cs_ctx cs;
static volatile bool serving;

static bool serving_ready(void *arg, char *why, size_t whylen)
{
    (void)arg;
    if (!serving)
        snprintf(why, whylen, "streams and request handlers not set up yet");
    return serving;
}

static const ss_config_var store_vars[] = {
    {"CHUNK_LOG_MAX_BYTES", SS_CONFIG_SIZE, false, false, "2GiB", 1 << 20, INT64_MAX, NULL,
     "size limit of the chunk log (JetStream CHUNKS); when full, new chunks get BACK_PRESSURE",
     &cs.log_max_bytes},
    {"CHUNK_LOG_MAX_TRACKS", SS_CONFIG_INT, false, false, "0", 0, 1000000, NULL,
     "recording tracks the chunk log admits at once (more wait with BACK_PRESSURE); 0: as many "
     "as it can hold a whole upload part for, (CHUNK_LOG_MAX_BYTES - MAX_CHUNK_BYTES) / "
     "(UPLOAD_PART_SIZE * 17/16 + 3 * MAX_CHUNK_BYTES). More than that can deadlock the log",
     &cs.max_tracks},
    {"CHUNK_LOG_ADMISSION_TIMEOUT", SS_CONFIG_DURATION, false, false, "10m", 1000, 86400000, NULL,
     "an admitted track with no chunk in the log or index for this long gives its room back "
     "(its ingest-recorder died between the Hello and the first chunk); looked at with each "
     "INDEX_SWEEP_INTERVAL",
     &cs.admission_timeout_ms},
    {"CHUNK_LOG_REPLICAS", SS_CONFIG_INT, false, false, "1", 1, 5, NULL,
     "JetStream replicas of the CHUNKS, WORK, SESSIONS and ADMISSION streams (3 on Kubernetes)",
     &cs.replicas},
    {"MAX_CHUNK_BYTES", SS_CONFIG_SIZE, false, false, "1MiB", 1024, 16 << 20, NULL,
     "largest chunk a client may send (same value in ingest-recorder)", &cs.max_chunk_bytes},
    {"UPLOAD_PART_SIZE", SS_CONFIG_SIZE, false, false, "8MiB", 5 << 20, 5LL << 30, NULL,
     "multipart part size for new tracks (R2 needs equal parts, at least 5 MiB)", &cs.part_size},
    {"READ_MAX_BYTES", SS_CONFIG_SIZE, false, false, "1MiB", 4096, 4 << 20, NULL,
     "largest byte range one chunkstore.read request returns", &cs.read_max_bytes},
    {"READ_THREADS", SS_CONFIG_INT, false, false, "4", 1, 64, NULL,
     "chunkstore.read requests served at once (the muxer's live reads; one per live track "
     "keeps them from queueing)",
     &cs.read_threads},
    {"INDEX_SWEEP_INTERVAL", SS_CONFIG_DURATION, false, false, "30s", 100, 3600000, NULL,
     "how often the indexer looks for tracks whose log holds chunks its consumer never "
     "delivered (a track is indexed from the log after two looks without progress)",
     &cs.index_sweep_ms},
    {"INDEX_WAIT_THREADS", SS_CONFIG_INT, false, false, "32", 1, 256, NULL,
     "chunkstore.end and chunkstore.chunk requests served at once (each may wait for the "
     "indexer; tracks that end or resume together do not queue behind each other)",
     &cs.index_wait_threads},
    {"CHUNK_LOG_KEEP_COMMITTED", SS_CONFIG_BOOL, false, false, "false", 0, 0, NULL,
     "keep committed chunks in the log until the track is muxed, so a part the store loses can "
     "be uploaded again (the log then grows with the length of recordings)",
     &cs.keep_committed},
};

int main(int argc, char **argv)
{
    ss_service svc;
    int rc = 1;
    if (ss_service_init(&svc, argc, argv, "chunk-store", SS_NEEDS_NATS | SS_NEEDS_PG, store_vars,
                        sizeof store_vars / sizeof store_vars[0]) != 0)
        return 1;
    cs.svc = &svc;
    cs.js = svc.nats.js;
    cs.pg_requests = svc.pg;
    cs.pg_index = ss_pg_open(svc.database_url);
    cs.pg_reads = ss_pg_open(svc.database_url);
    if (cs.pg_index == NULL || cs.pg_reads == NULL)
        goto out;
    ss_ops_add_ready_check(svc.ops, "chunk-log", serving_ready, NULL);
    if (cs_admission_init() != 0 || cs_streams_ensure(&cs) != 0 || cs_requests_start(&cs) != 0 ||
        cs_retention_start(&cs) != 0 || cs_admission_start(&cs) != 0 || cs_indexer_start(&cs) != 0)
        goto out;
    serving = true;
    ss_log_info("chunk-store running", NULL);
    ss_drain_wait(-1);
    rc = 0;
out:
    cs_requests_stop();
    cs_retention_stop();
    cs_admission_stop();
    cs_indexer_stop();
    ss_pg_close(cs.pg_index);
    ss_pg_close(cs.pg_reads);
    ss_log_info(rc == 0 ? "drained" : "stopped on error", NULL);
    ss_service_cleanup(&svc);
    return rc;
}
