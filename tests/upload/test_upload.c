/* test_upload.c -- r2-uploader against Swift's s3api (which verifies every
 * SigV4 signature and payload hash), real nats-server and PostgreSQL:
 *   - a recording ends up byte-exact in the bucket, its parts uploaded
 *     while it was still running, all of equal size at the store
 *     (ListParts), the client told Committed for each, the muxer handed
 *     TrackUploaded; Committed stops at the last chunk wholly inside the
 *     uploaded prefix;
 *   - kill -9 of the uploader in the middle: the same upload continues;
 *     killed after the store completed the upload but before PostgreSQL
 *     knew: the track completes;
 *   - UPLOAD_CONCURRENCY bounds the part uploads in flight, and the peak RSS
 *     does not grow with the recording's length;
 *   - a part recorded but missing at the store is uploaded again (chunks
 *     kept in the log), or, when the log no longer has its bytes, the track
 *     fails with PartLost instead of completing without them;
 *   - a bucket that does not exist or a wrong secret: a failed track with
 *     the store's code and message, shown by the token-issuer's API;
 *   - deleting the session aborts its upload. */
#include "check.h"
#include "upload_util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seashore/s3_client.h"
#include "seashore/v1/work.pb-c.h"

#define MEDIA_BYTES ((long)UP_PART * 5 + 12345) /* 6 parts, the last a short one */
#define RATE        10                          /* chunks of 256 KiB per second: 2.5 MiB/s */
#define WAIT_MS     60000

static ingest_stack stack = {
    .with_swift = true,
    .with_uploader = true,
    .with_issuer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB"},
    .uploader_env = {"UPLOAD_ACK_WAIT=3s", "UPLOAD_RETRY_MAX_DELAY=1s"},
};
static char media[1024];

__attribute__((format(printf, 3, 4))) static void sqlf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static bool wait_track_state(const char *track, const char *state)
{
    char sql[256];
    sqlf(sql, sizeof sql, "SELECT state FROM tracks WHERE id = '%s'", track);
    return up_wait_sql(&stack, sql, state, WAIT_MS, NULL, 0);
}

static bool wait_parts(const char *track, int at_least)
{
    char sql[256], want[16];
    snprintf(sql, sizeof sql,
             "SELECT (count(*) >= %d)::text FROM upload_parts WHERE track_id = '%s'", at_least,
             track);
    snprintf(want, sizeof want, "true");
    return up_wait_sql(&stack, sql, want, WAIT_MS, NULL, 0);
}

/* Part sizes at the store, while the upload runs: all equal. */
static void check_store_parts(const char *track)
{
    char sql[256], key[512], upload_id[256];
    sqlf(sql, sizeof sql, "SELECT object_key FROM uploads WHERE track_id = '%s'", track);
    up_sql(&stack, sql, key, sizeof key);
    sqlf(sql, sizeof sql, "SELECT upload_id FROM uploads WHERE track_id = '%s'", track);
    up_sql(&stack, sql, upload_id, sizeof upload_id);
    ss_s3_client *c = stack_s3_client(&stack);
    ss_s3_conn *conn = c ? ss_s3_conn_new(c) : NULL;
    ss_s3_part *parts = NULL;
    size_t n = 0;
    ss_s3_result res;
    if (CHECK(conn != NULL) &&
        CHECK_EQ_INT(ss_s3_list_parts(conn, key, upload_id, &parts, &n, &res), 0)) {
        CHECK(n >= 2);
        for (size_t i = 0; i < n; i++)
            CHECK_EQ_INT(parts[i].size, UP_PART);
    }
    free(parts);
    ss_s3_conn_free(conn);
    ss_s3_client_free(c);
}

/* The muxer's work item for the track. */
static void check_work_mux(const char *track, const char *file)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsMsg *m = NULL;
    uint8_t want[32];
    if (!CHECK_EQ_INT(natsConnection_ConnectTo(&nc, stack.nats.url), NATS_OK))
        return;
    jsErrCode jerr = 0;
    if (CHECK_EQ_INT(natsConnection_JetStream(&js, nc, NULL), NATS_OK) &&
        CHECK_EQ_INT(js_GetLastMsg(&m, js, "WORK", "work.mux", NULL, &jerr), NATS_OK)) {
        Seashore__V1__TrackUploaded *u = seashore__v1__track_uploaded__unpack(
            NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
        if (CHECK(u != NULL)) {
            CHECK_EQ_STR(u->track_id, track);
            CHECK_EQ_INT(u->size, MEDIA_BYTES);
            CHECK(up_file_sha256(file, want) == 0 && u->sha256.len == 32 &&
                  memcmp(u->sha256.data, want, 32) == 0);
        }
        seashore__v1__track_uploaded__free_unpacked(u, NULL);
    }
    natsMsg_Destroy(m);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static void test_upload_while_recording(void)
{
    char track[37], sql[512], v[512], stats[1100];
    snprintf(stats, sizeof stats, "%s/stats-1.json", harness_dir(stack.h));
    const char *extra[] = {"--wait-committed", "--stats-json", stats, NULL};
    pid_t pid = up_send_track(&stack, "send-1", media, RATE, NULL, NULL, extra, track);
    if (!CHECK(pid > 0))
        return;
    if (CHECK(wait_parts(track, 2))) {
        sqlf(sql, sizeof sql, "SELECT state FROM tracks WHERE id = '%s'", track);
        CHECK(up_sql(&stack, sql, v, sizeof v) == 0 && strcmp(v, "recording") == 0);
        check_store_parts(track);
    }
    CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
    CHECK(wait_track_state(track, "complete"));
    CHECK(up_object_matches(&stack, track, media));
    /* parts reached the store while the client was still recording (how many
     * depends on how loaded the machine is: at least two) */
    sqlf(sql, sizeof sql,
         "SELECT count(*) FROM upload_parts p JOIN tracks t ON t.id = p.track_id "
         "WHERE t.id = '%s' AND p.uploaded_at < t.ended_at",
         track);
    if (!CHECK(up_sql(&stack, sql, v, sizeof v) == 0 && atoi(v) >= 2)) {
        sqlf(sql, sizeof sql,
             "SELECT string_agg(p.part_number || '@' || p.uploaded_at::time::text, ' ') || "
             "' ended ' || max(t.ended_at)::time::text || ' created ' || "
             "max(t.created_at)::time::text FROM upload_parts p JOIN tracks t ON "
             "t.id = p.track_id WHERE t.id = '%s'",
             track);
        up_sql(&stack, sql, v, sizeof v);
        fprintf(stderr, "part times: %s\n", v);
    }
    json_t *j = json_load_file(stats, 0, NULL);
    CHECK(j != NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "committed_bytes")), MEDIA_BYTES);
    CHECK(json_integer_value(json_object_get(j, "committed_updates")) >= 5);
    json_decref(j);
    check_work_mux(track, media);
}

/* Committed moves to the last chunk wholly inside the uploaded prefix: with
 * 300 000-byte chunks, part 1 (5 MiB) ends inside chunk 17, so with part 1
 * alone uploaded chunks 0..16 are committed (5 100 000 bytes), not the one
 * that straddles the boundary; at the end, everything. */
static void test_committed_at_chunk_boundary(void)
{
    char track[37], sql[256], v[64], file[1024];
    long bytes = 2L * UP_PART + 4321;
    CHECK_EQ_INT(up_make_media(&stack, "straddle.bin", bytes, file, sizeof file), 0);
    const char *extra[] = {"--chunk-size", "300000", NULL};
    pid_t pid = up_send_track(&stack, "send-straddle", file, 2, NULL, NULL, extra, track);
    if (!CHECK(pid > 0))
        return;
    sqlf(sql, sizeof sql,
         "SELECT committed_seq || ' ' || committed_bytes FROM tracks WHERE id = '%s'", track);
    CHECK(up_wait_sql(&stack, sql, "17 5100000", WAIT_MS, NULL, 0));
    CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
    CHECK(wait_track_state(track, "complete"));
    snprintf(v, sizeof v, "%ld %ld", (bytes + 299999) / 300000, bytes);
    CHECK(up_wait_sql(&stack, sql, v, WAIT_MS, NULL, 0));
    CHECK(up_object_matches(&stack, track, file));
}

static void test_kill9_resumes_same_upload(void)
{
    char track[37], sql[256], before[256], after[256];
    pid_t pid = up_send_track(&stack, "send-kill", media, RATE, NULL, NULL, NULL, track);
    if (!CHECK(pid > 0))
        return;
    CHECK(wait_parts(track, 1));
    sqlf(sql, sizeof sql, "SELECT upload_id FROM uploads WHERE track_id = '%s'", track);
    up_sql(&stack, sql, before, sizeof before);
    harness_signal(stack.h, stack.uploader_pid, SIGKILL);
    harness_wait_exit(stack.h, stack.uploader_pid, 5000, NULL);
    CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
    CHECK(stack_start_uploader(&stack) > 0);
    CHECK(wait_track_state(track, "complete"));
    up_sql(&stack, sql, after, sizeof after);
    CHECK(before[0] != '\0');
    CHECK_EQ_STR(after, before);
    CHECK(up_object_matches(&stack, track, media));
}

/* A TrackComplete for the track from what PostgreSQL and the file say, as
 * chunk-store publishes it at End (a new message id: not deduplicated). */
static int publish_track_complete(const char *track, const char *file)
{
    char sql[256], session[64], participant[64], key[512], mime[128], total[32], psize[32];
    uint8_t sha[32];
    const struct {
        const char *column;
        char *out;
        size_t len;
    } cols[] = {{"t.session_id", session, sizeof session},
                {"t.participant_id", participant, sizeof participant},
                {"u.object_key", key, sizeof key},
                {"t.mime_type", mime, sizeof mime},
                {"t.total_bytes", total, sizeof total},
                {"t.part_size", psize, sizeof psize}};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        sqlf(sql, sizeof sql,
             "SELECT %s FROM tracks t JOIN uploads u ON u.track_id = t.id WHERE t.id = '%s'",
             cols[i].column, track);
        if (up_sql(&stack, sql, cols[i].out, cols[i].len) != 0 || cols[i].out[0] == '\0')
            return -1;
    }
    if (up_file_sha256(file, sha) != 0)
        return -1;
    Seashore__V1__TrackComplete tc = SEASHORE__V1__TRACK_COMPLETE__INIT;
    tc.session_id = session;
    tc.participant_id = participant;
    tc.track_id = (char *)track;
    tc.total_bytes = strtoull(total, NULL, 10);
    tc.part_size = strtoull(psize, NULL, 10);
    tc.part_count = (uint32_t)((tc.total_bytes + tc.part_size - 1) / tc.part_size);
    tc.sha256 = (ProtobufCBinaryData){.len = 32, .data = sha};
    tc.object_key = key;
    tc.mime_type = mime;
    tc.kind = SEASHORE__V1__TRACK_KIND__TRACK_KIND_AUDIO_VIDEO;
    uint8_t buf[2048];
    size_t n = seashore__v1__track_complete__pack(&tc, buf);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    natsStatus st = natsConnection_ConnectTo(&nc, stack.nats.url);
    if (st == NATS_OK)
        st = natsConnection_JetStream(&js, nc, NULL);
    if (st == NATS_OK)
        st = js_Publish(NULL, js, "work.complete", buf, (int)n, NULL, &jerr);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return st == NATS_OK ? 0 : -1;
}

/* Restarts r2-uploader with one more setting ("NAME=value": another
 * R2_ENDPOINT, bucket or secret), or with none when env is NULL. */
static void uploader_restart(const char *env)
{
    CHECK_EQ_INT(stack_stop_service(&stack, &stack.uploader_pid, "r2-uploader"), 0);
    stack.uploader_env[2] = env;
    CHECK(stack_start_uploader(&stack) > 0);
}

/* The store took CompleteMultipartUpload, and the uploader died before
 * PostgreSQL recorded it: the redelivered TrackComplete finds no upload
 * (ListParts: NoSuchUpload) and the object whole, and completes the track
 * instead of failing it. Made by setting the rows back after a normal
 * completion and publishing the TrackComplete again. The uploader goes
 * through the fault proxy's --s3-finished-uploads, which answers for the
 * completed upload as S3 and R2 do (Swift would list its parts still). */
static void test_completed_before_crash(void)
{
    char track[37], sql[512], v[256], endpoint_env[128];
    const char *opts[] = {"--fault-rate", "0", "--s3-finished-uploads", NULL};
    pid_t proxy = up_fault_proxy_start(&stack, opts, endpoint_env, sizeof endpoint_env);
    if (!CHECK(proxy > 0))
        return;
    uploader_restart(endpoint_env);
    pid_t pid = up_send_track(&stack, "send-done", media, 0, NULL, NULL, NULL, track);
    if (CHECK(pid > 0)) {
        CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
        CHECK(wait_track_state(track, "complete"));
        CHECK_EQ_INT(stack_stop_service(&stack, &stack.uploader_pid, "r2-uploader"), 0);
        sqlf(sql, sizeof sql,
             "WITH u AS (UPDATE uploads SET state = 'uploading', completed_at = NULL "
             "WHERE track_id = '%s' RETURNING track_id) UPDATE tracks SET state = 'ended', "
             "completed_at = NULL FROM u WHERE id = u.track_id RETURNING state",
             track);
        CHECK(up_sql(&stack, sql, v, sizeof v) == 0);
        CHECK_EQ_STR(v, "ended");
        CHECK_EQ_INT(publish_track_complete(track, media), 0);
        CHECK(stack_start_uploader(&stack) > 0);
        sqlf(sql, sizeof sql,
             "SELECT u.state || ' ' || t.state || ' ' || coalesce(t.failure, 'no failure') "
             "FROM uploads u JOIN tracks t ON t.id = u.track_id WHERE t.id = '%s'",
             track);
        CHECK(up_wait_sql(&stack, sql, "completed complete no failure", WAIT_MS, NULL, 0));
        CHECK(up_object_matches(&stack, track, media));
        char *log = stack_log(&stack, "fault-proxy");
        CHECK_CONTAINS(log, "\"fault\":\"nosuchupload\"");
        free(log);
    }
    uploader_restart(NULL);
    harness_signal(stack.h, proxy, SIGTERM);
    harness_wait_exit(stack.h, proxy, 10000, NULL);
}

/* The most UploadPart requests for the track the proxy's log (one JSON line
 * each, t0/t1) shows in flight at once. */
static int proxy_max_part_uploads(const char *log, const char *track)
{
    double t0[256], t1[256];
    int n = 0, most = 0;
    for (const char *line = log; line && *line && n < 256; line = strchr(line, '\n')) {
        line += *line == '\n';
        json_t *j = json_loadb(line, strcspn(line, "\n"), 0, NULL);
        const char *method = json_string_value(json_object_get(j, "method"));
        const char *path = json_string_value(json_object_get(j, "path"));
        if (method && path && strcmp(method, "PUT") == 0 && strstr(path, "partNumber=") &&
            strstr(path, track)) {
            t0[n] = json_number_value(json_object_get(j, "t0"));
            t1[n++] = json_number_value(json_object_get(j, "t1"));
        }
        json_decref(j);
    }
    for (int i = 0; i < n; i++) {
        int at_once = 0; /* requests running when request i started */
        for (int k = 0; k < n; k++)
            at_once += t0[k] <= t0[i] && t1[k] > t0[i];
        most = at_once > most ? at_once : most;
    }
    return most;
}

/* UPLOAD_CONCURRENCY bounds the part uploads in flight: with the six parts
 * of a recording all waiting, an uploader allowed two runs two at once
 * (seen by the proxy in front of the store), never three. */
static void test_concurrency_limit(void)
{
    char track[37], endpoint_env[128];
    const char *opts[] = {"--fault-rate", "0", NULL};
    pid_t proxy = up_fault_proxy_start(&stack, opts, endpoint_env, sizeof endpoint_env);
    if (!CHECK(proxy > 0))
        return;
    CHECK_EQ_INT(stack_stop_service(&stack, &stack.uploader_pid, "r2-uploader"), 0);
    pid_t pid = up_send_track(&stack, "send-waiting", media, 0, NULL, NULL, NULL, track);
    if (CHECK(pid > 0))
        CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
    stack.uploader_env[3] = "UPLOAD_CONCURRENCY=2";
    stack.uploader_env[2] = endpoint_env;
    CHECK(stack_start_uploader(&stack) > 0);
    CHECK(wait_track_state(track, "complete"));
    CHECK(up_object_matches(&stack, track, media));
    harness_signal(stack.h, proxy, SIGTERM);
    harness_wait_exit(stack.h, proxy, 10000, NULL);
    char *log = stack_log(&stack, "fault-proxy");
    CHECK_EQ_INT(proxy_max_part_uploads(log, track), 2);
    free(log);
    stack.uploader_env[3] = NULL;
    uploader_restart(NULL);
}

/* A line of /proc/<pid>/status ("VmHWM", "VmRSS") in KiB, or -1. */
static long proc_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
            v = atol(line + strlen(field) + 1);
    if (f)
        fclose(f);
    return v;
}

/* A fresh r2-uploader uploads a recording of `parts` parts sent while it
 * was stopped (all waiting at once); its peak RSS growth in KiB, or -1. */
static long upload_peak_kib(const char *name, int parts)
{
    char file[1024], track[37];
    if (up_make_media(&stack, name, (long)parts * UP_PART - 999, file, sizeof file) != 0)
        return -1;
    CHECK_EQ_INT(stack_stop_service(&stack, &stack.uploader_pid, "r2-uploader"), 0);
    pid_t pid = up_send_track(&stack, name, file, 0, NULL, NULL, NULL, track);
    if (!CHECK(pid > 0) || !CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0) ||
        !CHECK(stack_start_uploader(&stack) > 0))
        return -1;
    long start = proc_kib(stack.uploader_pid, "VmRSS");
    bool done = wait_track_state(track, "complete") && up_object_matches(&stack, track, file);
    long peak = proc_kib(stack.uploader_pid, "VmHWM");
    unlink(file);
    return CHECK(done) && start > 0 && peak > 0 ? peak - start : -1;
}

/* Part data in memory is bounded by the configuration, not by the length
 * of the recording: a fresh uploader's peak RSS growth, for 6 parts and for
 * 18 (90 MiB of data), stays near the part buffers (part size x
 * (concurrency + 1)) plus 2 MiB of chunk-log replies per worker, 33 MiB
 * here; a buffer per part would take the 18-part run past 90 MiB. The
 * margin is for the allocator and ASan's bookkeeping (how many workers
 * overlap varies from run to run: 24-29 MiB for 6 parts, 32-37 for 18).
 * ASan's quarantine (freed memory held back to catch use-after-free) is
 * kept small for this process, or it alone would grow with the bytes
 * moved. */
static void test_memory_bounded(void)
{
    stack.uploader_env[2] = "ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:quarantine_size_mb=1";
    long six = upload_peak_kib("len6.bin", 6), eighteen = upload_peak_kib("len18.bin", 18);
    long bound_kib = (5L * 5 * 1024) + 4 * 2048;
    printf("r2-uploader peak RSS growth: %ld KiB for 6 parts, %ld KiB for 18 (bound %ld KiB)\n",
           six, eighteen, bound_kib);
    CHECK(six > 0 && eighteen > 0);
    CHECK(six < bound_kib + 24 * 1024);
    CHECK(eighteen < bound_kib + 24 * 1024);
    uploader_restart(NULL);
}

/* Deletes part 1 of an upload behind s3api's back, through Swift's own
 * API: s3api keeps parts as objects <bucket>+segments/<key>/<upload>/<n>. */
static int swift_delete_part(const char *key, const char *upload_id, int part)
{
    char url[1024], user[128], auth[128], token[1024] = "", storage[1024] = "";
    long status = 0;
    snprintf(url, sizeof url, "%s/auth/v1.0", stack.s3.endpoint);
    snprintf(user, sizeof user, "X-Auth-User: %s", stack.s3.access_key);
    snprintf(auth, sizeof auth, "X-Auth-Key: %s", stack.s3.secret_key);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "curl -s -D - -o /dev/null -H '%s' -H '%s' '%s'", user, auth, url);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncasecmp(line, "X-Auth-Token: ", 14) == 0)
            snprintf(token, sizeof token, "%s", line + 14);
        else if (strncasecmp(line, "X-Storage-Url: ", 15) == 0)
            snprintf(storage, sizeof storage, "%s", line + 15);
    }
    pclose(f);
    if (!token[0] || !storage[0]) {
        fprintf(stderr, "Swift auth at %s gave no token or storage URL\n", url);
        return -1;
    }
    snprintf(cmd, sizeof cmd,
             "curl -s -o /dev/null -w '%%{http_code}' -X DELETE -H 'X-Auth-Token: %s' "
             "'%s/%s+segments/%s/%s/%d'",
             token, storage, stack.s3.bucket, key, upload_id, part);
    f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    if (fgets(line, sizeof line, f))
        status = atol(line);
    pclose(f);
    if (status != 204)
        fprintf(stderr, "Swift DELETE of part %d of %s (upload %s): HTTP %ld\n", part, key,
                upload_id, status);
    return status == 204 ? 0 : -1;
}

/* Stops the uploader after part 1 is recorded, lets the recording end,
 * deletes part 1 at the store, restarts the uploader. */
static void lose_part_one(const char *name, char *track)
{
    char sql[256], key[512], upload_id[256];
    pid_t pid = up_send_track(&stack, name, media, RATE, NULL, NULL, NULL, track);
    if (!CHECK(pid > 0))
        return;
    CHECK(wait_parts(track, 2));
    CHECK_EQ_INT(stack_stop_service(&stack, &stack.uploader_pid, "r2-uploader"), 0);
    CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
    sqlf(sql, sizeof sql, "SELECT object_key FROM uploads WHERE track_id = '%s'", track);
    up_sql(&stack, sql, key, sizeof key);
    sqlf(sql, sizeof sql, "SELECT upload_id FROM uploads WHERE track_id = '%s'", track);
    up_sql(&stack, sql, upload_id, sizeof upload_id);
    CHECK_EQ_INT(swift_delete_part(key, upload_id, 1), 0);
    CHECK(stack_start_uploader(&stack) > 0);
}

static void restart_store(const char *keep)
{
    CHECK_EQ_INT(stack_stop_service(&stack, &stack.store_pid, "chunk-store"), 0);
    stack.extra_env[1] = keep;
    CHECK(stack_start_store(&stack) > 0);
    CHECK_EQ_INT(stack_wait_ready(stack.store_ops_port, 30000), 0);
}

/* bad-input: r2-uploader | a part recorded as uploaded but missing at the store | uploaded again
 * from chunk-store before Complete | the object complete and byte-exact */
static void test_missing_part_uploaded_again(void)
{
    char track[37];
    restart_store("CHUNK_LOG_KEEP_COMMITTED=true");
    lose_part_one("send-lose", track);
    CHECK(wait_track_state(track, "complete"));
    CHECK(up_object_matches(&stack, track, media));
    char *log = stack_log(&stack, "r2-uploader");
    CHECK_CONTAINS(log, "recorded part missing or different at the store");
    free(log);
    restart_store(NULL);
}

/* bad-input: r2-uploader | a part missing at the store whose bytes already left the chunk log |
 * upload `failed`, code `PartLost` with the reason, visible through the API | the parts in the
 * store kept; nothing deleted */
static void test_missing_part_without_its_bytes_fails(void)
{
    char track[37], sql[256], v[256];
    lose_part_one("send-lost", track);
    CHECK(wait_track_state(track, "failed"));
    sqlf(sql, sizeof sql, "SELECT state || ' ' || error_code FROM uploads WHERE track_id = '%s'",
         track);
    CHECK(up_sql(&stack, sql, v, sizeof v) == 0);
    CHECK_EQ_STR(v, "failed PartLost");
}

/* GET /v1/sessions/{sid}/tracks: the track's upload object. */
static json_t *api_track_upload(const char *key, const char *track)
{
    char url[256], auth[600];
    snprintf(url, sizeof url, "%s/v1/sessions/%s/tracks", stack.api_url, stack.session_id);
    snprintf(auth, sizeof auth, "curl -s -H 'Authorization: Bearer %s' '%s'", key, url);
    FILE *f = popen(auth, "r");
    json_t *j = f ? json_loadf(f, 0, NULL) : NULL;
    if (f)
        pclose(f);
    json_t *found = NULL, *parts = json_object_get(j, "participants");
    for (size_t i = 0; i < json_array_size(parts); i++) {
        json_t *tracks = json_object_get(json_array_get(parts, i), "tracks");
        for (size_t k = 0; k < json_array_size(tracks); k++) {
            json_t *t = json_array_get(tracks, k);
            const char *id = json_string_value(json_object_get(t, "track_id"));
            if (id != NULL && strcmp(id, track) == 0)
                found = json_incref(json_object_get(t, "upload"));
        }
    }
    json_decref(j);
    return found;
}

/* op: the request the message must name (NULL: any). */
static void check_store_failure(const char *env, const char *name, const char *code, const char *op)
{
    char track[37], file[1024];
    uploader_restart(env);
    CHECK_EQ_INT(up_make_media(&stack, name, UP_PART + 1000, file, sizeof file), 0);
    pid_t pid = up_send_track(&stack, name, file, 0, NULL, NULL, NULL, track);
    CHECK(pid > 0);
    CHECK_EQ_INT(up_send_wait(&stack, pid, WAIT_MS), 0);
    CHECK(wait_track_state(track, "failed"));
    char *key = stack_api_key(&stack, "host@example.test");
    json_t *u = key ? api_track_upload(key, track) : NULL;
    if (CHECK(u != NULL)) {
        CHECK_EQ_STR(json_string_value(json_object_get(u, "state")), "failed");
        CHECK_EQ_STR(json_string_value(json_object_get(u, "error_code")), code);
        const char *msg = json_string_value(json_object_get(u, "error_message"));
        CHECK(msg != NULL && strlen(msg) > 10);
        CHECK(msg == NULL || strstr(msg, "testing") == NULL); /* never the secret */
        if (op != NULL && !CHECK(msg && strstr(msg, op)))
            fprintf(stderr, "the message does not name %s: %s\n", op, msg ? msg : "(none)");
    }
    json_decref(u);
    free(key);
    uploader_restart(NULL);
}

/* bad-input: r2-uploader | a bucket that does not exist; a wrong secret | upload `failed` with the
 * store's code (`NoSuchBucket`, `SignatureDoesNotMatch`) and message, visible through the API | the
 * chunks stay in the log */
static void test_store_failures_are_visible(void)
{
    check_store_failure("R2_BUCKET_NAME=no-such-bucket", "nobucket.bin", "NoSuchBucket", NULL);
    check_store_failure("R2_SECRET_ACCESS_KEY=not-the-secret", "badsecret.bin",
                        "SignatureDoesNotMatch", NULL);
}

/* bad-input: r2-uploader | the store refuses an UploadPart, or the CompleteMultipartUpload, for
 * good (403 AccessDenied: a key whose write permission was taken away) | upload `failed` with the
 * store's code and message, visible through the API | the chunks stay in the log */
static void test_refusals_for_good_are_visible(void)
{
    const char *denials[] = {"PUT:partNumber", "POST:uploadId"};
    const char *ops[] = {"UploadPart", "CompleteMultipartUpload"};
    for (int i = 0; i < 2; i++) {
        char endpoint_env[128], name[32];
        const char *opts[] = {"--fault-rate", "0", "--deny-requests", denials[i], NULL};
        pid_t proxy = up_fault_proxy_start(&stack, opts, endpoint_env, sizeof endpoint_env);
        if (!CHECK(proxy > 0))
            return;
        snprintf(name, sizeof name, "denied-%d.bin", i);
        check_store_failure(endpoint_env, name, "AccessDenied", ops[i]);
        harness_signal(stack.h, proxy, SIGTERM);
        harness_wait_exit(stack.h, proxy, 10000, NULL);
    }
}

static void test_session_delete_aborts_upload(void)
{
    char track[37], sql[512], key[512], upload_id[256], session[37], participant[37];
    pid_t pid = up_doomed_track(&stack, media, RATE / 2, session, participant, track);
    if (!CHECK(pid > 0))
        return;
    sqlf(sql, sizeof sql, "SELECT object_key FROM uploads WHERE track_id = '%s'", track);
    up_sql(&stack, sql, key, sizeof key);
    sqlf(sql, sizeof sql, "SELECT upload_id FROM uploads WHERE track_id = '%s'", track);
    up_sql(&stack, sql, upload_id, sizeof upload_id);
    CHECK_EQ_INT(up_api_delete_session(&stack, session), 202);
    sqlf(sql, sizeof sql, "SELECT state FROM uploads WHERE track_id = '%s'", track);
    CHECK(up_wait_sql(&stack, sql, "aborted", WAIT_MS, NULL, 0));
    /* the uploader's share is recorded; no muxer runs here, so the editor
     * files' share is not, and the session stays deleting */
    sqlf(sql, sizeof sql,
         "SELECT state || ' ' || (raw_removed_at IS NOT NULL) || ' ' || "
         "(files_removed_at IS NOT NULL) FROM sessions WHERE id = '%s'",
         session);
    CHECK(up_wait_sql(&stack, sql, "deleting true false", WAIT_MS, NULL, 0));
    ss_s3_client *c = stack_s3_client(&stack);
    ss_s3_conn *conn = c ? ss_s3_conn_new(c) : NULL;
    ss_s3_part *parts = NULL;
    size_t n = 0;
    ss_s3_result res;
    uint64_t size;
    CHECK_EQ_INT(ss_s3_list_parts(conn, key, upload_id, &parts, &n, &res), -1);
    CHECK_EQ_STR(res.code, "NoSuchUpload");
    CHECK_EQ_INT(ss_s3_head_object(conn, key, &size, NULL, &res), -1);
    CHECK_EQ_INT(res.http_status, 404);
    free(parts);
    ss_s3_conn_free(conn);
    ss_s3_client_free(c);
    harness_signal(stack.h, pid, SIGKILL);
    up_send_wait(&stack, pid, 5000);
}

int main(void)
{
    if (stack_start(&stack, "test_upload") != 0 ||
        up_make_media(&stack, "media.bin", MEDIA_BYTES, media, sizeof media) != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_upload_while_recording);
    TEST_RUN(test_committed_at_chunk_boundary);
    TEST_RUN(test_kill9_resumes_same_upload);
    TEST_RUN(test_completed_before_crash);
    TEST_RUN(test_concurrency_limit);
    TEST_RUN(test_memory_bounded);
    TEST_RUN(test_missing_part_uploaded_again);
    TEST_RUN(test_missing_part_without_its_bytes_fails);
    TEST_RUN(test_store_failures_are_visible);
    TEST_RUN(test_refusals_for_good_are_visible);
    TEST_RUN(test_session_delete_aborts_upload);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
