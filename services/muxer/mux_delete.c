/* mux_delete.c -- SessionDelete: the session's editor files and manifest
 * leave the store, then that share of the deletion is recorded (r2-uploader
 * records the other; the second makes the session deleted). Idempotent:
 * deleting a missing key succeeds. */
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

ss_work_verdict mx_handle_session_delete(mx_worker *wk, const uint8_t *data, size_t len)
{
    ss_work_verdict v = SS_WORK_DONE;
    Seashore__V1__SessionDelete *m = seashore__v1__session_delete__unpack(NULL, len, data);
    if (m == NULL || !ss_uuid_valid(m->session_id)) {
        ss_log_error("work item refused: not a valid SessionDelete", NULL);
        goto out;
    }
    PGresult *r = session_keys(wk, m->session_id);
    if (r == NULL) {
        v = SS_WORK_LATER;
        goto out;
    }
    int failed = 0;
    for (int i = 0; i < PQntuples(r) && v == SS_WORK_DONE; i++) {
        int rc = object_delete(wk, PQgetvalue(r, i, 0));
        if (rc == -2)
            v = SS_WORK_ABANDON;
        failed += rc == -1;
    }
    if (v == SS_WORK_DONE && failed == 0 &&
        ss_session_removed(wk->pg, &wk->w, m->session_id, SS_SESSION_FILES_REMOVED) != 0)
        v = SS_WORK_ABANDON;
    if (v == SS_WORK_DONE)
        ss_log_info("deleted session's editor files removed", "{s:s, s:i, s:i}", "session_id",
                    m->session_id, "objects", PQntuples(r), "failed", failed);
    PQclear(r);
out:
    seashore__v1__session_delete__free_unpacked(m, NULL);
    return v;
}
