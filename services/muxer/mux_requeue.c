/* mux_requeue.c -- a track made against an old session time zero is put
 * back on work.mux, rebuilt from PostgreSQL. */
#include "muxer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/v1/work.pb-c.h"

int mx_requeue_track(mx_worker *wk, const char *track_id, int64_t zero_us, char *err, size_t errlen)
{
    const char *params[] = {track_id};
    PGresult *r = ss_pg_query(wk->pg,
                              "SELECT t.session_id, t.participant_id, u.object_key, "
                              "coalesce(t.total_bytes, 0), t.mime_type FROM tracks t JOIN uploads "
                              "u ON u.track_id = t.id AND u.state = 'completed' WHERE t.id = $1",
                              1, params, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) != 1) { /* its TrackUploaded is still to come */
        PQclear(r);
        return 0;
    }
    Seashore__V1__TrackUploaded m = SEASHORE__V1__TRACK_UPLOADED__INIT;
    m.session_id = PQgetvalue(r, 0, 0);
    m.participant_id = PQgetvalue(r, 0, 1);
    m.track_id = (char *)track_id;
    m.object_key = PQgetvalue(r, 0, 2);
    m.size = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    m.mime_type = PQgetvalue(r, 0, 4);
    size_t n = seashore__v1__track_uploaded__get_packed_size(&m);
    uint8_t *buf = malloc(n ? n : 1);
    int rc = -1;
    if (buf != NULL) {
        char msg_id[96];
        jsPubOptions po;
        jsErrCode jerr = 0;
        jsPubAck *pa = NULL;
        seashore__v1__track_uploaded__pack(&m, buf);
        jsPubOptions_Init(&po);
        snprintf(msg_id, sizeof msg_id, "%s:realign:%" PRId64, track_id, zero_us);
        po.MsgId = msg_id;
        natsStatus s = js_Publish(&pa, mx.svc->nats.js, "work.mux", buf, (int)n, &po, &jerr);
        jsPubAck_Destroy(pa);
        if (s == NATS_OK)
            rc = 0;
        else
            snprintf(err, errlen, "publishing to work.mux: %s", natsStatus_GetText(s));
    }
    free(buf);
    PQclear(r);
    return rc;
}
