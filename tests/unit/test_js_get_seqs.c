/* test_js_get_seqs.c -- ss_js_get_seqs (direct gets with several in flight)
 * against a real nats-server: every sequence asked for reaches the callback
 * once with its own index; a sequence that left the stream is reported
 * missing with its index; and replies that come back out of order (as
 * replicas answer) still land on the right index, which a responder in
 * this test forces by answering each batch of requests in reverse. */
#include "check.h"
#include "harness.h"
#include "seashore/nats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM "GETTEST"
#define NMSGS  40

static harness *h;
static harness_nats nats;
static ss_nats conn;

typedef struct got_log {
    size_t n;
    size_t index[64];
    char data[64][16];
} got_log;

static int record(void *arg, size_t i, natsMsg *m)
{
    got_log *g = arg;
    if (g->n < 64) {
        g->index[g->n] = i;
        snprintf(g->data[g->n], sizeof g->data[g->n], "%.*s", natsMsg_GetDataLength(m),
                 natsMsg_GetData(m));
        g->n++;
    }
    natsMsg_Destroy(m);
    return 0;
}

/* Each index came exactly once, with the body the responder gives seqs[i]. */
static void check_each_once(const got_log *g, const uint64_t *seqs, size_t n, const char *prefix)
{
    bool seen[64] = {false};
    CHECK_EQ_INT(g->n, n);
    for (size_t k = 0; k < g->n; k++) {
        char want[16];
        size_t i = g->index[k];
        if (!CHECK(i < n && !seen[i]))
            continue;
        seen[i] = true;
        snprintf(want, sizeof want, "%s%llu", prefix, (unsigned long long)seqs[i]);
        CHECK_EQ_STR(g->data[k], want);
    }
}

static int make_stream(void)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = STREAM;
    const char *subjects[] = {"gettest.>"};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.AllowDirect = true;
    if (js_AddStream(NULL, conn.js, &cfg, NULL, NULL) != NATS_OK)
        return -1;
    for (int i = 1; i <= NMSGS; i++) { /* message at seq i says "m<i>" */
        char body[16];
        snprintf(body, sizeof body, "m%d", i);
        if (js_Publish(NULL, conn.js, "gettest.x", body, (int)strlen(body), NULL, NULL) != NATS_OK)
            return -1;
    }
    return 0;
}

/* 1. Scattered sequences, a window smaller than the list. */
static void test_each_sequence_once(void)
{
    const uint64_t seqs[] = {5, 17, 3, 40, 1, 22, 9, 30, 12, 2, 39};
    const size_t n = sizeof seqs / sizeof seqs[0];
    got_log g = {0};
    size_t missing = 99;
    CHECK_EQ_INT(ss_js_get_seqs(&conn, STREAM, seqs, n, 4, 5000, record, &g, &missing), NATS_OK);
    check_each_once(&g, seqs, n, "m");
}

/* 2. A deleted message: NOT_FOUND, naming its index. */
static void test_missing_sequence(void)
{
    const uint64_t seqs[] = {6, 7, 8, 10};
    got_log g = {0};
    size_t missing = 99;
    CHECK_EQ_INT(js_DeleteMsg(conn.js, STREAM, 8, NULL, NULL), NATS_OK);
    CHECK_EQ_INT(ss_js_get_seqs(&conn, STREAM, seqs, 4, 8, 5000, record, &g, &missing),
                 NATS_NOT_FOUND);
    CHECK_EQ_INT(missing, 2);
}

/* A direct-get responder for stream FAKE that answers every batch of
 * requests it has collected in reverse order, with "d<seq>". */
static void *reverse_responder(void *arg)
{
    natsSubscription *sub = arg;
    for (int rounds = 0; rounds < 50; rounds++) {
        natsMsg *batch[8];
        int n = 0;
        while (n < 8 && natsSubscription_NextMsg(&batch[n], sub, 200) == NATS_OK)
            n++;
        if (n == 0)
            break;
        for (int k = n - 1; k >= 0; k--) {
            char body[16];
            const char *seq = strstr(natsMsg_GetData(batch[k]), ":");
            snprintf(body, sizeof body, "d%lld", seq ? atoll(seq + 1) : -1LL);
            natsConnection_PublishString(conn.conn, natsMsg_GetReply(batch[k]), body);
            natsMsg_Destroy(batch[k]);
        }
        natsConnection_Flush(conn.conn);
    }
    return NULL;
}

/* 3. Replies in reverse order still land on their own index. */
static void test_out_of_order_replies(void)
{
    const uint64_t seqs[] = {101, 102, 103, 104, 105, 106, 107, 108, 109, 110};
    const size_t n = sizeof seqs / sizeof seqs[0];
    natsSubscription *sub = NULL;
    pthread_t responder;
    got_log g = {0};
    size_t missing = 99;
    if (!CHECK_EQ_INT(natsConnection_SubscribeSync(&sub, conn.conn, "$JS.API.DIRECT.GET.FAKE"),
                      NATS_OK) ||
        !CHECK_EQ_INT(natsConnection_Flush(conn.conn), NATS_OK))
        return;
    pthread_create(&responder, NULL, reverse_responder, sub);
    CHECK_EQ_INT(ss_js_get_seqs(&conn, "FAKE", seqs, n, 4, 5000, record, &g, &missing), NATS_OK);
    pthread_join(responder, NULL);
    natsSubscription_Destroy(sub);
    check_each_once(&g, seqs, n, "d");
    bool ascending = true;
    for (size_t k = 1; k < g.n; k++)
        ascending = ascending && g.index[k] > g.index[k - 1];
    CHECK(!ascending); /* the replies did come out of order */
}

int main(void)
{
    h = harness_new("test_js_get_seqs");
    if (CHECK(h != NULL) && CHECK_EQ_INT(harness_nats_start(h, &nats), 0) &&
        CHECK_EQ_INT(ss_nats_connect(&conn, nats.url, "test"), NATS_OK) &&
        CHECK_EQ_INT(make_stream(), 0)) {
        TEST_RUN(test_each_sequence_once);
        TEST_RUN(test_missing_sequence);
        TEST_RUN(test_out_of_order_replies);
    }
    ss_nats_close(&conn);
    nats_Close();
    harness_free(h);
    return check_finish();
}
