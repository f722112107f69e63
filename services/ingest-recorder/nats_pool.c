/* nats_pool.c -- see nats_pool.h. */
#include "nats_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 256

static struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    ing_call *todo_head, *todo_tail, *done_head, *done_tail;
    bool stopping;
    jsCtx *js;
    natsConnection *nc;
    int64_t timeout_ms;
    void (*wake)(void *);
    void *wake_arg;
    pthread_t threads[MAX_THREADS];
    int nthreads;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER};

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
    natsStatus s = natsConnection_Request(&reply, pool.nc, c->subject, c->payload,
                                          (int)c->payload_len, pool.timeout_ms);
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
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&pool.lock);
        while (pool.todo_head == NULL && !pool.stopping)
            pthread_cond_wait(&pool.ready, &pool.lock);
        ing_call *c = pool.todo_head;
        if (c == NULL) {
            pthread_mutex_unlock(&pool.lock);
            return NULL;
        }
        pool.todo_head = c->next;
        if (pool.todo_head == NULL)
            pool.todo_tail = NULL;
        pthread_mutex_unlock(&pool.lock);

        c->next = NULL;
        if (c->kind == ING_CALL_PUBLISH)
            run_publish(c);
        else
            run_request(c);

        ing_pool_push_done(c);
    }
}

int ing_pool_start(jsCtx *js, natsConnection *nc, int threads, int64_t timeout_ms,
                   void (*wake)(void *), void *wake_arg)
{
    pool.js = js;
    pool.nc = nc;
    pool.timeout_ms = timeout_ms;
    pool.wake = wake;
    pool.wake_arg = wake_arg;
    for (int i = 0; i < threads && i < MAX_THREADS; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker, NULL) != 0)
            return -1;
        pool.nthreads++;
    }
    return 0;
}

void ing_pool_submit(ing_call *call)
{
    call->next = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.todo_tail)
        pool.todo_tail->next = call;
    else
        pool.todo_head = call;
    pool.todo_tail = call;
    pthread_cond_signal(&pool.ready);
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
    pthread_cond_broadcast(&pool.ready);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    pool.nthreads = 0;
    for (ing_call *c = ing_pool_take_done(), *n; c; c = n) {
        n = c->next;
        ing_call_free(c);
    }
}
