/* http.c -- libmicrohttpd daemons on a numeric listen address (see http.h). */
#include "seashore/http.h"
#include "seashore/config.h"
#include "seashore/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* libmicrohttpd's printf-style logger: the format comes from the library. */
__attribute__((format(printf, 2, 0))) static void log_mhd_error(void *cls, const char *fmt,
                                                                va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    ss_log_warn("http server", "{s:s}", "error", msg);
}

/* Fills addr from a numeric host ("127.0.0.1", "0.0.0.0", "::1", "::"). */
static int listen_addr(const char *listen, struct sockaddr_storage *addr, unsigned *flags)
{
    char host[256];
    int port;
    if (ss_config_split_listen(listen, host, sizeof host, &port) != 0)
        return -1;
    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *flags |= MHD_USE_IPv6;
        return 0;
    }
    return -1;
}

struct MHD_Daemon *ss_http_start(const char *listen, MHD_AccessHandlerCallback handler, void *cls,
                                 unsigned max_connections, unsigned timeout_s, int *port_out)
{
    return ss_http_start_pool(listen, handler, cls, NULL, 1, max_connections, timeout_s, port_out);
}

struct MHD_Daemon *ss_http_start_pool(const char *listen, MHD_AccessHandlerCallback handler,
                                      void *cls, MHD_RequestCompletedCallback cleanup,
                                      unsigned threads, unsigned max_connections,
                                      unsigned timeout_s, int *port_out)
{
    struct sockaddr_storage addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (listen_addr(listen, &addr, &flags) != 0) {
        ss_log_error("http server: listen address must be a numeric host:port", "{s:s}", "listen",
                     listen);
        return NULL;
    }
    /* a pool of 1 is no pool, and libmicrohttpd warns about it */
    struct MHD_OptionItem pool[] = {
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* The logger goes first so that every later option's complaint reaches it. */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handler, cls, MHD_OPTION_EXTERNAL_LOGGER, log_mhd_error, NULL,
        MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT, max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_NOTIFY_COMPLETED, cleanup, NULL,
        MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
    if (!d) {
        ss_log_error("http server: cannot listen", "{s:s}", "listen", listen);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info ? info->port : 0;
    return d;
}

enum MHD_Result ss_http_respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}
