/* api_body.h -- what token-issuer accepts in a request body, without the
 * HTTP around it: the body as a JSON object (docs/api.md), its string
 * fields with their limits, and the Svix signature of the Clerk webhook's
 * body. No I/O and no configuration: api.c and clerk.c turn the results
 * into replies; tests/fuzz/fuzz_api_json.c calls the same functions. */
#ifndef TOKEN_ISSUER_API_BODY_H
#define TOKEN_ISSUER_API_BODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Field limits, in bytes. */
#define API_MAX_TITLE    200
#define API_MAX_NAME     100
#define API_MAX_IDENTITY 100
#define API_MAX_INVITE   64
#define API_MAX_ROLE     8

/* The jansson flags every request body is parsed with. */
#define API_BODY_JSON_FLAGS JSON_REJECT_DUPLICATES

typedef enum {
    API_BODY_OK = 0,
    API_BODY_TOO_LARGE,  /* over API_MAX_BODY: 413 */
    API_BODY_NOT_JSON,   /* 400 invalid_json */
    API_BODY_NOT_OBJECT, /* 400 invalid_json */
} api_body_result;

/* An empty body gives API_BODY_OK and *out NULL; a JSON object gives
 * API_BODY_OK and *out (caller owns it: json_decref). On failure *out is
 * NULL and `why` (may be NULL) says what is wrong. */
api_body_result api_body_parse(const char *body, size_t len, bool too_large, json_t **out,
                               char *why, size_t why_len) __attribute__((warn_unused_result));

typedef enum {
    API_FIELD_OK = 0,
    API_FIELD_MISSING, /* absent or null, and required */
    API_FIELD_INVALID, /* not a string, longer than max, or holding a NUL */
} api_field_result;

/* A string field of body (which may be NULL): required (def NULL) or
 * optional (absent or null gives def), at most max bytes, no NUL. *out
 * points into body (or is def): valid while body is. */
api_field_result api_body_string(json_t *body, const char *field, const char *def, size_t max,
                                 const char **out) __attribute__((warn_unused_result));

/* Svix: base64 HMAC-SHA256 of "<id>.<timestamp>.<body>" keyed with the
 * base64 secret (an optional "whsec_" prefix is skipped) into out (a
 * 44-byte string). -1 when the secret is not base64 of at most 255 bytes. */
int api_svix_signature(const char *secret, const char *id, const char *ts, const char *body,
                       size_t len, char out[64]) __attribute__((warn_unused_result));

/* Whether one of the space-separated "v1,<sig>" entries of an
 * svix-signature header is exactly `want` (compared in constant time). */
bool api_svix_signature_listed(const char *header, const char *want);

#endif
