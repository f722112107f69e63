/* part_read.c -- a part's bytes straight from the chunk log. The index
 * (PostgreSQL's chunks rows, written by chunk-store) says which log
 * messages hold [offset, offset + size); each is fetched with a JetStream
 * direct get (raw bytes, from any replica) and its overlap with the part
 * copied into the worker's part buffer, MD5 and SHA-256 computed as the
 * pieces arrive in order. (Through chunk-store's chunkstore.read, every
 * byte crossed nats-server twice more and chunk-store copied it once:
 * docs/performance.md, Upload.) */
#include "uploader.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/v1/chunks.pb-c.h"

typedef struct part_read {
    up_item *it;
    const char *track_id;
    uint64_t offset, size, filled; /* buf[0..filled) holds offset.. and is hashed */
    EVP_MD_CTX *md5, *sha256;
    char *why;
    size_t whylen;
    bool lost; /* the bytes left the log: only the store had them */
} part_read;

/* The index rows of the chunks that overlap the part, in order. */
static PGresult *chunk_rows(part_read *r)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%" PRIu64, r->offset);
    snprintf(b, sizeof b, "%" PRIu64, r->offset + r->size);
    const char *params[] = {r->track_id, a, b};
    return ss_pg_query(r->it->pg,
                       "SELECT byte_offset, size, stream_seq FROM chunks WHERE track_id = $1 "
                       "AND byte_offset < $3::bigint AND byte_offset + size > $2::bigint "
                       "ORDER BY seq",
                       3, params, r->why, r->whylen);
}

/* Appends the overlap of one chunk with the part to the buffer and the
 * digests; the chunks come in order, so it must start where the buffer
 * ends. */
static int take_overlap(part_read *r, uint64_t chunk_off, const uint8_t *data, size_t len)
{
    uint64_t at = r->offset + r->filled, end = r->offset + r->size;
    uint64_t to = chunk_off + len < end ? chunk_off + len : end;
    if (chunk_off > at || to <= at) {
        snprintf(r->why, r->whylen,
                 "the index has no chunk at offset %" PRIu64 " of track %s (next one at %" PRIu64
                 ")",
                 at, r->track_id, chunk_off);
        return -1;
    }
    const uint8_t *p = data + (at - chunk_off);
    size_t n = (size_t)(to - at);
    memcpy(r->it->buf + r->filled, p, n);
    if (EVP_DigestUpdate(r->md5, p, n) != 1 || EVP_DigestUpdate(r->sha256, p, n) != 1) {
        snprintf(r->why, r->whylen, "hashing the part failed (OpenSSL)");
        return -1;
    }
    r->filled += n;
    return 0;
}

/* Fetches one chunk (log message stream_seq, indexed at chunk_off) and
 * takes its overlap. */
static int take_chunk(part_read *r, uint64_t chunk_off, uint64_t stream_seq)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = ss_js_get_seq(up.svc->nats.js, UP_STREAM_CHUNKS, stream_seq, up.store_timeout_ms,
                                 &m, &jerr);
    if (s == NATS_NOT_FOUND) {
        r->lost = true;
        snprintf(r->why, r->whylen,
                 "bytes at offset %" PRIu64 " of track %s were released from the chunk log",
                 chunk_off, r->track_id);
        return -1;
    }
    if (s != NATS_OK) {
        snprintf(r->why, r->whylen, "chunk log message %" PRIu64 ": %s", stream_seq,
                 natsStatus_GetText(s));
        return -1;
    }
    Seashore__V1__ChunkRecord *c = seashore__v1__chunk_record__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    int rc = -1;
    if (c == NULL || c->offset != chunk_off || strcmp(c->track_id, r->track_id) != 0)
        snprintf(r->why, r->whylen,
                 "chunk log message %" PRIu64 " is not the chunk of track %s at offset %" PRIu64,
                 stream_seq, r->track_id, chunk_off);
    else
        rc = take_overlap(r, chunk_off, c->data.data, c->data.len);
    seashore__v1__chunk_record__free_unpacked(c, NULL);
    natsMsg_Destroy(m);
    return rc;
}

/* One attempt at the whole part. 0, -1 (why; r->lost says whether to
 * retry), -2 when draining. */
static int read_attempt(part_read *r)
{
    r->filled = 0;
    if (EVP_DigestInit_ex(r->md5, EVP_md5(), NULL) != 1 ||
        EVP_DigestInit_ex(r->sha256, EVP_sha256(), NULL) != 1) {
        snprintf(r->why, r->whylen, "hashing the part failed (OpenSSL)");
        return -1;
    }
    PGresult *rows = chunk_rows(r);
    if (rows == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(rows); i++) {
        rc = take_chunk(r, strtoull(PQgetvalue(rows, i, 0), NULL, 10),
                        strtoull(PQgetvalue(rows, i, 2), NULL, 10));
        if (rc == 0 && ss_work_heartbeat(&r->it->w) != 0)
            rc = -2;
    }
    PQclear(rows);
    if (rc == 0 && r->filled != r->size) {
        snprintf(r->why, r->whylen,
                 "the index holds %" PRIu64 " of the %" PRIu64 " bytes at offset %" PRIu64
                 " of track %s",
                 r->filled, r->size, r->offset, r->track_id);
        rc = -1;
    }
    return rc;
}

/* Attempts until the part is read: transient failures are retried with
 * backoff, lost bytes are not. */
static int read_attempts(part_read *r)
{
    for (int attempt = 0;; attempt++) {
        int rc = read_attempt(r);
        if (rc != -1 || r->lost)
            return rc;
        ss_log_warn("reading a part from the chunk log failed, retrying", "{s:s, s:I, s:s, s:i}",
                    "track_id", r->track_id, "offset", (long long)r->offset, "reason", r->why,
                    "attempt", attempt);
        if (ss_work_retry_sleep(&r->it->w, attempt) != 0)
            return -2;
    }
}

static int buf_reserve(up_item *it, uint64_t size, char *why, size_t whylen)
{
    if (it->buf_cap >= size)
        return 0;
    uint8_t *b = realloc(it->buf, size);
    if (b == NULL) {
        snprintf(why, whylen, "out of memory for a part of %" PRIu64 " bytes", size);
        return -1;
    }
    it->buf = b;
    it->buf_cap = size;
    return 0;
}

int up_read_part(up_item *it, const char *track_id, uint64_t offset, uint64_t size, char *why,
                 size_t whylen)
{
    part_read r = {.it = it,
                   .track_id = track_id,
                   .offset = offset,
                   .size = size,
                   .why = why,
                   .whylen = whylen,
                   .md5 = EVP_MD_CTX_new(),
                   .sha256 = EVP_MD_CTX_new()};
    int rc = -2;
    if (r.md5 == NULL || r.sha256 == NULL || buf_reserve(it, size, why, whylen) != 0)
        goto out;
    rc = read_attempts(&r);
    if (rc == 0 && (EVP_DigestFinal_ex(r.md5, it->digests.md5, NULL) != 1 ||
                    EVP_DigestFinal_ex(r.sha256, it->digests.sha256, NULL) != 1))
        rc = -2;
out:
    EVP_MD_CTX_free(r.md5);
    EVP_MD_CTX_free(r.sha256);
    return rc;
}
