/* test_js_fetch.c -- ss_js_fetch_one against a real nats-server when
 * messages already wait from an earlier pull request, another earlier request
 * is still live and more messages keep coming: what a burst after a server
 * pause leaves behind (chaos test, CI), and where nats.c 3.4's batched Fetch
 * writes past its array (a Fetch of 64 finding 63 waiting asks the server for
 * 1 more, then takes everything that arrives until its deadline). Every
 * message arrives once, and ASan sees no overflow. */
#include "check.h"
#include "harness.h"
#include "seashore/nats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST  63  /* waiting when the fetching starts: more than half a batch of 64 */
#define LATER  100 /* published while the fetching goes on */
#define STREAM "FETCHTEST"

static harness *h;
static harness_nats nats;
static natsConnection *nc;
static jsCtx *js;

static int publish(int n)
{
    for (int i = 0; i < n; i++) {
        char body[32];
        snprintf(body, sizeof body, "message %d", i);
        if (js_Publish(NULL, js, "fetchtest.x", body, (int)strlen(body), NULL, NULL) != NATS_OK)
            return -1;
    }
    return 0;
}

static void *publish_later(void *arg)
{
    (void)arg;
    usleep(300000); /* after the fetch below has taken what waits */
    return (void *)(intptr_t)publish(LATER);
}

/* A pull request the subscription did not make itself, alive for 5 s: what
 * an unanswered request sent before a server pause is. */
static int stale_pull_request(natsSubscription *sub, int batch)
{
    char req[64];
    snprintf(req, sizeof req, "{\"batch\":%d,\"expires\":5000000000}", batch);
    return natsConnection_PublishRequestString(nc, "$JS.API.CONSUMER.MSG.NEXT." STREAM ".fetcher",
                                               natsSubscription_GetSubject(sub), req) == NATS_OK
               ? 0
               : -1;
}

static int wait_pending(natsSubscription *sub, int want)
{
    for (int i = 0; i < 100; i++) {
        int msgs = 0, bytes = 0;
        natsSubscription_GetPending(sub, &msgs, &bytes);
        if (msgs >= want)
            return 0;
        usleep(20000);
    }
    return -1;
}

static void test_fetch_after_burst(void)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = STREAM;
    const char *subjects[] = {"fetchtest.>"};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    if (!CHECK_EQ_INT(js_AddStream(NULL, js, &cfg, NULL, NULL), NATS_OK))
        return;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Config.AckPolicy = js_AckExplicit;
    natsSubscription *sub = NULL;
    if (!CHECK_EQ_INT(js_PullSubscribe(&sub, js, "fetchtest.>", "fetcher", NULL, &so, NULL),
                      NATS_OK))
        return;
    CHECK_EQ_INT(publish(FIRST), 0);
    CHECK_EQ_INT(stale_pull_request(sub, FIRST), 0); /* answered: FIRST wait */
    CHECK_EQ_INT(wait_pending(sub, FIRST), 0);
    CHECK_EQ_INT(stale_pull_request(sub, LATER), 0); /* live: takes what comes */

    pthread_t publisher;
    pthread_create(&publisher, NULL, publish_later, NULL);
    static bool seen[FIRST + LATER + 1];
    int got = 0, dups = 0;
    for (int tries = 0; got < FIRST + LATER && tries < 1000; tries++) {
        natsMsg *msg = NULL;
        natsStatus s = ss_js_fetch_one(sub, 1000, &msg, NULL);
        if (s != NATS_OK)
            continue;
        jsMsgMetaData *meta = NULL;
        if (CHECK_EQ_INT(natsMsg_GetMetaData(&meta, msg), NATS_OK)) {
            uint64_t seq = meta->Sequence.Stream;
            if (seq >= 1 && seq <= FIRST + LATER && !seen[seq]) {
                seen[seq] = true;
                got++;
            } else {
                dups++;
            }
            jsMsgMetaData_Destroy(meta);
        }
        natsMsg_Ack(msg, NULL);
        natsMsg_Destroy(msg);
    }
    void *published = NULL;
    pthread_join(publisher, &published);
    CHECK_EQ_INT((intptr_t)published, 0);
    CHECK_EQ_INT(got, FIRST + LATER);
    CHECK_EQ_INT(dups, 0);
    natsSubscription_Destroy(sub);
}

/* A timeout is NATS_TIMEOUT with no message, not an error. */
static void test_fetch_timeout(void)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = STREAM;
    so.Config.AckPolicy = js_AckExplicit;
    natsSubscription *sub = NULL;
    if (!CHECK_EQ_INT(js_PullSubscribe(&sub, js, "fetchtest.none", "idle", NULL, &so, NULL),
                      NATS_OK))
        return;
    natsMsg *msg = (natsMsg *)&so; /* must be reset */
    CHECK_EQ_INT(ss_js_fetch_one(sub, 200, &msg, NULL), NATS_TIMEOUT);
    CHECK(msg == NULL);
    natsSubscription_Destroy(sub);
}

int main(void)
{
    h = harness_new("test_js_fetch");
    if (CHECK(h != NULL) && CHECK_EQ_INT(harness_nats_start(h, &nats), 0) &&
        CHECK_EQ_INT(natsConnection_ConnectTo(&nc, nats.url), NATS_OK) &&
        CHECK_EQ_INT(natsConnection_JetStream(&js, nc, NULL), NATS_OK)) {
        TEST_RUN(test_fetch_after_burst);
        TEST_RUN(test_fetch_timeout);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    harness_free(h);
    return check_finish();
}
