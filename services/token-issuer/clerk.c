/* clerk.c -- Clerk as the seed used it: session JWTs verified without a
 * network call from CLERK_JWT_KEY (RS256 public key PEM), the user mapped to
 * a host (hosts.clerk_user_id, created on first sight); and the Clerk
 * webhook (Svix signatures with CLERK_WEBHOOK_SECRET) upserting users. */
#include "api.h"
#include "api_body.h"
#include "clerk_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WEBHOOK_TOLERANCE_S 300

/* The host of a Clerk user, created on first sight; 0 or -1. */
static int host_for_clerk_user(const char *user_id, char host_id[SS_UUID_LEN + 1])
{
    char err[256];
    const char *params[] = {user_id};
    PGresult *r =
        ss_pg_query(api_pg(),
                    "INSERT INTO hosts (clerk_user_id) VALUES ($1) ON CONFLICT "
                    "(clerk_user_id) DO UPDATE SET clerk_user_id = EXCLUDED.clerk_user_id "
                    "RETURNING id",
                    1, params, err, sizeof err);
    int ok = r && PQntuples(r) == 1;
    if (ok)
        snprintf(host_id, SS_UUID_LEN + 1, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return ok ? 0 : -1;
}

int clerk_authenticate(const char *token, api_caller *caller, char *why, size_t whylen)
{
    char sub[CLERK_MAX_SUB + 1];
    if (api_cfg.clerk_jwt_key == NULL || api_cfg.clerk_jwt_key[0] == '\0') {
        snprintf(why, whylen, "Clerk sessions are not configured (CLERK_JWT_KEY)");
        return -1;
    }
    if (clerk_token_verify(token, api_cfg.clerk_jwt_key, api_cfg.clerk_authorized_parties,
                           (int64_t)time(NULL), sub, why, whylen) != 0)
        return -1;
    if (host_for_clerk_user(sub, caller->host_id) != 0) {
        snprintf(why, whylen, "database unavailable");
        return -1;
    }
    return 0;
}

static const char *primary_email(json_t *data)
{
    const char *primary = json_string_value(json_object_get(data, "primary_email_address_id"));
    json_t *list = json_object_get(data, "email_addresses"), *e;
    size_t i;
    json_array_foreach(list, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        if (primary == NULL || (id && strcmp(id, primary) == 0))
            return json_string_value(json_object_get(e, "email_address"));
    }
    return NULL;
}

static enum MHD_Result upsert_user(struct MHD_Connection *conn, json_t *data)
{
    const char *id = json_string_value(json_object_get(data, "id"));
    const char *email = primary_email(data);
    const char *first = json_string_value(json_object_get(data, "first_name"));
    const char *last = json_string_value(json_object_get(data, "last_name"));
    char name[256], err[256];
    if (id == NULL || id[0] == '\0' || strlen(id) > 200)
        return api_reply_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_field",
                               "field data.id (the Clerk user id) is missing");
    snprintf(name, sizeof name, "%s%s%s", first ? first : "", first && last ? " " : "",
             last ? last : "");
    const char *params[] = {id, email, name};
    PGresult *r = ss_pg_query(api_pg(),
                              "INSERT INTO hosts (clerk_user_id, email, display_name) VALUES ($1, "
                              "$2, nullif($3, '')) ON CONFLICT (clerk_user_id) DO UPDATE SET "
                              "email = coalesce(EXCLUDED.email, hosts.email), display_name = "
                              "coalesce(EXCLUDED.display_name, hosts.display_name), updated_at = "
                              "now() RETURNING id",
                              3, params, err, sizeof err);
    if (r == NULL)
        return api_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                               "database unavailable; retry");
    json_t *reply = json_pack("{s:s, s:s}", "host_id", PQgetvalue(r, 0, 0), "clerk_user_id", id);
    PQclear(r);
    return api_reply_json(conn, MHD_HTTP_OK, reply);
}

enum MHD_Result clerk_webhook(struct MHD_Connection *conn, const api_request *req)
{
    const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "svix-id");
    const char *ts = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "svix-timestamp");
    const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "svix-signature");
    char want[64];
    if (api_cfg.clerk_webhook_secret == NULL || api_cfg.clerk_webhook_secret[0] == '\0')
        return api_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found",
                               "the Clerk webhook is not configured (CLERK_WEBHOOK_SECRET)");
    if (id == NULL || ts == NULL || sig == NULL)
        return api_reply_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                               "missing svix-id, svix-timestamp or svix-signature header");
    long long t = strtoll(ts, NULL, 10);
    long long now = (long long)time(NULL);
    if (t <= 0 || t < now - WEBHOOK_TOLERANCE_S || t > now + WEBHOOK_TOLERANCE_S)
        return api_reply_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                               "svix-timestamp %.20s is more than %d s from now", ts,
                               WEBHOOK_TOLERANCE_S);
    if (req->too_large)
        return api_reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                               "request body over the limit of %d bytes", API_MAX_BODY);
    if (api_svix_signature(api_cfg.clerk_webhook_secret, id, ts, req->body ? req->body : "",
                           req->len, want) != 0 ||
        !api_svix_signature_listed(sig, want))
        return api_reply_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                               "svix-signature does not match the body");
    json_t *ev = json_loadb(req->body ? req->body : "", req->len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    enum MHD_Result res;
    if (type == NULL)
        res = api_reply_error(conn, MHD_HTTP_BAD_REQUEST, "invalid_json",
                              "webhook body is not a JSON event with a type");
    else if (strcmp(type, "user.created") == 0 || strcmp(type, "user.updated") == 0)
        res = upsert_user(conn, json_object_get(ev, "data"));
    else
        res =
            api_reply_json(conn, MHD_HTTP_OK, json_pack("{s:s, s:b}", "type", type, "ignored", 1));
    json_decref(ev);
    return res;
}
