/* nats.c -- NATS + JetStream connection with reconnect (see nats.h). */
#include "seashore/nats.h"
#include "seashore/log.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NATS_RECONNECT_WAIT_MS   250 /* a returning server is noticed within ~1 s */
#define NATS_RECONNECT_JITTER_MS 250
#define NATS_PING_INTERVAL_MS    5000 /* a dead server is noticed within ~10 s */
#define NATS_MAX_PINGS_OUT       2
#define NATS_RECONNECT_BUF_BYTES (8 * 1024 * 1024)
#define NATS_CLOSE_WAIT_MS       2000

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    ss_nats *n = closure;
    ss_log_warn("nats disconnected", "{s:s}", "connection", n->name);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    ss_nats *n = closure;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    ss_log_info("nats reconnected", "{s:s, s:s}", "connection", n->name, "url", url);
}

/* Called when a connection that started with the server down succeeds. */
static void on_connected(natsConnection *nc, void *closure)
{
    ss_nats *n = closure;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    ss_log_info("nats connected", "{s:s, s:s}", "connection", n->name, "url", url);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    ss_nats *n = closure;
    ss_log_warn("nats async error", "{s:s, s:s}", "connection", n->name, "error",
                natsStatus_GetText(err));
}

/* nats.c's last callback for a connection: after it, none touches n. */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    ss_nats *n = closure;
    atomic_store(&n->closed, true);
}

static natsStatus set_options(natsOptions *opts, ss_nats *n, const char *url)
{
    natsStatus s = natsOptions_SetURL(opts, url); /* a comma-separated list is fine */
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, n->name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, NATS_RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectJitter(opts, NATS_RECONNECT_JITTER_MS,
                                           NATS_RECONNECT_JITTER_MS);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(opts, NATS_RECONNECT_BUF_BYTES);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, NATS_PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, NATS_MAX_PINGS_OUT);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, n);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, on_async_error, n);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, n);
    return s;
}

natsStatus ss_nats_connect(ss_nats *n, const char *url, const char *name)
{
    natsOptions *opts = NULL;
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = set_options(opts, n, url);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&n->conn, opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            ss_log_warn("nats not reachable yet: retrying in the background", "{s:s}", "connection",
                        n->name);
            s = NATS_OK;
        }
    }
    if (s == NATS_OK)
        s = natsConnection_JetStream(&n->js, n->conn, NULL);
    if (s != NATS_OK) {
        ss_log_error("nats connect failed", "{s:s, s:s}", "connection", n->name, "error",
                     natsStatus_GetText(s));
        ss_nats_close(n);
    }
    natsOptions_Destroy(opts);
    return s;
}

bool ss_nats_ready(void *arg, char *why, size_t whylen)
{
    ss_nats *n = arg;
    if (n->conn && natsConnection_Status(n->conn) == NATS_CONN_STATUS_CONNECTED)
        return true;
    snprintf(why, whylen, "not connected to NATS");
    return false;
}

void ss_nats_close(ss_nats *n)
{
    if (n->conn && natsConnection_Status(n->conn) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(n->conn, 2000);
    jsCtx_Destroy(n->js);
    if (n->conn != NULL) {
        /* callbacks run on nats.c's own thread, after Close returns: wait
         * for the last one, or the caller may free n under it */
        natsConnection_Close(n->conn);
        for (int i = 0; i < NATS_CLOSE_WAIT_MS && !atomic_load(&n->closed); i++)
            nats_Sleep(1);
    }
    natsConnection_Destroy(n->conn);
    n->js = NULL;
    n->conn = NULL;
}

natsStatus ss_js_fetch_one(natsSubscription *sub, int wait_ms, natsMsg **msg, jsErrCode *jerr)
{
    natsMsgList list = {0};
    jsErrCode code = 0;
    *msg = NULL;
    natsStatus s = natsSubscription_Fetch(&list, sub, 1, wait_ms, &code);
    if (s == NATS_OK && list.Count == 1) {
        *msg = list.Msgs[0];
        list.Msgs[0] = NULL;
    } else if (s == NATS_OK) {
        s = NATS_TIMEOUT;
    }
    natsMsgList_Destroy(&list);
    if (jerr != NULL)
        *jerr = code;
    return s;
}

natsStatus ss_js_get_seq(jsCtx *js, const char *stream, uint64_t seq, int64_t wait_ms,
                         natsMsg **msg, jsErrCode *jerr)
{
    jsDirectGetMsgOptions dg;
    jsOptions o;
    jsDirectGetMsgOptions_Init(&dg);
    jsOptions_Init(&o);
    dg.Sequence = seq;
    o.Wait = wait_ms;
    *jerr = 0;
    natsStatus s = js_DirectGetMsg(msg, js, stream, wait_ms > 0 ? &o : NULL, &dg);
    if (s != NATS_NOT_FOUND)
        return s;
    s = js_GetMsg(msg, js, stream, seq, wait_ms > 0 ? &o : NULL, jerr);
    return *jerr == JSNoMessageFoundErr ? NATS_NOT_FOUND : s;
}

/* One ss_js_get_seqs() call: the requests go out with reply subjects
 * <inbox>.<i>, so a reply names the index it answers. */
typedef struct get_window {
    ss_nats *n;
    const char *stream;
    const uint64_t *seqs;
    size_t count, sent, done;
    bool *answered; /* [count]: a duplicate reply is dropped, not counted */
    char subject[256], inbox[128];
} get_window;

static natsStatus get_window_send(get_window *g)
{
    char reply[160], body[48];
    snprintf(reply, sizeof reply, "%s.%zu", g->inbox, g->sent);
    int len = snprintf(body, sizeof body, "{\"seq\":%" PRIu64 "}", g->seqs[g->sent]);
    natsStatus s = natsConnection_PublishRequest(g->n->conn, g->subject, reply, body, len);
    if (s == NATS_OK)
        g->sent++;
    return s;
}

/* The index a reply answers, or count when its subject is not one of ours. */
static size_t get_window_index(const get_window *g, natsMsg *m)
{
    const char *subj = natsMsg_GetSubject(m);
    size_t prefix = strlen(g->inbox);
    if (strncmp(subj, g->inbox, prefix) != 0 || subj[prefix] != '.')
        return g->count;
    char *end = NULL;
    unsigned long long i = strtoull(subj + prefix + 1, &end, 10);
    if (*end != '\0' || i >= g->sent || g->answered[i])
        return g->count;
    return (size_t)i;
}

/* A reply without the message (404 from a lagging replica, or no direct
 * get responder): the leader's answer decides. */
static natsStatus get_window_reply(get_window *g, size_t i, natsMsg **m, int64_t wait_ms)
{
    const char *status = NULL;
    if (natsMsgHeader_Get(*m, "Status", &status) != NATS_OK || status == NULL)
        return NATS_OK;
    natsMsg_Destroy(*m);
    *m = NULL;
    jsErrCode jerr = 0;
    return ss_js_get_seq(g->n->js, g->stream, g->seqs[i], wait_ms, m, &jerr);
}

natsStatus ss_js_get_seqs(ss_nats *n, const char *stream, const uint64_t *seqs, size_t count,
                          int window, int64_t wait_ms, ss_js_got_fn got, void *arg, size_t *missing)
{
    get_window g = {.n = n, .stream = stream, .seqs = seqs, .count = count};
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    char wildcard[160];
    if ((g.answered = calloc(count ? count : 1, sizeof *g.answered)) == NULL)
        return NATS_NO_MEMORY;
    natsStatus s = natsInbox_Create(&inbox);
    snprintf(g.inbox, sizeof g.inbox, "%s", s == NATS_OK ? inbox : "");
    snprintf(g.subject, sizeof g.subject, "$JS.API.DIRECT.GET.%s", stream);
    snprintf(wildcard, sizeof wildcard, "%s.*", g.inbox);
    if (s == NATS_OK)
        s = natsConnection_SubscribeSync(&sub, n->conn, wildcard);
    while (s == NATS_OK && g.done < count) {
        while (s == NATS_OK && g.sent < count &&
               g.sent - g.done < (size_t)(window > 0 ? window : 1))
            s = get_window_send(&g);
        natsMsg *m = NULL;
        if (s == NATS_OK)
            s = natsSubscription_NextMsg(&m, sub, wait_ms > 0 ? wait_ms : 5000);
        size_t i = s == NATS_OK ? get_window_index(&g, m) : count;
        if (s == NATS_OK && i < count)
            s = get_window_reply(&g, i, &m, wait_ms);
        if (s == NATS_NOT_FOUND && missing != NULL)
            *missing = i;
        if (s == NATS_OK && i < count) {
            g.answered[i] = true;
            g.done++;
            if (got(arg, i, m) != 0)
                s = NATS_ERR;
        } else {
            natsMsg_Destroy(m);
        }
    }
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    free(g.answered);
    return s;
}
