/* token_bench.c -- tokens per second of our signers, alone (no HTTP, no
 * database): LiveKit access tokens (token-issuer's livekit.c, compiled in)
 * and ingest tokens (libseashore). Beside them, the floor of the libraries
 * every token goes through: libjwt signing an HS256 token with one claim,
 * and OpenSSL's one-shot HMAC() (which libjwt calls) over a token-sized
 * input. Prints one JSON object.
 *   token_bench SECONDS */
#include "../../services/token-issuer/api.h"
#include "seashore/ingest_token.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

api_config api_cfg; /* livekit.c reads its keys from here */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Calls sign() for `seconds`; returns tokens per second. */
static double rate(double seconds, int (*sign)(long))
{
    long n = 0;
    double start = now_s(), end = start + seconds;
    while (now_s() < end)
        for (int i = 0; i < 100; i++, n++)
            if (sign(n) != 0)
                return -1;
    return (double)n / (now_s() - start);
}

static int sign_livekit(long i)
{
    char identity[32];
    snprintf(identity, sizeof identity, "guest-%ld", i);
    char *t = livekit_token(identity, "Guest", "3f2b8c1e-6d4a-4c1b-9a57-0e2f5d8c9b10",
                            "{\"participant_id\":\"7d1c2b3a-0000-4000-8000-000000000001\"}",
                            (int64_t)time(NULL));
    free(t);
    return t ? 0 : -1;
}

static int sign_ingest(long i)
{
    (void)i;
    static const char key[] = "bench-ingest-secret-0123456789abcdef0123";
    char *t = ss_ingest_token_issue(key, sizeof key - 1, "3f2b8c1e-6d4a-4c1b-9a57-0e2f5d8c9b10",
                                    "7d1c2b3a-0000-4000-8000-000000000001", NULL,
                                    (int64_t)time(NULL), 900);
    free(t);
    return t ? 0 : -1;
}

static const char livekit_secret[] = "bench-livekit-secret-0123456789abcdef0123";

/* libjwt's own cost: no claims of ours, nothing to serialise but {"sub":..} */
static int sign_libjwt_floor(long i)
{
    (void)i;
    jwt_t *jwt = NULL;
    char *t = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grant(jwt, "sub", "g") == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)livekit_secret,
                    (int)sizeof livekit_secret - 1) == 0)
        t = jwt_encode_str(jwt);
    jwt_free(jwt);
    free(t);
    return t ? 0 : -1;
}

/* the MAC alone, as libjwt calls it, over the length of a LiveKit token's
 * header.payload (about 330 bytes) */
static int sign_hmac_only(long i)
{
    static unsigned char input[330];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    input[0] = (unsigned char)i;
    return HMAC(EVP_sha256(), livekit_secret, (int)sizeof livekit_secret - 1, input, sizeof input,
                mac, &len)
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3;
    api_cfg.livekit_api_key = "APIbenchkey";
    api_cfg.livekit_api_secret = livekit_secret;
    api_cfg.livekit_token_ttl_s = 21600;
    printf("{\"livekit_tokens_per_s\": %.0f, \"ingest_tokens_per_s\": %.0f, "
           "\"libjwt_floor_per_s\": %.0f, \"hmac_sha256_per_s\": %.0f}\n",
           rate(seconds, sign_livekit), rate(seconds, sign_ingest),
           rate(seconds, sign_libjwt_floor), rate(seconds, sign_hmac_only));
    return 0;
}
