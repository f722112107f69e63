/* test_ingest_parts.c -- chunk-store hands the uploader its work: one
 * PartReady (work.upload) each time a track's durable bytes pass a part
 * boundary (UPLOAD_PART_SIZE, here the 5 MiB minimum; chunks deliberately
 * straddle the boundaries), the tail part flagged last once End is
 * verified, then one TrackComplete (work.complete) with the totals; a
 * repeated End adds nothing (message ids deduplicate). */
#include "check.h"
#include "ingest_stack.h"

#include <nats/nats.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/v1/work.pb-c.h"

#define PART  (5 << 20)
#define TOTAL (12 * (1 << 20) + 12345)

static ingest_stack stack = {.extra_env = {"UPLOAD_PART_SIZE=5MiB"}};
static char media[1024], track[37];
static natsConnection *nc;
static jsCtx *js;

static int send_file(const char *name, const char *track_id)
{
    return stack_send(&stack, name, media, "300000", track_id);
}

/* Every message on a WORK subject, through a fresh pull consumer (caller
 * destroys the list). */
static int fetch_all(const char *subject, const char *durable, natsMsgList *list)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    jsSubOptions_Init(&so);
    so.Stream = "WORK";
    so.Config.AckPolicy = js_AckExplicit;
    if (js_PullSubscribe(&sub, js, subject, durable, NULL, &so, &jerr) != NATS_OK)
        return -1;
    natsStatus s = natsSubscription_Fetch(list, sub, 100, 2000, &jerr);
    natsSubscription_Destroy(sub);
    return s == NATS_OK || s == NATS_TIMEOUT ? 0 : -1;
}

static void test_parts_and_completion(void)
{
    natsMsgList parts = {0}, done = {0};
    char key[256];
    if (!CHECK_EQ_INT(send_file("send", NULL), 0))
        return;
    char *log = stack_log(&stack, "send");
    CHECK(log && sscanf(log, "%36s", track) == 1);
    free(log);
    CHECK_EQ_INT(send_file("send-again", track), 0); /* End again: nothing new */
    snprintf(key, sizeof key, "raw/%s/%s/%s.bin", stack.session_id, stack.participant_id, track);

    CHECK_EQ_INT(fetch_all("work.upload", "test-upload", &parts), 0);
    CHECK_EQ_INT(parts.Count, 3);
    for (int i = 0; i < parts.Count && i < 3; i++) {
        Seashore__V1__PartReady *p =
            seashore__v1__part_ready__unpack(NULL, (size_t)natsMsg_GetDataLength(parts.Msgs[i]),
                                             (const uint8_t *)natsMsg_GetData(parts.Msgs[i]));
        if (!CHECK(p != NULL))
            continue;
        CHECK_EQ_STR(p->track_id, track);
        CHECK_EQ_INT(p->part_number, i + 1);
        CHECK_EQ_INT(p->offset, (uint64_t)i * PART);
        CHECK_EQ_INT(p->size, i < 2 ? PART : TOTAL - 2 * PART);
        CHECK_EQ_INT(p->is_last, i == 2);
        CHECK_EQ_INT(p->part_size, PART);
        CHECK_EQ_STR(p->object_key, key);
        seashore__v1__part_ready__free_unpacked(p, NULL);
    }

    CHECK_EQ_INT(fetch_all("work.complete", "test-complete", &done), 0);
    CHECK_EQ_INT(done.Count, 1);
    if (done.Count == 1) {
        Seashore__V1__TrackComplete *c =
            seashore__v1__track_complete__unpack(NULL, (size_t)natsMsg_GetDataLength(done.Msgs[0]),
                                                 (const uint8_t *)natsMsg_GetData(done.Msgs[0]));
        size_t len = 0;
        char *file = harness_read_file(media, &len);
        uint8_t sha[32];
        EVP_Digest(file, len, sha, NULL, EVP_sha256(), NULL);
        if (CHECK(c != NULL)) {
            CHECK_EQ_INT(c->total_bytes, TOTAL);
            CHECK_EQ_INT(c->part_count, 3);
            CHECK(c->sha256.len == 32 && memcmp(c->sha256.data, sha, 32) == 0);
            CHECK_EQ_STR(c->object_key, key);
        }
        seashore__v1__track_complete__free_unpacked(c, NULL);
        free(file);
    }
    natsMsgList_Destroy(&parts);
    natsMsgList_Destroy(&done);
}

int main(void)
{
    if (CHECK_EQ_INT(stack_start(&stack, "test_ingest_parts"), 0) &&
        CHECK_EQ_INT(natsConnection_ConnectTo(&nc, stack.nats.url), NATS_OK) &&
        CHECK_EQ_INT(natsConnection_JetStream(&js, nc, NULL), NATS_OK)) {
        snprintf(media, sizeof media, "%s/media.bin", harness_dir(stack.h));
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "head -c %d /dev/urandom > '%s'", TOTAL, media);
        CHECK_EQ_INT(system(cmd), 0);
        TEST_RUN(test_parts_and_completion);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
