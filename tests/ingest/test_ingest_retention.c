/* test_ingest_retention.c -- the chunk log holds only what the object store
 * lacks: after the uploader commits (PostgreSQL committed_seq +
 * track.committed.<id>), chunk-store deletes the committed chunks except the
 * header (chunk 0) and the newest one, so the stream's bytes fall back; a
 * muxed notice alone deletes nothing, but once PostgreSQL says the track is
 * complete and muxed the rest goes. The track's resume point survives both
 * (a reconnecting client still gets its Welcome and Ended). */
#include "check.h"
#include "ingest_stack.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seashore/v1/work.pb-c.h"

#define CHUNK 65536

static ingest_stack stack;
static char media[1024], track[37];
static natsConnection *nc;
static jsCtx *js;

static uint64_t stream_bytes(void)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    uint64_t bytes = UINT64_MAX;
    if (js_GetStreamInfo(&si, js, "CHUNKS", NULL, &jerr) == NATS_OK)
        bytes = si->State.Bytes;
    jsStreamInfo_Destroy(si);
    return bytes;
}

/* Waits until the stream holds at most `limit` bytes; returns its size. */
static uint64_t wait_bytes_at_most(uint64_t limit)
{
    uint64_t b = stream_bytes();
    for (int i = 0; i < 100 && b > limit; i++) {
        usleep(50000);
        b = stream_bytes();
    }
    return b;
}

static int send_track(const char *name, const char *track_id)
{
    return stack_send(&stack, name, media, "65536", track_id);
}

static void notify(const char *what, uint64_t committed)
{
    char subject[96];
    uint8_t buf[128];
    Seashore__V1__CommittedUpdate u = SEASHORE__V1__COMMITTED_UPDATE__INIT;
    u.track_id = track;
    u.committed_seq = committed;
    u.committed_bytes = committed * CHUNK;
    size_t n = seashore__v1__committed_update__pack(&u, buf);
    snprintf(subject, sizeof subject, "track.%s.%s", what, track);
    natsConnection_Publish(nc, subject, buf, (int)n);
    natsConnection_Flush(nc);
}

/* Runs one statement built from a literal format and one argument. */
#define SQL(fmt, arg)                                                                              \
    do {                                                                                           \
        char q_[512];                                                                              \
        snprintf(q_, sizeof q_, fmt, arg);                                                         \
        CHECK_EQ_INT(harness_pg_exec(&stack.pg, q_, NULL), 0);                                     \
    } while (0)

static bool read_first_chunk_matches(void)
{
    size_t flen = 0;
    char *file = harness_read_file(media, &flen);
    uint8_t *got = NULL;
    size_t len = 0;
    /* whole-track reads now fail on the released range; the header stays */
    bool whole_fails = stack_read_track(&stack, track, &got, &len) != 0;
    free(got);
    got = NULL;
    bool ok = whole_fails && stack_read_range(&stack, track, 0, CHUNK, &got, &len) == 0 &&
              len == CHUNK && file && memcmp(got, file, CHUNK) == 0;
    free(got);
    free(file);
    return ok;
}

static void test_committed_chunks_leave_the_log(void)
{
    char *log;
    if (!CHECK_EQ_INT(send_track("send", NULL), 0))
        return;
    log = stack_log(&stack, "send");
    CHECK(log && sscanf(log, "%36s", track) == 1);
    free(log);
    uint64_t before = stream_bytes();
    CHECK(before > 40 * CHUNK);

    SQL("UPDATE tracks SET committed_seq = 40, committed_bytes = 40 * 65536 WHERE id = '%s'",
        track);
    notify("committed", 40);
    uint64_t after = wait_bytes_at_most(before - 38 * CHUNK);
    printf("stream bytes: %llu before, %llu after committing 40 of %llu chunks\n",
           (unsigned long long)before, (unsigned long long)after,
           (unsigned long long)(before / CHUNK));
    CHECK(after <= before - 38 * CHUNK); /* chunks 1..39 deleted */
    CHECK(after >= 2 * CHUNK);           /* header and tail kept */
    CHECK(read_first_chunk_matches());
    /* the track's state survives: a resend of the whole file is recognised */
    CHECK_EQ_INT(send_track("resend-after-commit", track), 0);
}

static void test_muxed_track_leaves_the_log(void)
{
    uint64_t before = stream_bytes();
    notify("muxed", 0); /* PostgreSQL does not agree yet: nothing happens */
    usleep(500000);
    CHECK_EQ_INT(stream_bytes(), before);

    SQL("UPDATE tracks SET state = 'complete', committed_seq = chunk_count WHERE id = '%s'", track);
    SQL("INSERT INTO outputs (track_id, kind, state) VALUES ('%s', 'webm', 'done')", track);
    notify("muxed", 0);
    CHECK_EQ_INT(wait_bytes_at_most(0), 0);
    char *v = NULL;
    char q[256];
    snprintf(q, sizeof q, "SELECT log_released FROM tracks WHERE id = '%s'", track);
    CHECK_EQ_INT(harness_pg_exec(&stack.pg, q, &v), 0);
    CHECK_EQ_STR(v, "t");
    free(v);
    CHECK_EQ_INT(send_track("resend-after-mux", track), 0);
}

int main(void)
{
    if (CHECK_EQ_INT(stack_start(&stack, "test_ingest_retention"), 0) &&
        CHECK_EQ_INT(natsConnection_ConnectTo(&nc, stack.nats.url), NATS_OK) &&
        CHECK_EQ_INT(natsConnection_JetStream(&js, nc, NULL), NATS_OK)) {
        snprintf(media, sizeof media, "%s/media.bin", harness_dir(stack.h));
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "head -c %d /dev/urandom > '%s'", 48 * CHUNK - 1000, media);
        CHECK_EQ_INT(system(cmd), 0);
        TEST_RUN(test_committed_chunks_leave_the_log);
        TEST_RUN(test_muxed_track_leaves_the_log);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
