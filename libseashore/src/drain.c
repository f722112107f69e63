/* drain.c -- SIGTERM/SIGINT into a drain flag and hooks (see drain.h). */
#include "seashore/drain.h"
#include "seashore/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_MAX_HOOKS 8

static _Atomic bool drain_flag; /* set first: loops woken by the hooks see it */
static bool drain_announced;    /* set after the hooks ran; guarded by drain_lock */
static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drain_cond; /* CLOCK_MONOTONIC, set up in ss_drain_init */
static bool drain_cond_ready;
static pthread_t signal_thread;
static bool signal_thread_running;
static struct {
    ss_drain_hook fn;
    void *arg;
} hooks[DRAIN_MAX_HOOKS]; /* guarded by drain_lock */
static int nhooks;

static void run_hooks(void)
{
    pthread_mutex_lock(&drain_lock);
    int n = nhooks;
    pthread_mutex_unlock(&drain_lock);
    for (int i = 0; i < n; i++)
        hooks[i].fn(hooks[i].arg);
}

/* Order matters: the flag, then the hooks (which wake loops that read the
 * flag), then the waiters of ss_drain_wait(), which may rely on the hooks
 * having run. */
void ss_drain_request(void)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&drain_flag, &expected, true))
        return;
    run_hooks();
    pthread_mutex_lock(&drain_lock);
    drain_announced = true;
    if (drain_cond_ready)
        pthread_cond_broadcast(&drain_cond);
    pthread_mutex_unlock(&drain_lock);
}

static void *signal_thread_main(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGUSR2) /* ss_drain_shutdown() wakes us with it */
            return NULL;
        if (drain_flag) {
            ss_log_warn("second signal during drain: exiting now", "{s:s}", "signal",
                        strsignal(sig));
            _exit(1);
        }
        ss_log_info("drain started", "{s:s}", "signal", strsignal(sig));
        ss_drain_request();
    }
}

int ss_drain_init(void)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR2);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN); /* a peer closing a socket is an error code, not a death */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&drain_cond, &attr);
    pthread_condattr_destroy(&attr);
    drain_cond_ready = true;
    if (pthread_create(&signal_thread, NULL, signal_thread_main, &set) != 0)
        return -1;
    signal_thread_running = true;
    return 0;
}

int ss_drain_on_start(ss_drain_hook fn, void *arg)
{
    pthread_mutex_lock(&drain_lock);
    int rc = -1;
    if (nhooks < DRAIN_MAX_HOOKS) {
        hooks[nhooks].fn = fn;
        hooks[nhooks].arg = arg;
        nhooks++;
        rc = 0;
    }
    pthread_mutex_unlock(&drain_lock);
    return rc;
}

bool ss_drain_requested(void)
{
    return drain_flag;
}

bool ss_drain_wait(int64_t timeout_ms)
{
    pthread_mutex_lock(&drain_lock);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    while (!drain_announced && drain_cond_ready) {
        int rc = timeout_ms < 0 ? pthread_cond_wait(&drain_cond, &drain_lock)
                                : pthread_cond_timedwait(&drain_cond, &drain_lock, &deadline);
        if (rc == ETIMEDOUT)
            break;
    }
    bool draining = drain_announced;
    pthread_mutex_unlock(&drain_lock);
    return draining;
}

void ss_drain_shutdown(void)
{
    if (signal_thread_running) {
        pthread_kill(signal_thread, SIGUSR2);
        pthread_join(signal_thread, NULL);
        signal_thread_running = false;
    }
    pthread_mutex_lock(&drain_lock);
    nhooks = 0;
    pthread_mutex_unlock(&drain_lock);
}
