/* mux_manifest.c -- manifests/<session>.json (format in docs/muxer.md):
 * built by PostgreSQL from the session's rows in one statement, uploaded,
 * and kept in session_manifests for the token-issuer; not for a session
 * being deleted (its manifest is on its way out of the store). */
#include "muxer.h"

#include <stdio.h>
#include <string.h>

#include "seashore/log.h"

static const char manifest_sql[] =
    "WITH z AS (SELECT min(capture_start_unix_us + coalesce(clock_offset_us, 0)) AS zero "
    "  FROM tracks WHERE session_id = $1 AND capture_start_unix_us > 0), "
    "o AS (SELECT o.track_id, json_agg(json_build_object("
    "  'kind', o.kind, 'state', o.state, 'object_key', o.object_key, "
    "  'size_bytes', o.size_bytes, 'sha256', encode(o.sha256, 'hex'), "
    "  'duration_us', o.duration_us, 'codecs', o.codecs, 'width', o.width, "
    "  'height', o.height, 'sample_rate', o.sample_rate, 'channels', o.channels, "
    "  'failure_reason', o.failure_reason, "
    "  'timeline_zero_unix_us', o.timeline_zero_unix_us) ORDER BY o.kind) AS outputs "
    "  FROM outputs o JOIN tracks t ON t.id = o.track_id WHERE t.session_id = $1 "
    "  GROUP BY o.track_id), "
    "t AS (SELECT t.participant_id, json_agg(json_build_object("
    "  'id', t.id, 'kind', t.kind, 'mime_type', t.mime_type, 'state', t.state, "
    "  'failure', t.failure, 'capture_start_unix_us', t.capture_start_unix_us, "
    "  'clock_offset_us', t.clock_offset_us, "
    "  'start_unix_us', t.capture_start_unix_us + coalesce(t.clock_offset_us, 0), "
    "  'start_offset_us', t.capture_start_unix_us + coalesce(t.clock_offset_us, 0) - z.zero, "
    "  'raw', json_build_object('object_key', u.object_key, 'size_bytes', t.total_bytes, "
    "    'sha256', encode(t.sha256, 'hex'), 'upload_state', u.state), "
    "  'outputs', coalesce(o.outputs, '[]')) ORDER BY t.created_at, t.id) AS tracks "
    "  FROM tracks t CROSS JOIN z LEFT JOIN uploads u ON u.track_id = t.id "
    "  LEFT JOIN o ON o.track_id = t.id WHERE t.session_id = $1 GROUP BY t.participant_id) "
    "SELECT json_build_object('format', 'seashore.manifest/1', 'session', json_build_object("
    "  'id', s.id, 'title', s.title, 'state', s.state, 'created_at', s.created_at, "
    "  'ended_at', s.ended_at), 'timeline_zero_unix_us', (SELECT zero FROM z), "
    "  'participants', coalesce((SELECT json_agg(json_build_object("
    "    'id', p.id, 'identity', p.identity, 'display_name', p.display_name, 'role', p.role, "
    "    'tracks', coalesce(t.tracks, '[]')) ORDER BY p.created_at, p.id) "
    "    FROM participants p LEFT JOIN t ON t.participant_id = p.id "
    "    WHERE p.session_id = s.id), '[]'))::text, s.state IN ('deleting', 'deleted') "
    "FROM sessions s WHERE s.id = $1";

static int manifest_record(ss_pg *pg, const char *session_id, const char *key, const char *json,
                           char *err, size_t errlen)
{
    const char *params[] = {session_id, key, json};
    PGresult *r = ss_pg_query(pg,
                              "INSERT INTO session_manifests (session_id, object_key, manifest) "
                              "SELECT $1, $2, $3::jsonb WHERE EXISTS (SELECT 1 FROM sessions "
                              "WHERE id = $1 AND state IN ('open', 'ended')) "
                              "ON CONFLICT (session_id) DO UPDATE SET object_key = "
                              "EXCLUDED.object_key, manifest = EXCLUDED.manifest, "
                              "updated_at = now()",
                              3, params, err, errlen);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

int mx_manifest_write(mx_worker *wk, const char *session_id, char *err, size_t errlen)
{
    char key[MX_KEY_MAX];
    ss_s3_result res;
    const char *params[] = {session_id};
    PGresult *r = ss_pg_query(wk->pg, manifest_sql, 1, params, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(err, errlen, "session %s is gone", session_id);
        return -1;
    }
    if (PQgetvalue(r, 0, 1)[0] == 't') { /* being deleted: no manifest to publish */
        PQclear(r);
        return 0;
    }
    const char *json = PQgetvalue(r, 0, 0);
    snprintf(key, sizeof key, "manifests/%s.json", session_id);
    int rc = mx_store_put(wk, key, (const uint8_t *)json, strlen(json), "application/json", &res);
    if (rc == -1)
        snprintf(err, errlen, "uploading %s: %s: %s", key, res.code, res.message);
    if (rc == 0 && manifest_record(wk->pg, session_id, key, json, err, errlen) != 0)
        rc = -1;
    PQclear(r);
    return rc;
}
