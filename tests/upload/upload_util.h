/* upload_util.h -- what the uploader's tests share: media files, polling
 * PostgreSQL, sending in the background, and the object's sha256. */
#ifndef UPLOAD_UTIL_H
#define UPLOAD_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ingest_stack.h"

#define UP_PART (5 << 20)

/* Writes `bytes` random bytes to <dir>/<name>; path_out gets the path. */
int up_make_media(ingest_stack *s, const char *name, long bytes, char *path_out, size_t len);

/* sha256 of a file. */
int up_file_sha256(const char *path, uint8_t digest[32]);

/* Starts seashore-send on file for the stack's participant (or the given
 * session/participant) at `rate` chunks/s of 256 KiB; extra args (NULL
 * ended, may be NULL) are appended. */
pid_t up_send_bg(ingest_stack *s, const char *name, const char *file, int rate,
                 const char *session_id, const char *participant_id, const char *const *extra);

/* Waits for the sender to exit; its exit status or -1. */
int up_send_wait(ingest_stack *s, pid_t pid, int timeout_ms);

/* Polls `sql` (first value of the first row) until it equals want; true
 * when it did within timeout_ms. The last value is left in last (if any). */
bool up_wait_sql(ingest_stack *s, const char *sql, const char *want, int timeout_ms, char *last,
                 size_t lastlen);

/* The first value of sql as a string ("" when no row); caller-sized. */
int up_sql(ingest_stack *s, const char *sql, char *out, size_t len);

/* up_send_bg, then waits until chunk-store indexed the new track and
 * writes its id (37 bytes) to track_id; the pid, or -1 (then no sender
 * runs). participant_id NULL: the stack's participant. */
pid_t up_send_track(ingest_stack *s, const char *name, const char *file, int rate,
                    const char *session_id, const char *participant_id, const char *const *extra,
                    char *track_id);

/* Starts tests/harness/fault_proxy.mjs in front of the stack's S3 store
 * with the given options (NULL ended; --listen and --target are added) and
 * waits for its port; writes "R2_ENDPOINT=<the proxy>" to endpoint_env.
 * The pid, or -1. */
pid_t up_fault_proxy_start(ingest_stack *s, const char *const *opts, char *endpoint_env,
                           size_t len);

/* A session of the stack's host made for deleting: one guest, a track of
 * `file` sent into it at `rate`, and the first part of its upload
 * recorded. session and participant get the ids (37 bytes each), track_id
 * the track's. The sender's pid (still sending), or -1 (then none runs). */
pid_t up_doomed_track(ingest_stack *s, const char *file, int rate, char *session, char *participant,
                      char *track_id);
/* DELETE /v1/sessions/{sid} with the host's API key: the HTTP status, or -1. */
int up_api_delete_session(ingest_stack *s, const char *session);
/* The raw object's sha256 equals the file's. */
bool up_object_matches(ingest_stack *s, const char *track_id, const char *file);
/* Stops the fault proxy and reads its summary line: how many requests it
 * spoiled, and (into *kinds) of how many kinds. */
int up_proxy_faults(ingest_stack *s, pid_t proxy, const char *seed, int *kinds);

#endif
