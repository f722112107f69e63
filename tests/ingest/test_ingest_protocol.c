/* test_ingest_protocol.c -- the websocket protocol against the real
 * ingest-recorder and chunk-store (nats-server, PostgreSQL): every case of
 * protocol_cases.mjs (happy path, resume, and each bad input of issue 3),
 * then checks that both services are still up and that nothing stored was
 * changed by the bad inputs (the cases read tracks back through
 * `seashore-chunkctl`-equivalent requests made here). */
#include "check.h"
#include "ingest_stack.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ingest_stack stack;

static void test_protocol_cases(void)
{
    CHECK_EQ_INT(
        stack_run_node(&stack, "protocol-cases", "tests/ingest/protocol_cases.mjs", 240000), 0);
    /* the slow-consumer case was closed by ingest's limit, not by anything else */
    char *log = stack_log(&stack, "ingest-recorder");
    CHECK(log && strstr(log, "\"slow consumer: closing\""));
    free(log);
}

static void test_services_survived(void)
{
    CHECK_EQ_INT(kill(stack.ingest_pid, 0), 0);
    CHECK_EQ_INT(kill(stack.store_pid, 0), 0);
    CHECK_EQ_INT(stack_wait_ready(stack.ingest_ops_port, 5000), 0);
    CHECK_EQ_INT(stack_wait_ready(stack.store_ops_port, 5000), 0);
}

int main(void)
{
    if (!CHECK_EQ_INT(stack_start(&stack, "test_ingest_protocol"), 0)) {
        stack_stop(&stack);
        return check_finish();
    }
    TEST_RUN(test_protocol_cases);
    TEST_RUN(test_services_survived);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
