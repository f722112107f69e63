/* nats_pool.c -- see nats_pool.h. */
#include "nats_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"

#define MAX_THREADS 512

/* Two lanes: publishes never wait behind requests (an End waits for the
 * indexer, a burst of Hellos for chunk-store's status handler). */
typedef struct lane {
    pthread_cond_t ready;
    ing_call *head, *tail;
} lane;

static struct {
    pthread_mutex_t lock;
    lane lanes[2]; /* indexed by ing_call_kind */
    ing_call *done_head, *done_tail;
    bool stopping;
    jsCtx *js;
    natsConnection *nc;
    int64_t timeout_ms;
    void (*wake)(void *);
    void *wake_arg;
    pthread_t threads[MAX_THREADS];
    int nthreads;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .lanes = {{.ready = PTHREAD_COND_INITIALIZER}, {.ready = PTHREAD_COND_INITIALIZER}}};

ing_call *ing_call_new(ing_call_kind kind, int purpose, void *owner, const char *subject)
{
    ing_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->kind = kind;
    c->purpose = purpose;
    c->owner = owner;
    snprintf(c->subject, sizeof c->subject, "%s", subject);
    return c;
}

void ing_call_free(ing_call *call)
{
    if (call == NULL)
        return;
    free(call->payload);
    free(call->reply);
    free(call);
}

static void run_publish(ing_call *c)
{
    jsPubOptions po;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    jsPubOptions_Init(&po);
    po.MsgId = c->msg_id[0] ? c->msg_id : NULL;
    po.ExpectLastSubjectSeq = c->expect_last;
    po.MaxWait = pool.timeout_ms;
    natsStatus s =
        js_Publish(&pa, pool.js, c->subject, c->payload, (int)c->payload_len, &po, &jerr);
    if (s == NATS_OK) {
        c->result = ING_CALL_OK;
        c->stream_seq = pa->Sequence;
    } else if (jerr == JSStreamWrongLastSequenceErr) {
        c->result = ING_CALL_WRONG_LAST;
    } else if (jerr == JSStreamStoreFailedErr || jerr == JSInsufficientResourcesErr ||
               jerr == JSStreamMessageExceedsMaximumErr) {
        c->result = ING_CALL_LOG_FULL;
    } else {
        c->result = ING_CALL_FAILED;
    }
    if (s != NATS_OK)
        snprintf(c->err, sizeof c->err, "%s (JetStream error %d: %s)", natsStatus_GetText(s),
                 (int)jerr, nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
    jsPubAck_Destroy(pa);
}

static void run_request(ing_call *c)
{
    natsMsg *reply = NULL;
    natsStatus s =
        natsConnection_Request(&reply, pool.nc, c->subject, c->payload, (int)c->payload_len,
                               c->timeout_ms > 0 ? c->timeout_ms : pool.timeout_ms);
    if (s != NATS_OK) {
        c->result = ING_CALL_FAILED;
        snprintf(c->err, sizeof c->err, "request %s: %s", c->subject, natsStatus_GetText(s));
        return;
    }
    c->reply_len = (size_t)natsMsg_GetDataLength(reply);
    c->reply = malloc(c->reply_len ? c->reply_len : 1);
    if (c->reply == NULL) {
        c->result = ING_CALL_FAILED;
        snprintf(c->err, sizeof c->err, "out of memory");
    } else {
        memcpy(c->reply, natsMsg_GetData(reply), c->reply_len);
        c->result = ING_CALL_OK;
    }
    natsMsg_Destroy(reply);
}

void ing_pool_push_done(ing_call *c)
{
    c->next = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.done_tail)
        pool.done_tail->next = c;
    else
        pool.done_head = c;
    pool.done_tail = c;
    pthread_mutex_unlock(&pool.lock);
    if (pool.wake)
        pool.wake(pool.wake_arg);
}

static void *worker(void *arg)
{
    lane *l = arg;
    for (;;) {
        pthread_mutex_lock(&pool.lock);
        while (l->head == NULL && !pool.stopping)
            pthread_cond_wait(&l->ready, &pool.lock);
        ing_call *c = l->head;
        if (c == NULL) {
            pthread_mutex_unlock(&pool.lock);
            return NULL;
        }
        l->head = c->next;
        if (l->head == NULL)
            l->tail = NULL;
        pthread_mutex_unlock(&pool.lock);

        c->next = NULL;
        if (c->kind == ING_CALL_PUBLISH)
            run_publish(c);
        else
            run_request(c);
        ing_pool_push_done(c);
    }
}

int ing_pool_start(jsCtx *js, natsConnection *nc, int publish_threads, int request_threads,
                   int64_t timeout_ms, void (*wake)(void *), void *wake_arg)
{
    pool.js = js;
    pool.nc = nc;
    pool.timeout_ms = timeout_ms;
    pool.wake = wake;
    pool.wake_arg = wake_arg;
    for (int i = 0; i < publish_threads + request_threads && pool.nthreads < MAX_THREADS; i++) {
        lane *l = &pool.lanes[i < publish_threads ? ING_CALL_PUBLISH : ING_CALL_REQUEST];
        if (pthread_create(&pool.threads[pool.nthreads], NULL, worker, l) != 0)
            return -1;
        pool.nthreads++;
    }
    return 0;
}

void ing_pool_submit(ing_call *call)
{
    lane *l = &pool.lanes[call->kind];
    call->next = NULL;
    pthread_mutex_lock(&pool.lock);
    if (l->tail)
        l->tail->next = call;
    else
        l->head = call;
    l->tail = call;
    pthread_cond_signal(&l->ready);
    pthread_mutex_unlock(&pool.lock);
}

ing_call *ing_pool_take_done(void)
{
    pthread_mutex_lock(&pool.lock);
    ing_call *list = pool.done_head;
    pool.done_head = pool.done_tail = NULL;
    pthread_mutex_unlock(&pool.lock);
    return list;
}

void ing_pool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.lanes[0].ready);
    pthread_cond_broadcast(&pool.lanes[1].ready);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    pool.nthreads = 0;
    for (ing_call *c = ing_pool_take_done(), *n; c; c = n) {
        n = c->next;
        ing_call_free(c);
    }
}

void ing_pool_notify(const char *subject, const char *text)
{
    if (pool.nc != NULL && natsConnection_PublishString(pool.nc, subject, text) != NATS_OK)
        ss_log_warn("notice not published", "{s:s, s:s}", "subject", subject, "error",
                    nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
}
