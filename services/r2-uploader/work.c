/* work.c -- the consumer threads: UPLOAD_CONCURRENCY part workers on
 * work.upload, one on work.complete and one on work.session.delete. Each
 * thread owns its store connection, database connection and part buffer,
 * so part data in memory is at most about part size x (concurrency + 1). */
#include "uploader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seashore/drain.h"
#include "seashore/log.h"

#define FETCH_WAIT_MS      1000
#define LATER_DELAY_MS     500
#define RETRY_BASE_MS      250
#define SLEEP_STEP_MS      100
#define MAX_WORKER_THREADS 66

typedef up_verdict (*up_handler)(up_item *it, const uint8_t *data, size_t len);

typedef struct up_worker {
    pthread_t thread;
    bool started;
    const char *stream, *subject, *durable;
    up_handler handle;
    natsSubscription *sub;      /* destroyed only after the connection closed */
    natsSubscription *read_sub; /* its chunkstore.read replies; likewise */
} up_worker;

static up_worker workers[MAX_WORKER_THREADS];
static int nworkers;

int64_t up_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int up_item_heartbeat(up_item *it)
{
    int64_t now = up_now_ms();
    if (it->msg != NULL && now - it->last_progress_ms >= up.ack_wait_ms / 3) {
        natsMsg_InProgress(it->msg, NULL);
        it->last_progress_ms = now;
    }
    return ss_drain_requested() ? 1 : 0;
}

int up_retry_sleep(up_item *it, int attempt)
{
    static __thread unsigned int seed;
    if (seed == 0)
        seed = (unsigned int)up_now_ms() ^ (unsigned int)(uintptr_t)&seed;
    int64_t delay = RETRY_BASE_MS;
    for (int i = 0; i < attempt && delay < up.retry_max_ms; i++)
        delay *= 2;
    if (delay > up.retry_max_ms)
        delay = up.retry_max_ms;
    delay = delay / 2 + rand_r(&seed) % (delay / 2 + 1); /* jitter: [d/2, d] */
    for (int64_t end = up_now_ms() + delay; up_now_ms() < end;) {
        if (up_item_heartbeat(it) != 0)
            return -1;
        usleep(SLEEP_STEP_MS * 1000);
    }
    return up_item_heartbeat(it) != 0 ? -1 : 0;
}

static int transfer_progress(void *arg)
{
    return up_item_heartbeat(arg);
}

static natsSubscription *subscribe(const up_worker *w)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = w->stream;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = up.ack_wait_ms * 1000000;
    so.Config.MaxDeliver = -1;
    so.Config.FilterSubject = w->subject;
    while (!ss_drain_requested()) {
        natsSubscription *sub = NULL;
        jsErrCode jerr = 0;
        natsStatus s =
            js_PullSubscribe(&sub, up.svc->nats.js, w->subject, w->durable, NULL, &so, &jerr);
        if (s == NATS_OK)
            return sub;
        ss_log_warn("cannot subscribe to work items, retrying", "{s:s, s:s, s:s, s:i}", "subject",
                    w->subject, "error", natsStatus_GetText(s), "last_error",
                    nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "", "js_error", (int)jerr);
        sleep(1);
    }
    return NULL;
}

static void item_finish(natsMsg *msg, up_verdict v)
{
    if (v == UP_DONE)
        natsMsg_Ack(msg, NULL);
    else if (v == UP_LATER)
        natsMsg_NakWithDelay(msg, LATER_DELAY_MS, NULL);
    else
        natsMsg_Nak(msg, NULL);
}

static void *worker_main(void *arg)
{
    up_worker *w = arg;
    up_item it = {0};
    it.s3 = ss_s3_conn_new(up.s3);
    it.pg = ss_pg_open(up.svc->database_url);
    if (it.s3 == NULL || it.pg == NULL || up_read_sub_open(&it, &w->read_sub) != 0) {
        ss_log_error("worker cannot start: out of memory or no NATS", "{s:s}", "subject",
                     w->subject);
        goto out;
    }
    ss_s3_conn_set_progress(it.s3, transfer_progress, &it);
    natsSubscription *sub = w->sub = subscribe(w);
    while (sub != NULL && !ss_drain_requested()) {
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, sub, 1, FETCH_WAIT_MS, &jerr);
        for (int i = 0; i < list.Count; i++) {
            it.msg = list.Msgs[i];
            it.last_progress_ms = up_now_ms();
            up_verdict v = w->handle(&it, (const uint8_t *)natsMsg_GetData(it.msg),
                                     (size_t)natsMsg_GetDataLength(it.msg));
            item_finish(it.msg, v);
            it.msg = NULL;
        }
        natsMsgList_Destroy(&list);
        if (s != NATS_OK && s != NATS_TIMEOUT) {
            ss_log_warn("fetch of work items failed", "{s:s, s:s, s:i}", "subject", w->subject,
                        "error", natsStatus_GetText(s), "js_error", (int)jerr);
            usleep(200000);
        }
    }
out:
    ss_s3_conn_free(it.s3);
    ss_pg_close(it.pg);
    free(it.buf);
    natsInbox_Destroy(it.read_inbox);
    return NULL;
}

static int worker_add(const char *stream, const char *subject, const char *durable, up_handler h)
{
    up_worker *w = &workers[nworkers];
    w->stream = stream;
    w->subject = subject;
    w->durable = durable;
    w->handle = h;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        ss_log_error("cannot start a worker thread", "{s:s}", "subject", subject);
        return -1;
    }
    w->started = true;
    nworkers++;
    return 0;
}

int up_workers_start(void)
{
    if (up.concurrency + 2 > MAX_WORKER_THREADS)
        return -1;
    for (int i = 0; i < up.concurrency; i++)
        if (worker_add(UP_STREAM_WORK, "work.upload", UP_CONSUMER_PARTS, up_handle_part) != 0)
            return -1;
    if (worker_add(UP_STREAM_WORK, "work.complete", UP_CONSUMER_DONE, up_handle_complete) != 0)
        return -1;
    return worker_add(UP_STREAM_SESSIONS, "work.session.delete", UP_CONSUMER_DELETE,
                      up_handle_session_delete);
}

/* nats.c 3.4 looks a subscription up and then uses it without holding a
 * reference, so destroying one while a message for it arrives (a pull
 * request expiring) is a use after free: the connection is closed first. */
void up_workers_join(void)
{
    natsConnection *nc = up.svc->nats.conn;
    for (int i = 0; i < nworkers; i++)
        if (workers[i].started)
            pthread_join(workers[i].thread, NULL);
    if (nc != NULL) {
        natsConnection_FlushTimeout(nc, 2000); /* the last acks and naks */
        natsConnection_Close(nc);
    }
    for (int i = 0; i < nworkers; i++) {
        natsSubscription_Destroy(workers[i].sub);
        natsSubscription_Destroy(workers[i].read_sub);
    }
    nworkers = 0;
}
