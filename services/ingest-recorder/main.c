/* ingest-recorder -- websocket connections from recorders: token check,
 * in-order chunks, publish to the JetStream chunk log, Ack when durable,
 * Committed as uploads advance (docs/protocol.md, docs/chunk-path.md). */
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/service.h"
#include "seashore/v1/work.pb-c.h"

ing_config ing_cfg;
struct lws_context *ing_context;

static const ss_config_var ingest_vars[] = {
    {"WS_LISTEN", SS_CONFIG_LISTEN, false, false, "0.0.0.0:8081", 0, 0, NULL,
     "host:port of the recorder websocket (path /v1/ingest)", &ing_cfg.ws_listen},
    {"INGEST_TOKEN_SECRET", SS_CONFIG_STRING, true, true, NULL, 0, 0, NULL,
     "HS256 key of the ingest tokens, shared by token-issuer and ingest-recorder; 32+ bytes",
     &ing_cfg.token_secret},
    {"MAX_CHUNK_BYTES", SS_CONFIG_SIZE, false, false, "1MiB", 1024, 16 << 20, NULL,
     "largest chunk a client may send (same value in chunk-store)", &ing_cfg.max_chunk_bytes},
    {"MAX_INFLIGHT", SS_CONFIG_INT, false, false, "32", 1, 1024, NULL,
     "chunks a connection may have sent but not seen acked", &ing_cfg.max_inflight},
    {"IDLE_TIMEOUT", SS_CONFIG_DURATION, false, false, "60s", 1000, 3600000, NULL,
     "a connection that sends nothing for this long is dropped", &ing_cfg.idle_timeout_ms},
    {"MAX_CONNECTIONS", SS_CONFIG_INT, false, false, "4096", 1, 1000000, NULL,
     "recorder connections per instance; more get BACK_PRESSURE and close 1013",
     &ing_cfg.max_connections},
    {"INGEST_BUFFER_BYTES", SS_CONFIG_SIZE, false, false, "256MiB", 1 << 20, 64LL << 30, NULL,
     "chunk bytes held in memory for all connections; above it reading pauses",
     &ing_cfg.buffer_bytes},
    {"PUBLISH_THREADS", SS_CONFIG_INT, false, false, "16", 1, 256, NULL,
     "threads publishing to the chunk log (one publish in flight per track)",
     &ing_cfg.publish_threads},
    {"REQUEST_THREADS", SS_CONFIG_INT, false, false, "16", 1, 256, NULL,
     "threads asking chunk-store (Hello status, resend checks, End); separate from publishing",
     &ing_cfg.request_threads},
    {"NATS_TIMEOUT", SS_CONFIG_DURATION, false, false, "5s", 100, 60000, NULL,
     "longest wait for a JetStream publish or a chunk-store reply", &ing_cfg.nats_timeout_ms},
    {"END_TIMEOUT", SS_CONFIG_DURATION, false, false, "15s", 100, 600000, NULL,
     "longest wait for chunk-store to confirm a track's End (it waits up to 10 s for its index); "
     "asked 3 times before the client is told to reconnect",
     &ing_cfg.end_timeout_ms},
};

static const struct lws_protocols protocols[] = {
    {ING_PROTOCOL_NAME, ing_callback, sizeof(ing_conn *), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void wake_loop(void *arg)
{
    (void)arg;
    lws_cancel_service(ing_context);
}

static void on_committed_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc, (void)sub, (void)arg;
    Seashore__V1__CommittedUpdate *u = seashore__v1__committed_update__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    natsMsg_Destroy(msg);
    if (u == NULL)
        return;
    /* Handed to the loop through the call queue, so connections are only
     * touched on the lws thread. */
    ing_call *call = ing_call_new(ING_CALL_REQUEST, ING_CALL_COMMITTED_UPDATE, NULL, u->track_id);
    if (call != NULL) {
        call->seq = u->committed_seq;
        call->size = u->committed_bytes;
        ing_pool_push_done(call);
    }
    seashore__v1__committed_update__free_unpacked(u, NULL);
}

/* track.resend.<id>: chunk-store lost acked chunks of the track. */
static void on_resend_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc, (void)sub, (void)arg;
    Seashore__V1__ResendRequest *r = seashore__v1__resend_request__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    natsMsg_Destroy(msg);
    if (r == NULL)
        return;
    ing_call *call = ing_call_new(ING_CALL_REQUEST, ING_CALL_RESEND_REQUEST, NULL, r->track_id);
    if (call != NULL) {
        call->seq = r->from_seq;
        snprintf(call->err, sizeof call->err, "%s", r->reason);
        ing_pool_push_done(call);
    }
    seashore__v1__resend_request__free_unpacked(r, NULL);
}

static int split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= hostlen)
        return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    *port = atoi(colon + 1);
    return 0;
}

static struct lws_context *create_context(void)
{
    static char host[128];
    struct lws_context_creation_info info;
    int port;
    if (split_listen(ing_cfg.ws_listen, host, sizeof host, &port) != 0)
        return NULL;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = strcmp(host, "0.0.0.0") == 0 ? NULL : host;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size = 65536;
    info.count_threads = 1;
    return lws_create_context(&info);
}

static void drain_wake(void *arg)
{
    (void)arg;
    if (ing_context)
        lws_cancel_service(ing_context);
}

/* Serves until drained: stop accepting, finish acks, close with 1001. */
static void serve(int64_t drain_timeout_ms)
{
    bool draining = false;
    int64_t deadline = 0;
    while (true) {
        if (lws_service(ing_context, 250) < 0)
            break;
        if (!ss_drain_requested())
            continue;
        if (!draining) {
            draining = true;
            deadline = ing_now_us() + drain_timeout_ms * 1000;
            /* new upgrades are refused from now on (see on_filter) */
            ss_log_info("draining", "{s:i}", "connections", (int)ing_connection_count());
        }
        ing_drain_connections();
        if (ing_connection_count() == 0 || ing_now_us() > deadline)
            break;
    }
}

int main(int argc, char **argv)
{
    ss_service svc;
    natsSubscription *committed_sub = NULL, *resend_sub = NULL;
    int rc = 1;
    if (ss_service_init(&svc, argc, argv, "ingest-recorder", SS_NEEDS_NATS, ingest_vars,
                        sizeof ingest_vars / sizeof ingest_vars[0]) != 0)
        return 1;
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    if (ing_metrics_init() != 0 || (ing_context = create_context()) == NULL) {
        ss_log_error("cannot listen", "{s:s}", "WS_LISTEN", ing_cfg.ws_listen);
        goto out;
    }
    ss_drain_on_start(drain_wake, NULL);
    if (ing_pool_start(svc.nats.js, svc.nats.conn, (int)ing_cfg.publish_threads,
                       (int)ing_cfg.request_threads, ing_cfg.nats_timeout_ms, wake_loop,
                       NULL) != 0 ||
        natsConnection_Subscribe(&committed_sub, svc.nats.conn, "track.committed.*",
                                 on_committed_msg, NULL) != NATS_OK ||
        natsConnection_Subscribe(&resend_sub, svc.nats.conn, "track.resend.*", on_resend_msg,
                                 NULL) != NATS_OK)
        goto out;
    ss_log_info("listening", "{s:s, s:s}", "WS_LISTEN", ing_cfg.ws_listen, "path", ING_PATH);
    serve(svc.drain_timeout_ms);
    rc = 0;
out:
    natsSubscription_Unsubscribe(committed_sub);
    natsSubscription_Destroy(committed_sub);
    natsSubscription_Unsubscribe(resend_sub);
    natsSubscription_Destroy(resend_sub);
    ing_pool_stop();
    if (ing_context) {
        ing_process_done_calls();
        lws_context_destroy(ing_context);
    }
    ss_log_info(rc == 0 ? "drained" : "stopped on error", NULL);
    ss_service_cleanup(&svc);
    return rc;
}
