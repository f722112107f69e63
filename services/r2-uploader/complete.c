/* complete.c -- TrackComplete: once PostgreSQL records every part, check
 * them against the store's ListParts (a part recorded but missing there is
 * uploaded again from chunk-store), complete the multipart upload, check the
 * object's size, mark the track complete and hand it to the muxer. */
#include "uploader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/v1/work.pb-c.h"

#define WAIT_LOG_EVERY 20 /* deliveries between "still waiting for parts" logs */

typedef Seashore__V1__TrackComplete track_complete;

/* Runs a store request until it succeeds or fails for good. 0, -1 with
 * res, -2 when draining. */
#define STORE_RETRY(it, res, call)                                                                 \
    ({                                                                                             \
        int rc_ = 0;                                                                               \
        for (int attempt_ = 0; (call) != 0; attempt_++) {                                          \
            if (!(res)->transient) {                                                               \
                rc_ = -1;                                                                          \
                break;                                                                             \
            }                                                                                      \
            if (ss_work_retry_sleep(&(it)->w, attempt_) != 0) {                                    \
                rc_ = -2;                                                                          \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
        rc_;                                                                                       \
    })

static bool complete_valid(const track_complete *c, const char **why)
{
    *why = NULL;
    if (!ss_uuid_valid(c->track_id) || !ss_uuid_valid(c->session_id) ||
        !ss_uuid_valid(c->participant_id))
        *why = "track_id, session_id or participant_id is not a UUID";
    else if (c->total_bytes == 0 || c->part_size == 0 ||
             c->part_count != (c->total_bytes + c->part_size - 1) / c->part_size)
        *why = "part_count is not ceil(total_bytes / part_size), or the track is empty";
    else if (c->sha256.len != 32)
        *why = "sha256 is not 32 bytes";
    return *why == NULL;
}

/* The recorded parts must be 1..part_count with the fixed sizes. */
static int parts_check(const track_complete *c, const ss_s3_part *parts, size_t n, char *why,
                       size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t want = i + 1 < c->part_count ? c->part_size
                                              : c->total_bytes - (c->part_count - 1) * c->part_size;
        if (parts[i].part_number != (int)(i + 1) || parts[i].size != want) {
            snprintf(why, whylen,
                     "recorded part %d has %" PRIu64 " bytes where part %zu should have %" PRIu64,
                     parts[i].part_number, parts[i].size, i + 1, want);
            return -1;
        }
    }
    return 0;
}

static const ss_s3_part *part_find(const ss_s3_part *parts, size_t n, int number)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i].part_number == number)
            return &parts[i];
    return NULL;
}

/* The object exists with the track's size: an earlier Complete went
 * through before a crash. retry: HEAD until the store answers, else once. */
static bool object_whole(up_item *it, const track_complete *c, const up_track *t, bool retry)
{
    uint64_t size = 0;
    ss_s3_result res;
    int rc =
        retry ? STORE_RETRY(it, &res, ss_s3_head_object(it->s3, t->object_key, &size, NULL, &res))
              : ss_s3_head_object(it->s3, t->object_key, &size, NULL, &res);
    return rc == 0 && size == c->total_bytes;
}

/* Uploads again every recorded part the store does not hold as recorded.
 * 0, 1 the upload was completed already (the object is whole: the store
 * took a Complete whose answer a crash or a drain cut off), -1 failed for
 * good (recorded), -2 draining. */
static int parts_repair(up_item *it, const track_complete *c, const up_track *t, ss_s3_part *parts,
                        size_t n)
{
    ss_s3_part *stored = NULL;
    size_t nstored = 0;
    ss_s3_result res;
    char why[512];
    int rc = STORE_RETRY(
        it, &res, ss_s3_list_parts(it->s3, t->object_key, t->upload_id, &stored, &nstored, &res));
    if (rc == -1 && (res.http_status == 405 || res.http_status == 501)) {
        /* e.g. s3rver (make dev): trust the recorded ETags */
        ss_log_warn("the store cannot list parts; completing with the recorded ones", "{s:s}",
                    "track_id", c->track_id);
        return 0;
    }
    if (rc == -1 && strcmp(res.code, "NoSuchUpload") == 0 && object_whole(it, c, t, true))
        rc = 1;
    else if (rc == -1)
        up_fail(it, c->track_id, t->object_key, c->part_size, res.code, res.message);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const ss_s3_part *s = part_find(stored, nstored, parts[i].part_number);
        if (s != NULL && s->size == parts[i].size && strcmp(s->etag, parts[i].etag) == 0)
            continue;
        ss_log_warn("recorded part missing or different at the store; uploading it again",
                    "{s:s, s:i}", "track_id", c->track_id, "part", parts[i].part_number);
        uint64_t offset = (uint64_t)(parts[i].part_number - 1) * c->part_size;
        rc = up_read_part(it, c->track_id, offset, parts[i].size, why, sizeof why);
        if (rc == -1)
            up_fail(it, c->track_id, t->object_key, c->part_size, "PartLost", why);
        if (rc != 0)
            break;
        rc = up_upload_part(it, t, c->track_id, parts[i].part_number, offset, parts[i].size, &res);
        if (rc == -1)
            up_fail(it, c->track_id, t->object_key, c->part_size, res.code, res.message);
    }
    free(stored);
    return rc;
}

/* CompleteMultipartUpload until it succeeds, fails for good (-1 with res)
 * or the object turns out whole: when the answer to a Complete was lost (a
 * crash, a cut connection), some stores answer the next one with a 500
 * forever (s3rver). -2 when draining. */
static int complete_retry(up_item *it, const track_complete *c, const up_track *t,
                          ss_s3_part *parts, size_t n, ss_s3_result *res)
{
    for (int attempt = 0;; attempt++) {
        if (ss_s3_complete_multipart(it->s3, t->object_key, t->upload_id, parts, n, res) == 0)
            return 0;
        if (!res->transient)
            return -1;
        if (object_whole(it, c, t, false))
            return 0;
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -2;
    }
}

static int publish_uploaded(const track_complete *c, const char *key)
{
    Seashore__V1__TrackUploaded u = SEASHORE__V1__TRACK_UPLOADED__INIT;
    char msg_id[64];
    u.session_id = c->session_id;
    u.participant_id = c->participant_id;
    u.track_id = c->track_id;
    u.object_key = (char *)key;
    u.size = c->total_bytes;
    u.sha256 = c->sha256;
    u.mime_type = c->mime_type;
    u.kind = c->kind;
    u.capture_start_unix_us = c->capture_start_unix_us;
    u.clock_offset_us = c->clock_offset_us;
    u.duration_us = c->duration_us;
    size_t n = seashore__v1__track_uploaded__get_packed_size(&u);
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        return -1;
    seashore__v1__track_uploaded__pack(&u, buf);
    snprintf(msg_id, sizeof msg_id, "%s:uploaded", c->track_id);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(NULL, up.svc->nats.js, "work.mux", buf, (int)n, &po, &jerr);
    free(buf);
    return s == NATS_OK ? 0 : -1;
}

/* The object is whole: record it, tell the client and the muxer. */
static ss_work_verdict complete_finish(up_item *it, const track_complete *c, const char *key)
{
    char err[256];
    for (int attempt = 0; up_db_upload_completed(it->pg, c->track_id, err, sizeof err) != 0;
         attempt++)
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return SS_WORK_ABANDON;
    uint64_t chunks = 0, bytes = 0;
    if (up_db_commit_advance(it->pg, c->track_id, &chunks, &bytes, err, sizeof err) == 0)
        up_notify_committed(c->track_id, chunks, bytes);
    if (publish_uploaded(c, key) != 0)
        return SS_WORK_LATER; /* redelivered: the completed upload is published again */
    ss_log_info("track uploaded", "{s:s, s:s, s:I, s:i}", "track_id", c->track_id, "key", key,
                "bytes", (long long)c->total_bytes, "parts", (int)c->part_count);
    return SS_WORK_DONE;
}

/* The parts again, after a repair recorded new ETags. 0 or -2. */
static int parts_reload(up_item *it, const char *track_id, ss_s3_part **parts, size_t *n)
{
    char err[256];
    free(*parts);
    for (int attempt = 0; up_db_parts_list(it->pg, track_id, parts, n, err, sizeof err) != 0;
         attempt++)
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -2;
    return 0;
}

/* Repairs the recorded parts at the store and completes the upload. 0
 * (also when a Complete before a crash did it), -1 failed for good
 * (recorded), -2 draining. */
static int upload_finish(up_item *it, const track_complete *c, const up_track *t,
                         ss_s3_part **parts, size_t *n)
{
    ss_s3_result res;
    int rc = parts_repair(it, c, t, *parts, *n); /* records its own failures */
    if (rc == 1)
        return 0;
    if (rc == 0)
        rc = parts_reload(it, c->track_id, parts, n);
    if (rc != 0)
        return rc;
    rc = complete_retry(it, c, t, *parts, *n, &res);
    if (rc == -1 && strcmp(res.code, "NoSuchUpload") == 0 && object_whole(it, c, t, true))
        return 0; /* completed before a crash */
    if (rc == -1)
        up_fail(it, c->track_id, t->object_key, c->part_size, res.code, res.message);
    return rc;
}

static ss_work_verdict complete_upload(up_item *it, const track_complete *c, const up_track *t)
{
    ss_s3_part *parts = NULL;
    size_t n = 0;
    char err[256], why[UP_KEY_MAX + 128];
    ss_work_verdict v = SS_WORK_DONE;
    if (up_db_parts_list(it->pg, c->track_id, &parts, &n, err, sizeof err) != 0)
        return SS_WORK_LATER;
    if (n < c->part_count) {
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, it->w.msg) == NATS_OK &&
            meta->NumDelivered % WAIT_LOG_EVERY == 0)
            ss_log_info("track ended; waiting for its parts", "{s:s, s:I, s:i}", "track_id",
                        c->track_id, "recorded", (long long)n, "parts", (int)c->part_count);
        jsMsgMetaData_Destroy(meta);
        v = SS_WORK_LATER;
    } else if (parts_check(c, parts, n, why, sizeof why) != 0) {
        up_fail(it, c->track_id, t->object_key, c->part_size, "PartSizeMismatch", why);
    } else {
        int rc = upload_finish(it, c, t, &parts, &n);
        if (rc == 0 && !object_whole(it, c, t, true)) {
            snprintf(why, sizeof why, "the completed object %s does not have %" PRIu64 " bytes",
                     t->object_key, c->total_bytes);
            up_fail(it, c->track_id, t->object_key, c->part_size, "SizeMismatch", why);
            rc = -1;
        }
        v = rc == 0    ? complete_finish(it, c, t->object_key)
            : rc == -2 ? SS_WORK_ABANDON
                       : SS_WORK_DONE;
    }
    free(parts);
    return v;
}

ss_work_verdict up_handle_complete(up_item *it, const uint8_t *data, size_t len)
{
    const char *why;
    char err[256];
    up_track t;
    ss_work_verdict v = SS_WORK_DONE;
    track_complete *c = seashore__v1__track_complete__unpack(NULL, len, data);
    if (c == NULL || !complete_valid(c, &why)) {
        ss_log_error("work item refused: not a valid TrackComplete", "{s:s}", "reason",
                     c ? why : "not a TrackComplete message");
        goto out;
    }
    if (up_db_track_load(it->pg, c->track_id, &t, err, sizeof err) != 0) {
        v = SS_WORK_LATER;
    } else if (!t.found || strcmp(t.session_state, "deleting") == 0 ||
               strcmp(t.session_state, "deleted") == 0) {
        ss_log_info("track not completed: its session is deleted", "{s:s}", "track_id",
                    c->track_id);
    } else if (!t.has_upload) {
        v = SS_WORK_LATER; /* the first part has not created it yet */
    } else if (strcmp(t.upload_state, "failed") == 0) {
        /* failed while recording: the track fails now that it ended */
        if (up_db_upload_fail(it->pg, c->track_id, t.object_key, c->part_size, "UploadFailed",
                              "failed earlier", err, sizeof err) != 0)
            v = SS_WORK_LATER;
    } else if (strcmp(t.upload_state, "completed") == 0) {
        v = complete_finish(it, c, t.object_key);
    } else if (strcmp(t.upload_state, "uploading") == 0) {
        v = complete_upload(it, c, &t);
    }
out:
    seashore__v1__track_complete__free_unpacked(c, NULL);
    return v;
}
