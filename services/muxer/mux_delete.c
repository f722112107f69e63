/* mux_delete.c -- SessionDelete: the session's editor files and manifest
 * leave the store, then that share of the deletion is recorded (r2-uploader
 * records the other; the second makes the session deleted). A job that
 * was muxing while the session was deleted stores its files after the
 * SessionDelete may have listed the keys, so it checks again once they are
 * recorded (mx_delete_if_session_deleted). Idempotent: deleting a missing
 * key succeeds. */
#include "muxer.h"

#include <stdio.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/session.h"
#include "seashore/v1/work.pb-c.h"

/* 0, -1 failed for good (logged), -2 draining. */
static int object_delete(mx_worker *wk, const char *key)
{
    ss_s3_result res;
    for (int attempt = 0;; attempt++) {
        if (ss_s3_delete_object(wk->s3, key, &res) == 0)
            return 0;
        if (!res.transient) {
            ss_log_error("cannot delete a deleted session's file from the store", "{s:s, s:s, s:s}",
                         "key", key, "code", res.code, "message", res.message);
            return -1;
        }
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -2;
    }
}

/* The keys to delete, once the session is being deleted; NULL on a
 * database error. */
static PGresult *session_keys(mx_worker *wk, const char *session_id)
{
    char err[256];
    const char *params[] = {session_id};
    return ss_pg_query(wk->pg,
                       "SELECT o.object_key FROM outputs o JOIN tracks t ON t.id = o.track_id "
                       "JOIN sessions s ON s.id = t.session_id WHERE t.session_id = $1 AND "
                       "s.state IN ('deleting', 'deleted') AND o.object_key IS NOT NULL "
                       "UNION SELECT 'manifests/' || s.id || '.json' FROM sessions s "
                       "WHERE s.id = $1 AND s.state IN ('deleting', 'deleted')",
                       1, params, err, sizeof err);
}

/* Deletes every key of the session if it is being deleted (none if not).
 * 0 with *objects and *failed (refused for good, logged) counted; -1 on a
 * database error; -2 draining. */
static int session_keys_delete(mx_worker *wk, const char *session_id, int *objects, int *failed)
{
    PGresult *r = session_keys(wk, session_id);
    if (r == NULL)
        return -1;
    int rc = 0;
    *objects = PQntuples(r);
    *failed = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        int one = object_delete(wk, PQgetvalue(r, i, 0));
        if (one == -2)
            rc = -2;
        *failed += one == -1;
    }
    PQclear(r);
    return rc;
}

int mx_delete_if_session_deleted(mx_worker *wk, const char *session_id)
{
    int objects = 0, failed = 0, rc;
    for (int attempt = 0; (rc = session_keys_delete(wk, session_id, &objects, &failed)) == -1;
         attempt++)
        if (ss_work_retry_sleep(&wk->w, attempt) != 0)
            return -2;
    if (rc == 0 && objects > 0)
        ss_log_info("session deleted while a track was muxed: its files removed", "{s:s, s:i, s:i}",
                    "session_id", session_id, "objects", objects, "failed", failed);
    return rc;
}

ss_work_verdict mx_handle_session_delete(mx_worker *wk, const uint8_t *data, size_t len)
{
    ss_work_verdict v = SS_WORK_DONE;
    int objects = 0, failed = 0, rc;
    Seashore__V1__SessionDelete *m = seashore__v1__session_delete__unpack(NULL, len, data);
    if (m == NULL || !ss_uuid_valid(m->session_id)) {
        ss_log_error("work item refused: not a valid SessionDelete", NULL);
        goto out;
    }
    rc = session_keys_delete(wk, m->session_id, &objects, &failed);
    v = rc == -1 ? SS_WORK_LATER : rc == -2 ? SS_WORK_ABANDON : SS_WORK_DONE;
    if (v == SS_WORK_DONE && failed == 0 &&
        ss_session_removed(wk->pg, &wk->w, m->session_id, SS_SESSION_FILES_REMOVED) != 0)
        v = SS_WORK_ABANDON;
    if (v == SS_WORK_DONE)
        ss_log_info("deleted session's editor files removed", "{s:s, s:i, s:i}", "session_id",
                    m->session_id, "objects", objects, "failed", failed);
out:
    seashore__v1__session_delete__free_unpacked(m, NULL);
    return v;
}
