/* livekit.c -- LiveKit access tokens as LiveKit servers accept them: HS256
 * JWT signed with LIVEKIT_API_SECRET, iss = LIVEKIT_API_KEY, sub = identity,
 * name, nbf/exp, the `video` grant, metadata. */
#include "api.h"

#include <jwt.h>
#include <stdlib.h>
#include <string.h>

char *livekit_token(const char *identity, const char *name, const char *room, const char *metadata,
                    int64_t now_s)
{
    jwt_t *jwt = NULL;
    char *out = NULL, *claims = NULL;
    json_t *c =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:{s:s, s:b, s:b, s:b, s:b}}", "iss",
                  api_cfg.livekit_api_key, "sub", identity, "name", name, "nbf", (json_int_t)now_s,
                  "exp", (json_int_t)(now_s + api_cfg.livekit_token_ttl_s), "jti", identity,
                  "metadata", metadata ? metadata : "", "video", "room", room, "roomJoin", 1,
                  "canPublish", 1, "canSubscribe", 1, "canPublishData", 1);
    if (c == NULL || (claims = json_dumps(c, JSON_COMPACT)) == NULL || jwt_new(&jwt) != 0)
        goto out;
    if (jwt_add_grants_json(jwt, claims) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)api_cfg.livekit_api_secret,
                    (int)strlen(api_cfg.livekit_api_secret)) != 0)
        goto out;
    out = jwt_encode_str(jwt);
out:
    jwt_free(jwt);
    free(claims);
    json_decref(c);
    return out;
}
