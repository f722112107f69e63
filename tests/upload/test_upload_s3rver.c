/* test_upload_s3rver.c -- the store of `make dev` is s3rver, which has no
 * ListParts: a recording still ends up byte-exact in its bucket (the
 * uploader completes with the ETags recorded in PostgreSQL). And s3rver
 * answers a CompleteMultipartUpload repeated after a lost answer with a
 * 500 for ever: the uploader must see that the object is whole (HEAD).
 * And s3rver cannot abort a multipart upload (405): deleting a session
 * mid-upload must still get through the uploader's share. */
#include "check.h"
#include "upload_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEDIA_BYTES ((long)UP_PART + 99999)

static ingest_stack stack = {
    .with_uploader = true,
    .with_issuer = true,
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

/* The uploader's share of a session deletion is recorded although the
 * abort got a 405 (the parts stay in s3rver's directory, logged): the
 * session of make dev does not stay `deleting` for ever. */
static void test_session_delete_without_abort(void)
{
    char media[1024], track[37], session[37], participant[37], sql[256];
    CHECK_EQ_INT(up_make_media(&stack, "doomed.bin", 4L * UP_PART, media, sizeof media), 0);
    pid_t pid = up_doomed_track(&stack, media, 5, session, participant, track);
    if (!CHECK(pid > 0))
        return;
    CHECK_EQ_INT(up_api_delete_session(&stack, session), 202);
    snprintf(sql, sizeof sql,
             "SELECT state || ' ' || (raw_removed_at IS NOT NULL) FROM sessions WHERE id = '%s'",
             session);
    CHECK(up_wait_sql(&stack, sql, "deleting true", 60000, NULL, 0));
    char *log = stack_log(&stack, "r2-uploader");
    CHECK_CONTAINS(log, "the store cannot abort a multipart upload");
    free(log);
    harness_signal(stack.h, pid, SIGKILL);
    up_send_wait(&stack, pid, 5000);
}

static pid_t proxy_pid;
static char endpoint_env[128], control[1024];

/* A fault proxy (tests/harness/fault_proxy.mjs) in front of s3rver that
 * spoils nothing until the control file says so, and then only POSTs, by
 * cutting their answers after s3rver has finished them. r2-uploader is
 * restarted to go through it. */
static int proxy_start(void)
{
    snprintf(control, sizeof control, "%s/proxy-control.json", harness_dir(stack.h));
    const char *opts[] = {
        "--seed",         "1",    "--fault-rate",   "0",     "--faults", "truncate",
        "--only-methods", "POST", "--control-file", control, NULL};
    proxy_pid = up_fault_proxy_start(&stack, opts, endpoint_env, sizeof endpoint_env);
    if (proxy_pid <= 0 || stack_stop_service(&stack, &stack.uploader_pid, "r2-uploader") != 0)
        return -1;
    stack.uploader_env[0] = endpoint_env;
    return stack_start_uploader(&stack) > 0 ? 0 : -1;
}

/* The answer to CompleteMultipartUpload is lost after s3rver completed the
 * object; its next Complete gets a 500 for ever. The track still completes
 * (the object is found whole) and the object is byte-exact. */
static void test_lost_complete_answer(void)
{
    char media[1024], track[37], sql[256];
    CHECK_EQ_INT(
        up_make_media(&stack, "three-parts.bin", (long)UP_PART * 3 + 4242, media, sizeof media), 0);
    if (!CHECK_EQ_INT(proxy_start(), 0))
        return;
    pid_t pid = up_send_track(&stack, "send-lost", media, 4, NULL, NULL, NULL, track);
    if (!CHECK(pid > 0))
        return;
    /* the upload exists (its POST went through): from now on POSTs, i.e.
     * the Complete, lose their answers */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM uploads WHERE track_id = '%s'", track);
    CHECK(up_wait_sql(&stack, sql, "1", 60000, NULL, 0));
    FILE *f = fopen(control, "w");
    CHECK(f != NULL && fputs("{\"fault_rate\":1}", f) >= 0);
    if (f)
        fclose(f);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tracks WHERE id = '%s' AND state = 'ended'",
             track);
    CHECK(up_wait_sql(&stack, sql, "1", 60000, NULL, 0)); /* the Complete comes after */
    CHECK_EQ_INT(up_send_wait(&stack, pid, 60000), 0);
    snprintf(sql, sizeof sql, "SELECT state FROM tracks WHERE id = '%s'", track);
    CHECK(up_wait_sql(&stack, sql, "complete", 60000, NULL, 0));
    CHECK(up_object_matches(&stack, track, media));
    harness_signal(stack.h, proxy_pid, SIGTERM);
    harness_wait_exit(stack.h, proxy_pid, 10000, NULL);
    char *log = stack_log(&stack, "fault-proxy");
    const char *cut = log ? strstr(log, "\"fault\":\"truncate\"") : NULL;
    CHECK(cut != NULL); /* a Complete did lose its answer */
    if (cut) {
        const char *line = cut;
        while (line > log && line[-1] != '\n')
            line--;
        CHECK(strncmp(line, "{", 1) == 0 && strstr(line, "\"method\":\"POST\"") != NULL &&
              strstr(line, "uploadId=") != NULL && strstr(line, "uploadId=") < cut);
    }
    free(log);
}

int main(void)
{
    if (stack_start(&stack, "test_upload_s3rver") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_dev_store_upload);
    TEST_RUN(test_session_delete_without_abort);
    TEST_RUN(test_lost_complete_answer);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
