/* api_parse.h -- what token-issuer reads from a request's line and headers,
 * without the HTTP around it: the /v1/ path and its route, the list query
 * parameter limit, the Authorization header (Bearer API key or Clerk
 * token) and the client's entry of X-Forwarded-For. No I/O and no
 * configuration: api.c, auth.c and rate_limit.c turn the results into
 * replies; tests/fuzz/fuzz_api_http.c calls the same functions. */
#ifndef TOKEN_ISSUER_API_PARSE_H
#define TOKEN_ISSUER_API_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest URL routed (longer: 404), and the most segments. */
#define API_MAX_PATH  512
#define API_MAX_PARTS 6

/* Host API keys: "ssk_<prefix>_<secret>", lowercase hex. */
#define API_KEY_PREFIX_HEX 8
#define API_KEY_SECRET_HEX 40

/* The non-empty '/'-separated segments of a URL; they point into the
 * caller's buffer. */
typedef struct api_path {
    const char *parts[API_MAX_PARTS];
    int nparts;
} api_path;

/* Splits url (copied into buf, truncated to buflen) at '/'; -1 when it has
 * more than API_MAX_PARTS segments. */
int api_split_path(const char *url, api_path *p, char *buf, size_t buflen);

/* Whether segment i exists and is s. */
bool api_path_is(const api_path *p, int i, const char *s);

/* 0 when the ids of the path are UUIDs; else the index of the first that is
 * not (2: the session id, 4: the participant id). */
int api_path_bad_id(const api_path *p);

typedef enum {
    API_ROUTE_NONE = 0, /* 404 */
    API_ROUTE_SESSION_CREATE,
    API_ROUTE_SESSION_LIST,
    API_ROUTE_SESSION_GET,
    API_ROUTE_SESSION_DELETE,
    API_ROUTE_SESSION_END,
    API_ROUTE_SESSION_TRACKS,
    API_ROUTE_SESSION_MANIFEST,
    API_ROUTE_PARTICIPANT_JOIN,
    API_ROUTE_INGEST_REFRESH,
    API_ROUTE_PARTICIPANT_PROGRESS,
} api_route;

/* The route of a /v1/sessions path (segments 0 and 1 already checked). */
api_route api_route_of(const api_path *p, const char *method);

/* Whether an invite token may be used instead of an API key. */
bool api_invite_route(const api_path *p, const char *method);

#define API_LIST_DEFAULT 100
#define API_LIST_MAX     500

/* ?limit= (NULL: absent): 0 and *limit in 1..API_LIST_MAX, or -1. */
int api_list_limit(const char *v, int *limit);

typedef enum {
    API_AUTH_MISSING,       /* no Authorization header */
    API_AUTH_NOT_BEARER,    /* not "Bearer <credential>" */
    API_AUTH_CLERK,         /* a Clerk session token: *credential */
    API_AUTH_KEY_MALFORMED, /* "Bearer ssk_..." but not a well formed key */
    API_AUTH_KEY,           /* an API key: *credential, its prefix in prefix */
} api_auth_kind;

/* What the Authorization header h (NULL: absent) holds. */
api_auth_kind api_authorization(const char *h, const char **credential,
                                char prefix[API_KEY_PREFIX_HEX + 1]);

/* Entry `from_right` (1 = the last, at most 8) of the X-Forwarded-For list
 * into out, when it is an IP address; the leftmost when the list is
 * shorter. */
bool api_forwarded_entry(const char *list, int64_t from_right, char *out, size_t len);

#endif
