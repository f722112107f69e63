/* test_upload_s3rver.c -- the store of `make dev` is s3rver, which has no
 * ListParts: a recording still ends up byte-exact in its bucket (the
 * uploader completes with the ETags recorded in PostgreSQL). */
#include "check.h"
#include "upload_util.h"

#include <stdio.h>

#define MEDIA_BYTES ((long)UP_PART + 99999)

static ingest_stack stack = {
    .with_uploader = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB"},
};

static void test_dev_store_upload(void)
{
    char media[1024], track[37], sql[256];
    CHECK_EQ_INT(up_make_media(&stack, "media.bin", MEDIA_BYTES, media, sizeof media), 0);
    pid_t pid = up_send_track(&stack, "send", media, 0, NULL, NULL, NULL, track);
    if (!CHECK(pid > 0))
        return;
    CHECK_EQ_INT(up_send_wait(&stack, pid, 60000), 0);
    snprintf(sql, sizeof sql, "SELECT state FROM tracks WHERE id = '%s'", track);
    CHECK(up_wait_sql(&stack, sql, "complete", 60000, NULL, 0));
    CHECK(up_object_matches(&stack, track, media));
}

int main(void)
{
    if (stack_start(&stack, "test_upload_s3rver") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_dev_store_upload);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
