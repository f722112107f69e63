/* ingest-recorder -- websocket connections from recorders, chunk
 * validation, acks; publishes chunks to the JetStream chunk log. */
#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/service.h"

static const char *ws_listen, *ingest_secret;

static const ss_config_var ingest_vars[] = {
    {"WS_LISTEN", SS_CONFIG_LISTEN, false, false, "0.0.0.0:8081", 0, 0, NULL,
     "host:port of the recorder websocket", &ws_listen},
    {"INGEST_TOKEN_SECRET", SS_CONFIG_STRING, true, true, NULL, 0, 0, NULL,
     "HS256 key of the ingest tokens, shared by token-issuer and ingest-recorder; 32+ bytes",
     &ingest_secret},
};

int main(int argc, char **argv)
{
    ss_service svc;
    if (ss_service_init(&svc, argc, argv, "ingest-recorder", SS_NEEDS_NATS, ingest_vars,
                        sizeof ingest_vars / sizeof ingest_vars[0]) != 0)
        return 1;
    ss_drain_wait(-1);
    ss_log_info("drained", NULL);
    ss_service_cleanup(&svc);
    return 0;
}
