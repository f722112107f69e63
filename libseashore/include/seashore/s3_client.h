/* s3_client.h -- S3 object and multipart requests through libcurl, for the
 * services that write to the object store (r2-uploader, muxer).
 *
 * One ss_s3_client per process holds the configuration and a curl share
 * handle (DNS answers and TLS sessions are reused across threads). Each
 * thread that makes requests owns one ss_s3_conn (a curl easy handle
 * attached to the share) that keeps its connection from one request to the
 * next; a conn is used by one thread at a time. Connections themselves are
 * not shared between threads: libcurl documents a shared connection cache
 * as unsafe between concurrent threads.
 *
 * Every request is signed by libcurl (CURLOPT_AWS_SIGV4). UploadPart and
 * CompleteMultipartUpload carry a signed Content-MD5, which the store
 * verifies against the body, and go as UNSIGNED-PAYLOAD; the others carry
 * their real sha256 in x-amz-content-sha256. Requests are
 * addressed path-style (endpoint/bucket/key), and fail with a filled
 * ss_s3_result that says whether retrying can help. Functions return 0 on
 * success and -1 on failure; nothing is retried here (callers own the retry
 * policy).
 */
#ifndef SEASHORE_S3_CLIENT_H
#define SEASHORE_S3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3.h"

typedef struct ss_s3_client ss_s3_client;
typedef struct ss_s3_conn ss_s3_conn;

typedef struct ss_s3_client_opts {
    long connect_timeout_ms; /* TCP/TLS connect; 0 = 10000 */
    /* A transfer slower than 1 KiB/s for this long is cut (a stalled
     * store); 0 = 30000. */
    long stall_timeout_ms;
    /* Parts per ListParts request (max-parts); 0 = 1000, S3's largest.
     * Tests lower it to exercise paging. */
    int list_parts_page;
} ss_s3_client_opts;

/* Outcome of a failed request. */
typedef struct ss_s3_result {
    long http_status;  /* 0 when no HTTP answer arrived */
    int curl_code;     /* CURLcode; 0 when the transfer itself worked */
    bool transient;    /* connection error, timeout, 5xx, 408, 429, BadDigest: retry */
    char code[64];     /* S3 <Code> (e.g. "NoSuchBucket", "SignatureDoesNotMatch"),
                          or for transport failures "curl_<n>" or "BadETag" */
    char message[512]; /* S3 <Message> or the curl error text; never a secret */
} ss_s3_result;

/* One part of a multipart upload, as listed by the store or as sent to
 * CompleteMultipartUpload. */
typedef struct ss_s3_part {
    int part_number;
    char etag[80]; /* with its quotes, as the store returned it */
    uint64_t size;
} ss_s3_part;

/* A new client for cfg (strings are copied). 0 or -1 with the reason. */
int ss_s3_client_new(const ss_s3_config *cfg, const ss_s3_client_opts *opts, ss_s3_client **out,
                     char *err, size_t errlen);
/* Frees c; every conn of c must have been freed before. NULL is ok. */
void ss_s3_client_free(ss_s3_client *c);

/* A connection handle for one thread; NULL when out of memory. */
ss_s3_conn *ss_s3_conn_new(ss_s3_client *c);
/* NULL is ok. */
void ss_s3_conn_free(ss_s3_conn *conn);

/* Called about once a second while a request runs (e.g. to tell JetStream a
 * work item is still in progress). Return non-zero to abort the request
 * (the result is then transient, code "aborted"). */
typedef int (*ss_s3_progress_fn)(void *arg);
void ss_s3_conn_set_progress(ss_s3_conn *conn, ss_s3_progress_fn fn, void *arg);

/* CreateMultipartUpload (POST key?uploads=). upload_id_out gets the
 * UploadId (NUL-terminated; 256 bytes is always enough). */
int ss_s3_create_multipart(ss_s3_conn *conn, const char *key, const char *content_type,
                           char *upload_id_out, size_t idlen, ss_s3_result *res);

/* UploadPart: sends data with Content-MD5 and its sha256; checks that an
 * MD5-shaped ETag equals the MD5 of data (code "BadETag" otherwise). etag_out
 * (80 bytes) gets the ETag with quotes; md5_out (16 bytes, may be NULL) the
 * MD5 of data. */
int ss_s3_upload_part(ss_s3_conn *conn, const char *key, const char *upload_id, int part_number,
                      const uint8_t *data, size_t len, char *etag_out, uint8_t *md5_out,
                      ss_s3_result *res);

/* The digests of a body that go in its request (Content-MD5). */
typedef struct ss_s3_digests {
    uint8_t md5[16];
} ss_s3_digests;

/* ss_s3_upload_part with the body's digests computed by the caller (for
 * instance while the bytes arrived, or once for several attempts). They
 * are sent as they are: the store refuses the part if they are wrong. */
int ss_s3_upload_part_hashed(ss_s3_conn *conn, const char *key, const char *upload_id,
                             int part_number, const uint8_t *data, size_t len,
                             const ss_s3_digests *digests, char *etag_out, ss_s3_result *res);

/* CompleteMultipartUpload with parts (ascending part numbers). An <Error>
 * inside a 200 answer is a failure. */
int ss_s3_complete_multipart(ss_s3_conn *conn, const char *key, const char *upload_id,
                             const ss_s3_part *parts, size_t nparts, ss_s3_result *res);

/* AbortMultipartUpload. An upload the store does not know (NoSuchUpload) is
 * success: the goal, no upload, holds. */
int ss_s3_abort_multipart(ss_s3_conn *conn, const char *key, const char *upload_id,
                          ss_s3_result *res);

/* ListParts, every page. *parts_out (caller frees) gets *nparts_out parts in
 * ascending order. */
int ss_s3_list_parts(ss_s3_conn *conn, const char *key, const char *upload_id,
                     ss_s3_part **parts_out, size_t *nparts_out, ss_s3_result *res);

/* HEAD key: size and ETag (80 bytes, may be NULL). A missing object is a
 * failure with http_status 404 and code "NoSuchKey". */
int ss_s3_head_object(ss_s3_conn *conn, const char *key, uint64_t *size_out, char *etag_out,
                      ss_s3_result *res);

/* GET bytes [offset, offset + len) of key into buf; *got_out is how many
 * arrived (less than len only at the end of the object; 0 when offset is at
 * or past the end, which the store answers 416). */
int ss_s3_get_range(ss_s3_conn *conn, const char *key, uint64_t offset, size_t len, uint8_t *buf,
                    size_t *got_out, ss_s3_result *res);

/* DeleteObject; a missing key is success. */
int ss_s3_delete_object(ss_s3_conn *conn, const char *key, ss_s3_result *res);

/* CreateBucket (PUT endpoint/bucket), for tests and `make dev` only: the
 * services expect their bucket to exist. A bucket we already own is
 * success. */
int ss_s3_create_bucket(ss_s3_conn *conn, ss_s3_result *res);

#endif
