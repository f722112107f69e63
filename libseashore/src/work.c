/* work.c -- the work-item thread pool (work.h). */
#include "seashore/work.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seashore/drain.h"
#include "seashore/log.h"

#define FETCH_WAIT_MS   1000
#define LATER_DELAY_MS  500
#define RETRY_BASE_MS   250
#define SLEEP_STEP_MS   100
#define MAX_THREADS     128
#define FETCH_ERROR_US  200000
#define SUBSCRIBE_RETRY 1

typedef struct work_thread {
    pthread_t thread;
    bool started;
    ss_work_spec spec;
    natsSubscription *sub; /* destroyed only after the connection closed */
    ss_work_item *item;    /* spec.item_size bytes */
} work_thread;

static work_thread threads[MAX_THREADS];
static int nthreads;
static ss_service *work_svc;
static ss_work_opts work_opts;

int64_t ss_work_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ss_work_heartbeat(ss_work_item *it)
{
    int64_t now = ss_work_now_ms();
    if (it->msg != NULL && now - it->last_progress_ms >= it->ack_wait_ms / 3) {
        natsMsg_InProgress(it->msg, NULL);
        it->last_progress_ms = now;
    }
    return ss_drain_requested() ? 1 : 0;
}

int ss_work_retry_sleep(ss_work_item *it, int attempt)
{
    static __thread unsigned int seed;
    if (seed == 0)
        seed = (unsigned int)ss_work_now_ms() ^ (unsigned int)(uintptr_t)&seed;
    int64_t delay = RETRY_BASE_MS;
    for (int i = 0; i < attempt && delay < it->retry_max_ms; i++)
        delay *= 2;
    if (delay > it->retry_max_ms)
        delay = it->retry_max_ms;
    delay = delay / 2 + rand_r(&seed) % (delay / 2 + 1);
    for (int64_t end = ss_work_now_ms() + delay; ss_work_now_ms() < end;) {
        if (ss_work_heartbeat(it) != 0)
            return -1;
        usleep(SLEEP_STEP_MS * 1000);
    }
    return ss_work_heartbeat(it) != 0 ? -1 : 0;
}

static natsSubscription *subscribe(const ss_work_spec *spec)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = spec->stream;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = work_opts.ack_wait_ms * 1000000;
    so.Config.MaxDeliver = -1;
    so.Config.FilterSubject = spec->subject;
    while (!ss_drain_requested()) {
        natsSubscription *sub = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_PullSubscribe(&sub, work_svc->nats.js, spec->subject, spec->durable, NULL,
                                        &so, &jerr);
        if (s == NATS_OK)
            return sub;
        ss_log_warn("cannot subscribe to work items, retrying", "{s:s, s:s, s:s, s:i}", "subject",
                    spec->subject, "error", natsStatus_GetText(s), "last_error",
                    nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "", "js_error", (int)jerr);
        sleep(SUBSCRIBE_RETRY);
    }
    return NULL;
}

static void item_finish(natsMsg *msg, ss_work_verdict v)
{
    if (v == SS_WORK_DONE)
        natsMsg_Ack(msg, NULL);
    else if (v == SS_WORK_LATER)
        natsMsg_NakWithDelay(msg, LATER_DELAY_MS, NULL);
    else
        natsMsg_Nak(msg, NULL);
}

static void item_run(work_thread *t, natsMsg *msg)
{
    ss_work_item *it = t->item;
    it->msg = msg;
    it->last_progress_ms = ss_work_now_ms();
    ss_work_verdict v = t->spec.handle(it, (const uint8_t *)natsMsg_GetData(msg),
                                       (size_t)natsMsg_GetDataLength(msg));
    item_finish(msg, v);
    it->msg = NULL;
}

static void *thread_main(void *arg)
{
    work_thread *t = arg;
    if (t->spec.thread_init != NULL && t->spec.thread_init(t->item) != 0) {
        ss_log_error("work thread cannot start", "{s:s}", "subject", t->spec.subject);
        return NULL;
    }
    t->sub = subscribe(&t->spec);
    while (t->sub != NULL && !ss_drain_requested()) {
        natsMsg *msg = NULL;
        jsErrCode jerr = 0;
        natsStatus s = ss_js_fetch_one(t->sub, FETCH_WAIT_MS, &msg, &jerr);
        if (msg != NULL)
            item_run(t, msg);
        natsMsg_Destroy(msg);
        if (s != NATS_OK && s != NATS_TIMEOUT) {
            ss_log_warn("fetch of work items failed", "{s:s, s:s, s:i}", "subject", t->spec.subject,
                        "error", natsStatus_GetText(s), "js_error", (int)jerr);
            usleep(FETCH_ERROR_US);
        }
    }
    return NULL;
}

static int thread_add(const ss_work_spec *spec)
{
    size_t size = spec->item_size > sizeof(ss_work_item) ? spec->item_size : sizeof(ss_work_item);
    work_thread *t = &threads[nthreads];
    if (nthreads >= MAX_THREADS) {
        ss_log_error("too many work threads", "{s:i}", "max", MAX_THREADS);
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->spec = *spec;
    t->item = calloc(1, size);
    if (t->item == NULL)
        return -1;
    t->item->ack_wait_ms = work_opts.ack_wait_ms;
    t->item->retry_max_ms = work_opts.retry_max_ms;
    t->item->subject = spec->subject;
    nthreads++;
    if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
        ss_log_error("cannot start a work thread", "{s:s}", "subject", spec->subject);
        return -1;
    }
    t->started = true;
    return 0;
}

int ss_work_start(ss_service *svc, const ss_work_spec *specs, size_t nspecs,
                  const ss_work_opts *opts)
{
    work_svc = svc;
    work_opts = *opts;
    for (size_t i = 0; i < nspecs; i++)
        for (int k = 0; k < specs[i].threads; k++)
            if (thread_add(&specs[i]) != 0)
                return -1;
    return 0;
}

/* nats.c 3.4 looks a subscription up and then uses it without holding a
 * reference, so destroying one while a message for it arrives (a pull
 * request expiring) is a use after free: the connection is closed first. */
void ss_work_join(void)
{
    natsConnection *nc = work_svc ? work_svc->nats.conn : NULL;
    for (int i = 0; i < nthreads; i++)
        if (threads[i].started)
            pthread_join(threads[i].thread, NULL);
    if (nc != NULL) {
        natsConnection_FlushTimeout(nc, 2000); /* the last acks and naks */
        natsConnection_Close(nc);
    }
    for (int i = 0; i < nthreads; i++) {
        natsSubscription_Destroy(threads[i].sub);
        if (threads[i].spec.thread_fini != NULL)
            threads[i].spec.thread_fini(threads[i].item);
        free(threads[i].item);
    }
    nthreads = 0;
}
