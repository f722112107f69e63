/* http.h -- an HTTP server on libmicrohttpd's own threads, for the ops
 * endpoint and the token-issuer's API. Listens on a numeric "host:port"
 * (port 0 picks a free one), logs libmicrohttpd's errors as JSON lines. */
#ifndef SEASHORE_HTTP_H
#define SEASHORE_HTTP_H

#include <microhttpd.h>

/* Starts a daemon calling handler(cls, ...) for every request, with at most
 * max_connections at once and an idle timeout of timeout_s. Returns NULL
 * (logged) on failure; *port_out gets the bound port. Stop it with
 * MHD_stop_daemon(). */
struct MHD_Daemon *ss_http_start(const char *listen, MHD_AccessHandlerCallback handler, void *cls,
                                 unsigned max_connections, unsigned timeout_s, int *port_out);

/* The same on `threads` threads (libmicrohttpd's thread pool: each
 * connection stays on one of them, so the handler must be thread-safe
 * when threads > 1), calling cleanup(cls, conn, req_cls, why) when a
 * request ends (completed or broken), to free what the handler kept in
 * *req_cls. */
struct MHD_Daemon *ss_http_start_pool(const char *listen, MHD_AccessHandlerCallback handler,
                                      void *cls, MHD_RequestCompletedCallback cleanup,
                                      unsigned threads, unsigned max_connections,
                                      unsigned timeout_s, int *port_out);

/* Queues a text/plain response copied from `text`; for handlers. */
enum MHD_Result ss_http_respond_text(struct MHD_Connection *conn, unsigned status,
                                     const char *text);

#endif
