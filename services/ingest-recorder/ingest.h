/* ingest.h -- ingest-recorder's shared state: configuration, the
 * connection object, and the frame helpers. */
#ifndef INGEST_H
#define INGEST_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "nats_pool.h"
#include "seashore/ingest_token.h"
#include "seashore/v1/chunks.pb-c.h"
#include "seashore/v1/ingest.pb-c.h"

#define ING_PROTOCOL_NAME   "seashore.v1"
#define ING_PATH            "/v1/ingest"
#define ING_PROTOCOL_VER    1
#define ING_FRAME_ALLOWANCE 16384 /* frame bytes beyond max_chunk_bytes */
#define ING_MAX_OUT_FRAMES  64    /* unsent server frames before "slow consumer" */
#define ING_MAX_TEXT        255

typedef struct ing_config {
    const char *ws_listen;
    const char *token_secret;
    int64_t max_chunk_bytes, max_inflight, idle_timeout_ms, max_connections;
    int64_t buffer_bytes, publish_threads, request_threads, nats_timeout_ms, end_timeout_ms;
} ing_config;

typedef struct ing_chunk {
    struct ing_chunk *next;
    uint64_t seq, offset;
    uint8_t *data;
    size_t len;
    uint8_t sha256[32];
    int64_t received_us;
} ing_chunk;

typedef struct ing_out {
    struct ing_out *next;
    size_t len;
    uint8_t buf[]; /* LWS_PRE bytes of headroom, then the frame */
} ing_out;

typedef enum { CONN_HELLO_WAIT, CONN_STATUS_WAIT, CONN_READY, CONN_CLOSING } ing_conn_state;

typedef struct ing_conn {
    struct ing_conn *prev, *next; /* all live connections */
    struct lws *wsi;              /* NULL once closed */
    int refs;                     /* 1 for the socket + 1 per call in flight */
    ing_conn_state state;
    char *query_token; /* token from the upgrade URL, or NULL */

    ss_ingest_claims claims;
    char track_id[SS_UUID_LEN + 1];
    char mime_type[ING_MAX_TEXT + 1];
    Seashore__V1__TrackKind kind;
    int64_t capture_start_us;

    uint64_t next_seq, next_offset;      /* next chunk accepted */
    uint64_t durable_seq, durable_bytes; /* acked */
    uint64_t committed_seq, committed_bytes;
    uint64_t last_stream_seq; /* stream seq of chunk durable_seq-1 */
    bool ack_due, committed_due;

    ing_chunk *queue_head, *queue_tail; /* accepted, not yet published */
    size_t queued;                      /* chunks in queue + publishing */
    size_t queued_bytes;
    ing_chunk *publishing; /* the one publish in flight */
    bool resend_check;     /* a chunkstore.chunk call in flight */

    bool end_wanted, end_sent, ended;
    bool new_track;   /* admitted at this Hello (chunk-store had no chunk of it) */
    int end_attempts; /* chunkstore.end requests for the current End */
    Seashore__V1__End end;
    uint8_t end_sha[32];
    uint64_t ended_count;

    ing_out *out_head, *out_tail;
    size_t out_count;
    int close_code; /* close after flushing, when set */
    char close_reason[124];

    uint8_t *rx;
    size_t rx_len, rx_cap;
    bool rx_paused, rx_paused_mem;

    int64_t best_rtt_us, best_offset_us;
} ing_conn;

extern ing_config ing_cfg;
extern struct lws_context *ing_context;

/* conn.c */
int ing_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len);
void ing_process_done_calls(void);
void ing_on_committed(const char *track_id, uint64_t seq, uint64_t bytes);
void ing_on_resend(const char *track_id, uint64_t from_seq, const char *reason);
void ing_drain_connections(void);
size_t ing_connection_count(void);
void ing_count_error_frame(const char *code_name);
int ing_metrics_init(void);

/* frames.c: server frames onto a connection's output queue. */
void ing_send_frame(ing_conn *c, const Seashore__V1__ServerFrame *f);
void ing_send_error(ing_conn *c, Seashore__V1__ErrorCode code, bool retryable, uint64_t seq,
                    uint32_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Sends an Error and closes the connection with `close_code` once flushed. */
void ing_fail(ing_conn *c, Seashore__V1__ErrorCode code, bool retryable, int close_code,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int ing_write_next(ing_conn *c);
int64_t ing_now_us(void);

#endif
