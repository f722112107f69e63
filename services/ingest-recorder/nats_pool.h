/* nats_pool.h -- blocking NATS calls (JetStream publish, request/reply) run
 * on a few worker threads so the websocket loop never waits; each finished
 * call comes back through ing_pool_take_done() on the loop's thread. */
#ifndef INGEST_NATS_POOL_H
#define INGEST_NATS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

typedef enum { ING_CALL_PUBLISH, ING_CALL_REQUEST } ing_call_kind;

typedef enum {
    ING_CALL_OK,
    ING_CALL_LOG_FULL,   /* the chunk log refused: size limit (back-pressure) */
    ING_CALL_WRONG_LAST, /* another writer moved the track on */
    ING_CALL_FAILED,     /* NATS error or timeout; err says which */
} ing_call_result;

typedef struct ing_call {
    struct ing_call *next;
    ing_call_kind kind;
    int purpose; /* the caller's tag (what to do with the result) */
    void *owner; /* the caller's object (e.g. the connection) */
    char subject[96];
    char msg_id[96];      /* publish: Nats-Msg-Id */
    uint64_t expect_last; /* publish: expected last subject sequence (0 = none) */
    int64_t timeout_ms;   /* request: longest wait for the reply (0: the pool's) */
    uint8_t *payload;     /* owned by the call */
    size_t payload_len;
    uint64_t seq, offset, size; /* the caller's bookkeeping, untouched */
    /* results */
    ing_call_result result;
    uint64_t stream_seq; /* publish: stream sequence of the stored message */
    uint8_t *reply;      /* request: reply body (owned by the call) */
    size_t reply_len;
    char err[256];
} ing_call;

/* Starts the workers on js/nc: publish_threads for publishes and
 * request_threads for requests, in separate lanes so a publish never waits
 * behind a slow request. wake() is called (from a worker thread) each time
 * a call finishes. */
int ing_pool_start(jsCtx *js, natsConnection *nc, int publish_threads, int request_threads,
                   int64_t timeout_ms, void (*wake)(void *), void *wake_arg);
void ing_pool_submit(ing_call *call);
/* The finished calls, oldest first (caller frees each with ing_call_free). */
ing_call *ing_pool_take_done(void);
void ing_pool_stop(void);
/* Hands a call to the loop as if a worker had finished it (used for
 * messages that arrive on NATS subscriptions). */
void ing_pool_push_done(ing_call *call);

/* Publishes a core NATS notice (fire and forget, from any thread). */
void ing_pool_notify(const char *subject, const char *text);

/* purpose of a pushed CommittedUpdate: subject = track id, seq/size =
 * committed seq/bytes. */
#define ING_CALL_COMMITTED_UPDATE 100
/* purpose of a pushed ResendRequest: subject = track id, seq = from_seq,
 * err = reason. */
#define ING_CALL_RESEND_REQUEST 101

ing_call *ing_call_new(ing_call_kind kind, int purpose, void *owner, const char *subject);
void ing_call_free(ing_call *call);

#endif
