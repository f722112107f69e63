/* mux_util.c -- helpers of the muxer's pipeline tests (mux_util.h). */
#include "mux_util.h"

#include <inttypes.h>
#include <jansson.h>
#include <nats/nats.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seashore/s3_client.h"
#include "seashore/v1/work.pb-c.h"

#define POLL_US     200000
#define FETCH_CHUNK (1 << 20)

static char requeued_at[64];

/* The first line a shell command prints (trailing newline removed). */
static int run_line(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    out[0] = '\0';
    if (fgets(out, (int)len, p) != NULL)
        out[strcspn(out, "\r\n")] = '\0';
    while (fgetc(p) != EOF)
        ;
    return pclose(p) == 0 ? 0 : -1;
}

int mt_make_media(ingest_stack *s, const char *name, const char *codec_args, char *path_out,
                  size_t len)
{
    char cmd[2048], out[256];
    snprintf(path_out, len, "%s/%s", harness_dir(s->h), name);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i "
             "sine=frequency=440:sample_rate=48000 -t 3 %s '%s' 2>&1",
             codec_args, path_out);
    if (run_line(cmd, out, sizeof out) != 0) {
        fprintf(stderr, "ffmpeg could not make %s: %s\n", name, out);
        return -1;
    }
    return 0;
}

int mt_post(ingest_stack *s, const char *file, const char *mime, int64_t capture_start_us,
            const char *session_id, const char *participant_id, char *track_id)
{
    char start[32];
    snprintf(start, sizeof start, "%" PRId64, capture_start_us);
    const char *extra[] = {"--mime", mime, capture_start_us ? "--capture-start" : NULL, start,
                           NULL};
    pid_t pid = up_send_track(s, "send", file, 0, session_id, participant_id, extra, track_id);
    return pid > 0 ? up_send_wait(s, pid, 60000) : -1;
}

int mt_post_skewed(ingest_stack *s, const char *file, const char *mime, int64_t capture_start_us,
                   int skew_ms, const char *session_id, const char *participant_id, char *track_id)
{
    char start[32], skew[16];
    snprintf(start, sizeof start, "%" PRId64, capture_start_us);
    snprintf(skew, sizeof skew, "%d", skew_ms);
    const char *extra[] = {"--mime", mime, "--capture-start", start, "--clock-skew-ms", skew, NULL};
    pid_t pid =
        up_send_track(s, "send-skewed", file, 0, session_id, participant_id, extra, track_id);
    return pid > 0 ? up_send_wait(s, pid, 60000) : -1;
}

bool mt_wait_object_gone(ingest_stack *s, const char *key, int timeout_ms)
{
    ss_s3_client *c = stack_s3_client(s);
    ss_s3_conn *conn = c ? ss_s3_conn_new(c) : NULL;
    bool gone = false;
    for (int waited = 0; conn && !gone && waited <= timeout_ms; waited += POLL_US / 1000) {
        ss_s3_result res;
        uint64_t size;
        gone = ss_s3_head_object(conn, key, &size, NULL, &res) == -1 && res.http_status == 404;
        if (!gone)
            usleep(POLL_US);
    }
    ss_s3_conn_free(conn);
    ss_s3_client_free(c);
    if (!gone)
        fprintf(stderr, "%s is still in the store after %d ms\n", key, timeout_ms);
    return gone;
}

bool mt_wait_muxed(ingest_stack *s, const char *track_id, int timeout_ms)
{
    char sql[512], v[32];
    snprintf(sql, sizeof sql,
             "SELECT jsonb_array_length(t->'outputs') FROM session_manifests m, "
             "jsonb_array_elements(m.manifest->'participants') p, "
             "jsonb_array_elements(p->'tracks') t WHERE t->>'id' = '%s'",
             track_id);
    if (up_wait_sql(s, sql, "3", timeout_ms, v, sizeof v))
        return true;
    fprintf(stderr, "track %s: the manifest lists %s outputs\n", track_id, v[0] ? v : "no");
    return false;
}

bool mt_output_state_is(ingest_stack *s, const char *track_id, const char *kind, const char *state)
{
    char sql[256], v[64];
    snprintf(sql, sizeof sql, "SELECT state FROM outputs WHERE track_id = '%s' AND kind = '%s'",
             track_id, kind);
    if (up_sql(s, sql, v, sizeof v) == 0 && strcmp(v, state) == 0)
        return true;
    fprintf(stderr, "output %s of %s is '%s', not %s\n", kind, track_id, v, state);
    return false;
}

bool mt_output_reason_contains(ingest_stack *s, const char *track_id, const char *kind,
                               const char *text)
{
    char sql[256], v[512];
    snprintf(sql, sizeof sql,
             "SELECT failure_reason FROM outputs WHERE track_id = '%s' AND kind = '%s'", track_id,
             kind);
    if (up_sql(s, sql, v, sizeof v) == 0 && strstr(v, text) != NULL)
        return true;
    fprintf(stderr, "output %s of %s: reason '%s' lacks '%s'\n", kind, track_id, v, text);
    return false;
}

/* Downloads key to path; its size and sha256 (hex) out. */
static int download(ingest_stack *s, const char *key, const char *path, uint64_t *size, char *hex)
{
    ss_s3_client *c = stack_s3_client(s);
    ss_s3_conn *conn = c ? ss_s3_conn_new(c) : NULL;
    uint8_t *buf = malloc(FETCH_CHUNK), sha[32];
    FILE *f = fopen(path, "wb");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = -1;
    *size = 0;
    if (conn == NULL || buf == NULL || f == NULL || md == NULL ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (;;) {
        size_t got = 0;
        ss_s3_result res;
        if (ss_s3_get_range(conn, key, *size, FETCH_CHUNK, buf, &got, &res) != 0) {
            fprintf(stderr, "GET %s: %s: %s\n", key, res.code, res.message);
            goto out;
        }
        if (got == 0)
            break;
        fwrite(buf, 1, got, f);
        EVP_DigestUpdate(md, buf, got);
        *size += got;
        if (got < FETCH_CHUNK)
            break;
    }
    EVP_DigestFinal_ex(md, sha, NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    EVP_MD_CTX_free(md);
    free(buf);
    ss_s3_conn_free(conn);
    ss_s3_client_free(c);
    return rc;
}

int mt_fetch_output(ingest_stack *s, const char *track_id, const char *kind, char *path_out,
                    size_t len)
{
    char sql[256], row[700], key[512] = "", hex[65];
    uint64_t size = 0;
    snprintf(sql, sizeof sql,
             "SELECT object_key || ' ' || size_bytes || ' ' || encode(sha256, 'hex') FROM outputs "
             "WHERE track_id = '%s' AND kind = '%s' AND state = 'done'",
             track_id, kind);
    unsigned long long want_size = 0;
    char want_sha[65] = "";
    if (up_sql(s, sql, row, sizeof row) != 0 ||
        sscanf(row, "%511s %llu %64s", key, &want_size, want_sha) != 3) {
        fprintf(stderr, "no done %s output for %s\n", kind, track_id);
        return -1;
    }
    snprintf(path_out, len, "%s/%s.%s", harness_dir(s->h), track_id, kind);
    if (download(s, key, path_out, &size, hex) != 0)
        return -1;
    if (size != want_size || strcmp(hex, want_sha) != 0) {
        fprintf(stderr, "%s: %" PRIu64 " bytes sha256 %s in the store, %llu bytes %s recorded\n",
                key, size, hex, want_size, want_sha);
        return -1;
    }
    return 0;
}

void mt_output_hashes(ingest_stack *s, const char *track_id, char out[3][65])
{
    static const char *kinds[] = {"webm", "mp4", "wav"};
    for (int k = 0; k < 3; k++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(encode(sha256, 'hex'), '') FROM outputs WHERE track_id = '%s' "
                 "AND kind = '%s'",
                 track_id, kinds[k]);
        up_sql(s, sql, out[k], 65);
    }
}

int mt_requeue(ingest_stack *s, const char *track_id, const char *tag)
{
    char sql[512], row[1024], sid[37], pid[37], key[512], msg_id[128];
    unsigned long long size;
    snprintf(sql, sizeof sql,
             "SELECT t.session_id || ' ' || t.participant_id || ' ' || u.object_key || ' ' || "
             "t.total_bytes FROM tracks t JOIN uploads u ON u.track_id = t.id WHERE t.id = '%s'",
             track_id);
    if (up_sql(s, "SELECT clock_timestamp()::text", requeued_at, sizeof requeued_at) != 0 ||
        up_sql(s, sql, row, sizeof row) != 0 ||
        sscanf(row, "%36s %36s %511s %llu", sid, pid, key, &size) != 4)
        return -1;
    Seashore__V1__TrackUploaded m = SEASHORE__V1__TRACK_UPLOADED__INIT;
    m.session_id = sid;
    m.participant_id = pid;
    m.track_id = (char *)track_id;
    m.object_key = key;
    m.size = size;
    uint8_t buf[1024];
    size_t n = seashore__v1__track_uploaded__pack(&m, buf);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsPubOptions po;
    jsErrCode jerr = 0;
    int rc = -1;
    if (natsConnection_ConnectTo(&nc, s->nats.url) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK) {
        jsPubOptions_Init(&po);
        snprintf(msg_id, sizeof msg_id, "%s:%s", track_id, tag);
        po.MsgId = msg_id;
        rc = js_Publish(NULL, js, "work.mux", buf, (int)n, &po, &jerr) == NATS_OK ? 0 : -1;
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return rc;
}

bool mt_wait_updated(ingest_stack *s, const char *track_id, int timeout_ms)
{
    char sql[512], v[16];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM outputs WHERE track_id = '%s' AND updated_at > '%s'", track_id,
             requeued_at);
    return up_wait_sql(s, sql, "3", timeout_ms, v, sizeof v);
}

bool mt_wait_item_in_flight(ingest_stack *s, int timeout_ms)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    bool seen = false;
    if (natsConnection_ConnectTo(&nc, s->nats.url) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
        for (int waited = 0; !seen && waited <= timeout_ms; waited += 5) {
            jsConsumerInfo *ci = NULL;
            jsErrCode jerr = 0;
            if (js_GetConsumerInfo(&ci, js, "WORK", "muxer", NULL, &jerr) == NATS_OK)
                seen = ci->NumAckPending > 0;
            jsConsumerInfo_Destroy(ci);
            if (!seen)
                usleep(5000);
        }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return seen;
}

json_t *mt_api_get(ingest_stack *s, const char *path, long *status)
{
    char cmd[2048], out[1024], *body = NULL;
    size_t len = 0;
    static char *api_key;
    if (api_key == NULL)
        api_key = stack_api_key(s, "host@example.test");
    snprintf(out, sizeof out, "%s/api-body.json", harness_dir(s->h));
    snprintf(cmd, sizeof cmd,
             "curl -s -o '%s' -w '%%{http_code}' -H 'Authorization: Bearer %s' '%s%s'", out,
             api_key ? api_key : "", s->api_url, path);
    char code[16];
    *status = run_line(cmd, code, sizeof code) == 0 ? strtol(code, NULL, 10) : -1;
    body = harness_read_file(out, &len);
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

int mt_fetch_url(const char *url, const char *path, char *sha_hex)
{
    char cmd[4096], out[128];
    snprintf(cmd, sizeof cmd, "curl -sf -o '%s' '%s' && sha256sum '%s'", path, url, path);
    if (run_line(cmd, out, sizeof out) != 0 || strlen(out) < 64)
        return -1;
    memcpy(sha_hex, out, 64);
    sha_hex[64] = '\0';
    return 0;
}

static json_t *manifest_from_store(ingest_stack *s)
{
    char key[128], path[1024], hex[65];
    uint64_t size;
    snprintf(key, sizeof key, "manifests/%s.json", s->session_id);
    snprintf(path, sizeof path, "%s/manifest.json", harness_dir(s->h));
    if (download(s, key, path, &size, hex) != 0)
        return NULL;
    json_error_t e;
    json_t *m = json_load_file(path, 0, &e);
    if (m == NULL)
        fprintf(stderr, "%s is not JSON: %s (line %d)\n", key, e.text, e.line);
    return m;
}

static json_t *manifest_track(json_t *m, const char *track_id)
{
    size_t i, j;
    json_t *p, *t;
    json_array_foreach(json_object_get(m, "participants"), i, p) json_array_foreach(
        json_object_get(p, "tracks"), j,
        t) if (strcmp(json_string_value(json_object_get(t, "id")) ?: "", track_id) == 0) return t;
    return NULL;
}

/* How many of the track's outputs the manifest in the store lists with
 * PostgreSQL's sha256. */
static int manifest_matches(ingest_stack *s, const char *track_id)
{
    char hashes[3][65];
    static const char *kinds[] = {"webm", "mp4", "wav"};
    json_t *m = manifest_from_store(s), *o;
    json_t *t = m ? manifest_track(m, track_id) : NULL;
    size_t i;
    int matched = 0;
    mt_output_hashes(s, track_id, hashes);
    json_array_foreach(t ? json_object_get(t, "outputs") : NULL, i, o)
    {
        const char *kind = json_string_value(json_object_get(o, "kind"));
        const char *sha = json_string_value(json_object_get(o, "sha256"));
        for (int k = 0; k < 3; k++)
            if (kind && strcmp(kind, kinds[k]) == 0 && strcmp(sha ? sha : "", hashes[k]) == 0)
                matched++;
    }
    json_decref(m);
    return matched;
}

/* A few tries: another job of the session may be rewriting the manifest,
 * and s3rver (unlike S3) serves a file while it is replaced. */
bool mt_manifest_lists(ingest_stack *s, const char *track_id)
{
    int matched = 0;
    for (int attempt = 0; attempt < 10 && (matched = manifest_matches(s, track_id)) != 3; attempt++)
        usleep(300000);
    if (matched != 3)
        fprintf(stderr, "manifest: %d of 3 outputs of %s match PostgreSQL\n", matched, track_id);
    return matched == 3;
}

int64_t mt_manifest_offset_us(ingest_stack *s, const char *track_id)
{
    char sql[512], v[32];
    snprintf(sql, sizeof sql,
             "SELECT t->>'start_offset_us' FROM session_manifests m, "
             "jsonb_array_elements(m.manifest->'participants') p, "
             "jsonb_array_elements(p->'tracks') t WHERE t->>'id' = '%s'",
             track_id);
    if (up_sql(s, sql, v, sizeof v) != 0 || v[0] == '\0')
        return INT64_MIN;
    return strtoll(v, NULL, 10);
}

static double probe_double(const char *path, const char *entries, const char *select)
{
    char cmd[1400], out[128];
    snprintf(cmd, sizeof cmd, "ffprobe -v error %s -show_entries %s -of csv=p=0 '%s'", select,
             entries, path);
    if (run_line(cmd, out, sizeof out) != 0 || out[0] == '\0')
        return -1;
    return strtod(out, NULL);
}

bool mt_duration_is(const char *path, double want_s, double tolerance_s)
{
    double d = probe_double(path, "format=duration", "");
    if (d > 0 && d - want_s < tolerance_s && want_s - d < tolerance_s)
        return true;
    fprintf(stderr, "%s lasts %.3f s, not %.3f s (+- %.3f)\n", path, d, want_s, tolerance_s);
    return false;
}

bool mt_has_cues(const char *webm)
{
    size_t len = 0;
    char *d = harness_read_file(webm, &len);
    static const unsigned char cues[] = {0x1C, 0x53, 0xBB, 0x6B}, seek_id[] = {0x53, 0xAB, 0x84};
    bool found = false;
    for (size_t i = 3; d && !found && i + 4 <= len; i++)
        found = memcmp(d + i, cues, 4) == 0 && memcmp(d + i - 3, seek_id, 3) != 0;
    free(d);
    if (!found)
        fprintf(stderr, "%s has no Cues element\n", webm);
    return found;
}

bool mt_codecs_are(const char *path, const char *want)
{
    char cmd[1200], line[64], got[256] = "";
    snprintf(cmd, sizeof cmd, "ffprobe -v error -show_entries stream=codec_name -of csv=p=0 '%s'",
             path);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = '\0';
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%s", n ? "," : "", line);
    }
    bool ok = p != NULL && pclose(p) == 0 && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "%s has streams '%s', not '%s'\n", path, got, want);
    return ok;
}

bool mt_decodes_cleanly(const char *path)
{
    char cmd[1200], out[512];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -i '%s' -enc_time_base -1 -f null - 2>&1", path);
    if (run_line(cmd, out, sizeof out) == 0 && out[0] == '\0')
        return true;
    fprintf(stderr, "%s does not decode cleanly: %s\n", path, out);
    return false;
}

long mt_video_frames(const char *path)
{
    return (long)probe_double(path, "stream=nb_read_frames", "-count_frames -select_streams v:0");
}

bool mt_is_wav_48k(const char *path)
{
    char cmd[1200], out[128];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -show_entries stream=codec_name,sample_rate -of csv=p=0 '%s'", path);
    if (run_line(cmd, out, sizeof out) == 0 && strcmp(out, "pcm_s16le,48000") == 0)
        return true;
    fprintf(stderr, "%s is '%s', not pcm_s16le at 48 kHz\n", path, out);
    return false;
}

int64_t mt_wav_samples(const char *path)
{
    return (int64_t)probe_double(path, "stream=duration_ts", "-select_streams a:0");
}

/* The top-level boxes' order: moov before mdat. */
static bool moov_first(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char h[16];
    long pos = 0, moov = -1, mdat = -1;
    while (f && fseek(f, pos, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
        uint64_t size = ((uint64_t)h[0] << 24) | ((uint64_t)h[1] << 16) | (h[2] << 8) | h[3];
        if (size == 1 && fread(h + 8, 1, 8, f) == 8) {
            size = 0;
            for (int i = 8; i < 16; i++)
                size = (size << 8) | h[i];
        }
        if (memcmp(h + 4, "moov", 4) == 0)
            moov = pos;
        if (memcmp(h + 4, "mdat", 4) == 0)
            mdat = pos;
        if (size < 8)
            break;
        pos += (long)size;
    }
    if (f)
        fclose(f);
    return moov >= 0 && mdat >= 0 && moov < mdat;
}

static void stream_codec(const char *path, const char *select, char *out, size_t len)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -select_streams %s -show_entries stream=codec_name -of csv=p=0 "
             "'%s'",
             select, path);
    if (run_line(cmd, out, len) != 0)
        out[0] = '\0';
}

bool mt_mp4_is_editor_ready(const char *path)
{
    char v[64], a[64];
    stream_codec(path, "v:0", v, sizeof v);
    stream_codec(path, "a:0", a, sizeof a);
    bool ok = strcmp(v, "h264") == 0 && strcmp(a, "aac") == 0 && moov_first(path);
    if (!ok)
        fprintf(stderr, "%s: video %s, audio %s, moov %s mdat\n", path, v, a,
                moov_first(path) ? "before" : "not before");
    return ok;
}

bool mt_mp4_is_audio_ready(const char *path)
{
    char v[64], a[64];
    stream_codec(path, "v:0", v, sizeof v);
    stream_codec(path, "a:0", a, sizeof a);
    bool ok = v[0] == '\0' && strcmp(a, "aac") == 0 && moov_first(path);
    if (!ok)
        fprintf(stderr, "%s: video '%s', audio %s, moov %s mdat\n", path, v, a,
                moov_first(path) ? "before" : "not before");
    return ok;
}

double mt_decoded_seconds(const char *path)
{
    char cmd[1200], line[128];
    double first = -1, last = -1;
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -show_entries packet=pts_time,duration_time -of csv=p=0 '%s'", path);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p)) {
        char *comma = strchr(line, ',');
        if (line[0] == 'N')
            continue;
        double pts = strtod(line, NULL),
               dur = comma && comma[1] != 'N' ? strtod(comma + 1, NULL) : 0;
        if (first < 0 || pts < first)
            first = pts;
        if (pts + dur > last)
            last = pts + dur;
    }
    if (p)
        pclose(p);
    return first >= 0 ? last - first : -1;
}

int64_t mt_decoded_samples_48k(const char *path)
{
    char cmd[1200], out[64];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -nostdin -i '%s' -vn -ac 1 -ar 48000 -f s16le - | wc -c", path);
    if (run_line(cmd, out, sizeof out) != 0)
        return -1;
    return strtoll(out, NULL, 10) / 2;
}
