/* token-issuer -- sessions, participants, API auth, LiveKit and ingest
 * tokens, the editors' listing (docs/api.md); serves the studio page.
 *   token-issuer                      serve
 *   token-issuer create-api-key --email E --name N   print a new host API key
 *   token-issuer list-api-keys --email E              the host's keys
 *   token-issuer revoke-api-key --prefix P            revoke one */
#include "api.h"
#include "seashore/drain.h"
#include "seashore/http.h"
#include "seashore/log.h"
#include "seashore/service.h"
#include "web_static.h"

#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_CONNECTIONS 512
#define HTTP_TIMEOUT_S       30

static const char *http_listen, *web_root;
static int64_t http_threads;

static const ss_config_var token_issuer_vars[] = {
    {"HTTP_LISTEN", SS_CONFIG_LISTEN, false, false, "0.0.0.0:8080", 0, 0, NULL,
     "host:port of the HTTP/JSON API and the studio page", &http_listen},
    {"API_THREADS", SS_CONFIG_INT, false, false, "4", 1, 64, NULL,
     "threads serving the HTTP API, each with its own PostgreSQL connection (a request waiting "
     "on the database holds up only its own thread's connections)",
     &http_threads},
    {"WEB_ROOT", SS_CONFIG_STRING, false, false, "web", 0, 0, NULL,
     "directory of the studio web app's static files", &web_root},
    {"INGEST_TOKEN_SECRET", SS_CONFIG_STRING, true, true, NULL, 0, 0, NULL,
     "HS256 key of the ingest tokens, shared by token-issuer and ingest-recorder; 32+ bytes",
     &api_cfg.ingest_secret},
    {"INGEST_PUBLIC_URL", SS_CONFIG_URL, false, false, "ws://127.0.0.1:8081/v1/ingest", 0, 0,
     "ws,wss", "websocket URL of ingest-recorder as clients reach it", &api_cfg.ingest_public_url},
    {"INGEST_TOKEN_TTL", SS_CONFIG_DURATION, false, false, "15m", 60000, 86400000, NULL,
     "lifetime of an ingest token (clients refresh it)", &api_cfg.ingest_token_ttl_s},
    {"LIVEKIT_URL", SS_CONFIG_STRING, false, false, "", 0, 0, NULL,
     "LiveKit server URL for the live call; empty = recording only", &api_cfg.livekit_url},
    {"LIVEKIT_API_KEY", SS_CONFIG_STRING, false, false, "", 0, 0, NULL,
     "LiveKit API key (iss of the access tokens)", &api_cfg.livekit_api_key},
    {"LIVEKIT_API_SECRET", SS_CONFIG_STRING, false, true, "", 0, 0, NULL,
     "LiveKit API secret (HS256 key of the access tokens)", &api_cfg.livekit_api_secret},
    {"API_RATE_LIMIT", SS_CONFIG_INT, false, false, "50", 1, 100000, NULL,
     "API requests per second per host key (or per address for guests), on average",
     &api_cfg.rate_per_s},
    {"API_RATE_BURST", SS_CONFIG_INT, false, false, "100", 1, 100000, NULL,
     "API requests a caller may make at once before API_RATE_LIMIT applies", &api_cfg.rate_burst},
    {"API_TRUSTED_PROXIES", SS_CONFIG_INT, false, false, "0", 0, 8, NULL,
     "reverse proxies in front that append the client's address to X-Forwarded-For (1 behind "
     "one Ingress): per-address limits use the entry this many from its right; 0 = the peer",
     &api_cfg.trusted_proxies},
    {"CLERK_JWT_KEY", SS_CONFIG_STRING, false, false, "", 0, 0, NULL,
     "Clerk's RS256 public key (PEM): hosts may sign in with Clerk session tokens",
     &api_cfg.clerk_jwt_key},
    {"CLERK_AUTHORIZED_PARTIES", SS_CONFIG_STRING, false, false, "", 0, 0, NULL,
     "origins (comma-separated) whose Clerk session tokens are accepted (their azp claim), "
     "e.g. https://studio.example.com; empty = any",
     &api_cfg.clerk_authorized_parties},
    {"CLERK_WEBHOOK_SECRET", SS_CONFIG_STRING, false, true, "", 0, 0, NULL,
     "Svix signing secret (whsec_...) of the Clerk webhook POST /v1/webhooks/clerk",
     &api_cfg.clerk_webhook_secret},
    {"DOWNLOAD_URL_TTL", SS_CONFIG_DURATION, false, false, "1h", 1000, 604800000, NULL,
     "validity of the presigned download URLs of finished files (at most 7 days)",
     &api_cfg.download_ttl_s},
    {"LIVEKIT_TOKEN_TTL", SS_CONFIG_DURATION, false, false, "6h", 60000, 86400000, NULL,
     "lifetime of a LiveKit access token", &api_cfg.livekit_token_ttl_s},
};

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    api_request *req = *req_cls;
    (void)cls;
    (void)version;
    if (req == NULL) {
        if ((req = calloc(1, sizeof *req)) == NULL)
            return MHD_NO;
        *req_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* keep at most API_MAX_BODY; the rest is refused later */
        if (!req->too_large && req->len + *upload_data_size <= API_MAX_BODY) {
            char *p = realloc(req->body, req->len + *upload_data_size + 1);
            if (p == NULL)
                return MHD_NO;
            memcpy(p + req->len, upload_data, *upload_data_size);
            req->body = p;
            req->len += *upload_data_size;
        } else {
            req->too_large = true;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/v1/", 4) == 0)
        return api_handle(conn, method, url, req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return ss_http_respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    return web_static_serve(conn, web_root, url);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode why)
{
    api_request *req = *req_cls;
    (void)cls, (void)conn, (void)why;
    if (req != NULL) {
        free(req->body);
        free(req);
    }
    *req_cls = NULL;
}

static int cli(int argc, char **argv)
{
    const char *db = getenv("DATABASE_URL");
    if (db == NULL || db[0] == '\0') {
        fprintf(stderr, "token-issuer: DATABASE_URL is not set\n");
        return 2;
    }
    ss_pg *pg = ss_pg_open(db);
    int rc = pg ? api_key_command(pg, argc, argv) : 1;
    ss_pg_close(pg);
    return rc;
}

int main(int argc, char **argv)
{
    ss_service svc;
    if (argc > 1 && api_is_key_command(argv[1]))
        return cli(argc - 1, argv + 1);
    if (ss_service_init(&svc, argc, argv, "token-issuer", SS_NEEDS_NATS | SS_NEEDS_PG | SS_NEEDS_S3,
                        token_issuer_vars,
                        sizeof token_issuer_vars / sizeof token_issuer_vars[0]) != 0)
        return 1;
    api_cfg.svc = &svc;
    if (api_cfg.livekit_url[0] && (!api_cfg.livekit_api_key[0] || !api_cfg.livekit_api_secret[0])) {
        ss_log_error("LIVEKIT_URL is set: LIVEKIT_API_KEY and LIVEKIT_API_SECRET are required",
                     NULL);
        ss_service_cleanup(&svc);
        return 2;
    }
    api_cfg.ingest_token_ttl_s /= 1000; /* DURATION values are milliseconds */
    api_cfg.livekit_token_ttl_s /= 1000;
    api_cfg.download_ttl_s /= 1000;
    int port = 0;
    struct MHD_Daemon *http =
        ss_http_start_pool(http_listen, handle_request, NULL, request_done, (unsigned)http_threads,
                           HTTP_MAX_CONNECTIONS, HTTP_TIMEOUT_S, &port);
    if (!http) {
        ss_service_cleanup(&svc);
        return 1;
    }
    ss_log_info("http listening", "{s:s, s:i, s:i, s:s}", "listen", http_listen, "port", port,
                "threads", (int)http_threads, "web_root", web_root);
    ss_drain_wait(-1);
    MHD_stop_daemon(http);
    ss_log_info("drained", NULL);
    ss_service_cleanup(&svc);
    return 0;
}
