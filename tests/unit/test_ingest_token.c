/* test_ingest_token.c -- ingest tokens: issue/verify round trip, and every
 * way a token is refused (missing, malformed, wrong key, alg none/HS512,
 * expired, wrong issuer/audience, bad ids). */
#include "check.h"
#include "seashore/ingest_token.h"

#include <jwt.h>
#include <stdlib.h>
#include <string.h>

#define KEY    "0123456789abcdef0123456789abcdef-test-key"
#define SID    "3f2b8c1e-6d4a-4c1b-9a57-0e2f5d8c9b10"
#define PID    "7d1c2b3a-0000-4000-8000-000000000001"
#define TID    "7d1c2b3a-0000-4000-8000-0000000000ff"
#define NOW    1790000000
#define KEYLEN (sizeof KEY - 1)

static ss_token_result verify(const char *tok, ss_ingest_claims *c, char *why)
{
    return ss_ingest_token_verify(tok, KEY, KEYLEN, NOW, c, why, 256);
}

/* A token signed with arbitrary claims and algorithm (caller frees). */
static char *craft(jwt_alg_t alg, const char *key, const char *iss, const char *aud,
                   const char *sub, long exp)
{
    jwt_t *jwt = NULL;
    char *s;
    jwt_new(&jwt);
    if (iss)
        jwt_add_grant(jwt, "iss", iss);
    if (aud)
        jwt_add_grant(jwt, "aud", aud);
    if (sub)
        jwt_add_grant(jwt, "sub", sub);
    jwt_add_grant(jwt, "sid", SID);
    jwt_add_grant_int(jwt, "iat", NOW);
    if (exp)
        jwt_add_grant_int(jwt, "exp", exp);
    jwt_set_alg(jwt, alg, key ? (const unsigned char *)key : NULL, key ? (int)strlen(key) : 0);
    s = jwt_encode_str(jwt);
    jwt_free(jwt);
    return s;
}

static void test_round_trip(void)
{
    ss_ingest_claims c;
    char why[256] = "";
    char *tok = ss_ingest_token_issue(KEY, KEYLEN, SID, PID, TID, NOW, 300);
    if (!CHECK(tok != NULL))
        return;
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_OK);
    CHECK_EQ_STR(c.session_id, SID);
    CHECK_EQ_STR(c.participant_id, PID);
    CHECK_EQ_STR(c.track_id, TID);
    CHECK_EQ_INT(c.expires_at, NOW + 300);
    free(tok);

    tok = ss_ingest_token_issue(KEY, KEYLEN, SID, PID, NULL, NOW, 300);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_OK);
    CHECK_EQ_STR(c.track_id, "");
    free(tok);
}

/* bad-input: ingest token | expired, wrongly signed, `alg: none`, wrong issuer or audience, missing
 * claims | refused, with the reason | none */
static void test_refused(void)
{
    ss_ingest_claims c;
    char why[256];
    char *tok;

    CHECK_EQ_INT(verify(NULL, &c, why), SS_TOKEN_MALFORMED);
    CHECK_EQ_INT(verify("", &c, why), SS_TOKEN_MALFORMED);
    CHECK_CONTAINS(why, "no token");
    CHECK_EQ_INT(verify("not-a-jwt", &c, why), SS_TOKEN_MALFORMED);
    CHECK_EQ_INT(verify("a.b.c", &c, why), SS_TOKEN_MALFORMED);

    tok =
        ss_ingest_token_issue("another key, same length 0123456789", 35, SID, PID, NULL, NOW, 300);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_BAD_SIGNATURE);
    CHECK_CONTAINS(why, "signature");
    free(tok);

    tok = ss_ingest_token_issue(KEY, KEYLEN, SID, PID, NULL, NOW - 1000, 300);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_EXPIRED);
    CHECK_CONTAINS(why, "expired");
    free(tok);

    /* expired, but within the clock-skew allowance */
    tok = ss_ingest_token_issue(KEY, KEYLEN, SID, PID, NULL, NOW - 330, 300);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_OK);
    free(tok);

    tok = craft(JWT_ALG_NONE, NULL, "seashore", "seashore-ingest", PID, NOW + 60);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_MALFORMED);
    CHECK_CONTAINS(why, "HS256");
    free(tok);

    tok = craft(JWT_ALG_HS512, KEY, "seashore", "seashore-ingest", PID, NOW + 60);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_MALFORMED);
    free(tok);

    tok = craft(JWT_ALG_HS256, KEY, "someone-else", "seashore-ingest", PID, NOW + 60);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_MALFORMED);
    CHECK_CONTAINS(why, "iss");
    free(tok);

    tok = craft(JWT_ALG_HS256, KEY, "seashore", "livekit", PID, NOW + 60);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_MALFORMED);
    CHECK_CONTAINS(why, "aud");
    free(tok);

    tok = craft(JWT_ALG_HS256, KEY, "seashore", "seashore-ingest", "not-a-uuid", NOW + 60);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_MALFORMED);
    CHECK_CONTAINS(why, "sub");
    free(tok);

    tok = craft(JWT_ALG_HS256, KEY, "seashore", "seashore-ingest", PID, 0);
    CHECK_EQ_INT(verify(tok, &c, why), SS_TOKEN_MALFORMED);
    CHECK_CONTAINS(why, "exp");
    free(tok);

    /* a valid token with one byte of the payload changed */
    tok = ss_ingest_token_issue(KEY, KEYLEN, SID, PID, NULL, NOW, 300);
    char *dot = strchr(tok, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    CHECK(verify(tok, &c, why) != SS_TOKEN_OK);
    free(tok);

    CHECK(ss_ingest_token_issue(KEY, KEYLEN, "bad", PID, NULL, NOW, 300) == NULL);
}

static void test_uuid(void)
{
    CHECK(ss_uuid_valid(SID));
    CHECK(!ss_uuid_valid("3F2B8C1E-6D4A-4C1B-9A57-0E2F5D8C9B10"));
    CHECK(!ss_uuid_valid("3f2b8c1e-6d4a-4c1b-9a57-0e2f5d8c9b1"));
    CHECK(!ss_uuid_valid("3f2b8c1e.6d4a-4c1b-9a57-0e2f5d8c9b10"));
    CHECK(!ss_uuid_valid(NULL));
}

int main(void)
{
    TEST_RUN(test_round_trip);
    TEST_RUN(test_refused);
    TEST_RUN(test_uuid);
    return check_finish();
}
