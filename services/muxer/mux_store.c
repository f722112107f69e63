/* mux_store.c -- outputs to the object store: multipart uploads of files
 * through one part buffer per worker, each request retried while the
 * store's failures are transient. */
#include "muxer.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"

#define MAX_PARTS 10000

typedef struct put_state {
    mx_worker *wk;
    const char *key;
    char upload_id[256];
    ss_s3_part *parts;
    int nparts;
} put_state;

/* -1 when the failure is permanent, -2 when draining, 0 to retry. */
static int retry_or_stop(mx_worker *wk, const char *what, const char *key, int attempt,
                         const ss_s3_result *res)
{
    if (!res->transient)
        return -1;
    ss_log_warn("object store request failed, retrying", "{s:s, s:s, s:s, s:s, s:i}", "request",
                what, "key", key, "code", res->code, "message", res->message, "attempt", attempt);
    return ss_work_retry_sleep(&wk->w, attempt) != 0 ? -2 : 0;
}

static int put_create(put_state *p, const char *content_type, ss_s3_result *res)
{
    for (int attempt = 0;; attempt++) {
        if (ss_s3_create_multipart(p->wk->s3, p->key, content_type, p->upload_id,
                                   sizeof p->upload_id, res) == 0)
            return 0;
        int rc = retry_or_stop(p->wk, "CreateMultipartUpload", p->key, attempt, res);
        if (rc != 0)
            return rc;
    }
}

static int put_part(put_state *p, size_t len, ss_s3_result *res)
{
    ss_s3_part *part = &p->parts[p->nparts];
    part->part_number = p->nparts + 1;
    part->size = len;
    for (int attempt = 0;; attempt++) {
        if (ss_s3_upload_part(p->wk->s3, p->key, p->upload_id, part->part_number, p->wk->buf, len,
                              part->etag, NULL, res) == 0) {
            p->nparts++;
            return 0;
        }
        int rc = retry_or_stop(p->wk, "UploadPart", p->key, attempt, res);
        if (rc != 0)
            return rc;
    }
}

/* The ETag S3 gives a completed multipart object: the MD5 of the parts'
 * binary MD5s, "-", the number of parts. 0, or -1 if a part's ETag is not
 * an MD5. */
static int multipart_etag(const ss_s3_part *parts, size_t n, char out[48])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t digest[16];
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1 ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t bin[16];
        const char *hex = parts[i].etag + (parts[i].etag[0] == '"');
        for (int b = 0; rc == 0 && b < 16; b++)
            rc = sscanf(hex + 2 * b, "%2hhx", &bin[b]) == 1 ? 0 : -1;
        if (rc == 0)
            EVP_DigestUpdate(md, bin, sizeof bin);
    }
    if (rc == 0 && EVP_DigestFinal_ex(md, digest, NULL) != 1)
        rc = -1;
    EVP_MD_CTX_free(md);
    for (int b = 0; rc == 0 && b < 16; b++)
        snprintf(out + 2 * b, 3, "%02x", digest[b]);
    if (rc == 0)
        snprintf(out + 32, 16, "-%zu", n);
    return rc;
}

/* After a failed Complete: did an earlier attempt go through (its answer
 * lost to a timeout, then NoSuchUpload or an error for the retry)? The
 * object is there with the parts' total size and, where the store gives
 * multipart ETags, theirs. */
static bool completed_before(mx_worker *wk, const char *key, const ss_s3_part *parts, size_t n)
{
    char want[48], etag[80] = "";
    uint64_t size = 0, total = 0;
    ss_s3_result res;
    for (size_t i = 0; i < n; i++)
        total += parts[i].size;
    if (ss_s3_head_object(wk->s3, key, &size, etag, &res) != 0 || size != total)
        return false;
    if (strchr(etag, '-') == NULL || multipart_etag(parts, n, want) != 0)
        return true; /* no multipart ETag to compare: the size must do */
    return strstr(etag, want) != NULL;
}

int mx_store_complete(mx_worker *wk, const char *key, const char *upload_id,
                      const ss_s3_part *parts, size_t n, ss_s3_result *res)
{
    for (int attempt = 0;; attempt++) {
        if (ss_s3_complete_multipart(wk->s3, key, upload_id, parts, n, res) == 0)
            return 0;
        if (completed_before(wk, key, parts, n)) {
            ss_log_info("an earlier CompleteMultipartUpload went through", "{s:s}", "key", key);
            return 0;
        }
        int rc = retry_or_stop(wk, "CompleteMultipartUpload", key, attempt, res);
        if (rc != 0)
            return rc;
    }
}

static int put_complete(put_state *p, ss_s3_result *res)
{
    return mx_store_complete(p->wk, p->key, p->upload_id, p->parts, (size_t)p->nparts, res);
}

/* Reads the file part by part into wk->buf, hashing it, and uploads. */
static int put_parts(put_state *p, FILE *f, EVP_MD_CTX *sha, uint64_t *size, ss_s3_result *res)
{
    for (;;) {
        size_t n = fread(p->wk->buf, 1, (size_t)mx.part_size, f);
        if (ferror(f)) {
            snprintf(res->code, sizeof res->code, "LocalReadError");
            snprintf(res->message, sizeof res->message, "reading the output file: %s",
                     strerror(errno));
            return -1;
        }
        if (n == 0 && p->nparts > 0)
            return 0;
        if (p->nparts == MAX_PARTS) {
            snprintf(res->code, sizeof res->code, "EntityTooLarge");
            snprintf(res->message, sizeof res->message, "more than %d parts of %lld bytes",
                     MAX_PARTS, (long long)mx.part_size);
            return -1;
        }
        EVP_DigestUpdate(sha, p->wk->buf, n);
        *size += n;
        int rc = put_part(p, n, res);
        if (rc != 0 || n < (size_t)mx.part_size)
            return rc;
    }
}

int mx_store_put_file(mx_worker *wk, const char *key, const char *path, const char *content_type,
                      uint64_t *size_out, uint8_t *sha256_out, ss_s3_result *res)
{
    put_state p = {.wk = wk, .key = key};
    int rc = -1;
    *size_out = 0;
    memset(res, 0, sizeof *res);
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    p.parts = calloc(MAX_PARTS, sizeof *p.parts);
    if (f == NULL || sha == NULL || p.parts == NULL ||
        EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        snprintf(res->code, sizeof res->code, "LocalReadError");
        snprintf(res->message, sizeof res->message, "opening %s: %s", path, strerror(errno));
        goto out;
    }
    rc = put_create(&p, content_type, res);
    if (rc == 0)
        rc = put_parts(&p, f, sha, size_out, res);
    if (rc == 0)
        rc = put_complete(&p, res);
    if (rc == 0 && EVP_DigestFinal_ex(sha, sha256_out, NULL) != 1)
        rc = -1;
    if (rc != 0 && p.upload_id[0]) {
        ss_s3_result ignored;
        ss_s3_abort_multipart(wk->s3, key, p.upload_id, &ignored);
    }
out:
    if (f != NULL)
        fclose(f);
    EVP_MD_CTX_free(sha);
    free(p.parts);
    return rc;
}

int mx_store_put(mx_worker *wk, const char *key, const uint8_t *data, size_t len,
                 const char *content_type, ss_s3_result *res)
{
    put_state p = {.wk = wk, .key = key};
    ss_s3_part part = {0};
    int rc;
    memset(res, 0, sizeof *res);
    if (len > (size_t)mx.part_size) {
        snprintf(res->code, sizeof res->code, "EntityTooLarge");
        snprintf(res->message, sizeof res->message, "%zu bytes in one part", len);
        return -1;
    }
    p.parts = &part;
    memcpy(wk->buf, data, len);
    rc = put_create(&p, content_type, res);
    if (rc == 0)
        rc = put_part(&p, len, res);
    if (rc == 0)
        rc = put_complete(&p, res);
    if (rc != 0 && p.upload_id[0]) {
        ss_s3_result ignored;
        ss_s3_abort_multipart(wk->s3, key, p.upload_id, &ignored);
    }
    return rc;
}
