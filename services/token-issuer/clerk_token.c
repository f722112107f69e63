/* clerk_token.c -- Clerk session JWTs (clerk_token.h). */
#include "clerk_token.h"

#include <jwt.h>
#include <stdio.h>
#include <string.h>

#include "seashore/ingest_token.h"

/* Clerk puts the origin of the page a token was made for in azp. With
 * CLERK_AUTHORIZED_PARTIES set, a token of another site that shares the
 * Clerk instance is refused, as Clerk's docs ask of backends. */
bool clerk_azp_allowed(const char *list, const char *azp)
{
    if (list == NULL || list[0] == '\0')
        return true;
    if (azp == NULL)
        return false;
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ","), n = len;
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n > 0 && n == strlen(azp) && strncmp(p, azp, n) == 0)
            return true;
        p += len;
    }
    return false;
}

int clerk_token_verify(const char *token, const char *key, const char *parties, int64_t now_s,
                       char sub_out[CLERK_MAX_SUB + 1], char *why, size_t whylen)
{
    jwt_t *jwt = NULL;
    int rc = -1;
    if (!ss_jwt_alg_is(token, "RS256")) {
        snprintf(why, whylen, "Clerk token is not an RS256 JWT");
        return -1;
    }
    if (jwt_decode(&jwt, token, (const unsigned char *)key, (int)strlen(key)) != 0) {
        snprintf(why, whylen, "Clerk token signature does not verify with CLERK_JWT_KEY");
        return -1;
    }
    long now = (long)now_s;
    long exp = jwt_get_grant_int(jwt, "exp");
    long nbf = jwt_get_grant_int(jwt, "nbf");
    const char *sub = jwt_get_grant(jwt, "sub"), *azp = jwt_get_grant(jwt, "azp");
    if (exp == 0 || exp < now - CLERK_SKEW_S) /* not exp + skew: it overflows */
        snprintf(why, whylen, "Clerk token expired");
    else if (nbf > now + CLERK_SKEW_S)
        snprintf(why, whylen, "Clerk token not valid yet (nbf)");
    else if (sub == NULL || sub[0] == '\0' || strlen(sub) > CLERK_MAX_SUB)
        snprintf(why, whylen, "Clerk token has no sub");
    else if (!clerk_azp_allowed(parties, azp))
        snprintf(why, whylen, "Clerk token's azp \"%.100s\" is not one of CLERK_AUTHORIZED_PARTIES",
                 azp ? azp : "(none)");
    else
        rc = 0;
    if (rc == 0)
        snprintf(sub_out, CLERK_MAX_SUB + 1, "%s", sub);
    jwt_free(jwt);
    return rc;
}
