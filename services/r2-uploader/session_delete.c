/* session_delete.c -- SessionDelete: abort the session's multipart uploads
 * and delete its raw objects, then record that share of the deletion (the
 * muxer records the other; the second makes the session deleted).
 * Idempotent: a redelivery finds the uploads aborted and the objects gone. */
#include "uploader.h"

#include <stdio.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/session.h"
#include "seashore/v1/work.pb-c.h"

/* AbortMultipartUpload. A store without it (405 or 501: s3rver, which
 * make dev runs) keeps the parts where no one can fetch them: logged, and
 * the deletion goes on rather than waiting for ever. */
static int upload_abort(up_item *it, const char *track_id, const char *key, const char *upload_id,
                        ss_s3_result *res)
{
    if (ss_s3_abort_multipart(it->s3, key, upload_id, res) == 0)
        return 0;
    if (res->http_status != 405 && res->http_status != 501)
        return -1;
    ss_log_warn("the store cannot abort a multipart upload; its parts stay there",
                "{s:s, s:s, s:i}", "track_id", track_id, "key", key, "status",
                (int)res->http_status);
    return 0;
}

/* Aborts one upload and deletes its object. 0, -1 failed for good (logged;
 * the operator must clean up), -2 draining. */
static int upload_remove(up_item *it, const char *track_id, const char *key, const char *upload_id,
                         const char *state)
{
    ss_s3_result res;
    int rc = 0;
    for (int attempt = 0; rc == 0; attempt++) {
        bool ok = (upload_id[0] == '\0' || strcmp(state, "completed") == 0 ||
                   upload_abort(it, track_id, key, upload_id, &res) == 0) &&
                  ss_s3_delete_object(it->s3, key, &res) == 0;
        if (ok)
            return 0;
        if (!res.transient) {
            ss_log_error("cannot remove a deleted session's upload from the store",
                         "{s:s, s:s, "
                         "s:s, s:s}",
                         "track_id", track_id, "key", key, "code", res.code, "message",
                         res.message);
            return -1;
        }
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            rc = -2;
    }
    return rc;
}

static int upload_mark_aborted(up_item *it, const char *track_id)
{
    char err[256];
    const char *params[] = {track_id};
    for (int attempt = 0;; attempt++) {
        PGresult *r =
            ss_pg_query(it->pg, "UPDATE uploads SET state = 'aborted' WHERE track_id = $1", 1,
                        params, err, sizeof err);
        if (r != NULL) {
            PQclear(r);
            return 0;
        }
        if (ss_work_retry_sleep(&it->w, attempt) != 0)
            return -2;
    }
}

/* Every upload of the session not yet aborted; NULL on a database error. */
static PGresult *session_uploads(up_item *it, const char *session_id, bool *deleting)
{
    char err[256];
    const char *params[] = {session_id};
    PGresult *r =
        ss_pg_query(it->pg,
                    "SELECT u.track_id, u.object_key, coalesce(u.upload_id, ''), u.state, "
                    "s.state IN ('deleting', 'deleted') FROM sessions s "
                    "LEFT JOIN tracks t ON t.session_id = s.id "
                    "LEFT JOIN uploads u ON u.track_id = t.id AND u.state <> 'aborted' "
                    "WHERE s.id = $1",
                    1, params, err, sizeof err);
    *deleting = r != NULL && PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 4), "t") == 0;
    return r;
}

ss_work_verdict up_handle_session_delete(up_item *it, const uint8_t *data, size_t len)
{
    ss_work_verdict v = SS_WORK_DONE;
    bool deleting = false;
    PGresult *r = NULL;
    Seashore__V1__SessionDelete *d = seashore__v1__session_delete__unpack(NULL, len, data);
    if (d == NULL || !ss_uuid_valid(d->session_id)) {
        ss_log_error("work item refused: not a valid SessionDelete", NULL);
        goto out;
    }
    if ((r = session_uploads(it, d->session_id, &deleting)) == NULL) {
        v = SS_WORK_LATER;
        goto out;
    }
    if (!deleting) {
        ss_log_warn("SessionDelete for a session that is not being deleted; ignored", "{s:s}",
                    "session_id", d->session_id);
        goto out;
    }
    int removed = 0, failed = 0;
    for (int i = 0; i < PQntuples(r) && v == SS_WORK_DONE; i++) {
        if (PQgetisnull(r, i, 0))
            continue; /* a track without an upload */
        const char *track_id = PQgetvalue(r, i, 0);
        int rc = upload_remove(it, track_id, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                               PQgetvalue(r, i, 3));
        if (rc == 0)
            rc = upload_mark_aborted(it, track_id);
        if (rc == -2)
            v = SS_WORK_ABANDON;
        removed += rc == 0;
        failed += rc == -1;
    }
    if (v == SS_WORK_DONE && failed == 0 &&
        ss_session_removed(it->pg, &it->w, d->session_id, SS_SESSION_RAW_REMOVED) != 0)
        v = SS_WORK_ABANDON;
    if (v == SS_WORK_DONE)
        ss_log_info("session's uploads aborted and raw objects deleted", "{s:s, s:i, s:i}",
                    "session_id", d->session_id, "uploads", removed, "failed", failed);
out:
    PQclear(r);
    seashore__v1__session_delete__free_unpacked(d, NULL);
    return v;
}
