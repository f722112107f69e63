/* upload_util.c -- see upload_util.h. */
#include "upload_util.h"

#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seashore/ingest_token.h"

#define POLL_US 100000

int up_make_media(ingest_stack *s, const char *name, long bytes, char *path_out, size_t len)
{
    char cmd[1200];
    snprintf(path_out, len, "%s/%s", harness_dir(s->h), name);
    snprintf(cmd, sizeof cmd, "head -c %ld /dev/urandom > '%s'", bytes, path_out);
    return system(cmd) == 0 ? 0 : -1;
}

int up_file_sha256(const char *path, uint8_t digest[32])
{
    size_t len = 0;
    char *data = harness_read_file(path, &len);
    if (data == NULL)
        return -1;
    int ok = EVP_Digest(data, len, digest, NULL, EVP_sha256(), NULL);
    free(data);
    return ok ? 0 : -1;
}

pid_t up_send_bg(ingest_stack *s, const char *name, const char *file, int rate,
                 const char *session_id, const char *participant_id, const char *const *extra)
{
    char rate_s[16];
    char *bin = harness_build_path("tools/seashore-send/seashore-send");
    char *tok = ss_ingest_token_issue(
        STACK_SECRET, strlen(STACK_SECRET), session_id ? session_id : s->session_id,
        participant_id ? participant_id : s->participant_id, NULL, (int64_t)time(NULL), 600);
    snprintf(rate_s, sizeof rate_s, "%d", rate);
    char *argv[24] = {bin,      "--url", s->ws_url,      "--token", tok,
                      "--rate", rate_s,  "--chunk-size", "262144"};
    int n = 9;
    for (int i = 0; extra && extra[i] && n < 22; i++)
        argv[n++] = (char *)extra[i];
    argv[n++] = (char *)file;
    argv[n] = NULL;
    pid_t pid = stack_spawn(s, name, argv);
    free(bin);
    free(tok);
    return pid;
}

int up_send_wait(ingest_stack *s, pid_t pid, int timeout_ms)
{
    int status = -1;
    if (harness_wait_exit(s->h, pid, timeout_ms, &status) != 0) {
        harness_signal(s->h, pid, SIGKILL);
        harness_wait_exit(s->h, pid, 5000, NULL);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int up_sql(ingest_stack *s, const char *sql, char *out, size_t len)
{
    char *v = NULL;
    int rc = harness_pg_exec(&s->pg, sql, &v);
    snprintf(out, len, "%s", v ? v : "");
    free(v);
    return rc;
}

bool up_wait_sql(ingest_stack *s, const char *sql, const char *want, int timeout_ms, char *last,
                 size_t lastlen)
{
    char v[1024] = "";
    for (int waited = 0; waited <= timeout_ms; waited += POLL_US / 1000) {
        if (up_sql(s, sql, v, sizeof v) == 0 && strcmp(v, want) == 0)
            break;
        usleep(POLL_US);
    }
    if (last)
        snprintf(last, lastlen, "%s", v);
    if (strcmp(v, want) != 0)
        fprintf(stderr, "waited for [%s] = %s, last %s\n", sql, want, v);
    return strcmp(v, want) == 0;
}

pid_t up_send_track(ingest_stack *s, const char *name, const char *file, int rate,
                    const char *session_id, const char *participant_id, const char *const *extra,
                    char *track_id)
{
    char since[64], sql[512];
    if (up_sql(s, "SELECT clock_timestamp()::text", since, sizeof since) != 0)
        return -1;
    pid_t pid = up_send_bg(s, name, file, rate, session_id, participant_id, extra);
    if (pid <= 0)
        return -1;
    snprintf(sql, sizeof sql,
             "SELECT id FROM tracks WHERE participant_id = '%s' AND created_at >= '%s' "
             "ORDER BY created_at DESC LIMIT 1",
             participant_id ? participant_id : s->participant_id, since);
    for (int waited = 0; waited <= 20000; waited += POLL_US / 1000) {
        if (up_sql(s, sql, track_id, 37) == 0 && track_id[0])
            return pid;
        usleep(POLL_US);
    }
    fprintf(stderr, "%s: no new track appeared\n", name);
    harness_signal(s->h, pid, SIGKILL);
    harness_wait_exit(s->h, pid, 5000, NULL);
    return -1;
}

bool up_object_matches(ingest_stack *s, const char *track_id, const char *file)
{
    char sql[256], key[512];
    uint8_t want[32], got[32];
    uint64_t size = 0;
    size_t flen = 0;
    snprintf(sql, sizeof sql, "SELECT object_key FROM uploads WHERE track_id = '%s'", track_id);
    char *data = harness_read_file(file, &flen);
    free(data);
    if (up_sql(s, sql, key, sizeof key) != 0 || key[0] == '\0' || up_file_sha256(file, want) != 0 ||
        stack_s3_object_sha256(s, key, got, &size) != 0)
        return false;
    if (size != flen || memcmp(want, got, 32) != 0) {
        fprintf(stderr, "object %s: %llu bytes, file %zu bytes, sha256 %s\n", key,
                (unsigned long long)size, flen, memcmp(want, got, 32) ? "differs" : "same");
        return false;
    }
    return true;
}

pid_t up_fault_proxy_start(ingest_stack *s, const char *const *opts, char *endpoint_env, size_t len)
{
    char listen[32], target[64];
    char *argv[32] = {"node",     harness_source_path("tests/harness/fault_proxy.mjs"),
                      "--listen", listen,
                      "--target", target};
    int port = harness_free_port(), n = 6;
    const char *host = strstr(s->s3.endpoint, "://");
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(target, sizeof target, "%s", host ? host + 3 : s->s3.endpoint);
    for (int i = 0; opts[i] != NULL && n < 31; i++)
        argv[n++] = (char *)opts[i];
    argv[n] = NULL;
    pid_t pid = stack_spawn(s, "fault-proxy", argv);
    free(argv[1]);
    snprintf(endpoint_env, len, "R2_ENDPOINT=http://127.0.0.1:%d", port);
    return pid > 0 && harness_wait_port(port, 20000) == 0 ? pid : -1;
}

/* Runs sql (one value) into out, 37 bytes: an id. */
static int sql_id(ingest_stack *s, const char *sql, char *out)
{
    return up_sql(s, sql, out, 37) == 0 && out[0] != '\0' ? 0 : -1;
}

pid_t up_doomed_track(ingest_stack *s, const char *file, int rate, char *session, char *participant,
                      char *track_id)
{
    char sql[512], host_id[64];
    snprintf(sql, sizeof sql, "SELECT host_id FROM sessions WHERE id = '%s'", s->session_id);
    if (up_sql(s, sql, host_id, sizeof host_id) != 0)
        return -1;
    snprintf(sql, sizeof sql,
             "INSERT INTO sessions (host_id, title) VALUES ('%s', 'doomed') RETURNING id", host_id);
    if (sql_id(s, sql, session) != 0)
        return -1;
    snprintf(sql, sizeof sql,
             "INSERT INTO participants (session_id, identity, role) VALUES ('%s', 'g', 'guest') "
             "RETURNING id",
             session);
    if (sql_id(s, sql, participant) != 0)
        return -1;
    pid_t pid = up_send_track(s, "send-doomed", file, rate, session, participant, NULL, track_id);
    if (pid <= 0)
        return -1;
    snprintf(sql, sizeof sql,
             "SELECT (count(*) >= 1)::text FROM upload_parts WHERE track_id = '%s'", track_id);
    if (!up_wait_sql(s, sql, "true", 60000, NULL, 0)) {
        harness_signal(s->h, pid, SIGKILL);
        up_send_wait(s, pid, 5000);
        return -1;
    }
    return pid;
}

int up_api_delete_session(ingest_stack *s, const char *session)
{
    char path[128];
    char *api_key = stack_api_key(s, "host@example.test");
    if (api_key == NULL)
        return -1;
    snprintf(path, sizeof path, "/v1/sessions/%s", session);
    long status = stack_api_status(s, "DELETE", path, api_key);
    free(api_key);
    return (int)status;
}

int up_proxy_faults(ingest_stack *s, pid_t proxy, const char *seed, int *kinds)
{
    harness_signal(s->h, proxy, SIGTERM);
    harness_wait_exit(s->h, proxy, 10000, NULL);
    char *log = stack_log(s, "fault-proxy");
    const char *names[] = {
        "\"500\":", "\"503\":", "\"reset\":", "\"stall\":", "\"slow\":", "\"truncate\":"};
    int total = 0;
    *kinds = 0;
    const char *summary = log ? strstr(log, "\"summary\"") : NULL;
    for (size_t i = 0; summary && i < sizeof names / sizeof names[0]; i++) {
        const char *at = strstr(summary, names[i]);
        int n = at ? atoi(at + strlen(names[i])) : 0;
        total += n;
        *kinds += n > 0;
    }
    if (summary)
        printf("fault proxy (seed %s): %.*s\n", seed, (int)strcspn(summary, "\n"), summary);
    free(log);
    return total;
}
