/* test_api.c -- token-issuer's API against real PostgreSQL and NATS, with
 * ingest-recorder and chunk-store running so that the ingest tokens it
 * issues are checked by the service that consumes them (api_cases.mjs);
 * and the API key subcommands (create, list, revoke). */
#include "check.h"
#include "ingest_stack.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    stack.extra_env[5] = key_env;
    stack.extra_env[6] = other_env;
    stack.extra_env[7] = rate_env;
    CHECK_EQ_INT(stack_run_node(&stack, "api-cases", "tests/api/api_cases.mjs", 120000), 0);
out:
    free(key);
    free(other);
    free(rate);
}

/* token-issuer a0 a1 a2 (its log: `name`): the exit status; the output in *out
 * (caller frees). */
static int key_cli(const char *name, char **out, const char *a0, const char *a1, const char *a2)
{
    char *bin = harness_build_path("services/token-issuer/token-issuer");
    char *argv[] = {bin, (char *)a0, (char *)a1, (char *)a2, NULL};
    int rc = stack_run(&stack, name, argv, 30000);
    free(bin);
    *out = stack_log(&stack, name);
    return rc;
}

/* bad-input: token-issuer CLI | revoke-api-key with a prefix no key has | exit status 1, "no API
 * key with prefix P" | nothing revoked */
static void test_api_key_revoked(void)
{
    const char *email = "host-d@example.test";
    char *key = stack_api_key(&stack, email), *out = NULL, prefix[16], line[64];
    if (!CHECK(key != NULL))
        return;
    snprintf(prefix, sizeof prefix, "%.8s", key + 4);
    CHECK_EQ_INT(stack_api_status(&stack, "GET", "/v1/sessions", key), 200);
    /* listed with its last use; revoked: refused at once */
    CHECK_EQ_INT(key_cli("keys-list", &out, "list-api-keys", "--email", email), 0);
    snprintf(line, sizeof line, "\n%s\ttest\t", prefix);
    CHECK_CONTAINS(out, line);
    CHECK(out && !strstr(strstr(out, line) ?: "", "\t-\t-\n")); /* used; not revoked */
    free(out);
    CHECK_EQ_INT(key_cli("keys-revoke", &out, "revoke-api-key", "--prefix", prefix), 0);
    free(out);
    CHECK_EQ_INT(stack_api_status(&stack, "GET", "/v1/sessions", key), 401);
    CHECK_EQ_INT(key_cli("keys-list-2", &out, "list-api-keys", "--email", email), 0);
    CHECK(out && strstr(out, line) && !strstr(strstr(out, line), "\t-\n"));
    free(out);
    CHECK(key_cli("keys-revoke-none", &out, "revoke-api-key", "--prefix", "ffffffff") != 0);
    CHECK_CONTAINS(out, "no API key with prefix ffffffff");
    free(out);
    free(key);
}

/* bad-input: token-issuer API | PostgreSQL unreachable | 503 `unavailable` (retry), the service
 * keeps running | none; the same request succeeds once PostgreSQL is back */
static void test_database_down(void)
{
    char *key = stack_api_key(&stack, "host-e@example.test");
    if (!CHECK(key != NULL))
        return;
    CHECK_EQ_INT(stack_api_status(&stack, "GET", "/v1/sessions", key), 200);
    CHECK_EQ_INT(harness_pg_stop(stack.h, &stack.pg), 0);
    CHECK_EQ_INT(stack_api_status(&stack, "GET", "/v1/sessions", key), 503);
    CHECK_EQ_INT(stack_api_status(&stack, "POST", "/v1/sessions", key), 503);
    CHECK_EQ_INT(harness_pg_restart(stack.h, &stack.pg), 0);
    long status = 0;
    for (int i = 0; i < 60 && status != 200; i++) {
        status = stack_api_status(&stack, "GET", "/v1/sessions", key);
        if (status != 200)
            usleep(250 * 1000);
    }
    CHECK_EQ_INT(status, 200);
    free(key);
}

int main(void)
{
    CHECK_EQ_INT(make_clerk_keys(), 0);
    stack.extra_env[0] = clerk_public;
    stack.extra_env[1] = clerk_private;
    stack.extra_env[2] = "CLERK_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    stack.extra_env[3] = "API_TRUSTED_PROXIES=1"; /* X-Forwarded-For: one proxy appends */
    stack.extra_env[4] =
        "CLERK_AUTHORIZED_PARTIES=http://localhost:3000, https://studio.example.test";
    if (CHECK_EQ_INT(stack_start(&stack, "test_api"), 0)) {
        TEST_RUN(test_api_cases);
        TEST_RUN(test_api_key_revoked);
        TEST_RUN(test_database_down);
    }
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
