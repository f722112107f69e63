/* uploader.h -- what the parts of r2-uploader share: configuration,
 * connections, the work-item plumbing and the PostgreSQL view of an upload.
 *
 * Flow (docs/upload.md): PartReady (work.upload) -> read the part from
 * the chunk log -> UploadPart -> ETag in upload_parts -> committed point in
 * tracks -> CommittedUpdate; TrackComplete (work.complete) -> verify the
 * parts (PostgreSQL against ListParts) -> CompleteMultipartUpload -> track
 * complete -> TrackUploaded (work.mux); SessionDelete -> abort and delete.
 */
#ifndef R2_UPLOADER_H
#define R2_UPLOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "seashore/ingest_token.h"
#include "seashore/s3_client.h"
#include "seashore/service.h"
#include "seashore/work.h"

#define UP_STREAM_CHUNKS   "CHUNKS"
#define UP_STREAM_WORK     "WORK"
#define UP_STREAM_SESSIONS "SESSIONS"
#define UP_CONSUMER_PARTS  "r2-uploader-parts"
#define UP_CONSUMER_DONE   "r2-uploader-complete"
#define UP_CONSUMER_DELETE "r2-uploader"
#define UP_KEY_MAX         512
#define UP_ID_MAX          256

typedef struct up_ctx {
    ss_service *svc;
    ss_s3_client *s3;
    int64_t concurrency;
    int64_t ack_wait_ms, retry_max_ms, stall_timeout_ms, store_timeout_ms;
} up_ctx;

extern up_ctx up;

/* ---- work items (work.c) ---- */

/* One worker thread's state: the work item (libseashore work.h) and the
 * thread's own resources. */
typedef struct up_item {
    ss_work_item w; /* first: the pool hands out &w */
    ss_s3_conn *s3; /* this thread's store connection */
    ss_pg *pg;      /* this thread's database connection */
    ss_nats reads;  /* this thread's NATS connection for chunk-log reads */
    uint8_t *buf;   /* part buffer, grown to the largest part seen */
    size_t buf_cap;
    int64_t read_ms, store_ms; /* the last part's read and upload times */
    ss_s3_digests digests;     /* of buf[0..size) after up_read_part */
} up_item;

/* Starts the consumer threads; stops them (after the drain) with the join. */
int up_workers_start(void);
void up_workers_join(void);

/* ---- PostgreSQL (upload_db.c) ---- */

typedef struct up_track {
    bool found;
    char session_id[SS_UUID_LEN + 1], participant_id[SS_UUID_LEN + 1];
    char session_state[16], track_state[16];
    bool has_upload;
    char upload_id[UP_ID_MAX], upload_state[16], object_key[UP_KEY_MAX];
    uint64_t part_size;
} up_track;

int up_db_track_load(ss_pg *pg, const char *track_id, up_track *t, char *err, size_t errlen);

/* Records a new multipart upload unless one exists or the session is being
 * deleted. Returns 1 recorded, 0 not recorded (then reload), -1 error. */
int up_db_upload_insert(ss_pg *pg, const char *track_id, const char *key, const char *upload_id,
                        uint64_t part_size, char *err, size_t errlen);

/* The ETag recorded for a part, or "" when none; -1 on error. */
int up_db_part_etag(ss_pg *pg, const char *track_id, int part_number, char *etag, size_t len,
                    char *err, size_t errlen);

int up_db_part_record(ss_pg *pg, const char *track_id, int part_number, uint64_t offset,
                      uint64_t size, const char *etag, const uint8_t md5[16], char *err,
                      size_t errlen);

/* Moves tracks.committed_seq/bytes to the last chunk wholly inside the
 * contiguous prefix of recorded parts; seq and bytes get the committed point
 * (0 when nothing is committed). */
int up_db_commit_advance(ss_pg *pg, const char *track_id, uint64_t *seq, uint64_t *bytes, char *err,
                         size_t errlen);

/* Every recorded part, ascending (caller frees *parts). */
int up_db_parts_list(ss_pg *pg, const char *track_id, ss_s3_part **parts, size_t *n, char *err,
                     size_t errlen);

/* The upload failed for good: recorded with the store's code and message;
 * the track fails too once it has ended (a recording track keeps
 * recording: its chunks stay in the log). */
int up_db_upload_fail(ss_pg *pg, const char *track_id, const char *key, uint64_t part_size,
                      const char *code, const char *message, char *err, size_t errlen);

int up_db_upload_completed(ss_pg *pg, const char *track_id, char *err, size_t errlen);

/* ---- handlers ---- */

/* Publishes a notice on core NATS (at most once; PostgreSQL holds the truth). */
void up_notify_committed(const char *track_id, uint64_t seq, uint64_t bytes);
void up_notify_failed(const char *track_id, const char *code, const char *message);

/* Reads [offset, offset + size) of a track from the chunk log into it->buf
 * and its digests into it->digests, hashing as the chunks arrive
 * (part_read.c); retries transient failures. 0, -1 when the bytes left
 * the chunk log (why), -2 when draining. */
int up_read_part(up_item *it, const char *track_id, uint64_t offset, uint64_t size, char *why,
                 size_t whylen);

/* Uploads it->buf[0..size) (digests in it->digests, from up_read_part)
 * as part_number and records it, retrying
 * transient store failures. 0, -1 permanent (res), -2 draining. */
int up_upload_part(up_item *it, const up_track *t, const char *track_id, int part_number,
                   uint64_t offset, uint64_t size, ss_s3_result *res);

/* Fails the track's upload: PostgreSQL, then the notice. */
void up_fail(up_item *it, const char *track_id, const char *key, uint64_t part_size,
             const char *code, const char *message);

ss_work_verdict up_handle_part(up_item *it, const uint8_t *data, size_t len);
ss_work_verdict up_handle_complete(up_item *it, const uint8_t *data, size_t len);
ss_work_verdict up_handle_session_delete(up_item *it, const uint8_t *data, size_t len);

#endif
