/* upload_db.c -- the uploader's rows in PostgreSQL: uploads, upload_parts
 * and the tracks' committed points. Every write is one statement, so a
 * retry after a lost connection cannot half-apply it. */
#include "uploader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int up_db_track_load(ss_pg *pg, const char *track_id, up_track *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    const char *params[] = {track_id};
    PGresult *r = ss_pg_query(pg,
                              "SELECT t.session_id, t.participant_id, s.state, t.state, "
                              "u.upload_id, u.state, u.object_key, u.part_size "
                              "FROM tracks t JOIN sessions s ON s.id = t.session_id "
                              "LEFT JOIN uploads u ON u.track_id = t.id WHERE t.id = $1",
                              1, params, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 1) {
        t->found = true;
        ss_pg_copy_value(r, 0, 0, t->session_id, sizeof t->session_id);
        ss_pg_copy_value(r, 0, 1, t->participant_id, sizeof t->participant_id);
        ss_pg_copy_value(r, 0, 2, t->session_state, sizeof t->session_state);
        ss_pg_copy_value(r, 0, 3, t->track_state, sizeof t->track_state);
        t->has_upload = !PQgetisnull(r, 0, 5);
        ss_pg_copy_value(r, 0, 4, t->upload_id, sizeof t->upload_id);
        ss_pg_copy_value(r, 0, 5, t->upload_state, sizeof t->upload_state);
        ss_pg_copy_value(r, 0, 6, t->object_key, sizeof t->object_key);
        t->part_size = t->has_upload ? strtoull(PQgetvalue(r, 0, 7), NULL, 10) : 0;
    }
    PQclear(r);
    return 0;
}

int up_db_upload_insert(ss_pg *pg, const char *track_id, const char *key, const char *upload_id,
                        uint64_t part_size, char *err, size_t errlen)
{
    char ps[24];
    snprintf(ps, sizeof ps, "%" PRIu64, part_size);
    const char *params[] = {track_id, key, upload_id, ps};
    /* The session row is share-locked: a DELETE that marks it deleting
     * waits for this insert, so its handler then sees the upload. */
    PGresult *r = ss_pg_query(pg,
                              "WITH s AS (SELECT s.id FROM tracks t JOIN sessions s ON "
                              "s.id = t.session_id WHERE t.id = $1 AND s.state IN "
                              "('open', 'ended') FOR SHARE OF s) "
                              "INSERT INTO uploads (track_id, object_key, upload_id, part_size) "
                              "SELECT $1, $2, $3, $4::bigint FROM s "
                              "ON CONFLICT (track_id) DO NOTHING RETURNING track_id",
                              4, params, err, errlen);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    return n == 1 ? 1 : 0;
}

int up_db_part_etag(ss_pg *pg, const char *track_id, int part_number, char *etag, size_t len,
                    char *err, size_t errlen)
{
    char pn[16];
    snprintf(pn, sizeof pn, "%d", part_number);
    const char *params[] = {track_id, pn};
    PGresult *r = ss_pg_query(
        pg, "SELECT etag FROM upload_parts WHERE track_id = $1 AND part_number = $2::int", 2,
        params, err, errlen);
    if (r == NULL)
        return -1;
    snprintf(etag, len, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return 0;
}

int up_db_part_record(ss_pg *pg, const char *track_id, int part_number, uint64_t offset,
                      uint64_t size, const char *etag, const uint8_t md5[16], char *err,
                      size_t errlen)
{
    char pn[16], off[24], sz[24];
    snprintf(pn, sizeof pn, "%d", part_number);
    snprintf(off, sizeof off, "%" PRIu64, offset);
    snprintf(sz, sizeof sz, "%" PRIu64, size);
    const char *values[] = {track_id, pn, off, sz, etag, (const char *)md5};
    const int lengths[] = {0, 0, 0, 0, 0, 16};
    const int formats[] = {0, 0, 0, 0, 0, 1};
    PGresult *r = ss_pg_query_bin(
        pg,
        "INSERT INTO upload_parts (track_id, part_number, byte_offset, size, etag, md5) "
        "VALUES ($1, $2::int, $3::bigint, $4::bigint, $5, $6) ON CONFLICT (track_id, "
        "part_number) DO UPDATE SET etag = EXCLUDED.etag, md5 = EXCLUDED.md5, uploaded_at = now()",
        6, values, lengths, formats, 0, err, errlen);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

int up_db_commit_advance(ss_pg *pg, const char *track_id, uint64_t *seq, uint64_t *bytes, char *err,
                         size_t errlen)
{
    const char *params[] = {track_id};
    /* prefix: bytes of parts 1..n, all recorded (row_number equals the part
     * number exactly until the first gap); then the last chunk that ends
     * inside it. */
    PGresult *r = ss_pg_query(
        pg,
        "WITH p AS (SELECT part_number, sum(size) OVER (ORDER BY part_number) AS upto, "
        "row_number() OVER (ORDER BY part_number) AS rn FROM upload_parts WHERE track_id = $1), "
        "prefix AS (SELECT coalesce(max(upto), 0) AS bytes FROM p WHERE rn = part_number), "
        "c AS (SELECT c.seq + 1 AS seq, c.byte_offset + c.size AS bytes FROM chunks c, prefix "
        "WHERE c.track_id = $1 AND c.byte_offset < prefix.bytes AND c.byte_offset + c.size <= "
        "prefix.bytes ORDER BY c.byte_offset DESC LIMIT 1) "
        "UPDATE tracks t SET committed_seq = greatest(t.committed_seq, c.seq), "
        "committed_bytes = greatest(t.committed_bytes, c.bytes) FROM c WHERE t.id = $1 "
        "RETURNING t.committed_seq, t.committed_bytes",
        1, params, err, errlen);
    if (r == NULL)
        return -1;
    *seq = *bytes = 0;
    if (PQntuples(r) == 1) {
        *seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        *bytes = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return 0;
}

int up_db_parts_list(ss_pg *pg, const char *track_id, ss_s3_part **parts, size_t *n, char *err,
                     size_t errlen)
{
    const char *params[] = {track_id};
    *parts = NULL;
    *n = 0;
    PGresult *r = ss_pg_query(pg,
                              "SELECT part_number, etag, size FROM upload_parts WHERE "
                              "track_id = $1 ORDER BY part_number",
                              1, params, err, errlen);
    if (r == NULL)
        return -1;
    int rows = PQntuples(r);
    if (rows > 0 && (*parts = calloc((size_t)rows, sizeof **parts)) == NULL) {
        PQclear(r);
        snprintf(err, errlen, "out of memory listing %d parts", rows);
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        (*parts)[i].part_number = atoi(PQgetvalue(r, i, 0));
        ss_pg_copy_value(r, i, 1, (*parts)[i].etag, sizeof(*parts)[i].etag);
        (*parts)[i].size = strtoull(PQgetvalue(r, i, 2), NULL, 10);
    }
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

int up_db_upload_fail(ss_pg *pg, const char *track_id, const char *key, uint64_t part_size,
                      const char *code, const char *message, char *err, size_t errlen)
{
    char ps[24];
    snprintf(ps, sizeof ps, "%" PRIu64, part_size ? part_size : 1);
    const char *params[] = {track_id, code, message, key, ps};
    /* An upload that could not even be created gets its row here. */
    PGresult *r = ss_pg_query(
        pg,
        "WITH u AS (INSERT INTO uploads (track_id, object_key, part_size, state, error_code, "
        "error_message) VALUES ($1, $4, $5::bigint, 'failed', $2, $3) ON CONFLICT (track_id) DO "
        "UPDATE SET state = 'failed', error_code = $2, error_message = $3 "
        "WHERE uploads.state = 'uploading' RETURNING track_id) "
        "UPDATE tracks t SET failure = CASE WHEN EXISTS (SELECT 1 FROM u) OR t.failure IS NULL "
        "THEN 'upload failed: ' || $2 || ': ' || $3 ELSE t.failure END, "
        "state = CASE WHEN t.state = 'ended' THEN 'failed' ELSE t.state END WHERE t.id = $1",
        5, params, err, errlen);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

int up_db_upload_completed(ss_pg *pg, const char *track_id, char *err, size_t errlen)
{
    const char *params[] = {track_id};
    PGresult *r = ss_pg_query(
        pg,
        "WITH u AS (UPDATE uploads SET state = 'completed', completed_at = now() "
        "WHERE track_id = $1 AND state = 'uploading' RETURNING track_id) "
        "UPDATE tracks SET state = 'complete', completed_at = coalesce(completed_at, now()), "
        "committed_seq = coalesce(chunk_count, committed_seq), "
        "committed_bytes = coalesce(total_bytes, committed_bytes) "
        "WHERE id = $1 AND state IN ('ended', 'complete')",
        1, params, err, errlen);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}
