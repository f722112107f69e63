/* frames.c -- encoding server frames and writing them when lws says the
 * socket is writable (one frame per writable callback). */
#include "ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seashore/log.h"

int64_t ing_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void queue_out(ing_conn *c, ing_out *o)
{
    o->next = NULL;
    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    c->out_count++;
}

static ing_out *encode(const Seashore__V1__ServerFrame *f)
{
    size_t n = seashore__v1__server_frame__get_packed_size(f);
    ing_out *o = malloc(sizeof *o + LWS_PRE + n);
    if (o == NULL)
        return NULL;
    o->len = seashore__v1__server_frame__pack(f, o->buf + LWS_PRE);
    return o;
}

void ing_send_frame(ing_conn *c, const Seashore__V1__ServerFrame *f)
{
    if (c->wsi == NULL || c->close_code != 0)
        return;
    if (c->out_count >= ING_MAX_OUT_FRAMES) {
        ss_log_warn("slow consumer: closing", "{s:s, s:i}", "track_id", c->track_id, "unsent",
                    (int)c->out_count);
        c->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
        snprintf(c->close_reason, sizeof c->close_reason, "slow consumer: %zu frames unsent",
                 c->out_count);
        lws_callback_on_writable(c->wsi);
        return;
    }
    ing_out *o = encode(f);
    if (o == NULL)
        return;
    queue_out(c, o);
    lws_callback_on_writable(c->wsi);
}

static void send_error_v(ing_conn *c, Seashore__V1__ErrorCode code, bool retryable, uint64_t seq,
                         uint32_t retry_after_ms, const char *fmt, va_list ap)
{
    Seashore__V1__ServerFrame f = SEASHORE__V1__SERVER_FRAME__INIT;
    Seashore__V1__Error e = SEASHORE__V1__ERROR__INIT;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    e.code = code;
    e.message = msg;
    e.retryable = retryable;
    e.seq = seq;
    e.retry_after_ms = retry_after_ms;
    f.kind_case = SEASHORE__V1__SERVER_FRAME__KIND_ERROR;
    f.error = &e;
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&seashore__v1__error_code__descriptor, (int)code);
    ing_count_error_frame(v ? v->name : "?");
    ss_log_info("error frame", "{s:s, s:s, s:s, s:b}", "track_id", c->track_id, "code",
                v ? v->name : "?", "message", msg, "retryable", retryable);
    ing_send_frame(c, &f);
}

void ing_send_error(ing_conn *c, Seashore__V1__ErrorCode code, bool retryable, uint64_t seq,
                    uint32_t retry_after_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_error_v(c, code, retryable, seq, retry_after_ms, fmt, ap);
    va_end(ap);
}

void ing_fail(ing_conn *c, Seashore__V1__ErrorCode code, bool retryable, int close_code,
              const char *fmt, ...)
{
    va_list ap;
    if (c->close_code != 0)
        return;
    va_start(ap, fmt);
    send_error_v(c, code, retryable, 0, retryable ? 1000 : 0, fmt, ap);
    va_end(ap);
    c->close_code = close_code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s",
             code == SEASHORE__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN ? "server draining"
                                                                        : "see the error frame");
    c->state = CONN_CLOSING;
    if (c->wsi) {
        lws_rx_flow_control(c->wsi, 0);
        lws_callback_on_writable(c->wsi);
    }
}

static void add_ack(ing_conn *c, Seashore__V1__ServerFrame *f, Seashore__V1__Ack *a,
                    Seashore__V1__Committed *cm)
{
    if (c->ack_due) {
        a->seq = c->durable_seq - 1;
        a->durable_bytes = c->durable_bytes;
        f->kind_case = SEASHORE__V1__SERVER_FRAME__KIND_ACK;
        f->ack = a;
        c->ack_due = false;
    } else {
        cm->committed_seq = c->committed_seq;
        cm->committed_bytes = c->committed_bytes;
        f->kind_case = SEASHORE__V1__SERVER_FRAME__KIND_COMMITTED;
        f->committed = cm;
        c->committed_due = false;
    }
}

/* Writes one pending frame: queued frames first (Welcome, errors, pongs),
 * then the coalesced Ack, then Committed. Returns -1 to close. */
int ing_write_next(ing_conn *c)
{
    uint8_t buf[LWS_PRE + 64];
    ing_out *o = c->out_head;
    if (o != NULL) {
        c->out_head = o->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        c->out_count--;
        int n = lws_write(c->wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_BINARY);
        free(o);
        if (n < 0)
            return -1;
    } else if (c->ack_due || c->committed_due) {
        Seashore__V1__ServerFrame f = SEASHORE__V1__SERVER_FRAME__INIT;
        Seashore__V1__Ack a = SEASHORE__V1__ACK__INIT;
        Seashore__V1__Committed cm = SEASHORE__V1__COMMITTED__INIT;
        add_ack(c, &f, &a, &cm);
        size_t n = seashore__v1__server_frame__pack(&f, buf + LWS_PRE);
        if (lws_write(c->wsi, buf + LWS_PRE, n, LWS_WRITE_BINARY) < 0)
            return -1;
    } else if (c->close_code != 0 && c->queued == 0 && !c->resend_check) {
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    if (c->out_head || c->ack_due || c->committed_due || (c->close_code != 0 && c->queued == 0))
        lws_callback_on_writable(c->wsi);
    return 0;
}
