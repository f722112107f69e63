/* part.c -- PartReady: read the part from chunk-store, upload it, record
 * its ETag, advance the committed point. Parts are cut at fixed offsets,
 * so uploading one again (a redelivery) is harmless. */
#include "uploader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/metrics.h"
#include "seashore/v1/chunks.pb-c.h"
#include "seashore/v1/work.pb-c.h"

#define MIN_PART_SIZE (5ULL << 20)
#define MAX_PARTS     10000

static ss_metric *m_parts, *m_bytes, *m_retries, *m_failed;

static void metrics_init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    m_parts =
        ss_metrics_counter("seashore_upload_parts_total", "Parts the object store accepted", NULL);
    m_bytes = ss_metrics_counter("seashore_upload_bytes_total",
                                 "Bytes of parts the object store accepted", NULL);
    m_retries = ss_metrics_counter("seashore_upload_retries_total",
                                   "Store requests retried after a transient failure", NULL);
    m_failed = ss_metrics_counter("seashore_upload_failed_total",
                                  "Track uploads that failed for good", NULL);
}

void up_notify_committed(const char *track_id, uint64_t seq, uint64_t bytes)
{
    Seashore__V1__CommittedUpdate c = SEASHORE__V1__COMMITTED_UPDATE__INIT;
    uint8_t buf[128];
    char subject[64];
    c.track_id = (char *)track_id;
    c.committed_seq = seq;
    c.committed_bytes = bytes;
    size_t n = seashore__v1__committed_update__pack(&c, buf);
    snprintf(subject, sizeof subject, "track.committed.%s", track_id);
    natsConnection_Publish(up.svc->nats.conn, subject, buf, (int)n);
}

void up_notify_failed(const char *track_id, const char *code, const char *message)
{
    Seashore__V1__UploadFailed f = SEASHORE__V1__UPLOAD_FAILED__INIT;
    char subject[64];
    f.track_id = (char *)track_id;
    f.stage = "upload";
    f.code = (char *)code;
    f.message = (char *)message;
    size_t n = seashore__v1__upload_failed__get_packed_size(&f);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return;
    seashore__v1__upload_failed__pack(&f, buf);
    snprintf(subject, sizeof subject, "track.failed.%s", track_id);
    natsConnection_Publish(up.svc->nats.conn, subject, buf, (int)n);
    free(buf);
}

void up_fail(up_item *it, const char *track_id, const char *key, uint64_t part_size,
             const char *code, const char *message)
{
    char err[256];
    metrics_init();
    ss_series_inc(ss_metric_series(m_failed));
    ss_log_error("track upload failed", "{s:s, s:s, s:s, s:s}", "track_id", track_id, "key", key,
                 "code", code, "message", message);
    for (int attempt = 0;
         up_db_upload_fail(it->pg, track_id, key, part_size, code, message, err, sizeof err) != 0;
         attempt++)
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return; /* draining: the redelivered item fails it again */
    up_notify_failed(track_id, code, message);
}

/* Beyond the client's transient answers, those that blame a part's body
 * (our ETag check, a Content-MD5 the store could not read): the part
 * buffer is read again for the next attempt. */
static bool retry_worthy(const ss_s3_result *res)
{
    static const char *codes[] = {"BadETag", "InvalidDigest"};
    if (res->transient)
        return true;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(res->code, codes[i]) == 0)
            return true;
    return false;
}

int up_upload_part(up_item *it, const up_track *t, const char *track_id, int part_number,
                   uint64_t offset, uint64_t size, ss_s3_result *res)
{
    char etag[80], err[256];
    const uint8_t *md5 = it->digests.md5;
    metrics_init();
    for (int attempt = 0;; attempt++) {
        if (ss_s3_upload_part_hashed(it->s3, t->object_key, t->upload_id, part_number, it->buf,
                                     size, &it->digests, etag, res) == 0)
            break;
        if (!retry_worthy(res))
            return -1;
        ss_series_inc(ss_metric_series(m_retries));
        ss_log_warn("part upload failed, retrying", "{s:s, s:i, s:s, s:s, s:i}", "track_id",
                    track_id, "part", part_number, "code", res->code, "message", res->message,
                    "attempt", attempt);
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -2;
    }
    for (int attempt = 0; up_db_part_record(it->pg, track_id, part_number, offset, size, etag, md5,
                                            err, sizeof err) != 0;
         attempt++)
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -2;
    ss_series_inc(ss_metric_series(m_parts));
    ss_series_add(ss_metric_series(m_bytes), (double)size);
    return 0;
}

/* The track's row, retried while the database is unreachable. */
static int track_load(up_item *it, const char *track_id, up_track *t)
{
    char err[256];
    for (int attempt = 0; up_db_track_load(it->pg, track_id, t, err, sizeof err) != 0; attempt++)
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -1;
    return 0;
}

static bool session_gone(const up_track *t)
{
    return !t->found || strcmp(t->session_state, "deleting") == 0 ||
           strcmp(t->session_state, "deleted") == 0;
}

/* Creates the track's multipart upload unless it exists; t is reloaded.
 * Returns 0 (t->has_upload tells), -1 failed for good (recorded), -2
 * draining. */
static int upload_ensure(up_item *it, const char *track_id, const char *key,
                         const char *content_type, uint64_t part_size, up_track *t)
{
    char upload_id[UP_ID_MAX], err[256];
    ss_s3_result res;
    for (int attempt = 0;; attempt++) {
        if (ss_s3_create_multipart(it->s3, key, content_type, upload_id, sizeof upload_id, &res) ==
            0)
            break;
        if (!retry_worthy(&res)) {
            up_fail(it, track_id, key, part_size, res.code, res.message);
            return -1;
        }
        ss_log_warn("creating the multipart upload failed, retrying", "{s:s, s:s, s:s}", "track_id",
                    track_id, "code", res.code, "message", res.message);
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -2;
    }
    int rc;
    for (int attempt = 0; (rc = up_db_upload_insert(it->pg, track_id, key, upload_id, part_size,
                                                    err, sizeof err)) < 0;
         attempt++)
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -2;
    if (track_load(it, track_id, t) != 0)
        return -2;
    if (rc == 0) /* another worker's upload won, or the session is going */
        ss_s3_abort_multipart(it->s3, key, upload_id, &res);
    else
        ss_log_info("multipart upload created", "{s:s, s:s}", "track_id", track_id, "key", key);
    return 0;
}

static bool part_valid(const Seashore__V1__PartReady *p, const char **why)
{
    char prefix[160];
    snprintf(prefix, sizeof prefix, "raw/%s/%s/%s.", p->session_id, p->participant_id, p->track_id);
    *why = NULL;
    if (!ss_uuid_valid(p->track_id) || !ss_uuid_valid(p->session_id) ||
        !ss_uuid_valid(p->participant_id))
        *why = "track_id, session_id or participant_id is not a UUID";
    else if (p->part_number < 1 || p->part_number > MAX_PARTS)
        *why = "part_number is outside 1..10000";
    else if (p->part_size < MIN_PART_SIZE || p->size == 0 || p->size > p->part_size)
        *why = "part_size below 5 MiB, or size not in 1..part_size";
    else if (p->offset != (uint64_t)(p->part_number - 1) * p->part_size)
        *why = "offset is not (part_number - 1) * part_size";
    else if (strncmp(p->object_key, prefix, strlen(prefix)) != 0 ||
             strlen(p->object_key) >= UP_KEY_MAX)
        *why = "object_key is not raw/<session>/<participant>/<track>.<ext>";
    return *why == NULL;
}

/* Commits what the recorded parts cover and tells ingest-recorder. */
static ss_work_verdict part_commit(up_item *it, const char *track_id)
{
    char err[256];
    uint64_t seq, bytes;
    for (int attempt = 0;
         up_db_commit_advance(it->pg, track_id, &seq, &bytes, err, sizeof err) != 0; attempt++)
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return SS_WORK_ABANDON;
    if (seq > 0)
        up_notify_committed(track_id, seq, bytes);
    return SS_WORK_DONE;
}

static ss_work_verdict part_upload(up_item *it, const Seashore__V1__PartReady *p, up_track *t)
{
    char etag[80], why[512], err[256];
    ss_s3_result res;
    if (up_db_part_etag(it->pg, p->track_id, (int)p->part_number, etag, sizeof etag, err,
                        sizeof err) != 0)
        return SS_WORK_LATER;
    if (etag[0]) /* uploaded before a crash or a lost ack */
        return part_commit(it, p->track_id);
    int64_t t0 = ss_work_now_ms();
    int rc = up_read_part(it, p->track_id, p->offset, p->size, why, sizeof why);
    int64_t t1 = ss_work_now_ms();
    it->read_ms = t1 - t0;
    if (rc == -2)
        return SS_WORK_ABANDON;
    if (rc == -1) {
        /* Released because another worker (a redelivered item) uploaded
         * and committed this part while our read waited: not lost. */
        if (up_db_part_etag(it->pg, p->track_id, (int)p->part_number, etag, sizeof etag, err,
                            sizeof err) != 0)
            return SS_WORK_LATER;
        if (etag[0])
            return part_commit(it, p->track_id);
        up_fail(it, p->track_id, p->object_key, p->part_size, "PartLost", why);
        return SS_WORK_DONE;
    }
    rc = up_upload_part(it, t, p->track_id, (int)p->part_number, p->offset, p->size, &res);
    it->store_ms = ss_work_now_ms() - t1;
    if (rc == -2)
        return SS_WORK_ABANDON;
    if (rc == -1) {
        if (track_load(it, p->track_id, t) != 0)
            return SS_WORK_ABANDON;
        /* NoSuchUpload for a redelivered part whose upload completed (or
         * failed, or was aborted) meanwhile: nothing is lost. */
        if (!session_gone(t) && strcmp(t->upload_state, "uploading") == 0)
            up_fail(it, p->track_id, p->object_key, p->part_size, res.code, res.message);
        return SS_WORK_DONE;
    }
    return part_commit(it, p->track_id);
}

ss_work_verdict up_handle_part(up_item *it, const uint8_t *data, size_t len)
{
    const char *why;
    up_track t;
    ss_work_verdict v = SS_WORK_DONE;
    Seashore__V1__PartReady *p = seashore__v1__part_ready__unpack(NULL, len, data);
    if (p == NULL || !part_valid(p, &why)) {
        ss_log_error("work item refused: not a valid PartReady", "{s:s}", "reason",
                     p ? why : "not a PartReady message");
        goto out;
    }
    if (track_load(it, p->track_id, &t) != 0) {
        v = SS_WORK_ABANDON;
        goto out;
    }
    if (!t.has_upload && !session_gone(&t)) {
        int rc = upload_ensure(it, p->track_id, p->object_key, p->content_type, p->part_size, &t);
        if (rc != 0) {
            v = rc == -2 ? SS_WORK_ABANDON : SS_WORK_DONE;
            goto out;
        }
    }
    if (session_gone(&t) || !t.has_upload || strcmp(t.upload_state, "uploading") != 0) {
        ss_log_info("part not uploaded: session deleted or upload no longer running",
                    "{s:s, s:i, s:s}", "track_id", p->track_id, "part", (int)p->part_number,
                    "upload_state", t.upload_state);
        goto out;
    }
    v = part_upload(it, p, &t);
    if (v == SS_WORK_DONE)
        ss_log_debug("part uploaded", "{s:s, s:i, s:I, s:I, s:I}", "track_id", p->track_id, "part",
                     (int)p->part_number, "bytes", (long long)p->size, "read_ms",
                     (long long)it->read_ms, "store_ms", (long long)it->store_ms);
out:
    seashore__v1__part_ready__free_unpacked(p, NULL);
    return v;
}
