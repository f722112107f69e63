/* drain.h -- graceful shutdown on SIGTERM / SIGINT.
 *
 * ss_drain_init() must be called in main() before any thread is created: it
 * blocks SIGTERM and SIGINT in the calling thread (so every thread created
 * later inherits the mask) and starts one thread that waits for them with
 * sigwait(). On the first signal the drain flag is set, /readyz turns 503,
 * and the registered hooks run on that thread (e.g. lws_cancel_service() to
 * wake an event loop). A second signal during the drain exits at once with
 * status 1 (an operator who presses Ctrl-C twice means it).
 */
#ifndef SEASHORE_DRAIN_H
#define SEASHORE_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*ss_drain_hook)(void *arg);

int ss_drain_init(void) __attribute__((warn_unused_result));

/* Registers a hook called once when draining starts; at most 8. */
int ss_drain_on_start(ss_drain_hook fn, void *arg);

/* True once SIGTERM/SIGINT arrived (or ss_drain_request() was called). */
bool ss_drain_requested(void);

/* Starts the drain as a signal would; for tests and for fatal errors. */
void ss_drain_request(void);

/* Blocks until a drain is requested or timeout_ms passes (<0: forever).
 * Returns true when draining. */
bool ss_drain_wait(int64_t timeout_ms);

/* Stops the signal thread; for tests and clean shutdown. */
void ss_drain_shutdown(void);

#endif
