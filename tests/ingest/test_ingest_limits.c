/* test_ingest_limits.c -- ingest-recorder's limits with small values:
 * max_inflight flow control, idle timeout, max connections and a full
 * chunk log (back-pressure, nothing lost); see limits_cases.mjs. */
#include "check.h"
#include "ingest_stack.h"

#include <stdio.h>
#include <stdlib.h>

/* The 2 MiB log cannot hold one 8 MiB part; CHUNK_LOG_MAX_TRACKS lets
 * these cases open several tracks anyway (admission has its own test). */
static ingest_stack stack = {.extra_env = {"IDLE_TIMEOUT=2s", "MAX_CONNECTIONS=4", "MAX_INFLIGHT=2",
                                           "CHUNK_LOG_MAX_BYTES=2MiB",
                                           "CHUNK_LOG_MAX_TRACKS=1000"}};

static void test_limit_cases(void)
{
    CHECK_EQ_INT(stack_run_node(&stack, "limits-cases", "tests/ingest/limits_cases.mjs", 120000),
                 0);
}

int main(void)
{
    if (CHECK_EQ_INT(stack_start(&stack, "test_ingest_limits"), 0))
        TEST_RUN(test_limit_cases);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
