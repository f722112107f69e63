/* sender.c -- the lws context, one websocket per track, reconnects and
 * the run loop.
 *
 * A connection that ends for a retryable reason (connect failure, close
 * 1000/1001/1005/1006/1011/1012/1013/1014, or any close after a retryable
 * Error frame or a Resend) is retried with exponential backoff: 250 ms
 * doubling to a 30 s cap, full jitter, at least the server's
 * retry_after_ms, forever or until --give-up-after seconds have passed
 * without progress. Everything else fails the track. */
#include "sender.h"

#include <openssl/rand.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_BUFFER_SIZE 16384

/* ---- messages and helpers ---- */

static void vmessage(sender *s, const char *fmt, va_list ap)
{
    progress_clear(s);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
}

void say(sender *s, const char *fmt, ...)
{
    va_list ap;
    if (s->o->quiet)
        return;
    va_start(ap, fmt);
    vmessage(s, fmt, ap);
    va_end(ap);
}

void debug(sender *s, const char *fmt, ...)
{
    va_list ap;
    if (!s->o->verbose)
        return;
    va_start(ap, fmt);
    vmessage(s, fmt, ap);
    va_end(ap);
}

void error_msg(sender *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(s, fmt, ap);
    va_end(ap);
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* libwebsockets' own log lines, in our format (no timestamps, colours). */
static void lws_log_line(int level, const char *line)
{
    size_t len = strlen(line);
    fprintf(stderr, PROG ": libwebsockets %s: %.*s\n", level & LLL_ERR ? "error" : "warning",
            (int)(len && line[len - 1] == '\n' ? len - 1 : len), line);
}

/* xorshift64*: jitter and the latency reservoir, not cryptography. */
uint64_t sender_rand(sender *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

/* ---- the end of the run ---- */

static void shutdown_cb(lws_sorted_usec_list_t *sul)
{
    sender *s = lws_container_of(sul, sender, sul_shutdown);
    s->stop = true;
}

/* Stops the loop once every track is done or failed and its websocket
 * closed (closing handshakes get SHUTDOWN_GRACE_US). */
static void check_finished(sender *s)
{
    bool open = false;
    for (unsigned i = 0; i < s->ntracks; i++) {
        const track *t = &s->tracks[i];
        if (t->state != TS_DONE && t->state != TS_FAILED)
            return;
        open |= t->wsi != NULL;
    }
    if (!open) {
        s->stop = true;
        return;
    }
    if (!s->finishing) {
        s->finishing = true;
        lws_sul_schedule(s->ctx, 0, &s->sul_shutdown, shutdown_cb, SHUTDOWN_GRACE_US);
    }
}

static void stop_timers(track *t)
{
    lws_sul_cancel(&t->sul_conn);
    lws_sul_cancel(&t->sul_ping);
    lws_sul_cancel(&t->sul_wake);
}

static void set_final(track *t, track_state state)
{
    t->state = state;
    stop_timers(t);
    if (t->wsi)
        lws_callback_on_writable(t->wsi); /* track_writeable closes it */
    check_finished(t->s);
}

void track_fail(track *t, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (t->state == TS_DONE || t->state == TS_FAILED)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    error_msg(t->s, "track %s: %s", t->id, msg);
    set_final(t, TS_FAILED);
}

/* A non-retryable Error frame: "seashore-send: CODE: message (track id)". */
void track_fail_error(track *t, const char *code_name, const char *message)
{
    if (t->state == TS_DONE || t->state == TS_FAILED)
        return;
    error_msg(t->s, "%s: %s (track %s)", code_name, message, t->id);
    set_final(t, TS_FAILED);
}

void track_finished(track *t)
{
    if (t->state == TS_DONE || t->state == TS_FAILED)
        return;
    debug(t->s, "track %s: done (%llu chunks acked, %llu committed)", t->id,
          (unsigned long long)t->acked, (unsigned long long)t->committed);
    set_final(t, TS_DONE);
}

/* The track moved forward: the next outage starts a fresh backoff. */
void track_progress(track *t)
{
    t->attempt = 0;
    t->outage_start_us = 0;
}

/* ---- timers ---- */

static void wake_cb(lws_sorted_usec_list_t *sul)
{
    track *t = lws_container_of(sul, track, sul_wake);
    if (t->wsi && t->state == TS_OPEN)
        lws_callback_on_writable(t->wsi);
}

void track_wake_at(track *t, int64_t at_us)
{
    int64_t delay = at_us - mono_us();
    lws_sul_schedule(t->s->ctx, 0, &t->sul_wake, wake_cb, delay > 0 ? delay : 1);
}

/* Drops the connection from a timer; CLIENT_CLOSED follows. */
static void kill_connection(track *t, const char *why)
{
    t->close_why = why;
    lws_set_timeout(t->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Pings every PING_INTERVAL_US, and the watchdog of the connection. */
static void ping_cb(lws_sorted_usec_list_t *sul)
{
    track *t = lws_container_of(sul, track, sul_ping);
    if (!t->wsi || t->state != TS_OPEN)
        return;
    if (!t->welcomed) {
        kill_connection(t, "no Welcome within 30 s");
        return;
    }
    if (mono_us() - t->last_rx_us > SILENCE_TIMEOUT_US) {
        kill_connection(t, "nothing from the server for 45 s");
        return;
    }
    t->pings_due++;
    lws_callback_on_writable(t->wsi);
    lws_sul_schedule(t->s->ctx, 0, &t->sul_ping, ping_cb, PING_INTERVAL_US);
}

void track_start_pings(track *t)
{
    t->pings_due = FIRST_PINGS;
    t->offset_unreported = true;
    t->pings_started_us = mono_us();
    lws_sul_schedule(t->s->ctx, 0, &t->sul_ping, ping_cb, PING_INTERVAL_US);
    lws_callback_on_writable(t->wsi);
}

/* ---- connecting ---- */

static void reconnect_cb(lws_sorted_usec_list_t *sul)
{
    track *t = lws_container_of(sul, track, sul_conn);
    if (t->state == TS_WAITING)
        track_connect(t);
}

static void schedule_reconnect(track *t, const char *why)
{
    sender *s = t->s;
    int64_t now = mono_us(), deadline = 0;
    t->state = TS_WAITING;
    if (!t->outage_start_us)
        t->outage_start_us = now;
    if (s->o->give_up_after) {
        deadline = t->outage_start_us + (int64_t)s->o->give_up_after * 1000000;
        if (now >= deadline) {
            track_fail(t, "giving up after %u s: %s", s->o->give_up_after, why);
            return;
        }
    }
    unsigned shift = t->attempt < 7 ? t->attempt : 7;
    int64_t cap_us = (int64_t)(BACKOFF_FIRST_MS << shift) * 1000;
    if (cap_us > (int64_t)BACKOFF_CAP_MS * 1000)
        cap_us = (int64_t)BACKOFF_CAP_MS * 1000;
    int64_t delay = (int64_t)(sender_rand(s) % (uint64_t)(cap_us + 1));
    if (delay < (int64_t)t->retry_after_ms * 1000)
        delay = (int64_t)t->retry_after_ms * 1000;
    if (deadline && now + delay > deadline)
        delay = deadline - now;
    if (t->attempt < 100)
        t->attempt++;
    t->reconnects++;
    say(s, "track %s: %s; reconnecting in %.1f s", t->id, why, (double)delay / 1e6);
    lws_sul_schedule(s->ctx, 0, &t->sul_conn, reconnect_cb, delay > 0 ? delay : 1);
}

static void reset_connection(track *t)
{
    t->wsi = NULL;
    t->hello_sent = t->welcomed = t->end_sent = false;
    t->pings_due = 0;
    t->close_code = 0;
    t->close_text[0] = '\0';
    t->close_why = NULL;
    t->err_seen = t->err_retryable = false;
    t->resend_seen = false;
    t->retry_after_ms = 0;
    t->err_text[0] = '\0';
    t->rx_len = 0;
}

void track_connect(track *t)
{
    sender *s = t->s;
    const send_url *u = &s->o->url;
    struct lws_client_connect_info ci;
    reset_connection(t);
    memset(&ci, 0, sizeof ci);
    ci.context = s->ctx;
    ci.address = u->host;
    ci.port = u->port;
    ci.path = u->path;
    ci.host = u->host_hdr;
    ci.origin = u->host_hdr;
    ci.protocol = PROTOCOL_NAME;
    ci.ssl_connection = u->tls ? LCCSCF_USE_SSL : 0;
    ci.opaque_user_data = t;
    ci.pwsi = &t->wsi;
    t->state = TS_CONNECTING;
    debug(s, "track %s: connecting to %s:%d%s", t->id, u->host, u->port, u->path);
    if (!lws_client_connect_via_info(&ci) && t->state == TS_CONNECTING) {
        t->wsi = NULL;
        schedule_reconnect(t, "cannot start a connection (lws_client_connect_via_info failed)");
    }
}

/* ---- connection events ---- */

static void on_established(track *t, struct lws *wsi)
{
    t->wsi = wsi;
    t->state = TS_OPEN;
    t->last_rx_us = mono_us();
    if (t->ever_connected)
        say(t->s, "track %s: reconnected", t->id);
    t->ever_connected = true;
    lws_sul_schedule(t->s->ctx, 0, &t->sul_ping, ping_cb, WELCOME_TIMEOUT_US);
    lws_callback_on_writable(wsi);
}

static void on_peer_close(track *t, const unsigned char *in, size_t len)
{
    if (len >= 2) {
        t->close_code = in[0] << 8 | in[1];
        size_t n = len - 2 < sizeof t->close_text - 1 ? len - 2 : sizeof t->close_text - 1;
        memcpy(t->close_text, in + 2, n);
        t->close_text[n] = '\0';
    }
}

static bool retryable_close(int code)
{
    switch (code) {
    case 1000: /* normal, but the track is not done: resume */
    case 1001: /* draining */
    case 1005: /* no status */
    case 1006: /* dropped */
    case 1011: /* internal */
    case 1012: /* resend / restart */
    case 1013: /* busy */
    case 1014: /* bad gateway */
        return true;
    default:
        return false;
    }
}

/* Why the connection ended, and whether to retry. */
static bool classify(track *t, const char *cce, unsigned http, char *why, size_t n)
{
    const send_url *u = &t->s->o->url;
    if (cce) {
        if (http >= 400 && http < 500 && http != 408 && http != 425 && http != 429) {
            snprintf(why, n, "the server refused the websocket upgrade with HTTP %u", http);
            return false;
        }
        if (http)
            snprintf(why, n, "cannot connect to %s:%d: %s (HTTP %u)", u->host, u->port, cce, http);
        else
            snprintf(why, n, "cannot connect to %s:%d: %s", u->host, u->port, cce);
        return true;
    }
    if (t->close_why && !t->close_code) {
        snprintf(why, n, "%s", t->close_why);
        return true;
    }
    /* libwebsockets 4.1 hands a received 1012-1015 to us as 1002: the close
     * that follows a Resend is known by the Resend */
    int code = t->close_code ? t->close_code : 1006;
    bool retry = retryable_close(code) || t->resend_seen || (t->err_seen && t->err_retryable);
    snprintf(why, n, "%s with code %d%s%s%s%s%s",
             retry ? "connection closed" : "the server closed the connection", code,
             t->close_text[0] ? " (" : "", t->close_text, t->close_text[0] ? ")" : "",
             t->err_seen ? " after " : "", t->err_seen ? t->err_text : "");
    return retry;
}

static void on_lost(track *t, struct lws *wsi, const char *cce)
{
    sender *s = t->s;
    char why[512];
    if (s->destroying) {
        t->wsi = NULL;
        return;
    }
    if (t->wsi && t->wsi != wsi)
        return; /* an older connection's late event */
    unsigned http = cce ? lws_http_client_http_response(wsi) : 0;
    t->wsi = NULL;
    lws_sul_cancel(&t->sul_ping);
    lws_sul_cancel(&t->sul_wake);
    if (t->state == TS_DONE || t->state == TS_FAILED) {
        check_finished(s);
        return;
    }
    if (t->state != TS_CONNECTING && t->state != TS_OPEN)
        return;
    if (!classify(t, cce, http, why, sizeof why)) {
        track_fail(t, "%s", why);
        return;
    }
    schedule_reconnect(t, why);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    track *t = lws_get_opaque_user_data(wsi);
    char cce[256];
    (void)user;
    if (!t)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        snprintf(cce, sizeof cce, "%s", in ? (const char *)in : "unknown error");
        on_lost(t, wsi, cce);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        on_established(t, wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return track_receive(t, in, len, lws_is_final_fragment(wsi), lws_frame_is_binary(wsi));
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return track_writeable(t);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        on_peer_close(t, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        on_lost(t, wsi, NULL);
        return 0;
    default:
        return 0;
    }
}

/* The track is the wsi's opaque user data: no per-session allocation. */
static const struct lws_protocols protocols[] = {
    {PROTOCOL_NAME, ws_callback, 0, RX_BUFFER_SIZE, 0, NULL, MAX_CHUNK_SIZE + 65536},
    {"seashore-stdin", source_stdin_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- setup and teardown ---- */

static int init_tracks(sender *s)
{
    s->ntracks = s->o->copies;
    if (!(s->tracks = calloc(s->ntracks, sizeof *s->tracks))) {
        error_msg(s, "out of memory for %u tracks", s->ntracks);
        return -1;
    }
    for (unsigned i = 0; i < s->ntracks; i++) {
        track *t = &s->tracks[i];
        t->s = s;
        t->state = TS_WAITING;
        memcpy(t->id, s->o->track_ids[i], sizeof t->id);
        /* With --rate, copies start spread over one period, as independent
         * recorders would, instead of all sending at the same instant. */
        if (s->o->rate > 0)
            t->next_chunk_us = mono_us() + (int64_t)(1e6 / s->o->rate * i / s->ntracks);
        t->md = EVP_MD_CTX_new();
        if (!t->md || EVP_DigestInit_ex(t->md, EVP_sha256(), NULL) != 1) {
            error_msg(s, "EVP_DigestInit_ex(sha256) failed");
            return -1;
        }
    }
    return 0;
}

static int init_buffers(sender *s)
{
    size_t chunk = s->o->chunk_size;
    s->rbuf_cap = chunk > 65536 ? chunk : 65536;
    s->wbuf_cap = LWS_PRE + chunk + MAX_TOKEN + FRAME_OVERHEAD;
    s->rbuf = malloc(s->rbuf_cap);
    s->wbuf = malloc(s->wbuf_cap);
    if (!s->rbuf || !s->wbuf) {
        error_msg(s, "out of memory for the %zu byte buffers", s->wbuf_cap);
        return -1;
    }
    return 0;
}

static int init_context(sender *s)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = s;
    info.gid = -1;
    info.uid = -1;
    if (s->o->url.tls)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        error_msg(s, "lws_create_context failed");
        return -1;
    }
    return 0;
}

int64_t client_us(const sender *s)
{
    return real_us() + s->o->clock_skew_us;
}

static int setup(sender *s)
{
    uint64_t seed = 0;
    s->start_us = mono_us();
    s->capture_start_unix_us =
        s->o->capture_start_unix_us ? s->o->capture_start_unix_us : client_us(s);
    if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
        seed = (uint64_t)s->capture_start_unix_us;
    s->rng = seed | 1;
    if (latency_init(&s->lat) != 0 || init_buffers(s) != 0 || init_tracks(s) != 0)
        return -1;
    if (source_open(s, s->o->file) != 0)
        return -1;
    if (init_context(s) != 0 || source_adopt_stdin(s) != 0)
        return -1;
    for (unsigned i = 0; i < s->ntracks; i++) {
        say(s, "track %s", s->tracks[i].id);
        track_connect(&s->tracks[i]);
    }
    progress_start(s);
    return 0;
}

static void teardown(sender *s)
{
    s->destroying = true;
    if (s->ctx)
        lws_context_destroy(s->ctx);
    for (unsigned i = 0; s->tracks && i < s->ntracks; i++) {
        EVP_MD_CTX_free(s->tracks[i].md);
        free(s->tracks[i].rx);
        free(s->tracks[i].slots);
    }
    free(s->tracks);
    free(s->rbuf);
    free(s->wbuf);
    latency_free(&s->lat);
    source_close(&s->src);
}

int sender_run(const send_opts *o)
{
    sender s;
    int rc = EXIT_FAIL;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.src.fd = s.src.in_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(o->verbose ? LLL_ERR | LLL_WARN : LLL_ERR, lws_log_line);
    if (setup(&s) != 0)
        goto out;
    while (!s.stop)
        if (lws_service(s.ctx, 0) < 0) {
            error_msg(&s, "lws_service failed");
            break;
        }
    progress_final(&s);
    rc = EXIT_OK;
    for (unsigned i = 0; i < s.ntracks; i++)
        if (s.tracks[i].state != TS_DONE)
            rc = EXIT_FAIL;
    if (report_tracks(&s) != 0 || stats_write(&s) != 0)
        rc = EXIT_FAIL;
out:
    teardown(&s);
    return rc;
}
