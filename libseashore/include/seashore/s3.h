/* s3.h -- the S3-compatible object store (Cloudflare R2, AWS S3, MinIO,
 * Ceph, Swift s3api) through libcurl.
 *
 * Requests are signed by libcurl itself (CURLOPT_AWS_SIGV4, never by hand),
 * addressed path-style (endpoint/bucket/key), region "auto" for R2.
 */
#ifndef SEASHORE_S3_H
#define SEASHORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct ss_s3_config {
    const char *endpoint;   /* scheme://host[:port], no trailing slash, e.g. R2's account URL */
    const char *access_key; /* R2_ACCESS_KEY_ID (secret) */
    const char *secret_key; /* R2_SECRET_ACCESS_KEY (secret) */
    const char *bucket;     /* R2_BUCKET_NAME */
    const char *region;     /* "auto" for R2, e.g. "us-east-1" for AWS */
} ss_s3_config;

/* Longest validity of a presigned URL SigV4 allows: 7 days. */
#define SS_S3_PRESIGN_MAX_S 604800

/* A presigned GET URL for key, valid expires_s seconds from now (path-style,
 * SigV4 query signing, UNSIGNED-PAYLOAD): exactly what the AWS SDK's
 * getSignedUrl(GetObjectCommand) returns for the same inputs.
 * content_disposition (NULL: none) is signed in as
 * response-content-disposition: the store answers with that
 * Content-Disposition (a file name for the download). 0 and *url_out
 * (caller frees), or -1 with the reason in err. */
int ss_s3_presign_get(const ss_s3_config *c, const char *key, const char *content_disposition,
                      int64_t expires_s, time_t now, char **url_out, char *err, size_t errlen);

/* HEAD <endpoint>/<bucket>: 0 when the store answers 200. Otherwise -1 and
 * a reason such as "HTTP 403 from the object store" in why. */
int ss_s3_head_bucket(const ss_s3_config *cfg, char *why, size_t whylen);

/* Readiness check for ss_ops_add_ready_check(): arg is the ss_s3_config.
 * Results are cached for a few seconds so probes do not load the store. */
bool ss_s3_ready(void *arg, char *why, size_t whylen);

#endif
