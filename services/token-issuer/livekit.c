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
    char *out = NULL, *video = NULL;
    /* only the nested grant goes through JSON; scalars are added directly */
    json_t *v = json_pack("{s:{s:s, s:b, s:b, s:b, s:b}}", "video", "room", room, "roomJoin", 1,
                          "canPublish", 1, "canSubscribe", 1, "canPublishData", 1);
    if (v == NULL || (video = json_dumps(v, JSON_COMPACT)) == NULL || jwt_new(&jwt) != 0)
        goto out;
    if (jwt_add_grant(jwt, "iss", api_cfg.livekit_api_key) != 0 ||
        jwt_add_grant(jwt, "sub", identity) != 0 || jwt_add_grant(jwt, "jti", identity) != 0 ||
        jwt_add_grant(jwt, "name", name) != 0 ||
        jwt_add_grant(jwt, "metadata", metadata ? metadata : "") != 0 ||
        jwt_add_grant_int(jwt, "nbf", (long)now_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + api_cfg.livekit_token_ttl_s)) != 0 ||
        jwt_add_grants_json(jwt, video) != 0)
        goto out;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)api_cfg.livekit_api_secret,
                    (int)strlen(api_cfg.livekit_api_secret)) != 0)
        goto out;
    out = jwt_encode_str(jwt);
out:
    jwt_free(jwt);
    free(video);
    json_decref(v);
    return out;
}
