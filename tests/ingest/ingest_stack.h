/* ingest_stack.h -- the durable-ingest path on loopback for tests:
 * nats-server (JetStream), PostgreSQL with the migrations, chunk-store and
 * ingest-recorder, a host/session/participant to record for, tokens, and
 * reading a track back through chunkstore.read. */
#ifndef INGEST_STACK_H
#define INGEST_STACK_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "harness_s3.h"

#define STACK_SECRET    "ingest-test-secret-0123456789abcdef0123"
#define STACK_MAX_ENV   48
#define STACK_S3_REGION "us-east-1"

typedef struct ingest_stack {
    harness *h;
    harness_nats nats;
    harness_pg pg;
    pid_t ingest_pid, store_pid;
    int ws_port, ingest_ops_port, store_ops_port;
    char ws_url[128];
    char session_id[37], participant_id[37], other_participant_id[37];
    const char *extra_env[8]; /* "NAME=value" added to both services */
    bool with_issuer;         /* also start token-issuer (HTTP API) and s3rver */
    harness_s3 s3;
    pid_t issuer_pid;
    int http_port, issuer_ops_port;
    char api_url[64];
    /* the upload path (issue 5) */
    bool with_swift;             /* S3 is Swift's s3api (verifies SigV4), not s3rver */
    bool with_uploader;          /* also start r2-uploader (needs with_swift or with_issuer) */
    const char *uploader_env[6]; /* "NAME=value" for r2-uploader only, replacing defaults */
    pid_t uploader_pid;
    int uploader_ops_port;
    char swift_dir[512], swift_access_key[64], swift_secret_key[64];
    /* the editor files (issue 6) */
    bool with_muxer;          /* also start the muxer (needs with_uploader) */
    const char *muxer_env[4]; /* "NAME=value" for the muxer only, replacing defaults */
    pid_t muxer_pid;
    int muxer_ops_port;
} ingest_stack;

/* Starts everything; 0 when both services are ready. */
int stack_start(ingest_stack *s, const char *test_name);
/* SIGTERMs both services and stops everything; returns the number of
 * problems (a service that did not exit 0 or logged a sanitizer report). */
int stack_stop(ingest_stack *s);
/* Stops one service with SIGTERM; 0 when it exited 0 with a clean log. */
int stack_stop_service(ingest_stack *s, pid_t *pid, const char *name);

pid_t stack_start_ingest(ingest_stack *s);
/* Starts r2-uploader with uploader_env and waits until it runs (its /readyz
 * may stay 503 when the env points it at a broken store). */
pid_t stack_start_uploader(ingest_stack *s);
pid_t stack_start_store(ingest_stack *s);
/* Starts token-issuer and waits until it is ready and listening. */
pid_t stack_start_issuer(ingest_stack *s);
/* Starts the muxer with muxer_env and waits for its /healthz. */
pid_t stack_start_muxer(ingest_stack *s);
/* Waits for a service's /readyz to answer 200. */
int stack_wait_ready(int ops_port, int timeout_ms);

/* Creates a host API key with token-issuer's CLI (caller frees) or NULL. */
char *stack_api_key(ingest_stack *s, const char *email);
/* `method` the token-issuer's `path` with "Authorization: Bearer <key>":
 * the HTTP status, or -1 when no answer came. */
long stack_api_status(ingest_stack *s, const char *method, const char *path, const char *key);

/* A fresh ingest token for the stack's participant (caller frees). */
char *stack_token(const ingest_stack *s, const char *participant_id, int64_t ttl_s);

/* Reads the whole track through chunkstore.read; caller frees *out. */
int stack_read_track(ingest_stack *s, const char *track_id, uint8_t **out, size_t *len);

/* Reads one byte range through chunkstore.read; caller frees *out. */
int stack_read_range(ingest_stack *s, const char *track_id, uint64_t offset, uint32_t length,
                     uint8_t **out, size_t *len);

/* Posts file with seashore-send (log `name`), as a new track or as
 * track_id; waits for it and returns its exit status. */
int stack_send(ingest_stack *s, const char *name, const char *file, const char *chunk_size,
               const char *track_id);

/* Runs a program with the test environment, waits up to timeout_ms;
 * returns the exit status or -1. Output goes to <dir>/<name>.log. */
int stack_run(ingest_stack *s, const char *name, char *const argv[], int timeout_ms);
/* Starts a program (not waiting). */
pid_t stack_spawn(ingest_stack *s, const char *name, char *const argv[]);

/* Runs a Node test script (path under the source tree) with the test
 * environment and prints its output; returns its exit status (the number of
 * failed cases) or -1. */
int stack_run_node(ingest_stack *s, const char *name, const char *script_rel, int timeout_ms);

/* The lines of <dir>/<name>.log (caller frees). */
char *stack_log(ingest_stack *s, const char *name);

/* The object store as the tests see it (s->s3): Swift or s3rver. */
int stack_s3_create_bucket(ingest_stack *s, const char *bucket);
/* A client for s->s3 (caller frees with ss_s3_client_free) or NULL. */
struct ss_s3_client *stack_s3_client(ingest_stack *s);
/* sha256 and size of a whole object, read with range GETs. */
int stack_s3_object_sha256(ingest_stack *s, const char *key, uint8_t digest[32], uint64_t *size);

#endif
