/* sender.h -- seashore-send's shared state: the options, the input source,
 * one track per websocket, and the functions the files share.
 *
 *   main.c    command line
 *   sender.c  the lws context, connections, reconnects, the run loop
 *   track.c   the protocol of one track: the frames written
 *   receive.c the protocol of one track: the server frames
 *   source.c  the input: a file read by offset, or stdin spooled to a file
 *   stats.c   ack latencies, the progress line, --stats-json, the report
 *
 * Everything runs on the one lws service thread: no locks. */
#ifndef SEASHORE_SEND_H
#define SEASHORE_SEND_H

#include <libwebsockets.h>
#include <openssl/evp.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "seashore/v1/ingest.pb-c.h"

#define PROG               "seashore-send"
#define PROTOCOL_NAME      "seashore.v1"
#define DEFAULT_PATH       "/v1/ingest"
#define PROTOCOL_VERSION   1
#define DEFAULT_CHUNK_SIZE 262144
#define MAX_CHUNK_SIZE     (16u << 20) /* largest --chunk-size */
#define SERVER_DEFAULT_MAX 1048576     /* max_chunk_bytes before/without Welcome */
#define MAX_TOKEN          8192
#define MAX_COPIES         10000
#define UUID_LEN           36
#define SHA256_LEN         32
#define FRAME_OVERHEAD     1024      /* protobuf bytes around Chunk.data, generously */
#define RX_MAX             (1 << 20) /* largest server frame we accept */
#define PING_INTERVAL_US   10000000
#define FIRST_PINGS        3
#define OFFSET_WAIT_US     2000000  /* End waits this long for the offset's report */
#define WELCOME_TIMEOUT_US 30000000 /* no Welcome this long after the upgrade: reconnect */
#define SILENCE_TIMEOUT_US 45000000 /* no frame at all this long (we ping every 10 s) */
#define BACKOFF_FIRST_MS   250
#define BACKOFF_CAP_MS     30000
#define HOLD_FALLBACK_US   1000000 /* TOO_MANY_INFLIGHT: wait for an Ack at most this */
#define SHUTDOWN_GRACE_US  2000000 /* closing handshakes at exit */
#define RESERVOIR_SIZE     100000

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* The parts of --url. */
typedef struct send_url {
    bool tls;           /* wss:// */
    char host[256];     /* name or address, IPv6 without brackets */
    char host_hdr[270]; /* Host header: host[:port], IPv6 in brackets */
    int port;
    char path[2048]; /* with the query, starting with '/' */
} send_url;

typedef struct send_opts {
    send_url url;
    char *token;                     /* owned */
    char (*track_ids)[UUID_LEN + 1]; /* `copies` ids; owned */
    Seashore__V1__TrackKind kind;
    const char *mime;
    uint32_t chunk_size;
    bool wait_committed;
    double rate; /* chunks per second per track, 0 = unlimited */
    unsigned copies;
    bool progress, quiet, verbose;
    const char *stats_json;
    unsigned give_up_after;        /* seconds, 0 = never */
    int64_t capture_start_unix_us; /* 0: the time sending starts */
    int64_t clock_skew_us;         /* added to the client's clock readings */
    const char *file;              /* path, or "-" for stdin */
} send_opts;

/* The input: bytes [0, avail) of fd are readable at any time; when eof is
 * set, avail is the stream's final length. */
typedef struct source {
    int fd;    /* the file, or the unlinked spool of stdin */
    int in_fd; /* dup of stdin being spooled (lws owns it), or -1 */
    uint64_t avail;
    bool eof;
    const char *name; /* for messages: the path or "stdin" */
} source;

/* Write time of an un-acked chunk, for the ack latency. */
typedef struct sent_slot {
    uint64_t seq;
    int64_t at_us; /* 0 = measured already */
} sent_slot;

typedef enum {
    TS_WAITING,    /* between connections (reconnect timer armed) */
    TS_CONNECTING, /* connect issued, no websocket yet */
    TS_OPEN,       /* websocket up */
    TS_DONE,       /* Ended (and committed if asked): nothing more to do */
    TS_FAILED,     /* permanent error, reported */
} track_state;

typedef struct track {
    struct sender *s;
    char id[UUID_LEN + 1];
    track_state state;
    struct lws *wsi;

    /* the current connection */
    bool hello_sent, welcomed, end_sent;
    unsigned pings_due;
    int close_code;        /* from the server's close frame, 0 = none */
    char close_text[128];  /* its reason text */
    const char *close_why; /* why we closed it ourselves, NULL if we did not */
    bool err_seen, err_retryable;
    bool resend_seen;        /* a Resend came: the server closes (1012), we resume */
    uint32_t retry_after_ms; /* from the connection's last Error */
    char err_text[160];      /* "CODE: message" of that Error */
    int64_t last_rx_us;      /* last complete server frame */
    unsigned char *rx;       /* fragments of the server frame being received */
    size_t rx_len, rx_cap;

    /* the stream; chunk n is bytes [n * chunk_size, ...) of the source */
    uint32_t chunk_size; /* fixed at the first Welcome, 0 before */
    uint32_t max_inflight;
    uint64_t next_send; /* next seq to write */
    uint64_t acked;     /* chunks 0..acked-1 are durable */
    uint64_t committed; /* chunks 0..committed-1 are in the object store */
    uint64_t durable_bytes, committed_bytes;
    uint64_t committed_updates; /* Committed frames that moved the point */
    uint64_t sent_high;         /* highest seq written or welcomed, + 1 */
    int64_t pause_until_us;     /* retry_after_ms of a refused chunk */
    int64_t hold_until_us;      /* TOO_MANY_INFLIGHT: until the next Ack (or this) */
    int64_t next_chunk_us;      /* --rate */
    /* Resends and Welcomes that asked again for chunks below the commit
     * point: the backend lost committed data */
    uint64_t committed_rerequests;

    /* the stream's sha256, over bytes [0, hashed) so far */
    EVP_MD_CTX *md;
    uint64_t hashed;
    bool digest_done;
    unsigned char digest[SHA256_LEN];

    /* the server's Ended, compared with our totals once they are final */
    bool srv_ended, srv_sha_ok;
    uint64_t srv_count, srv_bytes;
    unsigned char srv_sha[SHA256_LEN];
    bool ended;                                  /* Ended received and matching */
    int64_t end_sent_unix_us;                    /* wall clock of the first End written, 0 = none */
    int64_t ended_unix_us;                       /* wall clock of the matching Ended, 0 = none */
    int64_t first_ack_unix_us, last_ack_unix_us; /* wall clock of the first and the
                                                    last Ack that moved `acked` on */

    /* clock offset (server - client), best of the Pongs; rtt 0 = none.
     * The server learns it from our next Ping, so a better one is sent on
     * at once, and End waits (a little) until this connection's has been. */
    uint64_t nonce;
    int64_t best_offset_us, best_rtt_us;
    bool offset_unreported;
    int64_t pings_started_us;

    /* reconnects */
    unsigned attempt;        /* backoff exponent, reset on progress */
    int64_t outage_start_us; /* first failure since the last progress, 0 = none */
    unsigned reconnects;
    bool ever_connected;

    sent_slot *slots; /* max_inflight of them, indexed by seq % n */
    uint32_t nslots;

    uint64_t chunks_sent, bytes_sent; /* writes, resends included */

    lws_sorted_usec_list_t sul_conn; /* reconnect */
    lws_sorted_usec_list_t sul_ping; /* pings and the connection watchdog */
    lws_sorted_usec_list_t sul_wake; /* --rate and retry_after_ms */
} track;

typedef struct latency {
    int64_t *samples; /* reservoir */
    size_t n;
    uint64_t seen;
    int64_t max;
} latency;

typedef struct sender {
    const send_opts *o;
    struct lws_context *ctx;
    source src;
    track *tracks;
    unsigned ntracks;
    unsigned char *rbuf, *wbuf; /* chunk data read / frame written; shared */
    size_t rbuf_cap, wbuf_cap;
    int64_t start_us, capture_start_unix_us;
    bool stop, finishing, destroying;
    uint64_t rng;
    latency lat;
    lws_sorted_usec_list_t sul_progress, sul_shutdown;
    bool progress_shown; /* a progress line without newline is on stderr */
    int64_t rate_at_us;  /* MB/s of the progress line: last sample */
    uint64_t rate_bytes;
    double rate_mbs;
} sender;

/* ---- time and helpers (sender.c) ---- */
static inline int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The client's clock as it reports it: real time plus --clock-skew-ms. */
int64_t client_us(const sender *s);

uint64_t sender_rand(sender *s);
void say(sender *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void debug(sender *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_msg(sender *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hex_encode(const unsigned char *in, size_t n, char *out);
int sender_run(const send_opts *o);

/* ---- connections (sender.c) ---- */
void track_connect(track *t);
void track_fail(track *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void track_fail_error(track *t, const char *code_name, const char *message);
void track_finished(track *t);
void track_progress(track *t);
void track_wake_at(track *t, int64_t at_us);
void track_start_pings(track *t);

/* ---- protocol (track.c, receive.c) ---- */
int track_writeable(track *t);
uint64_t track_chunk_count(const track *t);
uint64_t track_bytes_before(const track *t, uint64_t seq);
void track_maybe_done(track *t);
int track_settle_ended(track *t);
int track_receive(track *t, const void *in, size_t len, bool final, bool binary);
const char *error_code_name(int code, char *tmp, size_t tmplen);

/* ---- input (source.c) ---- */
int source_open(sender *s, const char *path);
int source_read(source *src, uint64_t off, unsigned char *buf, size_t len);
int source_adopt_stdin(sender *s);
int source_stdin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len);
void source_close(source *src);

/* ---- statistics (stats.c) ---- */
int latency_init(latency *l);
void latency_add(sender *s, int64_t us);
void latency_free(latency *l);
void progress_start(sender *s);
void progress_clear(sender *s);
void progress_final(sender *s);
int stats_write(sender *s);
int report_tracks(sender *s);

#endif
