/* test_api.c -- token-issuer's API against real PostgreSQL and NATS, with
 * ingest-recorder and chunk-store running so that the ingest tokens it
 * issues are checked by the service that consumes them (api_cases.mjs). */
#include "check.h"
#include "ingest_stack.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>

static ingest_stack stack = {.with_issuer = true};
static char clerk_public[2048], clerk_private[4096];

/* An RSA key pair standing in for Clerk's instance keys: the public half
 * configures token-issuer (CLERK_JWT_KEY), the private one signs tokens in
 * api_cases.mjs. */
static int make_clerk_keys(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    BIO *pub = BIO_new(BIO_s_mem()), *priv = BIO_new(BIO_s_mem());
    int rc = -1;
    if (key && pub && priv && PEM_write_bio_PUBKEY(pub, key) == 1 &&
        PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) == 1) {
        char *p = NULL, *q = NULL;
        long np = BIO_get_mem_data(pub, &p), nq = BIO_get_mem_data(priv, &q);
        snprintf(clerk_public, sizeof clerk_public, "CLERK_JWT_KEY=%.*s", (int)np, p);
        snprintf(clerk_private, sizeof clerk_private, "CLERK_TEST_PRIVATE_KEY=%.*s", (int)nq, q);
        rc = 0;
    }
    BIO_free(pub);
    BIO_free(priv);
    EVP_PKEY_free(key);
    return rc;
}

static void test_api_cases(void)
{
    static char key_env[128], other_env[128], rate_env[128];
    char *key = stack_api_key(&stack, "host-a@example.test");
    char *other = stack_api_key(&stack, "host-b@example.test");
    char *rate = stack_api_key(&stack, "host-c@example.test");
    if (!CHECK(key != NULL && other != NULL && rate != NULL))
        goto out;
    snprintf(key_env, sizeof key_env, "API_KEY=%s", key);
    snprintf(other_env, sizeof other_env, "OTHER_API_KEY=%s", other);
    snprintf(rate_env, sizeof rate_env, "RATE_API_KEY=%s", rate);
    stack.extra_env[4] = key_env;
    stack.extra_env[5] = other_env;
    stack.extra_env[6] = rate_env;
    CHECK_EQ_INT(stack_run_node(&stack, "api-cases", "tests/api/api_cases.mjs", 120000), 0);
out:
    free(key);
    free(other);
    free(rate);
}

int main(void)
{
    CHECK_EQ_INT(make_clerk_keys(), 0);
    stack.extra_env[0] = clerk_public;
    stack.extra_env[1] = clerk_private;
    stack.extra_env[2] = "CLERK_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    stack.extra_env[3] = "API_TRUSTED_PROXIES=1"; /* X-Forwarded-For: one proxy appends */
    if (CHECK_EQ_INT(stack_start(&stack, "test_api"), 0))
        TEST_RUN(test_api_cases);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
