/* test_api.c -- token-issuer's API against real PostgreSQL and NATS, with
 * ingest-recorder and chunk-store running so that the ingest tokens it
 * issues are checked by the service that consumes them (api_cases.mjs). */
#include "check.h"
#include "ingest_stack.h"

#include <stdio.h>
#include <stdlib.h>

static ingest_stack stack = {.with_issuer = true};

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
    stack.extra_env[0] = key_env;
    stack.extra_env[1] = other_env;
    stack.extra_env[2] = rate_env;
    char *script = harness_source_path("tests/api/api_cases.mjs");
    char *argv[] = {"node", script, NULL};
    int rc = stack_run(&stack, "api-cases", argv, 120000);
    char *log = stack_log(&stack, "api-cases");
    printf("%s", log ? log : "");
    CHECK_EQ_INT(rc, 0);
    free(log);
    free(script);
out:
    free(key);
    free(other);
    free(rate);
}

int main(void)
{
    if (CHECK_EQ_INT(stack_start(&stack, "test_api"), 0))
        TEST_RUN(test_api_cases);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
