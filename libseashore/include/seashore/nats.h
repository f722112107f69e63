/* nats.h -- the NATS + JetStream connection every service shares.
 *
 * ss_nats_connect() never fails because the server is down: the client
 * keeps trying in the background (retry on failed connect, unlimited
 * reconnects with jitter), and ss_nats_ready() tells whether it is
 * connected right now, for /readyz. The connection and the JetStream
 * context are nats.c objects; use them with nats.c's API directly.
 */
#ifndef SEASHORE_NATS_H
#define SEASHORE_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <nats/nats.h>

typedef struct ss_nats {
    natsConnection *conn; /* owned; NULL until ss_nats_connect() succeeds */
    jsCtx *js;            /* owned JetStream context on conn */
    char name[64];        /* connection name shown by the server (service name) */
    _Atomic bool closed;  /* nats.c's last callback for conn has run */
} ss_nats;

/* Connects to `url` (comma-separated list allowed). Returns NATS_OK when the
 * connection exists, connected or still retrying. Logs failures. */
natsStatus ss_nats_connect(ss_nats *n, const char *url, const char *name)
    __attribute__((warn_unused_result));

/* Readiness check for ss_ops_add_ready_check(): arg is the ss_nats. */
bool ss_nats_ready(void *arg, char *why, size_t whylen);

/* The next message of a JetStream pull subscription, waiting up to wait_ms:
 * NATS_OK with *msg (caller destroys), NATS_TIMEOUT with *msg NULL, or the
 * error (*jerr the JetStream code, may be NULL). One message per pull: the
 * natsSubscription_Fetch of nats.c before 3.10 (Debian 12 has 3.4) writes
 * past its batch array when more than half a batch is already waiting from
 * an earlier pull request (nats.c #749), which a burst after a server pause
 * produces; messages already waiting cost no round trip. */
natsStatus ss_js_fetch_one(natsSubscription *sub, int wait_ms, natsMsg **msg, jsErrCode *jerr)
    __attribute__((warn_unused_result));

/* The message at stream sequence seq, by direct get (raw bytes, from any
 * replica); a replica that lags may not have it yet, so "not found" is
 * asked of the leader before it counts. wait_ms: 0 for the context's
 * default. NATS_OK with *msg (caller destroys), NATS_NOT_FOUND, or the
 * error (*jerr the JetStream code). */
natsStatus ss_js_get_seq(jsCtx *js, const char *stream, uint64_t seq, int64_t wait_ms,
                         natsMsg **msg, jsErrCode *jerr) __attribute__((warn_unused_result));

/* Called by ss_js_get_seqs() with the message at seqs[i]; takes ownership
 * of msg. Returns 0 to go on, anything else to stop. */
typedef int (*ss_js_got_fn)(void *arg, size_t i, natsMsg *msg);

/* The messages at seqs[0..count) by direct get, with up to `window`
 * requests in flight on one connection instead of one round trip each;
 * got() sees them as the replies arrive, which with replicas is not always
 * in order. A sequence the answering replica has not got is asked of the
 * leader (ss_js_get_seq) before it counts as missing. wait_ms bounds the
 * wait for each reply. NATS_OK when got() had them all; NATS_NOT_FOUND
 * with *missing the index of one that is gone; NATS_ERR when got()
 * stopped; or the error (NATS_TIMEOUT, ...). Uses the default JetStream
 * API prefix ($JS.API), as every service's context does. */
natsStatus ss_js_get_seqs(ss_nats *n, const char *stream, const uint64_t *seqs, size_t count,
                          int window, int64_t wait_ms, ss_js_got_fn got, void *arg, size_t *missing)
    __attribute__((warn_unused_result));

/* Drains (flushes pending publishes) and closes; accepts a zeroed struct.
 * Returns once nats.c has run its last callback on n (at most ~2 s), so
 * n may then be freed. */
void ss_nats_close(ss_nats *n);

#endif
