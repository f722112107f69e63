/* token-issuer -- sessions, participants, API auth, LiveKit and ingest
 * tokens, the editors' download listing; serves the studio page in dev. */
#include "seashore/drain.h"
#include "seashore/http.h"
#include "seashore/log.h"
#include "seashore/service.h"
#include "web_static.h"

#include <string.h>

#define HTTP_MAX_CONNECTIONS 512
#define HTTP_TIMEOUT_S       30

static const char *http_listen, *web_root, *ingest_secret, *ingest_public_url;

static const ss_config_var token_issuer_vars[] = {
    {"HTTP_LISTEN", SS_CONFIG_LISTEN, false, false, "0.0.0.0:8080", 0, 0, NULL,
     "host:port of the HTTP/JSON API and the studio page", &http_listen},
    {"WEB_ROOT", SS_CONFIG_STRING, false, false, "web", 0, 0, NULL,
     "directory of the studio web app's static files", &web_root},
    {"INGEST_TOKEN_SECRET", SS_CONFIG_STRING, true, true, NULL, 0, 0, NULL,
     "HS256 key of the ingest tokens, shared by token-issuer and ingest-recorder; 32+ bytes",
     &ingest_secret},
    {"INGEST_PUBLIC_URL", SS_CONFIG_URL, false, false, "ws://127.0.0.1:8081/v1/ingest", 0, 0,
     "ws,wss", "websocket URL of ingest-recorder as clients reach it", &ingest_public_url},
};

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    (void)req_cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* no route takes a body yet */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return ss_http_respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    return web_static_serve(conn, web_root, url);
}

int main(int argc, char **argv)
{
    ss_service svc;
    if (ss_service_init(&svc, argc, argv, "token-issuer", SS_NEEDS_NATS | SS_NEEDS_PG,
                        token_issuer_vars,
                        sizeof token_issuer_vars / sizeof token_issuer_vars[0]) != 0)
        return 1;
    int port = 0;
    struct MHD_Daemon *http = ss_http_start(http_listen, handle_request, NULL, HTTP_MAX_CONNECTIONS,
                                            HTTP_TIMEOUT_S, &port);
    if (!http) {
        ss_service_cleanup(&svc);
        return 1;
    }
    ss_log_info("http listening", "{s:s, s:i, s:s}", "listen", http_listen, "port", port,
                "web_root", web_root);
    ss_drain_wait(-1);
    MHD_stop_daemon(http);
    ss_log_info("drained", NULL);
    ss_service_cleanup(&svc);
    return 0;
}
