/* mux_db.c -- the muxer's PostgreSQL statements (parameters only). */
#include "muxer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mx_db_track_load(ss_pg *pg, const char *track_id, mx_track *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *params[] = {track_id};
    PGresult *r = ss_pg_query(
        pg,
        "SELECT t.session_id, t.participant_id, t.state, s.state, t.mime_type, "
        "coalesce(u.object_key, ''), coalesce(t.total_bytes, 0), "
        "t.capture_start_unix_us > 0, coalesce(t.capture_start_unix_us, 0) + "
        "coalesce(t.clock_offset_us, 0), coalesce(t.live_mux_state, ''), "
        "coalesce((extract(epoch FROM now() - t.live_mux_beat) * 1000)::bigint, -1) "
        "FROM tracks t JOIN sessions s ON s.id = t.session_id "
        "LEFT JOIN uploads u ON u.track_id = t.id AND u.state = 'completed' WHERE t.id = $1",
        1, params, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 1) {
        t->found = true;
        ss_pg_copy_value(r, 0, 0, t->session_id, sizeof t->session_id);
        ss_pg_copy_value(r, 0, 1, t->participant_id, sizeof t->participant_id);
        ss_pg_copy_value(r, 0, 2, t->state, sizeof t->state);
        ss_pg_copy_value(r, 0, 3, t->session_state, sizeof t->session_state);
        ss_pg_copy_value(r, 0, 4, t->mime_type, sizeof t->mime_type);
        ss_pg_copy_value(r, 0, 5, t->raw_key, sizeof t->raw_key);
        t->total_bytes = strtoull(PQgetvalue(r, 0, 6), NULL, 10);
        t->has_start = PQgetvalue(r, 0, 7)[0] == 't';
        t->start_unix_us = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
        ss_pg_copy_value(r, 0, 9, t->live_state, sizeof t->live_state);
        t->live_beat_age_ms = strtoll(PQgetvalue(r, 0, 10), NULL, 10);
    }
    PQclear(r);
    return 0;
}

int mx_db_session_zero(ss_pg *pg, const char *session_id, int64_t *zero_us, bool *found, char *err,
                       size_t errlen)
{
    const char *params[] = {session_id};
    PGresult *r = ss_pg_query(pg,
                              "SELECT min(capture_start_unix_us + coalesce(clock_offset_us, 0)) "
                              "FROM tracks WHERE session_id = $1 AND capture_start_unix_us > 0",
                              1, params, err, errlen);
    if (r == NULL)
        return -1;
    *found = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);
    *zero_us = *found ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

int mx_db_output_upsert(ss_pg *pg, const char *track_id, const mx_output_row *o, char *err,
                        size_t errlen)
{
    char size[24], dur[24], w[16], h[16], rate[16], ch[16], zero[24], off[24], sha[65] = "";
    snprintf(size, sizeof size, "%" PRIu64, o->size);
    snprintf(dur, sizeof dur, "%" PRId64, o->duration_us);
    snprintf(w, sizeof w, "%d", o->width);
    snprintf(h, sizeof h, "%d", o->height);
    snprintf(rate, sizeof rate, "%d", o->sample_rate);
    snprintf(ch, sizeof ch, "%d", o->channels);
    snprintf(zero, sizeof zero, "%" PRId64, o->zero_unix_us);
    snprintf(off, sizeof off, "%" PRId64, o->start_offset_us);
    for (int i = 0; o->sha256 && i < 32; i++)
        snprintf(sha + 2 * i, 3, "%02x", o->sha256[i]);
    bool done = strcmp(o->state, "done") == 0;
    const char *params[] = {track_id,
                            o->kind,
                            o->state,
                            done ? o->object_key : NULL,
                            done ? size : NULL,
                            o->sha256 ? sha : NULL,
                            done ? dur : NULL,
                            done ? o->codecs : NULL,
                            w,
                            h,
                            rate,
                            ch,
                            o->failure_reason && o->failure_reason[0] ? o->failure_reason : NULL,
                            zero,
                            off};
    PGresult *r = ss_pg_query(
        pg,
        "INSERT INTO outputs (track_id, kind, state, object_key, size_bytes, sha256, duration_us, "
        "codecs, width, height, sample_rate, channels, failure_reason, timeline_zero_unix_us, "
        "start_offset_us) VALUES ($1, $2, $3, $4, $5::bigint, decode($6, 'hex'), $7::bigint, $8, "
        "nullif($9::int, 0), nullif($10::int, 0), nullif($11::int, 0), nullif($12::int, 0), $13, "
        "$14::bigint, $15::bigint) "
        "ON CONFLICT (track_id, kind) DO UPDATE SET state = EXCLUDED.state, object_key = "
        "EXCLUDED.object_key, size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, "
        "duration_us = EXCLUDED.duration_us, codecs = EXCLUDED.codecs, width = EXCLUDED.width, "
        "height = EXCLUDED.height, sample_rate = EXCLUDED.sample_rate, channels = "
        "EXCLUDED.channels, failure_reason = EXCLUDED.failure_reason, timeline_zero_unix_us = "
        "EXCLUDED.timeline_zero_unix_us, start_offset_us = EXCLUDED.start_offset_us, "
        "updated_at = now()",
        15, params, err, errlen);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

int mx_db_tracks_to_realign(ss_pg *pg, const char *session_id, int64_t zero_us, char (**ids)[37],
                            int *n, char *err, size_t errlen)
{
    char zero[24];
    snprintf(zero, sizeof zero, "%" PRId64, zero_us);
    const char *params[] = {session_id, zero};
    *ids = NULL;
    *n = 0;
    PGresult *r = ss_pg_query(pg,
                              "SELECT DISTINCT o.track_id FROM outputs o JOIN tracks t ON "
                              "t.id = o.track_id WHERE t.session_id = $1 AND "
                              "o.timeline_zero_unix_us >= $2::bigint + " MX_ZERO_SLACK_US_STR,
                              2, params, err, errlen);
    if (r == NULL)
        return -1;
    int rows = PQntuples(r);
    if (rows > 0) {
        *ids = calloc((size_t)rows, sizeof **ids);
        if (*ids == NULL) {
            PQclear(r);
            snprintf(err, errlen, "out of memory for %d track ids", rows);
            return -1;
        }
    }
    for (int i = 0; i < rows; i++)
        ss_pg_copy_value(r, i, 0, (*ids)[i], sizeof(*ids)[i]);
    *n = rows;
    PQclear(r);
    return 0;
}

int mx_db_outputs_zero(ss_pg *pg, const char *track_id, int64_t *zero_us, bool *found, char *err,
                       size_t errlen)
{
    const char *params[] = {track_id};
    PGresult *r = ss_pg_query(pg,
                              "SELECT min(timeline_zero_unix_us), count(DISTINCT "
                              "timeline_zero_unix_us) FROM outputs WHERE track_id = $1",
                              1, params, err, errlen);
    if (r == NULL)
        return -1;
    *found = !PQgetisnull(r, 0, 0) && strcmp(PQgetvalue(r, 0, 1), "1") == 0;
    *zero_us = *found ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

/* Recording tracks of live sessions that no muxer tried yet, oldest first;
 * each claimed in the same statement (SKIP LOCKED: replicas do not wait on
 * each other). */
int mx_db_live_claim(ss_pg *pg, char (*ids)[37], int max, int *n, char *err, size_t errlen)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", max);
    const char *params[] = {lim};
    PGresult *r = ss_pg_query(
        pg,
        "UPDATE tracks SET live_mux_state = 'running', live_mux_beat = now() WHERE id IN ("
        "SELECT t.id FROM tracks t JOIN sessions s ON s.id = t.session_id "
        "WHERE t.state = 'recording' AND t.live_mux_state IS NULL "
        "AND s.state NOT IN ('deleting', 'deleted') ORDER BY t.created_at "
        "LIMIT $1::int FOR UPDATE OF t SKIP LOCKED) RETURNING id",
        1, params, err, errlen);
    if (r == NULL)
        return -1;
    *n = 0;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        ss_pg_copy_value(r, i, 0, ids[(*n)++], 37);
    PQclear(r);
    return 0;
}

/* Sets the live state and the beat; *session_state gets the session's. */
int mx_db_live_set(ss_pg *pg, const char *track_id, const char *state, uint64_t read_bytes,
                   char *session_state, size_t sslen, char *err, size_t errlen)
{
    char rb[24];
    snprintf(rb, sizeof rb, "%" PRIu64, read_bytes > INT64_MAX ? (uint64_t)INT64_MAX : read_bytes);
    const char *params[] = {track_id, state, rb};
    PGresult *r = ss_pg_query(pg,
                              "UPDATE tracks t SET live_mux_state = $2, live_mux_beat = now(), "
                              "live_mux_read_bytes = greatest(t.live_mux_read_bytes, $3::bigint) "
                              "FROM sessions s WHERE t.id = $1 AND s.id = t.session_id "
                              "RETURNING s.state",
                              3, params, err, errlen);
    if (r == NULL)
        return -1;
    if (session_state != NULL) {
        if (PQntuples(r) == 1)
            ss_pg_copy_value(r, 0, 0, session_state, sslen);
        else
            snprintf(session_state, sslen, "deleted");
    }
    PQclear(r);
    return 0;
}
