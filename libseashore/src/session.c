/* session.c -- see seashore/session.h. One UPDATE per share: under READ
 * COMMITTED the second of two concurrent updates waits for the first and
 * re-reads the row, so whichever commits last sees both columns set. */
#include "seashore/session.h"

#define SESSION_REMOVED_SQL(mine, other)                                                           \
    "UPDATE sessions SET " mine " = coalesce(" mine ", now()), "                                   \
    "state = CASE WHEN " other " IS NOT NULL THEN 'deleted' ELSE state END, "                      \
    "deleted_at = CASE WHEN " other " IS NOT NULL THEN now() ELSE deleted_at END "                 \
    "WHERE id = $1 AND state = 'deleting'"

int ss_session_removed(ss_pg *pg, ss_work_item *it, const char *session_id, ss_session_share share)
{
    static const char *const sql[] = {
        [SS_SESSION_RAW_REMOVED] = SESSION_REMOVED_SQL("raw_removed_at", "files_removed_at"),
        [SS_SESSION_FILES_REMOVED] = SESSION_REMOVED_SQL("files_removed_at", "raw_removed_at"),
    };
    const char *params[] = {session_id};
    char err[256];
    for (int attempt = 0;; attempt++) {
        PGresult *r = ss_pg_query(pg, sql[share], 1, params, err, sizeof err);
        if (r != NULL) {
            PQclear(r);
            return 0;
        }
        if (ss_work_retry_sleep(it, attempt) != 0)
            return -1;
    }
}
