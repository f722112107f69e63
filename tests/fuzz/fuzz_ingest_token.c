/* fuzz_ingest_token.c -- ingest token verification as ingest-recorder runs
 * it (ss_ingest_token_verify, with ss_jwt_alg_is inside), against a fixed
 * secret and a fixed clock.
 *
 * The first byte chooses what the rest is:
 *   even: the token string itself (as sent in Hello.token or ?token=);
 *   odd:  a JSON claim set, signed here with the right key, so that the
 *         claim checks behind the signature are reached too. */
#include <jwt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/ingest_token.h"

#define FUZZ_SECRET "fuzz-ingest-secret-0123456789abcdef"
#define FUZZ_NOW_S  1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void verify(const char *token)
{
    ss_ingest_claims claims;
    char why[256];
    ss_token_result r = ss_ingest_token_verify(token, FUZZ_SECRET, strlen(FUZZ_SECRET), FUZZ_NOW_S,
                                               &claims, why, sizeof why);
    (void)ss_jwt_alg_is(token, "RS256");
    (void)ss_token_result_name(r);
    if (r == SS_TOKEN_OK &&
        (!ss_uuid_valid(claims.session_id) || !ss_uuid_valid(claims.participant_id) ||
         (claims.track_id[0] && !ss_uuid_valid(claims.track_id)) ||
         FUZZ_NOW_S - SS_INGEST_TOKEN_SKEW_S > claims.expires_at))
        __builtin_trap();
}

/* Signs the claims JSON as token-issuer would (HS256, the same key). */
static char *sign_claims(const char *claims)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, claims) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)FUZZ_SECRET,
                    (int)strlen(FUZZ_SECRET)) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    return token;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 2 * SS_INGEST_TOKEN_MAX_LEN)
        return 0;
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] % 2 == 0) {
        verify(text);
    } else {
        char *token = sign_claims(text);
        if (token != NULL)
            verify(token);
        free(token); /* libjwt allocates with malloc */
    }
    free(text);
    return 0;
}
