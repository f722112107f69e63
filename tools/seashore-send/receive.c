/* receive.c -- the server frames of one track (docs/protocol.md): Welcome,
 * Ack, Committed, Error, Pong, Resend, Ended. A server frame arrives in
 * websocket fragments, collected until the final one.
 *
 * Return values of the handlers: 0 go on, -1 close the connection (with
 * t->close_why set for a reconnect, or the track failed). */
#include "sender.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFLIGHT_CAP 65536
#define SANE_TIME_US     (1LL << 60) /* any real clock reading is below this */
#define ERR(x)           SEASHORE__V1__ERROR_CODE__ERROR_CODE_##x

const char *error_code_name(int code, char *tmp, size_t tmplen)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&seashore__v1__error_code__descriptor, code);
    if (v && strncmp(v->name, "ERROR_CODE_", 11) == 0)
        return v->name + 11;
    snprintf(tmp, tmplen, "ERROR_CODE_%d", code);
    return tmp;
}

static int set_inflight(track *t, uint32_t max_inflight)
{
    uint32_t n = max_inflight ? max_inflight : 1;
    if (n > MAX_INFLIGHT_CAP)
        n = MAX_INFLIGHT_CAP;
    t->max_inflight = n;
    if (n != t->nslots) {
        sent_slot *grown = realloc(t->slots, n * sizeof *grown);
        if (!grown) {
            track_fail(t, "out of memory for %u in-flight chunks", n);
            return -1;
        }
        t->slots = grown;
        t->nslots = n;
    }
    memset(t->slots, 0, n * sizeof *t->slots);
    return 0;
}

/* The chunk size is fixed by the first Welcome: resent chunks must be
 * byte-identical, so it never changes for the track. */
static int set_chunk_size(track *t, uint32_t max_chunk_bytes)
{
    uint32_t limit = max_chunk_bytes ? max_chunk_bytes : SERVER_DEFAULT_MAX;
    if (!t->chunk_size) {
        t->chunk_size = t->s->o->chunk_size < limit ? t->s->o->chunk_size : limit;
        return 0;
    }
    if (t->chunk_size <= limit)
        return 0;
    track_fail(t, "the server's max_chunk_bytes is now %u, below the chunk size %u of this track",
               limit, t->chunk_size);
    return -1;
}

/* The server asks again for chunks below a commit point: the backend lost
 * data it had reported in the object store, and a browser has already
 * deleted those chunks (docs/protocol.md: Resend is "always >= the last
 * committed_seq", Welcome's committed_seq is "<= resume_seq"). We still
 * hold the file, so we resend; the event is counted (--stats-json
 * "committed_rerequested") and always logged. */
static void note_rerequest(track *t, const char *what, uint64_t from, uint64_t committed)
{
    t->committed_rerequests++;
    error_msg(t->s,
              "track %s: %s asks again from chunk %llu, below the committed point %llu: the "
              "backend lost committed data (a browser would have deleted those chunks)",
              t->id, what, (unsigned long long)from, (unsigned long long)committed);
}

static int on_welcome(track *t, const Seashore__V1__Welcome *w)
{
    uint64_t resume = w->resume_seq;
    uint64_t committed = w->committed_seq > t->committed ? w->committed_seq : t->committed;
    if (t->welcomed) {
        debug(t->s, "track %s: ignoring a second Welcome", t->id);
        return 0;
    }
    if (w->track_id && *w->track_id && strcmp(w->track_id, t->id) != 0) {
        track_fail(t, "the server welcomed track %s instead", w->track_id);
        return -1;
    }
    if (set_chunk_size(t, w->max_chunk_bytes) != 0 || set_inflight(t, w->max_inflight) != 0)
        return -1;
    if (t->s->src.eof && resume > track_chunk_count(t)) {
        track_fail(t, "the server holds %llu chunks of this track, %s has only %llu",
                   (unsigned long long)resume, t->s->src.name,
                   (unsigned long long)track_chunk_count(t));
        return -1;
    }
    if (resume < committed)
        note_rerequest(t, "the Welcome", resume, committed);
    if (resume > t->acked)
        track_progress(t);
    t->acked = t->next_send = resume;
    if (t->sent_high < resume)
        t->sent_high = resume;
    t->durable_bytes = track_bytes_before(t, resume);
    if (w->committed_seq > t->committed && w->committed_seq <= resume) {
        t->committed = w->committed_seq;
        t->committed_bytes = track_bytes_before(t, w->committed_seq);
    }
    t->welcomed = true;
    t->pause_until_us = t->hold_until_us = 0;
    debug(t->s,
          "track %s: Welcome resume_seq %llu committed_seq %llu max_chunk_bytes %u "
          "max_inflight %u session %s",
          t->id, (unsigned long long)resume, (unsigned long long)w->committed_seq,
          w->max_chunk_bytes, w->max_inflight, w->session_id ? w->session_id : "");
    track_start_pings(t);
    return 0;
}

/* Latency of every chunk in [from, to) measured at its first Ack. */
static void measure_acks(track *t, uint64_t from, uint64_t to)
{
    int64_t now = mono_us();
    if (to - from > t->nslots)
        from = to - t->nslots;
    for (uint64_t seq = from; seq < to; seq++) {
        sent_slot *slot = &t->slots[seq % t->nslots];
        if (slot->seq == seq && slot->at_us) {
            latency_add(t->s, now - slot->at_us);
            slot->at_us = 0;
        }
    }
}

static int on_ack(track *t, const Seashore__V1__Ack *a)
{
    if (a->seq >= t->sent_high) {
        debug(t->s, "track %s: ignoring an Ack of chunk %llu, never sent", t->id,
              (unsigned long long)a->seq);
        return 0;
    }
    uint64_t upto = a->seq + 1;
    if (upto <= t->acked)
        return 0;
    measure_acks(t, t->acked, upto);
    t->acked = upto;
    t->last_ack_unix_us = real_us();
    if (t->first_ack_unix_us == 0)
        t->first_ack_unix_us = t->last_ack_unix_us;
    if (t->next_send < upto)
        t->next_send = upto;
    t->durable_bytes = a->durable_bytes;
    t->hold_until_us = 0;
    track_progress(t);
    lws_callback_on_writable(t->wsi);
    return 0;
}

static int on_committed(track *t, const Seashore__V1__Committed *c)
{
    if (c->committed_seq > t->committed) {
        t->committed = c->committed_seq;
        t->committed_bytes = c->committed_bytes;
        t->committed_updates++;
        track_progress(t);
    }
    track_maybe_done(t);
    return 0;
}

/* A chunk was refused (connection stays open): resend from the refused
 * seq (SEQ_GAP: from the first un-acked), after retry_after_ms. */
static void rewind_for(track *t, const Seashore__V1__Error *e)
{
    int64_t now = mono_us();
    uint64_t to;
    if (e->retry_after_ms)
        t->pause_until_us = now + (int64_t)e->retry_after_ms * 1000;
    if (e->code == ERR(TOO_MANY_INFLIGHT) && !e->retry_after_ms)
        t->hold_until_us = now + HOLD_FALLBACK_US;
    if (e->seq >= t->next_send) {
        /* written before our last rewind: that rewind covers it already */
        debug(t->s, "track %s: refusal of chunk %llu predates the last rewind", t->id,
              (unsigned long long)e->seq);
    } else {
        to = e->code == ERR(SEQ_GAP) || e->seq < t->acked ? t->acked : e->seq;
        debug(t->s, "track %s: rewinding from chunk %llu to %llu", t->id,
              (unsigned long long)t->next_send, (unsigned long long)to);
        t->next_send = to;
    }
    lws_callback_on_writable(t->wsi);
}

static int on_error(track *t, const Seashore__V1__Error *e)
{
    char tmp[32];
    const char *name = error_code_name(e->code, tmp, sizeof tmp);
    const char *msg = e->message ? e->message : "";
    bool retryable = e->retryable || e->code == ERR(UNSPECIFIED);
    snprintf(t->err_text, sizeof t->err_text, "%s: %s", name, msg);
    t->err_seen = true;
    t->err_retryable = retryable;
    t->retry_after_ms = e->retry_after_ms;
    if (!retryable) {
        track_fail_error(t, name, msg);
        return -1;
    }
    debug(t->s, "track %s: Error %s (seq %llu, retry after %u ms)", t->id, t->err_text,
          (unsigned long long)e->seq, e->retry_after_ms);
    bool per_chunk = e->code == ERR(SEQ_GAP) || e->code == ERR(TOO_MANY_INFLIGHT) ||
                     e->code == ERR(BACK_PRESSURE) || e->code == ERR(CHECKSUM_MISMATCH);
    if (per_chunk && t->welcomed && (e->seq || e->code != ERR(BACK_PRESSURE))) {
        rewind_for(t, e);
        return 0;
    }
    /* INTERNAL, SHUTTING_DOWN, the connection limit, unknown codes: the
     * server closes (or should); reconnect after retry_after_ms. */
    t->close_why = t->err_text;
    return -1;
}

static int on_resend(track *t, const Seashore__V1__Resend *r)
{
    uint64_t from = r->from_seq;
    say(t->s, "track %s: the server asks to resend from chunk %llu: %s", t->id,
        (unsigned long long)from, r->reason ? r->reason : "");
    if (from < t->committed)
        note_rerequest(t, "a Resend", from, t->committed);
    if (from < t->acked) {
        t->acked = from;
        t->durable_bytes = track_bytes_before(t, from);
    }
    if (from < t->next_send)
        t->next_send = from;
    if (!t->ended)
        t->end_sent = false;
    t->resend_seen = true;
    lws_callback_on_writable(t->wsi);
    return 0;
}

static int on_ended(track *t, const Seashore__V1__Ended *d)
{
    t->srv_ended = true;
    t->srv_count = d->chunk_count;
    t->srv_bytes = d->total_bytes;
    t->srv_sha_ok = d->sha256.len == SHA256_LEN;
    if (t->srv_sha_ok)
        memcpy(t->srv_sha, d->sha256.data, SHA256_LEN);
    debug(t->s, "track %s: Ended (%llu chunks, %llu bytes)", t->id,
          (unsigned long long)d->chunk_count, (unsigned long long)d->total_bytes);
    if (t->ended)
        return 0;
    if (t->end_sent)
        return track_settle_ended(t);
    lws_callback_on_writable(t->wsi); /* settled when our End would be due */
    return 0;
}

static bool sane_time(int64_t us)
{
    return us > 0 && us < SANE_TIME_US;
}

static void on_pong(track *t, const Seashore__V1__Pong *p)
{
    int64_t t3 = client_us(t->s), t0 = p->client_time_us;
    int64_t t1 = p->server_receive_time_us, t2 = p->server_send_time_us;
    if (p->nonce == 0 || p->nonce > t->nonce || !sane_time(t0) || !sane_time(t1) ||
        !sane_time(t2) || t3 < t0 || t2 < t1) {
        debug(t->s, "track %s: ignoring an inconsistent Pong", t->id);
        return;
    }
    int64_t rtt = (t3 - t0) - (t2 - t1);
    int64_t offset = ((t1 - t0) + (t2 - t3)) / 2;
    if (rtt < 0)
        return;
    if (t->best_rtt_us == 0 || rtt < t->best_rtt_us) {
        t->best_offset_us = offset;
        t->best_rtt_us = rtt ? rtt : 1;
        debug(t->s, "track %s: clock offset %lld us (rtt %lld us)", t->id, (long long)offset,
              (long long)rtt);
        t->offset_unreported = true;
    }
    if (p->nonce == t->nonce && t->offset_unreported) { /* no Ping in flight carries it */
        t->pings_due++;
        lws_callback_on_writable(t->wsi);
    }
}

static int dispatch(track *t, const Seashore__V1__ServerFrame *f)
{
    if (!t->welcomed && f->kind_case != SEASHORE__V1__SERVER_FRAME__KIND_WELCOME &&
        f->kind_case != SEASHORE__V1__SERVER_FRAME__KIND_ERROR) {
        debug(t->s, "track %s: ignoring a frame before the Welcome", t->id);
        return 0;
    }
    switch (f->kind_case) {
    case SEASHORE__V1__SERVER_FRAME__KIND_WELCOME:
        return on_welcome(t, f->welcome);
    case SEASHORE__V1__SERVER_FRAME__KIND_ACK:
        return on_ack(t, f->ack);
    case SEASHORE__V1__SERVER_FRAME__KIND_COMMITTED:
        return on_committed(t, f->committed);
    case SEASHORE__V1__SERVER_FRAME__KIND_ERROR:
        return on_error(t, f->error);
    case SEASHORE__V1__SERVER_FRAME__KIND_PONG:
        on_pong(t, f->pong);
        return 0;
    case SEASHORE__V1__SERVER_FRAME__KIND_RESEND:
        return on_resend(t, f->resend);
    case SEASHORE__V1__SERVER_FRAME__KIND_ENDED:
        return on_ended(t, f->ended);
    default:
        debug(t->s, "track %s: ignoring an unknown server frame", t->id);
        return 0;
    }
}

int track_receive(track *t, const void *in, size_t len, bool final, bool binary)
{
    if (len > RX_MAX - t->rx_len) {
        t->close_why = "the server sent a frame larger than 1 MiB";
        return -1;
    }
    if (t->rx_len + len > t->rx_cap) {
        size_t cap = t->rx_cap ? t->rx_cap : 4096;
        while (cap < t->rx_len + len)
            cap *= 2;
        unsigned char *grown = realloc(t->rx, cap);
        if (!grown) {
            t->close_why = "out of memory for a server frame";
            return -1;
        }
        t->rx = grown;
        t->rx_cap = cap;
    }
    if (len)
        memcpy(t->rx + t->rx_len, in, len);
    t->rx_len += len;
    if (!final)
        return 0;
    size_t n = t->rx_len;
    t->rx_len = 0;
    t->last_rx_us = mono_us();
    if (!binary) {
        debug(t->s, "track %s: ignoring a text message", t->id);
        return 0;
    }
    Seashore__V1__ServerFrame *f = seashore__v1__server_frame__unpack(NULL, n, t->rx);
    if (!f) {
        t->close_why = "the server sent a frame that is not a ServerFrame";
        return -1;
    }
    int rc = dispatch(t, f);
    seashore__v1__server_frame__free_unpacked(f, NULL);
    return rc;
}
