/* test_ingest_admission.c -- more recorders than the chunk log can hold a
 * whole upload part for. The log releases bytes only once they are in an
 * uploaded part; if every track stalled mid-part with the log full,
 * nothing would ever be uploaded again (the 400-recorder scale run
 * deadlocked so). Here the log (14 MiB, 5 MiB parts, 256 KiB chunks) has
 * room for two recording tracks; five record 8 MiB each at the same pace,
 * so without admission they fill it at ~2.8 MiB each and stop for good.
 * With it, the others wait at Hello (BACK_PRESSURE, close 1013), start as
 * tracks end, and every object is byte-exact; no admission is left over.
 * A track that connects and goes without a chunk gives its room back. */
#include "check.h"
#include "upload_util.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACKS      5
#define MEDIA_BYTES (8L << 20)
#define WAIT_MS     240000

static ingest_stack stack = {
    .with_swift = true,
    .with_uploader = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB", "CHUNK_LOG_MAX_BYTES=14MiB", "MAX_CHUNK_BYTES=256KiB"},
    .uploader_env = {"UPLOAD_ACK_WAIT=3s", "UPLOAD_RETRY_MAX_DELAY=1s"},
};

static double store_metric(const char *name)
{
    char url[64], needle[128];
    long status = 0;
    char *body = NULL;
    size_t len = 0;
    double v = -1;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", stack.store_ops_port);
    snprintf(needle, sizeof needle, "\n%s ", name);
    if (harness_http_get(url, &status, &body, &len) == 0 && body) {
        const char *at = strstr(body, needle);
        v = at ? atof(at + strlen(needle)) : 0;
    }
    free(body);
    return v;
}

static int64_t admitted_now(void)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int64_t n = -1;
    if (natsConnection_ConnectTo(&nc, stack.nats.url) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, "ADMISSION", NULL, &jerr) == NATS_OK)
        n = (int64_t)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return n;
}

/* bad-input: ingest websocket | a new track while the chunk log has room for a whole upload part
 * of no more recording tracks | `BACK_PRESSURE` (retryable), close 1013; admitted once a track
 * ends | none; every track completes byte-exact */
static void test_more_tracks_than_the_log_holds_parts_for(void)
{
    char media[1024], ids[TRACKS * 40] = "";
    const char *extra[] = {"--copies", "5", "--wait-committed", NULL};
    CHECK_EQ_INT(up_make_media(&stack, "media.bin", MEDIA_BYTES, media, sizeof media), 0);
    pid_t pid = up_send_bg(&stack, "send", media, 4, NULL, NULL, extra); /* 1 MiB/s per track */
    if (!CHECK(pid > 0))
        return;
    CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
    CHECK(up_wait_sql(&stack, "SELECT count(*) FROM tracks WHERE state = 'complete'", "5", 60000,
                      NULL, 0));
    CHECK_EQ_INT(up_sql(&stack, "SELECT string_agg(id::text, ' ') FROM tracks", ids, sizeof ids),
                 0);
    int n = 0;
    for (char *save = NULL, *id = strtok_r(ids, " ", &save); id; id = strtok_r(NULL, " ", &save)) {
        CHECK(up_object_matches(&stack, id, media));
        n++;
    }
    CHECK_EQ_INT(n, TRACKS);
    CHECK(store_metric("seashore_chunk_log_admissions_refused_total") > 0);
    CHECK_EQ_INT(admitted_now(), 0);
}

/* A new track whose connection closes before any chunk is durable gives
 * its admission back (ingest's chunkstore.admission.release notice), so
 * recorders that connect and vanish cannot use up the log's room. */
static void test_connections_without_chunks_release_their_room(void)
{
    CHECK_EQ_INT(
        stack_run_node(&stack, "admission-cases", "tests/ingest/admission_cases.mjs", 60000), 0);
    CHECK_EQ_INT(admitted_now(), 0);
}

int main(void)
{
    if (CHECK_EQ_INT(stack_start(&stack, "test_ingest_admission"), 0)) {
        TEST_RUN(test_connections_without_chunks_release_their_room);
        TEST_RUN(test_more_tracks_than_the_log_holds_parts_for);
    }
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
