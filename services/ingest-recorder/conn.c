/* conn.c -- one recorder connection: Hello/Welcome, in-order chunks,
 * publishing to the chunk log one chunk at a time per track, coalesced
 * Acks, resend checks, End, clock-sync pings (docs/protocol.md). Runs on
 * the lws service thread only. */
#include "ingest.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame_check.h"
#include "seashore/drain.h"
#include "seashore/log.h"
#include "seashore/metrics.h"

enum { CALL_STATUS = 1, CALL_PUBLISH, CALL_CHUNK_INFO, CALL_END };

#define BACK_PRESSURE_RETRY_MS 1000
/* chunk-store answers an End once its index has caught up with the log; a
 * busy indexer is no reason to close the connection, so the End is asked
 * again before the client is told to reconnect. */
#define END_ATTEMPTS 3
#define CODE(x)      SEASHORE__V1__ERROR_CODE__ERROR_CODE_##x

static ing_conn *conns;
static size_t nconns;
static size_t buffered_bytes; /* chunk bytes held by all connections */
static ss_metric *m_chunks, *m_bytes, *m_conns, *m_errors, *m_ack_latency;

void ing_count_error_frame(const char *code_name)
{
    const char *values[] = {code_name};
    ss_series_inc(ss_metric_labels(m_errors, values));
}

size_t ing_connection_count(void)
{
    return nconns;
}

int ing_metrics_init(void)
{
    m_chunks = ss_metrics_counter("seashore_ingest_chunks_acked_total",
                                  "Chunks made durable and acked", NULL);
    m_bytes = ss_metrics_counter("seashore_ingest_bytes_acked_total",
                                 "Chunk bytes made durable and acked", NULL);
    m_conns = ss_metrics_gauge("seashore_ingest_connections", "Open recorder connections", NULL);
    static const char *const code_label[] = {"code", NULL};
    m_errors = ss_metrics_counter("seashore_ingest_error_frames_total",
                                  "Error frames sent, by code", code_label);
    static const double bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5};
    m_ack_latency = ss_metrics_histogram(
        "seashore_ingest_ack_latency_seconds",
        "From a chunk's last byte received to its publish acknowledged by the chunk log", NULL,
        bounds, sizeof bounds / sizeof bounds[0]);
    return m_chunks && m_bytes && m_conns && m_errors && m_ack_latency ? 0 : -1;
}

static void conn_unref(ing_conn *c)
{
    if (--c->refs > 0)
        return;
    for (ing_chunk *k = c->queue_head, *n; k; k = n) {
        n = k->next;
        free(k->data);
        free(k);
    }
    for (ing_out *o = c->out_head, *n; o; o = n) {
        n = o->next;
        free(o);
    }
    free(c->query_token);
    free(c->rx);
    free(c);
}

static void rx_pause(ing_conn *c, bool pause)
{
    if (c->wsi == NULL || c->rx_paused == pause)
        return;
    c->rx_paused = pause;
    lws_rx_flow_control(c->wsi, pause ? 0 : 1);
}

/* Reads are on when the connection may take another frame. */
static void rx_update(ing_conn *c)
{
    bool full = c->queued >= (size_t)ing_cfg.max_inflight;
    c->rx_paused_mem = buffered_bytes > (size_t)ing_cfg.buffer_bytes;
    rx_pause(c, c->state == CONN_STATUS_WAIT || c->state == CONN_CLOSING || c->resend_check ||
                    full || c->rx_paused_mem || ss_drain_requested());
}

static void submit(ing_conn *c, ing_call *call)
{
    c->refs++;
    ing_pool_submit(call);
}

/* ---- Hello ---- */

/* Refuses a frame that failed a frame_check.h check. */
static void fail_check(ing_conn *c, ing_check r, const char *why)
{
    if (r == ING_CHECK_FRAME_TOO_LARGE)
        ing_fail(c, CODE(FRAME_TOO_LARGE), false, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "%s", why);
    else
        ing_fail(c, r == ING_CHECK_BAD_VERSION ? CODE(UNSUPPORTED_VERSION) : CODE(BAD_FRAME), false,
                 LWS_CLOSE_STATUS_PROTOCOL_ERR, "%s", why);
}

static int check_token(ing_conn *c, const Seashore__V1__Hello *h)
{
    const char *tok = h->token[0] ? h->token : c->query_token;
    char why[256];
    if (h->token[0] && c->query_token && strcmp(h->token, c->query_token) != 0) {
        ing_fail(c, CODE(BAD_TOKEN), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "Hello.token differs from the token in the upgrade URL");
        return -1;
    }
    ss_token_result r =
        ss_ingest_token_verify(tok, ing_cfg.token_secret, strlen(ing_cfg.token_secret),
                               ing_now_us() / 1000000, &c->claims, why, sizeof why);
    if (r == SS_TOKEN_EXPIRED) {
        ing_fail(c, CODE(TOKEN_EXPIRED), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "ingest token: %s", why);
        return -1;
    }
    if (r != SS_TOKEN_OK) {
        ing_fail(c, CODE(BAD_TOKEN), false, LWS_CLOSE_STATUS_POLICY_VIOLATION, "ingest token: %s",
                 why);
        return -1;
    }
    if (c->claims.track_id[0] && strcmp(c->claims.track_id, h->track_id) != 0) {
        ing_fail(c, CODE(TOKEN_SCOPE), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "the token is for track %s, not %s", c->claims.track_id, h->track_id);
        return -1;
    }
    return 0;
}

/* A newer connection for the same track replaces an older one here. */
static void replace_older(ing_conn *c)
{
    for (ing_conn *o = conns; o; o = o->next)
        if (o != c && o->wsi && strcmp(o->track_id, c->track_id) == 0 && o->state != CONN_CLOSING)
            ing_fail(o, CODE(INTERNAL), true, LWS_CLOSE_STATUS_GOINGAWAY,
                     "track %s: replaced by a newer connection", o->track_id);
}

static void on_hello(ing_conn *c, const Seashore__V1__Hello *h)
{
    Seashore__V1__TrackStatusRequest req = SEASHORE__V1__TRACK_STATUS_REQUEST__INIT;
    char why[256];
    ing_check r;
    if (c->state != CONN_HELLO_WAIT) {
        ing_fail(c, CODE(BAD_FRAME), false, LWS_CLOSE_STATUS_PROTOCOL_ERR,
                 "Hello sent twice on one connection");
        return;
    }
    if ((r = ing_check_hello(h, why, sizeof why)) != ING_CHECK_OK) {
        fail_check(c, r, why);
        return;
    }
    if (check_token(c, h) != 0)
        return;
    snprintf(c->track_id, sizeof c->track_id, "%s", h->track_id);
    snprintf(c->mime_type, sizeof c->mime_type, "%s", h->mime_type);
    c->kind = h->kind;
    c->capture_start_us = h->capture_start_unix_us;
    replace_older(c);

    req.track_id = c->track_id;
    req.session_id = c->claims.session_id;
    req.participant_id = c->claims.participant_id;
    ing_call *call = ing_call_new(ING_CALL_REQUEST, CALL_STATUS, c, "chunkstore.status");
    if (call == NULL)
        return;
    call->payload_len = seashore__v1__track_status_request__get_packed_size(&req);
    call->payload = malloc(call->payload_len + 1);
    seashore__v1__track_status_request__pack(&req, call->payload);
    c->state = CONN_STATUS_WAIT;
    submit(c, call);
}

/* The track's owner and session must match the token. */
static int status_allows(ing_conn *c, const Seashore__V1__TrackStatusReply *r)
{
    const ss_ingest_claims *k = &c->claims;
    bool known = r->session_id[0] != '\0';
    bool session_gone =
        strcmp(r->session_state, "deleting") == 0 || strcmp(r->session_state, "deleted") == 0;
    if (known && (strcmp(r->session_id, k->session_id) != 0 ||
                  strcmp(r->participant_id, k->participant_id) != 0)) {
        ing_fail(c, CODE(TOKEN_SCOPE), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "track %s belongs to another session or participant than the token's",
                 c->track_id);
        return -1;
    }
    if (!r->participant_exists || session_gone || (!known && strcmp(r->session_state, "open"))) {
        ing_fail(c, CODE(UNKNOWN_TRACK), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "session %s / participant %s %s", k->session_id, k->participant_id,
                 !r->participant_exists ? "does not exist"
                 : session_gone         ? "is being deleted"
                                        : "is not open for new tracks");
        return -1;
    }
    if (r->log_full) {
        ing_fail(c, CODE(BACK_PRESSURE), true, 1013 /* try again later */,
                 "track %s: the chunk log has no room for another recording track (each needs "
                 "room for a whole upload part); try again later",
                 c->track_id);
        return -1;
    }
    if (r->mime_type[0] && strcmp(r->mime_type, c->mime_type) != 0) {
        ing_fail(c, CODE(BAD_FRAME), false, LWS_CLOSE_STATUS_PROTOCOL_ERR,
                 "Hello.mime_type \"%s\" differs from the track's \"%s\"", c->mime_type,
                 r->mime_type);
        return -1;
    }
    return 0;
}

static void send_welcome(ing_conn *c, const Seashore__V1__TrackStatusReply *r)
{
    Seashore__V1__ServerFrame f = SEASHORE__V1__SERVER_FRAME__INIT;
    Seashore__V1__Welcome w = SEASHORE__V1__WELCOME__INIT;
    w.track_id = c->track_id;
    w.resume_seq = c->durable_seq;
    w.committed_seq = c->committed_seq;
    w.max_chunk_bytes = (uint32_t)ing_cfg.max_chunk_bytes;
    w.max_inflight = (uint32_t)ing_cfg.max_inflight;
    w.server_time_unix_us = ing_now_us();
    w.session_id = c->claims.session_id;
    w.participant_id = c->claims.participant_id;
    f.kind_case = SEASHORE__V1__SERVER_FRAME__KIND_WELCOME;
    f.welcome = &w;
    ing_send_frame(c, &f);
    if (c->committed_seq > 0)
        c->committed_due = true;
    if (r->state == SEASHORE__V1__TRACK_STATE__TRACK_STATE_ENDED ||
        r->state == SEASHORE__V1__TRACK_STATE__TRACK_STATE_COMPLETE) {
        Seashore__V1__Ended e = SEASHORE__V1__ENDED__INIT;
        e.chunk_count = r->chunk_count;
        e.total_bytes = r->total_bytes;
        e.sha256 = r->sha256;
        f.kind_case = SEASHORE__V1__SERVER_FRAME__KIND_ENDED;
        f.ended = &e;
        ing_send_frame(c, &f);
        c->ended = true;
        c->ended_count = r->chunk_count;
    }
}

static void on_status_reply(ing_conn *c, ing_call *call)
{
    Seashore__V1__TrackStatusReply *r = NULL;
    if (call->result == ING_CALL_OK)
        r = seashore__v1__track_status_reply__unpack(NULL, call->reply_len, call->reply);
    if (r == NULL || r->error[0]) {
        ing_fail(c, CODE(INTERNAL), true, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                 "cannot read the state of track %s: %s", c->track_id,
                 r              ? r->error
                 : call->err[0] ? call->err
                                : "bad reply from chunk-store");
        goto out;
    }
    if (status_allows(c, r) != 0)
        goto out;
    c->durable_seq = c->next_seq = r->durable_seq;
    c->durable_bytes = c->next_offset = r->durable_bytes;
    c->last_stream_seq = r->last_stream_seq;
    c->committed_seq = r->committed_seq;
    c->committed_bytes = r->committed_bytes;
    c->new_track = r->state == SEASHORE__V1__TRACK_STATE__TRACK_STATE_UNSPECIFIED;
    c->state = CONN_READY;
    send_welcome(c, r);
    ss_log_info("track connected", "{s:s, s:s, s:I, s:I}", "track_id", c->track_id,
                "participant_id", c->claims.participant_id, "resume_seq", (long long)c->durable_seq,
                "committed_seq", (long long)c->committed_seq);
out:
    seashore__v1__track_status_reply__free_unpacked(r, NULL);
}

/* ---- Chunks ---- */

static void publish_next(ing_conn *c);

static void start_end_if_ready(ing_conn *c);

static ing_call *publish_call(ing_conn *c, ing_chunk *k)
{
    Seashore__V1__ChunkRecord rec = SEASHORE__V1__CHUNK_RECORD__INIT;
    char subject[64];
    snprintf(subject, sizeof subject, "chunks.%s", c->track_id);
    ing_call *call = ing_call_new(ING_CALL_PUBLISH, CALL_PUBLISH, c, subject);
    if (call == NULL)
        return NULL;
    rec.session_id = c->claims.session_id;
    rec.participant_id = c->claims.participant_id;
    rec.track_id = c->track_id;
    rec.seq = k->seq;
    rec.data.data = k->data;
    rec.data.len = k->len;
    rec.sha256.data = k->sha256;
    rec.sha256.len = 32;
    rec.offset = k->offset;
    rec.kind = c->kind;
    rec.received_unix_us = k->received_us;
    if (k->seq == 0) {
        rec.mime_type = c->mime_type;
        rec.capture_start_unix_us = c->capture_start_us;
        rec.clock_offset_us = c->best_rtt_us > 0 ? c->best_offset_us : 0;
    }
    call->payload_len = seashore__v1__chunk_record__get_packed_size(&rec);
    call->payload = malloc(call->payload_len);
    if (call->payload == NULL) {
        ing_call_free(call);
        return NULL;
    }
    seashore__v1__chunk_record__pack(&rec, call->payload);
    snprintf(call->msg_id, sizeof call->msg_id, "%s:%" PRIu64, c->track_id, k->seq);
    call->expect_last = k->seq > 0 ? c->last_stream_seq : 0;
    call->seq = k->seq;
    call->offset = k->offset;
    call->size = k->len;
    return call;
}

/* Publishes the oldest queued chunk, unless one is already on its way:
 * a track's chunks enter the log strictly one after the other. */
static void publish_next(ing_conn *c)
{
    ing_chunk *k = c->queue_head;
    if (c->publishing != NULL || k == NULL || c->state != CONN_READY)
        return;
    ing_call *call = publish_call(c, k);
    if (call == NULL) {
        ing_fail(c, CODE(INTERNAL), true, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    c->queue_head = k->next;
    if (c->queue_head == NULL)
        c->queue_tail = NULL;
    free(k->data); /* the call holds the encoded record */
    k->data = NULL;
    c->publishing = k;
    submit(c, call);
}

static void drop_queue(ing_conn *c)
{
    for (ing_chunk *k = c->queue_head, *n; k; k = n) {
        n = k->next;
        buffered_bytes -= k->len;
        c->queued--;
        c->queued_bytes -= k->len;
        free(k->data);
        free(k);
    }
    c->queue_head = c->queue_tail = NULL;
}

static void on_publish_done(ing_conn *c, ing_call *call)
{
    ing_chunk *k = c->publishing;
    c->publishing = NULL;
    c->queued--;
    c->queued_bytes -= k->len;
    buffered_bytes -= k->len;
    if (call->result == ING_CALL_OK) {
        c->durable_seq = k->seq + 1;
        c->durable_bytes = k->offset + k->len;
        c->last_stream_seq = call->stream_seq;
        c->ack_due = true;
        ss_series_inc(ss_metric_series(m_chunks));
        ss_series_add(ss_metric_series(m_bytes), (double)k->len);
        ss_series_observe(ss_metric_series(m_ack_latency),
                          (double)(ing_now_us() - k->received_us) / 1e6);
        if (c->wsi)
            lws_callback_on_writable(c->wsi);
        publish_next(c);
    } else if (call->result == ING_CALL_LOG_FULL && c->wsi) {
        /* nothing after this chunk was published: the client resends from it */
        drop_queue(c);
        c->next_seq = k->seq;
        c->next_offset = k->offset;
        ing_send_error(c, CODE(BACK_PRESSURE), true, k->seq, BACK_PRESSURE_RETRY_MS,
                       "chunk log is full; chunk %" PRIu64 " of track %s not stored, retry "
                       "from it",
                       k->seq, c->track_id);
    } else {
        drop_queue(c);
        if (c->wsi)
            ing_fail(c, CODE(INTERNAL), true, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                     "chunk %" PRIu64 " of track %s not stored: %s%s; reconnect and resume", k->seq,
                     c->track_id,
                     call->result == ING_CALL_WRONG_LAST ? "another connection wrote the track"
                                                         : "chunk log error ",
                     call->result == ING_CALL_WRONG_LAST ? "" : call->err);
    }
    free(k);
    start_end_if_ready(c);
}

static int chunk_problem(ing_conn *c, const Seashore__V1__Chunk *k)
{
    char why[256];
    ing_check r = ing_check_chunk(k, ing_cfg.max_chunk_bytes, why, sizeof why);
    if (r != ING_CHECK_OK) {
        fail_check(c, r, why);
        return -1;
    }
    if (c->ended && k->seq >= c->ended_count) {
        ing_fail(c, CODE(TRACK_ENDED), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "track %s ended with %" PRIu64 " chunks; chunk seq %" PRIu64 " refused",
                 c->track_id, c->ended_count, k->seq);
        return -1;
    }
    return 0;
}

/* A chunk below the next expected seq: compare with what we hold or ask
 * chunk-store for the stored copy. */
static void on_old_chunk(ing_conn *c, const Seashore__V1__Chunk *k, const uint8_t sha[32])
{
    ing_chunk *held = c->publishing && c->publishing->seq == k->seq ? c->publishing : NULL;
    for (ing_chunk *q = c->queue_head; q && held == NULL; q = q->next)
        if (q->seq == k->seq)
            held = q;
    if (held != NULL) { /* not yet durable: compare with our copy */
        if (held->len != k->data.len || memcmp(held->sha256, sha, 32) != 0)
            ing_fail(c, CODE(RESEND_MISMATCH), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                     "chunk seq %" PRIu64 " resent with different bytes; the first copy stays",
                     k->seq);
        return; /* identical: its Ack is coming */
    }
    Seashore__V1__ChunkInfoRequest req = SEASHORE__V1__CHUNK_INFO_REQUEST__INIT;
    ing_call *call = ing_call_new(ING_CALL_REQUEST, CALL_CHUNK_INFO, c, "chunkstore.chunk");
    if (call == NULL)
        return;
    req.track_id = c->track_id;
    req.seq = k->seq;
    call->payload_len = seashore__v1__chunk_info_request__get_packed_size(&req);
    call->payload = malloc(call->payload_len + 1);
    seashore__v1__chunk_info_request__pack(&req, call->payload);
    call->seq = k->seq;
    call->size = k->data.len;
    memcpy(call->msg_id, sha, 32); /* the resent digest, compared on reply */
    c->resend_check = true;
    submit(c, call);
}

static void on_chunk_info(ing_conn *c, ing_call *call)
{
    Seashore__V1__ChunkInfoReply *r = NULL;
    c->resend_check = false;
    if (call->result == ING_CALL_OK)
        r = seashore__v1__chunk_info_reply__unpack(NULL, call->reply_len, call->reply);
    if (r == NULL || r->error[0])
        ing_send_error(c, CODE(INTERNAL), true, call->seq, 1000,
                       "cannot compare resent chunk %" PRIu64 " with the stored one: %s", call->seq,
                       r ? r->error : call->err);
    else if (r->found && (r->size != call->size || r->sha256.len != 32 ||
                          memcmp(r->sha256.data, call->msg_id, 32) != 0))
        ing_fail(c, CODE(RESEND_MISMATCH), false, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "chunk seq %" PRIu64 " resent with different bytes (%" PRIu64
                 " bytes; stored %" PRIu32 "); the stored chunk stays",
                 call->seq, call->size, r->size);
    else {
        c->ack_due = c->durable_seq > 0; /* identical: re-ack */
        if (c->wsi)
            lws_callback_on_writable(c->wsi);
    }
    seashore__v1__chunk_info_reply__free_unpacked(r, NULL);
}

static void on_chunk(ing_conn *c, Seashore__V1__Chunk *k)
{
    uint8_t sha[32];
    if (chunk_problem(c, k) != 0)
        return;
    EVP_Digest(k->data.data, k->data.len, sha, NULL, EVP_sha256(), NULL);
    if (k->sha256.len == 32 && memcmp(sha, k->sha256.data, 32) != 0) {
        ing_send_error(c, CODE(CHECKSUM_MISMATCH), true, k->seq, 0,
                       "chunk seq %" PRIu64 ": sha256 does not match its %zu bytes of data", k->seq,
                       k->data.len);
        return;
    }
    if (k->seq < c->next_seq) {
        on_old_chunk(c, k, sha);
        return;
    }
    if (k->seq > c->next_seq) {
        ing_send_error(c, CODE(SEQ_GAP), true, k->seq, 0,
                       "chunk seq %" PRIu64 " skips ahead; expected seq %" PRIu64, k->seq,
                       c->next_seq);
        return;
    }
    if (c->queued >= (size_t)ing_cfg.max_inflight || c->end_wanted) {
        ing_send_error(c, CODE(TOO_MANY_INFLIGHT), true, k->seq, 0,
                       "chunk seq %" PRIu64 ": %zu chunks already un-acked, limit %" PRId64, k->seq,
                       c->queued, ing_cfg.max_inflight);
        return;
    }
    ing_chunk *q = calloc(1, sizeof *q);
    if (q == NULL)
        return;
    q->seq = k->seq;
    q->offset = c->next_offset;
    q->data = k->data.data; /* taken from the frame */
    q->len = k->data.len;
    k->data.data = NULL;
    k->data.len = 0;
    memcpy(q->sha256, sha, 32);
    q->received_us = ing_now_us();
    if (c->queue_tail)
        c->queue_tail->next = q;
    else
        c->queue_head = q;
    c->queue_tail = q;
    c->queued++;
    c->queued_bytes += q->len;
    buffered_bytes += q->len;
    c->next_seq++;
    c->next_offset += q->len;
    publish_next(c);
}

/* ---- End ---- */

static void on_end(ing_conn *c, const Seashore__V1__End *e)
{
    char why[128];
    ing_check r = ing_check_end(e, why, sizeof why);
    if (r != ING_CHECK_OK) {
        fail_check(c, r, why);
        return;
    }
    if (c->end_wanted)
        return; /* one End at a time; the first one's answer is coming */
    c->end = *e;
    memcpy(c->end_sha, e->sha256.data, 32);
    c->end.sha256.data = c->end_sha;
    c->end_wanted = true;
    start_end_if_ready(c);
}

/* Sends the End to chunk-store once every accepted chunk is durable. */
static void start_end_if_ready(ing_conn *c)
{
    Seashore__V1__TrackEndRecord rec = SEASHORE__V1__TRACK_END_RECORD__INIT;
    if (!c->end_wanted || c->end_sent || c->queued > 0 || c->state != CONN_READY)
        return;
    ing_call *call = ing_call_new(ING_CALL_REQUEST, CALL_END, c, "chunkstore.end");
    if (call == NULL)
        return;
    rec.track_id = c->track_id;
    rec.chunk_count = c->end.chunk_count;
    rec.total_bytes = c->end.total_bytes;
    rec.sha256 = c->end.sha256;
    rec.duration_us = c->end.duration_us;
    rec.clock_offset_us = c->best_rtt_us > 0 ? c->best_offset_us : 0;
    rec.received_unix_us = ing_now_us();
    call->payload_len = seashore__v1__track_end_record__get_packed_size(&rec);
    call->payload = malloc(call->payload_len + 1);
    seashore__v1__track_end_record__pack(&rec, call->payload);
    call->timeout_ms = ing_cfg.end_timeout_ms;
    c->end_sent = true;
    c->end_attempts++;
    submit(c, call);
}

/* True when an unconfirmed End is worth asking chunk-store again. */
static bool end_retry(ing_conn *c, const ing_call *call, const Seashore__V1__TrackEndReply *r)
{
    bool transient = r == NULL ? call->result == ING_CALL_FAILED : !r->ok && r->retryable;
    if (!transient || c->wsi == NULL || c->state != CONN_READY || c->end_attempts >= END_ATTEMPTS)
        return false;
    ss_log_info("End not confirmed yet; asking chunk-store again", "{s:s, s:i, s:s}", "track_id",
                c->track_id, "attempt", c->end_attempts + 1, "reason", r ? r->message : call->err);
    return true;
}

static void on_end_reply(ing_conn *c, ing_call *call)
{
    Seashore__V1__TrackEndReply *r = NULL;
    c->end_sent = false;
    if (call->result == ING_CALL_OK)
        r = seashore__v1__track_end_reply__unpack(NULL, call->reply_len, call->reply);
    if (end_retry(c, call, r)) {
        seashore__v1__track_end_reply__free_unpacked(r, NULL);
        start_end_if_ready(c);
        return;
    }
    c->end_wanted = false;
    c->end_attempts = 0;
    if (r == NULL) {
        ing_fail(c, CODE(INTERNAL), true, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                 "End of track %s not confirmed: %s; reconnect and send End again", c->track_id,
                 call->err[0] ? call->err : "bad reply from chunk-store");
    } else if (!r->ok) {
        int close = r->retryable ? LWS_CLOSE_STATUS_UNEXPECTED_CONDITION
                                 : LWS_CLOSE_STATUS_POLICY_VIOLATION;
        ing_fail(c, r->code ? r->code : CODE(INTERNAL), r->retryable, close, "%s", r->message);
    } else {
        Seashore__V1__ServerFrame f = SEASHORE__V1__SERVER_FRAME__INIT;
        Seashore__V1__Ended e = SEASHORE__V1__ENDED__INIT;
        e.chunk_count = c->end.chunk_count;
        e.total_bytes = c->end.total_bytes;
        e.sha256 = c->end.sha256;
        f.kind_case = SEASHORE__V1__SERVER_FRAME__KIND_ENDED;
        f.ended = &e;
        c->ended = true;
        c->ended_count = c->end.chunk_count;
        ing_send_frame(c, &f);
    }
    seashore__v1__track_end_reply__free_unpacked(r, NULL);
}

/* ---- Ping ---- */

static void on_ping(ing_conn *c, const Seashore__V1__Ping *p, int64_t received_us)
{
    Seashore__V1__ServerFrame f = SEASHORE__V1__SERVER_FRAME__INIT;
    Seashore__V1__Pong pong = SEASHORE__V1__PONG__INIT;
    if (p->rtt_us > 0 && (c->best_rtt_us == 0 || p->rtt_us < c->best_rtt_us)) {
        c->best_rtt_us = p->rtt_us;
        c->best_offset_us = p->offset_us;
    }
    pong.nonce = p->nonce;
    pong.client_time_us = p->client_time_us;
    pong.server_receive_time_us = received_us;
    pong.server_send_time_us = ing_now_us();
    f.kind_case = SEASHORE__V1__SERVER_FRAME__KIND_PONG;
    f.pong = &pong;
    ing_send_frame(c, &f);
}

/* ---- Frames ---- */

static void on_frame(ing_conn *c, const uint8_t *buf, size_t len)
{
    int64_t received_us = ing_now_us();
    Seashore__V1__ClientFrame *f = seashore__v1__client_frame__unpack(NULL, len, buf);
    if (f == NULL || f->kind_case == SEASHORE__V1__CLIENT_FRAME__KIND__NOT_SET) {
        ing_fail(c, CODE(BAD_FRAME), false, LWS_CLOSE_STATUS_PROTOCOL_ERR,
                 "a %zu-byte websocket message is not a ClientFrame (not protobuf, truncated, "
                 "or no kind set)",
                 len);
    } else if (f->kind_case == SEASHORE__V1__CLIENT_FRAME__KIND_HELLO) {
        on_hello(c, f->hello);
    } else if (c->state == CONN_HELLO_WAIT) {
        ing_fail(c, CODE(HELLO_REQUIRED), false, LWS_CLOSE_STATUS_PROTOCOL_ERR,
                 "the first frame must be Hello");
    } else if (c->state == CONN_READY) {
        if (f->kind_case == SEASHORE__V1__CLIENT_FRAME__KIND_CHUNK)
            on_chunk(c, f->chunk);
        else if (f->kind_case == SEASHORE__V1__CLIENT_FRAME__KIND_END)
            on_end(c, f->end);
        else if (f->kind_case == SEASHORE__V1__CLIENT_FRAME__KIND_PING)
            on_ping(c, f->ping, received_us);
    }
    seashore__v1__client_frame__free_unpacked(f, NULL);
    rx_update(c);
}

/* Accumulates a websocket message's fragments up to the frame limit. */
static int on_receive(ing_conn *c, struct lws *wsi, const void *in, size_t len)
{
    size_t limit = (size_t)ing_cfg.max_chunk_bytes + ING_FRAME_ALLOWANCE;
    if (c->state == CONN_CLOSING)
        return 0;
    if (lws_is_first_fragment(wsi))
        c->rx_len = 0;
    if (!lws_frame_is_binary(wsi)) {
        ing_fail(c, CODE(BAD_FRAME), false, LWS_CLOSE_STATUS_PROTOCOL_ERR,
                 "text websocket messages are not part of the protocol");
        return 0;
    }
    if (c->rx_len + len > limit) {
        ing_fail(c, CODE(FRAME_TOO_LARGE), false, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                 "websocket message of more than %zu bytes; limit %zu (max_chunk_bytes %" PRId64
                 " + %d)",
                 c->rx_len + len, limit, ing_cfg.max_chunk_bytes, ING_FRAME_ALLOWANCE);
        return 0;
    }
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 65536;
        while (cap < c->rx_len + len)
            cap *= 2;
        uint8_t *p = realloc(c->rx, cap < limit ? cap : limit);
        if (p == NULL)
            return -1;
        c->rx = p;
        c->rx_cap = cap < limit ? cap : limit;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        on_frame(c, c->rx, c->rx_len);
        c->rx_len = 0;
        if (c->rx_cap > 4 * 65536) { /* give back a big buffer between chunks */
            free(c->rx);
            c->rx = NULL;
            c->rx_cap = 0;
        }
    }
    return 0;
}

/* ---- Calls coming back from the NATS workers ---- */

void ing_process_done_calls(void)
{
    for (ing_call *call = ing_pool_take_done(), *next; call; call = next) {
        next = call->next;
        ing_conn *c = call->owner;
        if (call->purpose == ING_CALL_COMMITTED_UPDATE ||
            call->purpose == ING_CALL_RESEND_REQUEST) {
            if (call->purpose == ING_CALL_COMMITTED_UPDATE)
                ing_on_committed(call->subject, call->seq, call->size);
            else
                ing_on_resend(call->subject, call->seq, call->err);
            ing_call_free(call);
            continue;
        }
        if (call->purpose == CALL_PUBLISH)
            on_publish_done(c, call); /* bookkeeping even if the socket is gone */
        else if (c->wsi != NULL && call->purpose == CALL_STATUS)
            on_status_reply(c, call);
        else if (c->wsi != NULL && call->purpose == CALL_CHUNK_INFO)
            on_chunk_info(c, call);
        else if (c->wsi != NULL && call->purpose == CALL_END)
            on_end_reply(c, call);
        if (c->wsi != NULL) {
            rx_update(c);
            lws_callback_on_writable(c->wsi);
        }
        ing_call_free(call);
        conn_unref(c);
    }
    /* memory freed: wake connections paused for the buffer budget */
    if (buffered_bytes <= (size_t)ing_cfg.buffer_bytes)
        for (ing_conn *c = conns; c; c = c->next)
            if (c->rx_paused_mem)
                rx_update(c);
}

void ing_on_committed(const char *track_id, uint64_t seq, uint64_t bytes)
{
    for (ing_conn *c = conns; c; c = c->next) {
        if (c->wsi == NULL || c->state != CONN_READY || strcmp(c->track_id, track_id) != 0 ||
            seq <= c->committed_seq)
            continue;
        c->committed_seq = seq;
        c->committed_bytes = bytes;
        c->committed_due = true;
        lws_callback_on_writable(c->wsi);
    }
}

/* The backend lost acked chunks from `from_seq` on: the client is told to
 * send them again and reconnects (1012), so its next Welcome carries the
 * resume point the backend has now. */
void ing_on_resend(const char *track_id, uint64_t from_seq, const char *reason)
{
    for (ing_conn *c = conns; c; c = c->next) {
        if (c->wsi == NULL || c->state != CONN_READY || strcmp(c->track_id, track_id) != 0)
            continue;
        Seashore__V1__ServerFrame f = SEASHORE__V1__SERVER_FRAME__INIT;
        Seashore__V1__Resend r = SEASHORE__V1__RESEND__INIT;
        r.from_seq = from_seq;
        r.reason = (char *)reason;
        f.kind_case = SEASHORE__V1__SERVER_FRAME__KIND_RESEND;
        f.resend = &r;
        ing_send_frame(c, &f);
        ss_log_warn("resend requested", "{s:s, s:I, s:s}", "track_id", track_id, "from_seq",
                    (long long)from_seq, "reason", reason);
        c->close_code = 1012; /* service restart: reconnect and resume */
        snprintf(c->close_reason, sizeof c->close_reason, "resend from seq %llu",
                 (unsigned long long)from_seq);
        c->state = CONN_CLOSING;
        rx_pause(c, true);
        lws_callback_on_writable(c->wsi);
    }
}

/* Draining: every connection stops reading; once its accepted chunks are
 * durable and acked it gets SHUTTING_DOWN and a 1001 close. */
void ing_drain_connections(void)
{
    for (ing_conn *c = conns; c; c = c->next) {
        if (c->wsi == NULL)
            continue;
        rx_update(c);
        if (c->queued == 0 && !c->end_sent && !c->resend_check && c->close_code == 0)
            ing_fail(c, CODE(SHUTTING_DOWN), true, LWS_CLOSE_STATUS_GOINGAWAY,
                     "server is draining; reconnect to resume track %s", c->track_id);
    }
}

/* ---- lws ---- */

static int on_filter(struct lws *wsi)
{
    char uri[64];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, ING_PATH) != 0)
        return 1; /* not our endpoint: refused */
    if (ss_drain_requested())
        return 1;
    return 0;
}

static int on_established(struct lws *wsi, ing_conn **slot)
{
    char tok[SS_INGEST_TOKEN_MAX_LEN + 1];
    ing_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->wsi = wsi;
    c->refs = 1;
    const char *value = lws_get_urlarg_by_name(wsi, "token=", tok, sizeof tok);
    if (value != NULL)
        c->query_token = strdup(value);
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    nconns++;
    *slot = c;
    ss_series_set(ss_metric_series(m_conns), (double)nconns);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)(ing_cfg.idle_timeout_ms / 1000));
    if ((int64_t)nconns > ing_cfg.max_connections)
        ing_fail(c, CODE(BACK_PRESSURE), true, 1013 /* try again later */,
                 "too many connections (limit %" PRId64 "); try again later",
                 ing_cfg.max_connections);
    return 0;
}

static void on_closed(ing_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
    ss_series_set(ss_metric_series(m_conns), (double)nconns);
    /* A new track that goes before any chunk is durable gives its room
     * in the chunk log back (chunk-store checks the log first). */
    if (c->new_track && c->durable_seq == 0)
        ing_pool_notify("chunkstore.admission.release", c->track_id);
    c->wsi = NULL;
    drop_queue(c);
    conn_unref(c);
}

int ing_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    ing_conn **slot = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return on_filter(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(wsi, slot);
    case LWS_CALLBACK_RECEIVE:
        if (*slot == NULL)
            return -1;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)(ing_cfg.idle_timeout_ms / 1000));
        return on_receive(*slot, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return *slot ? ing_write_next(*slot) : -1;
    case LWS_CALLBACK_CLOSED:
        if (*slot)
            on_closed(*slot);
        *slot = NULL;
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        ing_process_done_calls();
        return 0;
    default:
        return 0;
    }
}
