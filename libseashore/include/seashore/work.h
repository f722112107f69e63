/* work.h -- JetStream work items handled by a pool of threads: durable pull
 * consumers, one item per thread at a time, "in progress" sent while an
 * item runs (so only a dead worker's items are redelivered), retry sleeps
 * with backoff and jitter that stop when the service drains, and a shutdown
 * order nats.c 3.4 needs.
 *
 * Each thread has its own state of spec.item_size bytes whose first member
 * is an ss_work_item (the service's struct "inherits" it): the handler gets
 * it, thread_init fills the rest (connections, buffers) and thread_fini
 * frees it after the NATS connection is closed, so subscriptions a thread
 * made may be destroyed there. */
#ifndef SEASHORE_WORK_H
#define SEASHORE_WORK_H

#include <stddef.h>
#include <stdint.h>

#include "seashore/service.h"

/* What a handler decided about its work item. */
typedef enum {
    SS_WORK_DONE,    /* ack: finished, or nothing left to do */
    SS_WORK_LATER,   /* nak with a short delay: a precondition is not met yet */
    SS_WORK_ABANDON, /* nak at once: draining; another replica takes it */
} ss_work_verdict;

typedef struct ss_work_item {
    natsMsg *msg;             /* the item being handled; NULL between items */
    int64_t last_progress_ms; /* when JetStream was last told "in progress" */
    int64_t ack_wait_ms;
    int64_t retry_max_ms;
    const char *subject; /* the consumer's subject, for messages */
} ss_work_item;

typedef ss_work_verdict (*ss_work_handler)(ss_work_item *it, const uint8_t *data, size_t len);

typedef struct ss_work_spec {
    const char *stream, *subject, *durable;
    int threads;
    size_t item_size; /* >= sizeof(ss_work_item); 0 means just that */
    ss_work_handler handle;
    int (*thread_init)(ss_work_item *it);  /* NULL or 0 / -1 (the thread stops) */
    void (*thread_fini)(ss_work_item *it); /* NULL or frees what init made */
} ss_work_spec;

typedef struct ss_work_opts {
    int64_t ack_wait_ms;  /* JetStream AckWait of the consumers */
    int64_t retry_max_ms; /* longest ss_work_retry_sleep */
} ss_work_opts;

/* Starts spec.threads threads per spec (copied). 0 or -1 (logged). */
int ss_work_start(ss_service *svc, const ss_work_spec *specs, size_t nspecs,
                  const ss_work_opts *opts);

/* After ss_drain_request(): joins the threads (items in flight are nak'ed),
 * flushes and closes the service's NATS connection, then destroys the
 * subscriptions and calls thread_fini. */
void ss_work_join(void);

/* Tells JetStream the item is still being worked on, at most every third
 * of the ack wait. Non-zero when draining (so transfers stop). */
int ss_work_heartbeat(ss_work_item *it);

/* Sleeps the retry delay for attempt n (250 ms doubling, capped at
 * retry_max_ms, full jitter in [d/2, d]) while heartbeating. -1 when
 * draining. */
int ss_work_retry_sleep(ss_work_item *it, int attempt);

/* Monotonic milliseconds. */
int64_t ss_work_now_ms(void);

#endif
