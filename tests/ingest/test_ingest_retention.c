/* test_ingest_retention.c -- the chunk log holds only what the object store
 * lacks: after the uploader commits (PostgreSQL committed_seq +
 * track.committed.<id>), chunk-store deletes the committed chunks except the
 * header (chunk 0) and the newest one, so the stream's bytes fall back; a
 * muxed notice alone deletes nothing, but once PostgreSQL says the track is
 * complete and muxed the rest goes. The track's resume point survives both
 * (a reconnecting client still gets its Welcome and Ended).
 *
 * Releasing a track leaves the other tracks' chunks pending for the
 * stream's consumers. And the log, not the consumer, is the truth: chunks taken from
 * chunk-store's consumer by someone else (as if its state were lost) are
 * indexed from the log by the indexer's sweep, without an End. A deleted
 * session's tracks leave the log whole.
 *
 * A backend that asks again for chunks below the commit point it reported
 * has lost committed data, which a browser has deleted already:
 * seashore-send counts it in --stats-json and logs it. */
#include "check.h"
#include "ingest_stack.h"

#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seashore/nats.h"
#include "seashore/v1/chunks.pb-c.h"
#include "seashore/v1/work.pb-c.h"

#define CHUNK 65536

static ingest_stack stack = {
    .extra_env = {"INDEX_SWEEP_INTERVAL=1s", "CHUNK_LOG_ADMISSION_TIMEOUT=2s"}};
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

static void notify_track(const char *what, const char *track_id, uint64_t committed)
{
    char subject[96];
    uint8_t buf[128];
    Seashore__V1__CommittedUpdate u = SEASHORE__V1__COMMITTED_UPDATE__INIT;
    u.track_id = (char *)track_id;
    u.committed_seq = committed;
    u.committed_bytes = committed * CHUNK;
    size_t n = seashore__v1__committed_update__pack(&u, buf);
    snprintf(subject, sizeof subject, "track.%s.%s", what, track_id);
    CHECK_EQ_INT(natsConnection_Publish(nc, subject, buf, (int)n), NATS_OK);
    CHECK_EQ_INT(natsConnection_Flush(nc), NATS_OK);
}

static void notify(const char *what, uint64_t committed)
{
    notify_track(what, track, committed);
}

/* What chunk-store sends when it finds acked chunks missing from the log. */
static void request_resend(const char *track_id, uint64_t from_seq)
{
    char subject[96];
    uint8_t buf[256];
    Seashore__V1__ResendRequest r = SEASHORE__V1__RESEND_REQUEST__INIT;
    r.track_id = (char *)track_id;
    r.from_seq = from_seq;
    r.reason = "test";
    size_t n = seashore__v1__resend_request__pack(&r, buf);
    snprintf(subject, sizeof subject, "track.resend.%s", track_id);
    CHECK_EQ_INT(natsConnection_Publish(nc, subject, buf, (int)n), NATS_OK);
    CHECK_EQ_INT(natsConnection_Flush(nc), NATS_OK);
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

static uint64_t stream_msgs(void)
{
    jsStreamInfo *si = NULL;
    uint64_t n = UINT64_MAX;
    if (js_GetStreamInfo(&si, js, "CHUNKS", NULL, NULL) == NATS_OK)
        n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

static uint64_t consumer_pending(const char *name)
{
    jsConsumerInfo *ci = NULL;
    uint64_t n = UINT64_MAX;
    if (js_GetConsumerInfo(&ci, js, "CHUNKS", name, NULL, NULL) == NATS_OK)
        n = ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    return n;
}

/* Releasing a muxed track must not move the stream's consumers: a subject
 * purge in nats-server 2.9 moves every consumer that matches the subject to
 * the end of the stream, and the indexer's consumer then skipped the
 * chunks of every other track not delivered yet. A witness consumer that
 * has read nothing must still see every message left in the stream. */
static void test_release_leaves_other_tracks_pending(void)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    char other[37], muxed[37], *log;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "witness";
    cc.FilterSubject = "chunks.>";
    cc.AckPolicy = js_AckExplicit;
    if (!CHECK_EQ_INT(js_AddConsumer(&ci, js, "CHUNKS", &cc, NULL, NULL), NATS_OK))
        return;
    jsConsumerInfo_Destroy(ci);
    if (!CHECK_EQ_INT(send_track("send-muxed", NULL), 0) ||
        !CHECK_EQ_INT(send_track("send-other", NULL), 0))
        return;
    log = stack_log(&stack, "send-muxed");
    CHECK(log && sscanf(log, "%36s", muxed) == 1);
    free(log);
    log = stack_log(&stack, "send-other");
    CHECK(log && sscanf(log, "%36s", other) == 1);
    free(log);
    memcpy(track, muxed, sizeof track);
    SQL("UPDATE tracks SET state = 'complete', committed_seq = chunk_count WHERE id = '%s'", track);
    SQL("INSERT INTO outputs (track_id, kind, state) VALUES ('%s', 'webm', 'done')", track);
    uint64_t before = stream_msgs();
    notify("muxed", 0);
    uint64_t left = stream_msgs();
    for (int i = 0; i < 100 && left > before - 48; i++) {
        usleep(50000);
        left = stream_msgs();
    }
    CHECK_EQ_INT(left, before - 48); /* the muxed track's 48 chunks are gone */
    CHECK(left >= 48);               /* the other track's are not */
    CHECK_EQ_INT(consumer_pending("witness"), left);
    js_DeleteConsumer(js, "CHUNKS", "witness", NULL, NULL);
}

/* Pulls from chunk-store's own consumer and acks for `ms`: the chunks it
 * takes never reach the indexer through the consumer. Returns how many. */
static int steal_from_consumer(int ms)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    int stolen = 0;
    jsSubOptions_Init(&so);
    so.Stream = "CHUNKS";
    so.Consumer = "chunk-store";
    if (js_PullSubscribe(&sub, js, "chunks.>", "chunk-store", NULL, &so, &jerr) != NATS_OK)
        return -1;
    for (int waited = 0; waited < ms; waited += 100) {
        natsMsg *m = NULL;
        if (ss_js_fetch_one(sub, 100, &m, NULL) == NATS_OK && m != NULL) {
            natsMsg_Ack(m, NULL);
            stolen++;
        }
        natsMsg_Destroy(m);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return stolen;
}

/* The seq after the newest chunk of the track in the log (0: none). */
static uint64_t log_next_seq(const char *track_id)
{
    char subject[64];
    natsMsg *m = NULL;
    uint64_t next = 0;
    snprintf(subject, sizeof subject, "chunks.%s", track_id);
    if (js_GetLastMsg(&m, js, "CHUNKS", subject, NULL, NULL) != NATS_OK)
        return 0;
    Seashore__V1__ChunkRecord *c = seashore__v1__chunk_record__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    if (c != NULL)
        next = c->seq + 1;
    seashore__v1__chunk_record__free_unpacked(c, NULL);
    natsMsg_Destroy(m);
    return next;
}

static uint64_t indexed_seq(const char *track_id)
{
    char q[160], *v = NULL;
    snprintf(q, sizeof q, "SELECT durable_seq FROM tracks WHERE id = '%s'", track_id);
    uint64_t n = harness_pg_exec(&stack.pg, q, &v) == 0 && v ? strtoull(v, NULL, 10) : 0;
    free(v);
    return n;
}

/* chunk-store paused while a client records and someone else empties its
 * consumer; the client dies without an End. Once chunk-store runs again,
 * only its sweep (every second here) can find the chunks: the index must
 * reach the log's end. */
static void test_sweep_indexes_what_the_consumer_lost(void)
{
    const char *id = "5b0c2d9e-7a41-4f6b-9c3e-2d8f1a6b4c70";
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *tok = stack_token(&stack, NULL, 3600);
    char *argv[] = {bin,      "--url", stack.ws_url,   "--token", tok,          "--quiet",
                    "--rate", "10",    "--chunk-size", "65536",   "--track-id", (char *)id,
                    media,    NULL};
    pid_t pid = stack_spawn(&stack, "send-stolen", argv);
    sleep(1); /* welcomed (a Hello needs chunk-store), a few chunks indexed */
    harness_signal(stack.h, stack.store_pid, SIGSTOP);
    int stolen = steal_from_consumer(1500);
    harness_signal(stack.h, pid, SIGKILL);
    harness_wait_exit(stack.h, pid, 10000, NULL);
    int stolen_late = steal_from_consumer(500);
    harness_signal(stack.h, stack.store_pid, SIGCONT);
    CHECK(stolen > 0);
    printf("stolen from the consumer: %d + %d chunks\n", stolen, stolen_late);
    uint64_t want = log_next_seq(id), got = indexed_seq(id);
    for (int i = 0; i < 300 && got < want; i++) {
        usleep(100000);
        got = indexed_seq(id);
    }
    CHECK(want > 0);
    CHECK_EQ_INT(got, want);
    free(tok);
    free(bin);
}

/* Lines of the ingest-recorder log with both texts. */
static int ingest_log_lines(const char *a, const char *b)
{
    char *log = stack_log(&stack, "ingest-recorder");
    int n = 0;
    for (char *save = NULL, *line = log ? strtok_r(log, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save))
        n += strstr(line, a) && strstr(line, b);
    free(log);
    return n;
}

static bool wait_connections(const char *track_id, int want)
{
    for (int i = 0; i < 200; i++) {
        if (ingest_log_lines("track connected", track_id) >= want)
            return true;
        usleep(50000);
    }
    return false;
}

/* ingest-recorder hears (as from the uploader) that 4 chunks are committed
 * and tells the client; a Resend from the commit point is allowed (the
 * client just reconnects), a Resend from chunk 1 asks again for committed
 * chunks. seashore-send reconnects after each (libwebsockets 4.1 hands it
 * the 1012 as 1002), still resends and finishes, counts the second one
 * only, and says so in its log. PostgreSQL is not told: chunk-store deletes
 * nothing. */
static void test_rerequest_below_committed_reported(void)
{
    const char *id = "7c1e5a90-2b4d-4e6f-8a1c-3d5e7f9b0a2c";
    char stats[1100];
    snprintf(stats, sizeof stats, "%s/send-rerequest.json", harness_dir(stack.h));
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *tok = stack_token(&stack, NULL, 3600);
    /* clang-format off */
    char *argv[] = {bin, "--url", stack.ws_url, "--token", tok, "--quiet", "--rate", "5",
                    "--chunk-size", "65536", "--track-id", (char *)id, "--stats-json", stats,
                    media, NULL};
    /* clang-format on */
    pid_t pid = stack_spawn(&stack, "send-rerequest", argv);
    free(tok);
    free(bin);
    if (!CHECK(pid > 0))
        return;
    bool acked = false;
    for (int i = 0; i < 200 && !acked; i++) {
        usleep(50000);
        acked = indexed_seq(id) >= 6;
    }
    CHECK(acked);
    notify_track("committed", id, 4);
    usleep(500000); /* the Committed reaches the client before the Resend */
    request_resend(id, 4);
    CHECK(wait_connections(id, 2));
    request_resend(id, 1);
    CHECK(wait_connections(id, 3));
    int status = -1;
    CHECK_EQ_INT(harness_wait_exit(stack.h, pid, 60000, &status), 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *json = harness_read_file(stats, NULL);
    CHECK_CONTAINS(json, "\"committed_rerequested\": 1,");
    free(json);
    char *log = stack_log(&stack, "send-rerequest");
    CHECK_CONTAINS(log, "a Resend asks again from chunk 1, below the committed point 4");
    free(log);
}

static bool admitted(const char *track_id)
{
    char subject[64];
    natsMsg *m = NULL;
    snprintf(subject, sizeof subject, "admit.%s", track_id);
    natsStatus s = js_GetLastMsg(&m, js, "ADMISSION", subject, NULL, NULL);
    natsMsg_Destroy(m);
    return s == NATS_OK;
}

/* An ingest-recorder that dies between the admission and the first chunk
 * never sends its release notice: chunk-store's sweep gives the room back
 * once the admitted track has had no chunk anywhere for
 * CHUNK_LOG_ADMISSION_TIMEOUT (2 s here). The sweep test's track, still
 * recording, keeps its admission. */
static void test_orphan_admission_released(void)
{
    const char *orphan = "9e4b7c21-3f5a-4d8e-b6a0-c1d2e3f4a5b6";
    const char *recording = "5b0c2d9e-7a41-4f6b-9c3e-2d8f1a6b4c70";
    char subject[64];
    jsPubAck *pa = NULL;
    snprintf(subject, sizeof subject, "admit.%s", orphan);
    CHECK_EQ_INT(js_Publish(&pa, js, subject, orphan, (int)strlen(orphan), NULL, NULL), NATS_OK);
    jsPubAck_Destroy(pa);
    CHECK(admitted(orphan));
    CHECK(admitted(recording));
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        usleep(100000);
        gone = !admitted(orphan);
    }
    CHECK(gone);
    CHECK(admitted(recording));
}

/* Deleting a session (token-issuer marks it deleting) releases its tracks
 * from the log, whatever their upload or mux state: nothing of them will
 * be uploaded or muxed, and their chunks would hold the log's room
 * forever. A track still recording (the sweep test's has no End) keeps
 * only its newest chunk, the anchor of ingest's next publish. Every track
 * so far is the stack's session's. */
static void test_deleted_session_leaves_the_log(void)
{
    char q[256], *recording = NULL, *v = NULL;
    snprintf(q, sizeof q,
             "SELECT count(*) FROM tracks WHERE session_id = '%s' AND state = 'recording'",
             stack.session_id);
    if (!CHECK_EQ_INT(harness_pg_exec(&stack.pg, q, &recording), 0) ||
        !CHECK(stream_msgs() > strtoull(recording, NULL, 10))) {
        free(recording);
        return;
    }
    uint64_t keep = strtoull(recording, NULL, 10);
    SQL("UPDATE sessions SET state = 'deleting' WHERE id = '%s'", stack.session_id);
    uint64_t left = stream_msgs();
    for (int i = 0; i < 100 && left > keep; i++) { /* the sweep runs every second */
        usleep(100000);
        left = stream_msgs();
    }
    printf("deleted session: %llu messages left for %llu recording tracks\n",
           (unsigned long long)left, (unsigned long long)keep);
    CHECK_EQ_INT(left, keep);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM tracks WHERE session_id = '%s' AND NOT log_released",
             stack.session_id);
    CHECK_EQ_INT(harness_pg_exec(&stack.pg, q, &v), 0);
    CHECK_EQ_STR(v, recording);
    free(v);
    free(recording);
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
        TEST_RUN(test_release_leaves_other_tracks_pending);
        TEST_RUN(test_sweep_indexes_what_the_consumer_lost);
        TEST_RUN(test_orphan_admission_released);
        TEST_RUN(test_rerequest_below_committed_reported);
        TEST_RUN(test_deleted_session_leaves_the_log); /* last: ends the stack's session */
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
