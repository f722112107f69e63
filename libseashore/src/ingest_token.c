/* Ingest tokens (HS256 JWT) with libjwt. See seashore/ingest_token.h. */
#include "seashore/ingest_token.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ss_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != SS_UUID_LEN)
        return 0;
    for (int i = 0; i < SS_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

const char *ss_token_result_name(ss_token_result r)
{
    switch (r) {
    case SS_TOKEN_OK:
        return "ok";
    case SS_TOKEN_MALFORMED:
        return "malformed";
    case SS_TOKEN_BAD_SIGNATURE:
        return "bad signature";
    case SS_TOKEN_EXPIRED:
        return "expired";
    case SS_TOKEN_NOT_YET_VALID:
        return "not yet valid";
    }
    return "unknown";
}

char *ss_ingest_token_issue(const char *key, size_t key_len, const char *session_id,
                            const char *participant_id, const char *track_id, int64_t now_s,
                            int64_t ttl_s)
{
    jwt_t *jwt = NULL;
    char *out = NULL;

    if (!ss_uuid_valid(session_id) || !ss_uuid_valid(participant_id) ||
        (track_id != NULL && !ss_uuid_valid(track_id)) || ttl_s <= 0)
        return NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grant(jwt, "iss", SS_INGEST_TOKEN_ISSUER) != 0 ||
        jwt_add_grant(jwt, "aud", SS_INGEST_TOKEN_AUDIENCE) != 0 ||
        jwt_add_grant(jwt, "sub", participant_id) != 0 ||
        jwt_add_grant(jwt, "sid", session_id) != 0 ||
        (track_id != NULL && jwt_add_grant(jwt, "tid", track_id) != 0) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) != 0)
        goto out;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)key, (int)key_len) != 0)
        goto out;
    out = jwt_encode_str(jwt);
out:
    jwt_free(jwt);
    return out;
}

static ss_token_result fail(ss_token_result r, char *why, size_t why_len, const char *fmt, ...)
{
    if (why != NULL && why_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return r;
}

static int copy_id_claim(jwt_t *jwt, const char *claim, char *dst, int required)
{
    const char *v = jwt_get_grant(jwt, claim);
    if (v == NULL)
        return required ? -1 : 0;
    if (!ss_uuid_valid(v))
        return -1;
    memcpy(dst, v, SS_UUID_LEN + 1);
    return 0;
}

static int get_time_claim(jwt_t *jwt, const char *claim, int64_t *out)
{
    errno = 0;
    long v = jwt_get_grant_int(jwt, claim);
    if (errno != 0)
        return -1;
    *out = v;
    return 0;
}

static ss_token_result check_claims(jwt_t *jwt, int64_t now_s, ss_ingest_claims *c, char *why,
                                    size_t why_len)
{
    const char *iss = jwt_get_grant(jwt, "iss");
    const char *aud = jwt_get_grant(jwt, "aud");

    if (iss == NULL || strcmp(iss, SS_INGEST_TOKEN_ISSUER) != 0)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "claim iss is not \"%s\"",
                    SS_INGEST_TOKEN_ISSUER);
    if (aud == NULL || strcmp(aud, SS_INGEST_TOKEN_AUDIENCE) != 0)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "claim aud is not \"%s\"",
                    SS_INGEST_TOKEN_AUDIENCE);
    if (copy_id_claim(jwt, "sub", c->participant_id, 1) != 0)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "claim sub is not a participant UUID");
    if (copy_id_claim(jwt, "sid", c->session_id, 1) != 0)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "claim sid is not a session UUID");
    if (copy_id_claim(jwt, "tid", c->track_id, 0) != 0)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "claim tid is not a track UUID");
    if (get_time_claim(jwt, "exp", &c->expires_at) != 0)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "claim exp is missing or not a number");
    if (get_time_claim(jwt, "iat", &c->issued_at) != 0)
        c->issued_at = 0;
    /* now_s is our clock; exp is the token's, any int64: keep it alone on
     * its side so that no exp near INT64_MAX overflows (UB) */
    if (now_s - SS_INGEST_TOKEN_SKEW_S > c->expires_at)
        return fail(SS_TOKEN_EXPIRED, why, why_len, "token expired at %lld (now %lld)",
                    (long long)c->expires_at, (long long)now_s);
    if (c->issued_at > now_s + SS_INGEST_TOKEN_SKEW_S)
        return fail(SS_TOKEN_NOT_YET_VALID, why, why_len, "claim iat %lld is in the future",
                    (long long)c->issued_at);
    return SS_TOKEN_OK;
}

bool ss_jwt_alg_is(const char *token, const char *alg)
{
    const char *dot = strchr(token, '.');
    size_t n = dot ? (size_t)(dot - token) : 0;
    unsigned char *b64 = NULL, *raw = NULL;
    json_t *hdr = NULL;
    bool ok = false;

    if (n == 0 || n > 1024)
        return false;
    b64 = malloc(n + 4);
    raw = malloc(n + 4);
    if (b64 == NULL || raw == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        b64[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : (unsigned char)token[i];
    size_t padded = n;
    while (padded % 4 != 0)
        b64[padded++] = '=';
    int len = EVP_DecodeBlock(raw, b64, (int)padded);
    if (len < 0)
        goto out;
    len -= (int)(padded - n); /* EVP_DecodeBlock counts the padding as zero bytes */
    hdr = json_loadb((const char *)raw, (size_t)len, 0, NULL);
    const char *got = json_string_value(json_object_get(hdr, "alg"));
    ok = got != NULL && strcmp(got, alg) == 0;
out:
    json_decref(hdr);
    free(b64);
    free(raw);
    return ok;
}

ss_token_result ss_ingest_token_verify(const char *token, const char *key, size_t key_len,
                                       int64_t now_s, ss_ingest_claims *out, char *why,
                                       size_t why_len)
{
    jwt_t *jwt = NULL;
    ss_token_result r;

    memset(out, 0, sizeof *out);
    if (token == NULL || token[0] == '\0')
        return fail(SS_TOKEN_MALFORMED, why, why_len, "no token");
    if (strlen(token) > SS_INGEST_TOKEN_MAX_LEN)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "token is longer than %d bytes",
                    SS_INGEST_TOKEN_MAX_LEN);
    if (strchr(token, '.') == NULL || strchr(strchr(token, '.') + 1, '.') == NULL)
        return fail(SS_TOKEN_MALFORMED, why, why_len, "token is not a JWT (three parts)");
    /* Refuse every algorithm but HS256 ("none" included) before verifying. */
    if (!ss_jwt_alg_is(token, "HS256"))
        return fail(SS_TOKEN_MALFORMED, why, why_len,
                    "token header is not a JSON object with alg HS256");
    if (jwt_decode(&jwt, token, (const unsigned char *)key, (int)key_len) != 0)
        return fail(SS_TOKEN_BAD_SIGNATURE, why, why_len, "token signature does not verify");
    r = check_claims(jwt, now_s, out, why, why_len);
    jwt_free(jwt);
    return r;
}
