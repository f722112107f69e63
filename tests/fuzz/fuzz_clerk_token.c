/* fuzz_clerk_token.c -- Clerk session-token verification as token-issuer
 * runs it for "Authorization: Bearer <token>" (clerk_token_verify: the
 * RS256 check of ss_jwt_alg_is, the signature, exp, nbf, sub, and azp
 * against CLERK_AUTHORIZED_PARTIES), with a fixed test key pair and a fixed
 * clock. The key is 1024-bit for speed; its size plays no part in the
 * checks behind the signature.
 *
 * The rest of the input after byte 0 is a first line, CLERK_AUTHORIZED_PARTIES,
 * then (byte 0 even) the token itself, or (odd) a JSON claim set signed
 * here with the test private key, so that the claim checks are reached.
 * What is accepted is checked against the token's own claims. */
#include <jansson.h>
#include <jwt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clerk_token.h"

#define FUZZ_NOW_S 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 (a test
 * key of this file and make_corpus.mjs, nothing else) */
static const char private_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAL8myrfADR+TnP6g\n"
    "Dy6lpEMQZzfKZWQG0kd0h+AW7eQL24t+cOqG2Eph8WRigVFbGYd75uxF5A35dMPQ\n"
    "7JWnbBd748v+8wgcWjsRcjTtLQj5L9IPIeodRGI9gyCKAujPzBUqnM9h6x5FkZab\n"
    "tkc0zD85ZEO6I+Lt+7P0UfPd25IlAgMBAAECgYEAkZV/67cPx67rcVqCdaqekp1Z\n"
    "n7o8wpQXb2inW9ra0EbfrTxdz6Fn9i7mZOhJSacyqGeLlwQcDzCg58qlhc1/molF\n"
    "I8Lrxn+B2ZZAqy552eQzK57RqC3ev5Pc3iEPwR2W3wk4ZImgxK9BDVlyBtvb4D0m\n"
    "KC9K3vEjmouDJT0oP8ECQQDuw75nMIpRQ1jsPZ8VYN24aNfE6Wso9yWutkk1EtUX\n"
    "SsI3h7rE/tiUo6mar25SiNAwEB2b4efE0whh8PBkK+hpAkEAzPMuTdsU+WFeZ+jY\n"
    "haOGuv3bZNptnw5RqjdwSKuV+cOtcSbWdjly+n+h7P8sRNCpFEWGYPUw8QlYUKZK\n"
    "M0KEXQJANJjQR+EMh0xDuX71nXsCPM5zwb/9yD9xgKRNSjDE2mWwlRUEUsMlKNFI\n"
    "2neM4QecfQn/y8gfC1/Ft/WgryBxCQJAeQox0ZdOts1zhOi2X46pNmxQkyqRTTuW\n"
    "rXGaZcC4jU6sc0QdqqrZJeoVBrPZQDb/dFJvP3nvUptTRiY/cjCZnQJBALGfFh4P\n"
    "PwTMMdFftNr5ziJiLXn0vVdlJWsFmWUkfmFIHGRg6yGg9Q5+IQb59Qp1PW+Alcm4\n"
    "MmacbvOl9CxvsOo=\n"
    "-----END PRIVATE KEY-----\n";
static const char public_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC/Jsq3wA0fk5z+oA8upaRDEGc3\n"
    "ymVkBtJHdIfgFu3kC9uLfnDqhthKYfFkYoFRWxmHe+bsReQN+XTD0OyVp2wXe+PL\n"
    "/vMIHFo7EXI07S0I+S/SDyHqHURiPYMgigLoz8wVKpzPYeseRZGWm7ZHNMw/OWRD\n"
    "uiPi7fuz9FHz3duSJQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

/* Whether azp is an entry of the comma-separated list, spaces trimmed. */
static bool listed(const char *list, const char *azp)
{
    if (list[0] == '\0')
        return true;
    if (azp == NULL)
        return false;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        const char *b = p, *e = p + len;
        while (b < e && *b == ' ')
            b++;
        while (e > b && e[-1] == ' ')
            e--;
        if (e > b && (size_t)(e - b) == strlen(azp) && memcmp(b, azp, (size_t)(e - b)) == 0)
            return true;
        p += len;
        if (*p == '\0')
            return false;
    }
}

/* An accepted token: its claims as libjwt decodes them must pass every
 * check, read here without libjwt's getters. */
static void check_accepted(const char *token, const char *parties, const char *sub)
{
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)public_pem, (int)strlen(public_pem)) != 0)
        __builtin_trap();
    char *grants = jwt_get_grants_json(jwt, NULL);
    json_t *c = grants ? json_loads(grants, 0, NULL) : NULL;
    if (c == NULL)
        __builtin_trap();
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    const char *want_sub = json_string_value(json_object_get(c, "sub"));
    const char *azp = json_string_value(json_object_get(c, "azp"));
    if (!json_is_integer(exp) || json_integer_value(exp) == 0 ||
        json_integer_value(exp) < FUZZ_NOW_S - CLERK_SKEW_S ||
        (json_is_integer(nbf) && json_integer_value(nbf) > FUZZ_NOW_S + CLERK_SKEW_S) ||
        want_sub == NULL || strcmp(sub, want_sub) != 0 || sub[0] == '\0' ||
        strlen(sub) > CLERK_MAX_SUB || !listed(parties, azp) || !clerk_azp_allowed(parties, azp))
        __builtin_trap();
    json_decref(c);
    free(grants);
    jwt_free(jwt);
}

static void verify(const char *token, const char *parties)
{
    char sub[CLERK_MAX_SUB + 1], why[160];
    why[0] = '\0';
    int rc = clerk_token_verify(token, public_pem, parties, FUZZ_NOW_S, sub, why, sizeof why);
    if ((rc != 0 && rc != -1) || (rc != 0 && why[0] == '\0'))
        __builtin_trap();
    if (rc == 0)
        check_accepted(token, parties, sub);
}

/* Signs the claims JSON as Clerk would (RS256, the test key). */
static char *sign_claims(const char *claims)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, claims) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)private_pem,
                    (int)strlen(private_pem)) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    return token;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 16384)
        return 0;
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *nl = strchr(text, '\n'), *parties = "", *rest = text;
    if (nl != NULL) {
        *nl = '\0';
        parties = text;
        rest = nl + 1;
    }
    /* the azp list alone, against a few origins */
    static const char *const origins[] = {NULL, "", "https://studio.example.com", " ", ","};
    for (size_t i = 0; i < sizeof origins / sizeof origins[0]; i++)
        if (clerk_azp_allowed(parties, origins[i]) != listed(parties, origins[i]))
            __builtin_trap();
    if (data[0] % 2 == 0) {
        verify(rest, parties);
    } else {
        char *token = sign_claims(rest);
        if (token != NULL)
            verify(token, parties);
        free(token); /* libjwt allocates with malloc */
    }
    free(text);
    return 0;
}
