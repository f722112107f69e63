/* session.h -- the end of a session's deletion, shared by the two services
 * that remove its objects from the store (migrations/0005). */
#ifndef SEASHORE_SESSION_H
#define SEASHORE_SESSION_H

#include "seashore/pg.h"
#include "seashore/work.h"

typedef enum {
    SS_SESSION_RAW_REMOVED,   /* r2-uploader: uploads aborted, raw objects deleted */
    SS_SESSION_FILES_REMOVED, /* muxer: editor files and manifest deleted */
} ss_session_share;

/* Records that `share` of a deleting session's objects is gone; when the
 * other share is recorded too, the session becomes deleted. A session that
 * is not deleting is left alone. A database error is retried with
 * ss_work_retry_sleep for the work item `it`. Returns 0, or -1 when the
 * service is draining (the item comes back). */
int ss_session_removed(ss_pg *pg, ss_work_item *it, const char *session_id, ss_session_share share);

#endif
