/* api.h -- token-issuer's HTTP/JSON API (docs/api.md): request bodies,
 * JSON replies and errors, authentication, the routes. */
#ifndef TOKEN_ISSUER_API_H
#define TOKEN_ISSUER_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api_parse.h"
#include "seashore/ingest_token.h"
#include "seashore/service.h"

#define API_MAX_BODY 65536

typedef struct api_config {
    ss_service *svc;
    const char *ingest_secret, *ingest_public_url;
    int64_t ingest_token_ttl_s;
    const char *livekit_url, *livekit_api_key, *livekit_api_secret;
    int64_t livekit_token_ttl_s;
    int64_t rate_per_s, rate_burst, trusted_proxies;
    const char *clerk_jwt_key, *clerk_webhook_secret, *clerk_authorized_parties;
    int64_t download_ttl_s;
} api_config;

extern api_config api_cfg;

/* One request being received: its body, up to API_MAX_BODY. */
typedef struct api_request {
    char *body;
    size_t len;
    bool too_large;
} api_request;

/* Who is calling: a host (API key) or nobody. */
typedef struct api_caller {
    char host_id[SS_UUID_LEN + 1];
} api_caller;

enum MHD_Result api_reply_json(struct MHD_Connection *conn, unsigned status, json_t *body);
/* {"error": {"code": code, "message": ...}} with the given HTTP status. */
enum MHD_Result api_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Handles /v1/... ; returns MHD_NO only on a broken connection. */
enum MHD_Result api_handle(struct MHD_Connection *conn, const char *method, const char *url,
                           const api_request *req);

/* api_db.c: the calling thread's own database connection (opened on first
 * use, closed when the thread exits). */
ss_pg *api_pg(void);

/* auth.c: 0 and *caller filled, or -1 (reply already queued in *result). */
int api_authenticate(struct MHD_Connection *conn, api_caller *caller, enum MHD_Result *result);
/* api_keys_cli.c: `token-issuer create-api-key --email E --name N` prints a
 * new key; `list-api-keys --email E` the host's keys (prefix, name, dates);
 * `revoke-api-key --prefix P` revokes one. argv[0] is the subcommand; the
 * exit status (2: bad usage). api_is_key_command: whether argv[1] is one. */
bool api_is_key_command(const char *name);
int api_key_command(ss_pg *pg, int argc, char **argv);

/* clerk.c: a Clerk session JWT (0 and caller filled, or -1 with why), and
 * the Clerk webhook (Svix-signed user events). */
int clerk_authenticate(const char *token, api_caller *caller, char *why, size_t whylen);
enum MHD_Result clerk_webhook(struct MHD_Connection *conn, const api_request *req);

/* rate_limit.c: true when `who` is over the rate (a request taken from its bucket), with
 * the 429 (Retry-After) queued in *res. */
bool api_rate_limited(struct MHD_Connection *conn, const char *who, enum MHD_Result *res);
/* The same check without taking a request; api_rate_take takes one. */
bool api_rate_exhausted_reply(struct MHD_Connection *conn, const char *who, enum MHD_Result *res);
void api_rate_take(const char *who);
/* The client's address: the connection's peer, or with
 * API_TRUSTED_PROXIES = n the X-Forwarded-For entry n from the right (the
 * address the outermost trusted proxy saw; entries a client wrote itself
 * are further left). "?" when there is none. */
void api_client_address(struct MHD_Connection *conn, char *out, size_t len);

/* api_downloads.c: presigned download URLs ("url", "url_expires_at") for
 * the finished objects of the tracks listing (session title given) and of a
 * manifest (and its own object), each saved under a name that says whose
 * track it is. */
void api_tracks_add_urls(const char *title, json_t *participants);
void api_manifest_add_urls(json_t *manifest, json_t *manifest_object);

/* livekit.c: a LiveKit access token (caller frees) or NULL. */
char *livekit_token(const char *identity, const char *name, const char *room, const char *metadata,
                    int64_t now_s);

#endif
