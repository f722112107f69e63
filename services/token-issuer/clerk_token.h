/* clerk_token.h -- a Clerk session JWT checked without the HTTP and the
 * database around it: the RS256 signature with CLERK_JWT_KEY, exp and nbf
 * (with CLERK_SKEW_S allowance), sub, and azp against
 * CLERK_AUTHORIZED_PARTIES. clerk.c maps the sub to a host;
 * tests/fuzz/fuzz_clerk_token.c calls the same functions. */
#ifndef TOKEN_ISSUER_CLERK_TOKEN_H
#define TOKEN_ISSUER_CLERK_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLERK_SKEW_S  60
#define CLERK_MAX_SUB 200

/* Whether azp is one of the comma-separated origins of list (NULL or
 * empty: any token, azp or not). */
bool clerk_azp_allowed(const char *list, const char *azp);

/* 0 and the token's sub in sub, or -1 with why. key: the PEM public key
 * (not empty); parties: CLERK_AUTHORIZED_PARTIES; now_s: the clock. */
int clerk_token_verify(const char *token, const char *key, const char *parties, int64_t now_s,
                       char sub[CLERK_MAX_SUB + 1], char *why, size_t whylen);

#endif
