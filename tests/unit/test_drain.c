/* test_drain.c -- SIGTERM starts the drain: flag, hooks, waiters woken. */
#include "check.h"
#include "seashore/drain.h"

#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static _Atomic int hook_calls;

static void count_hook(void *arg)
{
    (void)arg;
    hook_calls++;
}

static void test_no_drain_without_signal(void)
{
    CHECK(!ss_drain_requested());
    CHECK(!ss_drain_wait(100)); /* times out */
}

static void test_sigterm_starts_drain_once(void)
{
    CHECK_EQ_INT(ss_drain_on_start(count_hook, NULL), 0);
    CHECK_EQ_INT(kill(getpid(), SIGTERM), 0);
    CHECK(ss_drain_wait(5000));
    CHECK(ss_drain_requested());
    CHECK_EQ_INT(hook_calls, 1);
    ss_drain_request(); /* a second request runs no hook again */
    CHECK_EQ_INT(hook_calls, 1);
}

int main(void)
{
    if (ss_drain_init() != 0)
        return 1;
    TEST_RUN(test_no_drain_without_signal);
    TEST_RUN(test_sigterm_starts_drain_once);
    ss_drain_shutdown();
    return check_finish();
}
