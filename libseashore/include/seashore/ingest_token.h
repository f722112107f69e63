#ifndef SEASHORE_INGEST_TOKEN_H
#define SEASHORE_INGEST_TOKEN_H

/* Ingest tokens: the HS256 JWT a recorder presents to ingest-recorder.
 * Claims: iss "seashore", aud "seashore-ingest", sub = participant id,
 * sid = session id, optional tid = track id, iat, exp. Issued by
 * token-issuer, verified by ingest-recorder; the key is
 * INGEST_TOKEN_SECRET, shared through configuration. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SS_INGEST_TOKEN_ISSUER   "seashore"
#define SS_INGEST_TOKEN_AUDIENCE "seashore-ingest"
#define SS_INGEST_TOKEN_MAX_LEN  8192
#define SS_INGEST_TOKEN_SKEW_S   60
#define SS_UUID_LEN              36

typedef enum {
    SS_TOKEN_OK = 0,
    SS_TOKEN_MALFORMED, /* missing, too long, not a JWT, wrong claims */
    SS_TOKEN_BAD_SIGNATURE,
    SS_TOKEN_EXPIRED,
    SS_TOKEN_NOT_YET_VALID,
} ss_token_result;

typedef struct {
    char session_id[SS_UUID_LEN + 1];
    char participant_id[SS_UUID_LEN + 1];
    char track_id[SS_UUID_LEN + 1]; /* "" when the token is not track-scoped */
    int64_t issued_at;
    int64_t expires_at;
} ss_ingest_claims;

/* Signs a token valid for ttl_s seconds from now_s. track_id may be NULL.
 * Returns a malloc'ed string (caller frees) or NULL on failure. */
char *ss_ingest_token_issue(const char *key, size_t key_len, const char *session_id,
                            const char *participant_id, const char *track_id, int64_t now_s,
                            int64_t ttl_s);

/* Verifies signature (HS256 only), issuer, audience, expiry (with
 * SS_INGEST_TOKEN_SKEW_S allowance) and the shape of the ids. On failure
 * `why` (may be NULL) receives a sentence naming the claim or check. */
ss_token_result ss_ingest_token_verify(const char *token, const char *key, size_t key_len,
                                       int64_t now_s, ss_ingest_claims *out, char *why,
                                       size_t why_len);

/* True when the JWT's header (its first segment, base64url JSON) names
 * exactly this alg; checked before verifying, so no token can choose
 * another algorithm (none, or HS256 keyed with a public key). */
bool ss_jwt_alg_is(const char *token, const char *alg);

/* True when s is a canonical lowercase UUID (36 chars, 8-4-4-4-12 hex). */
int ss_uuid_valid(const char *s);

const char *ss_token_result_name(ss_token_result r);

#endif
