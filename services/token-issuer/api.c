/* api.c -- the routes of the HTTP/JSON API (docs/api.md). PostgreSQL
 * builds the JSON of rows (json_build_object), so C only checks inputs,
 * authorises, and wraps. */
#include "api.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_body.h"
#include "seashore/log.h"
#include "seashore/v1/work.pb-c.h"

api_config api_cfg;

#define SESSION_JSON                                                                               \
    "json_build_object('id', s.id, 'title', s.title, 'state', s.state, 'created_at', "             \
    "s.created_at, 'ended_at', s.ended_at)"

typedef struct route_ctx {
    struct MHD_Connection *conn;
    const api_request *req;
    json_t *body; /* parsed request body, or NULL */
    api_caller caller;
    bool authed;
    api_path path;
} route_ctx;

/* ---- helpers ---- */

static enum MHD_Result db_unavailable(route_ctx *rc)
{
    return api_reply_error(rc->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                           "database unavailable; retry");
}

/* Runs a query whose single value is JSON; *out NULL when no row. Returns
 * -1 on a database error. */
static int query_json(const char *sql, int n, const char *const *params, json_t **out)
{
    char err[256];
    *out = NULL;
    PGresult *r = ss_pg_query(api_pg(), sql, n, params, err, sizeof err);
    if (r == NULL)
        return -1;
    if (PQntuples(r) >= 1 && !PQgetisnull(r, 0, 0))
        *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return 0;
}

/* A string field (api_body_string); -1 with the 400 reply in *res. */
static int body_string(route_ctx *rc, const char *field, const char *def, size_t max,
                       const char **out, enum MHD_Result *res)
{
    api_field_result r = api_body_string(rc->body, field, def, max, out);
    if (r == API_FIELD_MISSING)
        *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "field %s is required", field);
    else if (r != API_FIELD_OK)
        *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "field %s must be a string of at most %zu bytes", field, max);
    return r == API_FIELD_OK ? 0 : -1;
}

/* hex HMAC-SHA256 of msg with INGEST_TOKEN_SECRET: the capabilities the API
 * hands out without storing them (the message's prefix keeps them apart). */
static void secret_mac_hex(const char *msg, char out[65])
{
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), api_cfg.ingest_secret, (int)strlen(api_cfg.ingest_secret),
         (const unsigned char *)msg, strlen(msg), mac, &len);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* Lets a guest join the session. */
static void invite_token(const char *session_id, char out[65])
{
    char msg[64];
    snprintf(msg, sizeof msg, "invite:%s", session_id);
    secret_mac_hex(msg, out);
}

/* Lets the one participant who joined get fresh ingest tokens: the invite
 * is shared by every guest, and a participant's id is no secret (it is in
 * the LiveKit metadata the whole room sees). */
static void refresh_token(const char *session_id, const char *participant_id, char out[65])
{
    char msg[128];
    snprintf(msg, sizeof msg, "refresh:%s:%s", session_id, participant_id);
    secret_mac_hex(msg, out);
}

static bool token_matches(const char *given, const char want[65])
{
    return strlen(given) == 64 && CRYPTO_memcmp(given, want, 64) == 0;
}

static enum MHD_Result not_found(route_ctx *rc, const char *what, const char *id)
{
    return api_reply_error(rc->conn, MHD_HTTP_NOT_FOUND, "not_found", "no %s %s", what, id);
}

/* The session object the host gets carries its guests' invite token. */
static void add_invite_token(json_t *session)
{
    char tok[65];
    const char *sid = json_string_value(json_object_get(session, "id"));
    if (sid == NULL)
        return;
    invite_token(sid, tok);
    json_object_set_new(session, "invite_token", json_string(tok));
}

/* The session as its host sees it (with the invite token), or NULL. */
static int own_session(route_ctx *rc, const char *sid, json_t **out)
{
    const char *params[] = {sid, rc->caller.host_id};
    if (query_json("SELECT " SESSION_JSON " FROM sessions s WHERE s.id = $1 AND s.host_id = $2 "
                   "AND s.state <> 'deleted'",
                   2, params, out) != 0)
        return -1;
    if (*out != NULL)
        add_invite_token(*out);
    return 0;
}

/* ---- sessions ---- */

static enum MHD_Result session_create(route_ctx *rc)
{
    enum MHD_Result res;
    const char *title;
    json_t *s = NULL;
    if (body_string(rc, "title", "", API_MAX_TITLE, &title, &res) != 0)
        return res;
    const char *params[] = {rc->caller.host_id, title};
    if (query_json("INSERT INTO sessions (host_id, title) VALUES ($1, $2) RETURNING "
                   "json_build_object('id', id)",
                   2, params, &s) != 0 ||
        s == NULL)
        return db_unavailable(rc);
    char sid[SS_UUID_LEN + 1];
    snprintf(sid, sizeof sid, "%s", json_string_value(json_object_get(s, "id")));
    json_decref(s);
    if (own_session(rc, sid, &s) != 0 || s == NULL)
        return db_unavailable(rc);
    return api_reply_json(rc->conn, MHD_HTTP_CREATED, s);
}

/* ?limit= (1..API_LIST_MAX, default API_LIST_DEFAULT): 0, or -1 with the 400 queued. */
static int list_limit(route_ctx *rc, int *limit, enum MHD_Result *res)
{
    const char *v = MHD_lookup_connection_value(rc->conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (api_list_limit(v, limit) != 0) {
        *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "query parameter limit must be an integer in 1..%d, not \"%.40s\"",
                               API_LIST_MAX, v);
        return -1;
    }
    return 0;
}

/* 0 when before_id is one of the caller's sessions (deleted ones too: a
 * page must not fail because its cursor was deleted meanwhile); else -1
 * with the reply queued. */
static int cursor_is_own(route_ctx *rc, const char *before, enum MHD_Result *res)
{
    json_t *b = NULL;
    const char *params[] = {before, rc->caller.host_id};
    if (query_json("SELECT json_build_object('id', id) FROM sessions WHERE id = $1 AND "
                   "host_id = $2",
                   2, params, &b) != 0) {
        *res = db_unavailable(rc);
        return -1;
    }
    if (b == NULL) {
        *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "query parameter before_id %s is not one of your sessions", before);
        return -1;
    }
    json_decref(b);
    return 0;
}

/* Newest first, a page at a time: ?before_id= the last session of the
 * previous page (keyset on created_at, id: no page shifts when sessions
 * are added meanwhile). */
static enum MHD_Result session_list(route_ctx *rc)
{
    enum MHD_Result res;
    json_t *page = NULL;
    int limit;
    char lim[16];
    const char *before = MHD_lookup_connection_value(rc->conn, MHD_GET_ARGUMENT_KIND, "before_id");
    if (list_limit(rc, &limit, &res) != 0)
        return res;
    if (before && !ss_uuid_valid(before))
        return api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "query parameter before_id \"%.40s\" is not a lowercase UUID",
                               before);
    if (before && cursor_is_own(rc, before, &res) != 0)
        return res;
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {rc->caller.host_id, lim, before};
    if (query_json(
            "WITH p AS (SELECT s.* FROM sessions s WHERE s.host_id = $1 AND s.state <> "
            "'deleted' AND ($3::uuid IS NULL OR (s.created_at, s.id) < (SELECT b.created_at, "
            "b.id FROM sessions b WHERE b.id = $3 AND b.host_id = $1)) ORDER BY "
            "s.created_at DESC, s.id DESC LIMIT $2::int) SELECT json_build_object("
            "'sessions', coalesce((SELECT json_agg(" SESSION_JSON
            " ORDER BY s.created_at DESC, s.id DESC) FROM p s), '[]'), 'next_before_id', "
            "CASE WHEN (SELECT count(*) FROM p) = $2::int THEN (SELECT s.id FROM p s ORDER BY "
            "s.created_at, s.id LIMIT 1) END)",
            3, params, &page) != 0 ||
        page == NULL)
        return db_unavailable(rc);
    size_t i;
    json_t *session;
    json_array_foreach(json_object_get(page, "sessions"), i, session) add_invite_token(session);
    return api_reply_json(rc->conn, MHD_HTTP_OK, page);
}

static enum MHD_Result session_get(route_ctx *rc, const char *sid)
{
    json_t *s = NULL;
    if (own_session(rc, sid, &s) != 0)
        return db_unavailable(rc);
    return s ? api_reply_json(rc->conn, MHD_HTTP_OK, s) : not_found(rc, "session", sid);
}

static enum MHD_Result session_end(route_ctx *rc, const char *sid)
{
    json_t *s = NULL;
    const char *params[] = {sid, rc->caller.host_id};
    if (query_json("UPDATE sessions s SET state = 'ended', ended_at = now() WHERE s.id = $1 AND "
                   "s.host_id = $2 AND s.state IN ('open', 'ended') RETURNING " SESSION_JSON,
                   2, params, &s) != 0)
        return db_unavailable(rc);
    return s ? api_reply_json(rc->conn, MHD_HTTP_OK, s) : not_found(rc, "session", sid);
}

/* Marks the session deleting and hands the deletion (abort uploads, delete
 * objects, release chunks) to the other services through WORK. */
static enum MHD_Result session_delete(route_ctx *rc, const char *sid)
{
    json_t *s = NULL;
    const char *params[] = {sid, rc->caller.host_id};
    if (query_json("UPDATE sessions s SET state = 'deleting' WHERE s.id = $1 AND s.host_id = $2 "
                   "AND s.state <> 'deleted' RETURNING " SESSION_JSON,
                   2, params, &s) != 0)
        return db_unavailable(rc);
    if (s == NULL)
        return not_found(rc, "session", sid);
    Seashore__V1__SessionDelete d = SEASHORE__V1__SESSION_DELETE__INIT;
    uint8_t buf[128];
    char msg_id[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    d.session_id = (char *)sid;
    d.requested_unix_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    size_t n = seashore__v1__session_delete__pack(&d, buf);
    snprintf(msg_id, sizeof msg_id, "%s:delete", sid);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    jsErrCode jerr = 0;
    natsStatus st =
        js_Publish(NULL, api_cfg.svc->nats.js, "work.session.delete", buf, (int)n, &po, &jerr);
    if (st != NATS_OK) {
        json_decref(s);
        return api_reply_error(rc->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                               "session %s marked deleting, but the work queue is unavailable "
                               "(%s); retry the DELETE",
                               sid, natsStatus_GetText(st));
    }
    return api_reply_json(rc->conn, MHD_HTTP_ACCEPTED, s);
}

/* ---- participants ---- */

/* The session may be joined by its host, or by anyone with its invite
 * token; returns 0 or -1 with the reply queued. */
static int may_join(route_ctx *rc, const char *sid, enum MHD_Result *res)
{
    const char *invite;
    char want[65];
    json_t *s = NULL;
    if (rc->authed) {
        if (own_session(rc, sid, &s) != 0) {
            *res = db_unavailable(rc);
            return -1;
        }
        bool found = s != NULL;
        json_decref(s);
        if (!found) {
            *res = not_found(rc, "session", sid);
            return -1;
        }
        return 0;
    }
    if (body_string(rc, "invite", NULL, API_MAX_INVITE, &invite, res) != 0)
        return -1;
    invite_token(sid, want);
    if (!token_matches(invite, want)) {
        *res = not_found(rc, "session", sid); /* no hint whether it exists */
        return -1;
    }
    return 0;
}

static json_t *ingest_grant(const char *sid, const char *pid)
{
    int64_t now = (int64_t)time(NULL);
    char *tok = ss_ingest_token_issue(api_cfg.ingest_secret, strlen(api_cfg.ingest_secret), sid,
                                      pid, NULL, now, api_cfg.ingest_token_ttl_s);
    if (tok == NULL)
        return NULL;
    json_t *g = json_pack("{s:s, s:s, s:I}", "url", api_cfg.ingest_public_url, "token", tok,
                          "expires_at", (json_int_t)(now + api_cfg.ingest_token_ttl_s));
    free(tok);
    return g;
}

static json_t *livekit_grant(const char *sid, const char *identity, const char *name,
                             const char *pid)
{
    if (api_cfg.livekit_url == NULL || api_cfg.livekit_url[0] == '\0')
        return json_null(); /* recording only: no live call configured */
    char meta[128];
    snprintf(meta, sizeof meta, "{\"participant_id\":\"%s\"}", pid);
    char *tok = livekit_token(identity, name, sid, meta, (int64_t)time(NULL));
    json_t *g = tok ? json_pack("{s:s, s:s}", "url", api_cfg.livekit_url, "token", tok) : NULL;
    free(tok);
    return g;
}

static enum MHD_Result participant_join(route_ctx *rc, const char *sid)
{
    enum MHD_Result res;
    const char *name, *identity, *role;
    char generated[48];
    unsigned char rnd[8];
    json_t *p = NULL;
    if (may_join(rc, sid, &res) != 0 ||
        body_string(rc, "display_name", "", API_MAX_NAME, &name, &res) != 0 ||
        body_string(rc, "role", "guest", API_MAX_ROLE, &role, &res) != 0)
        return res;
    if (strcmp(role, "guest") != 0 && !(rc->authed && strcmp(role, "host") == 0))
        return api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "field role must be \"guest\" (or \"host\" with the host's key)");
    RAND_bytes(rnd, sizeof rnd);
    snprintf(generated, sizeof generated, "%s-%02x%02x%02x%02x%02x%02x%02x%02x", role, rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    if (body_string(rc, "identity", generated, API_MAX_IDENTITY, &identity, &res) != 0)
        return res;
    const char *params[] = {sid, name, identity, role};
    if (query_json("INSERT INTO participants (session_id, display_name, identity, role) "
                   "SELECT s.id, $2, $3, $4 FROM sessions s WHERE s.id = $1 AND s.state = 'open' "
                   "ON CONFLICT (session_id, identity) DO NOTHING RETURNING json_build_object("
                   "'participant_id', id, 'session_id', session_id, 'identity', identity, "
                   "'display_name', display_name, 'role', role)",
                   4, params, &p) != 0)
        return db_unavailable(rc);
    if (p == NULL)
        return api_reply_error(rc->conn, MHD_HTTP_CONFLICT, "conflict",
                               "session %s is not open, or identity \"%s\" already joined it", sid,
                               identity);
    const char *pid = json_string_value(json_object_get(p, "participant_id"));
    json_t *ing = ingest_grant(sid, pid), *lk = livekit_grant(sid, identity, name, pid);
    if (ing == NULL || lk == NULL) {
        json_decref(ing);
        json_decref(lk);
        json_decref(p);
        return api_reply_error(rc->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                               "cannot sign tokens");
    }
    char refresh[65];
    refresh_token(sid, pid, refresh);
    json_object_set_new(p, "ingest", ing);
    json_object_set_new(p, "livekit", lk);
    json_object_set_new(p, "refresh_token", json_string(refresh));
    return api_reply_json(rc->conn, MHD_HTTP_CREATED, p);
}

/* The host may refresh any participant's ingest token; a guest only its
 * own, with the join's refresh_token beside the invite. 0 or -1 with the
 * reply queued. */
static int may_refresh(route_ctx *rc, const char *sid, const char *pid, enum MHD_Result *res)
{
    const char *given;
    char want[65];
    if (may_join(rc, sid, res) != 0)
        return -1;
    if (rc->authed)
        return 0;
    if (body_string(rc, "refresh_token", NULL, API_MAX_INVITE, &given, res) != 0)
        return -1;
    refresh_token(sid, pid, want);
    if (!token_matches(given, want)) {
        *res =
            api_reply_error(rc->conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                            "field refresh_token is not the one participant %s got at join", pid);
        return -1;
    }
    return 0;
}

static enum MHD_Result ingest_refresh(route_ctx *rc, const char *sid, const char *pid)
{
    enum MHD_Result res;
    json_t *p = NULL;
    if (may_refresh(rc, sid, pid, &res) != 0)
        return res;
    const char *params[] = {sid, pid};
    if (query_json("SELECT json_build_object('identity', p.identity, 'display_name', "
                   "p.display_name, 'open', s.state = 'open') FROM participants p "
                   "JOIN sessions s ON s.id = p.session_id WHERE p.session_id = $1 AND "
                   "p.id = $2 AND s.state IN ('open', 'ended')",
                   2, params, &p) != 0)
        return db_unavailable(rc);
    if (p == NULL)
        return not_found(rc, "participant", pid);
    /* the call too, while the session is open: a participant back after
     * LIVEKIT_TOKEN_TTL rejoins it as itself, not as a new participant */
    json_t *ing = ingest_grant(sid, pid);
    json_t *lk = json_is_true(json_object_get(p, "open"))
                     ? livekit_grant(sid, json_string_value(json_object_get(p, "identity")),
                                     json_string_value(json_object_get(p, "display_name")), pid)
                     : json_null();
    json_decref(p);
    if (ing == NULL || lk == NULL) {
        json_decref(ing);
        json_decref(lk);
        return api_reply_error(rc->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                               "cannot sign the tokens");
    }
    return api_reply_json(rc->conn, MHD_HTTP_OK,
                          json_pack("{s:o, s:o}", "ingest", ing, "livekit", lk));
}

/* ---- progress: what every participant has recorded, sent and uploaded ---- */

#define MAX_PROGRESS_TRACKS 16
#define MAX_RECORDED_BYTES  (1LL << 53) /* exact in a JavaScript number */

/* Checks the body's "tracks": an array of at most MAX_PROGRESS_TRACKS
 * {track_id, recorded_bytes}. 0 (*json the array as text, caller frees) or
 * -1 with the reply queued. */
static int progress_tracks(route_ctx *rc, char **json, enum MHD_Result *res)
{
    json_t *tracks = json_object_get(rc->body, "tracks"), *t;
    size_t i;
    if (tracks == NULL || json_is_null(tracks))
        tracks = json_array();
    else if (json_is_array(tracks) && json_array_size(tracks) <= MAX_PROGRESS_TRACKS)
        json_incref(tracks);
    else {
        *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "field tracks must be an array of at most %d takes",
                               MAX_PROGRESS_TRACKS);
        return -1;
    }
    json_array_foreach(tracks, i, t)
    {
        const char *id = json_string_value(json_object_get(t, "track_id"));
        json_t *bytes = json_object_get(t, "recorded_bytes");
        if (id == NULL || !ss_uuid_valid(id) || !json_is_integer(bytes) ||
            json_integer_value(bytes) < 0 || json_integer_value(bytes) > MAX_RECORDED_BYTES) {
            json_decref(tracks);
            *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                                   "field tracks[%zu] needs track_id (a lowercase UUID) and "
                                   "recorded_bytes (a whole number from 0 to 2^53)",
                                   i);
            return -1;
        }
    }
    *json = json_dumps(tracks, JSON_COMPACT);
    json_decref(tracks);
    if (*json == NULL) {
        *res =
            api_reply_error(rc->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
        return -1;
    }
    return 0;
}

/* Every participant of the session with each take: state, recorded bytes
 * (as its page reported), durable (acknowledged) and committed (uploaded)
 * bytes. A take known only from its page is "recording". */
#define PROGRESS_SQL                                                                               \
    "SELECT coalesce(json_agg(json_build_object('participant_id', p.id, 'identity', p.identity, "  \
    "'display_name', p.display_name, 'role', p.role, 'tracks', (SELECT "                           \
    "coalesce(json_agg(json_build_object('track_id', coalesce(t.id, g.track_id), 'state', "        \
    "coalesce(t.state, 'recording'), 'recorded_bytes', g.recorded_bytes, 'durable_bytes', "        \
    "coalesce(t.durable_bytes, 0), 'committed_bytes', coalesce(t.committed_bytes, 0), "            \
    "'total_bytes', t.total_bytes) ORDER BY coalesce(t.created_at, g.created_at)), '[]') FROM "    \
    "(SELECT * FROM tracks WHERE participant_id = p.id) t FULL JOIN (SELECT * FROM "               \
    "track_progress WHERE participant_id = p.id) g ON g.track_id = t.id)) ORDER BY "               \
    "p.created_at), '[]') FROM participants p WHERE p.session_id = $1"

/* POST .../participants/{pid}/progress: the caller's takes recorded so far
 * in, everybody's progress out. The host may report for anyone; a guest
 * only for itself (invite and refresh_token, as for its token). */
static enum MHD_Result participant_progress(route_ctx *rc, const char *sid, const char *pid)
{
    enum MHD_Result res;
    char *tracks = NULL;
    json_t *n = NULL, *parts = NULL;
    if (may_refresh(rc, sid, pid, &res) != 0 || progress_tracks(rc, &tracks, &res) != 0)
        return res;
    const char *params[] = {sid, pid, tracks};
    int rc_db = query_json(
        "WITH given AS (SELECT (e->>'track_id')::uuid AS track_id, (e->>'recorded_bytes')::bigint "
        "AS recorded_bytes FROM json_array_elements($3::json) e), up AS (INSERT INTO "
        "track_progress (track_id, participant_id, recorded_bytes) SELECT g.track_id, p.id, "
        "g.recorded_bytes FROM given g JOIN participants p ON p.id = $2 AND p.session_id = $1 "
        "ON CONFLICT (track_id) DO UPDATE SET recorded_bytes = EXCLUDED.recorded_bytes, "
        "updated_at = now() WHERE track_progress.participant_id = EXCLUDED.participant_id "
        "RETURNING 1) SELECT json_build_object('found', EXISTS (SELECT 1 FROM participants WHERE "
        "id = $2 AND session_id = $1), 'stored', c.n) FROM (SELECT count(*) AS n FROM up) c",
        3, params, &n);
    free(tracks);
    if (rc_db != 0 || n == NULL) {
        json_decref(n);
        return db_unavailable(rc);
    }
    bool found = json_is_true(json_object_get(n, "found"));
    json_decref(n);
    if (!found)
        return not_found(rc, "participant", pid);
    if (query_json(PROGRESS_SQL, 1, params, &parts) != 0 || parts == NULL)
        return db_unavailable(rc);
    return api_reply_json(rc->conn, MHD_HTTP_OK, json_pack("{s:o}", "participants", parts));
}

/* The editors' view: participants, their tracks and states. */
static enum MHD_Result session_tracks(route_ctx *rc, const char *sid)
{
    json_t *s = NULL, *parts = NULL;
    if (own_session(rc, sid, &s) != 0)
        return db_unavailable(rc);
    if (s == NULL)
        return not_found(rc, "session", sid);
    const char *params[] = {sid};
    if (query_json(
            "SELECT coalesce(json_agg(json_build_object('participant_id', p.id, 'identity', "
            "p.identity, 'display_name', p.display_name, 'role', p.role, 'tracks', "
            "(SELECT coalesce(json_agg(json_build_object('track_id', t.id, 'kind', t.kind, "
            "'mime_type', t.mime_type, 'state', t.state, 'durable_bytes', t.durable_bytes, "
            "'committed_bytes', t.committed_bytes, 'total_bytes', t.total_bytes, 'failure', "
            "t.failure, 'created_at', t.created_at, 'ended_at', t.ended_at, 'upload', (SELECT "
            "json_build_object('state', u.state, 'parts_uploaded', (SELECT count(*) FROM "
            "upload_parts up WHERE up.track_id = u.track_id), 'error_code', u.error_code, "
            "'error_message', u.error_message) FROM uploads u WHERE u.track_id = t.id), 'raw', "
            "CASE WHEN "
            "t.state = 'complete' THEN json_build_object('object_key', 'raw/' || t.session_id "
            "|| '/' || t.participant_id || '/' || t.id || '.' || t.ext, 'size_bytes', "
            "t.total_bytes) END, 'start_offset_us', (SELECT o.start_offset_us FROM outputs o "
            "WHERE o.track_id = t.id ORDER BY o.kind = 'wav' DESC LIMIT 1), 'outputs', (SELECT "
            "coalesce(json_agg(json_build_object('kind', o.kind, 'state', o.state, "
            "'failure_reason', o.failure_reason) ORDER BY o.kind), '[]') FROM outputs o WHERE "
            "o.track_id = t.id), 'files', (SELECT coalesce(json_agg(json_build_object('kind', "
            "o.kind, 'object_key', o.object_key, 'size_bytes', o.size_bytes, 'sha256', "
            "encode(o.sha256, 'hex'), 'duration_us', o.duration_us, 'codecs', o.codecs, "
            "'width', o.width, 'height', o.height, 'sample_rate', o.sample_rate, 'channels', "
            "o.channels, 'start_offset_us', o.start_offset_us) ORDER BY o.kind), '[]') FROM "
            "outputs o WHERE o.track_id = t.id AND o.state = 'done' AND o.object_key IS NOT "
            "NULL)) ORDER BY "
            "t.created_at), '[]') FROM tracks t WHERE t.participant_id = p.id)) ORDER BY "
            "p.created_at), '[]') FROM participants p WHERE p.session_id = $1",
            1, params, &parts) != 0 ||
        parts == NULL) {
        json_decref(s);
        return db_unavailable(rc);
    }
    api_tracks_add_urls(json_string_value(json_object_get(s, "title")), parts);
    json_object_set_new(s, "participants", parts);
    return api_reply_json(rc->conn, MHD_HTTP_OK, s);
}

/* The muxer's session manifest (docs/muxer.md), with download URLs; the
 * manifest object itself as "manifest_object". */
static enum MHD_Result session_manifest(route_ctx *rc, const char *sid)
{
    json_t *s = NULL, *m = NULL;
    if (own_session(rc, sid, &s) != 0)
        return db_unavailable(rc);
    bool found = s != NULL;
    json_decref(s);
    if (!found)
        return not_found(rc, "session", sid);
    const char *params[] = {sid};
    if (query_json("SELECT json_build_object('manifest', manifest, 'object_key', object_key) "
                   "FROM session_manifests WHERE session_id = $1",
                   1, params, &m) != 0)
        return db_unavailable(rc);
    if (m == NULL)
        return api_reply_error(rc->conn, MHD_HTTP_NOT_FOUND, "not_found",
                               "session %s has no manifest yet: no track is muxed", sid);
    json_t *manifest = json_incref(json_object_get(m, "manifest"));
    json_t *object = json_pack("{s:O}", "object_key", json_object_get(m, "object_key"));
    json_decref(m);
    if (manifest == NULL || object == NULL) {
        json_decref(manifest);
        json_decref(object);
        return db_unavailable(rc);
    }
    api_manifest_add_urls(manifest, object);
    json_object_set_new(manifest, "manifest_object", object);
    return api_reply_json(rc->conn, MHD_HTTP_OK, manifest);
}

/* ---- routing ---- */

static enum MHD_Result dispatch(route_ctx *rc, const char *method)
{
    const api_path *p = &rc->path;
    const char *sid = p->nparts > 2 ? p->parts[2] : NULL;
    switch (api_route_of(p, method)) {
    case API_ROUTE_SESSION_CREATE:
        return session_create(rc);
    case API_ROUTE_SESSION_LIST:
        return session_list(rc);
    case API_ROUTE_SESSION_GET:
        return session_get(rc, sid);
    case API_ROUTE_SESSION_DELETE:
        return session_delete(rc, sid);
    case API_ROUTE_SESSION_END:
        return session_end(rc, sid);
    case API_ROUTE_SESSION_TRACKS:
        return session_tracks(rc, sid);
    case API_ROUTE_SESSION_MANIFEST:
        return session_manifest(rc, sid);
    case API_ROUTE_PARTICIPANT_JOIN:
        return participant_join(rc, sid);
    case API_ROUTE_INGEST_REFRESH:
        return ingest_refresh(rc, sid, p->parts[4]);
    case API_ROUTE_PARTICIPANT_PROGRESS:
        return participant_progress(rc, sid, p->parts[4]);
    case API_ROUTE_NONE:
        break;
    }
    return api_reply_error(rc->conn, MHD_HTTP_NOT_FOUND, "not_found", "no route for %s here",
                           method);
}

/* 0 when the ids in the path are UUIDs; else -1 with the reply in *res. */
static int check_ids(route_ctx *rc, enum MHD_Result *res)
{
    int bad = api_path_bad_id(&rc->path);
    if (bad == 2)
        *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_id",
                               "session id \"%.40s\" is not a lowercase UUID", rc->path.parts[2]);
    else if (bad == 4)
        *res =
            api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_id",
                            "participant id \"%.40s\" is not a lowercase UUID", rc->path.parts[4]);
    return bad == 0 ? 0 : -1;
}

/* 0 when the body is empty or a JSON object (rc->body); else -1 with the
 * reply in *res. */
static int parse_body(route_ctx *rc, enum MHD_Result *res)
{
    char why[256];
    api_body_result r =
        api_body_parse(rc->req->body, rc->req->len, rc->req->too_large, &rc->body, why, sizeof why);
    if (r == API_BODY_TOO_LARGE)
        *res = api_reply_error(rc->conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                               "request body over the limit of %d bytes", API_MAX_BODY);
    else if (r != API_BODY_OK)
        *res = api_reply_error(rc->conn, MHD_HTTP_BAD_REQUEST, "invalid_json", "%s", why);
    return r == API_BODY_OK ? 0 : -1;
}

/* Per host key, or per client address for invite calls: 429 with
 * Retry-After beyond the configured rate. */
static bool rate_limited(route_ctx *rc, enum MHD_Result *res)
{
    char who[96], addr[64];
    if (rc->authed) {
        snprintf(who, sizeof who, "host:%s", rc->caller.host_id);
    } else {
        api_client_address(rc->conn, addr, sizeof addr);
        snprintf(who, sizeof who, "addr:%s", addr);
    }
    return api_rate_limited(rc->conn, who, res);
}

enum MHD_Result api_handle(struct MHD_Connection *conn, const char *method, const char *url,
                           const api_request *req)
{
    route_ctx rc = {.conn = conn, .req = req};
    char path[API_MAX_PATH];
    enum MHD_Result res = MHD_YES;
    if (strcmp(url, "/v1/webhooks/clerk") == 0 && strcmp(method, "POST") == 0)
        return clerk_webhook(conn, req);
    if (strlen(url) >= sizeof path || api_split_path(url, &rc.path, path, sizeof path) != 0 ||
        !api_path_is(&rc.path, 0, "v1") || !api_path_is(&rc.path, 1, "sessions"))
        return api_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such API path");
    if (check_ids(&rc, &res) != 0)
        return res;
    bool needs_key = !api_invite_route(&rc.path, method) ||
                     MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization") != NULL;
    if (needs_key) {
        /* failed attempts are limited per address, before the next costs
         * a key lookup or an RSA verification */
        char addr[64], who[96];
        api_client_address(conn, addr, sizeof addr);
        snprintf(who, sizeof who, "authfail:%s", addr);
        if (api_rate_exhausted_reply(conn, who, &res))
            return res;
        if (api_authenticate(conn, &rc.caller, &res) != 0) {
            api_rate_take(who);
            return res;
        }
        rc.authed = true;
    }
    if (rate_limited(&rc, &res))
        return res;
    if (parse_body(&rc, &res) == 0)
        res = dispatch(&rc, method);
    json_decref(rc.body);
    return res;
}
