/* part_read.c -- a part's bytes straight from the chunk log. The index
 * (PostgreSQL's chunks rows, written by chunk-store) says which log
 * messages hold [offset, offset + size); they are fetched with JetStream
 * direct gets (raw bytes, from any replica), several in flight, and each
 * one's overlap with the part is copied to its place in the worker's part
 * buffer, its MD5 (Content-MD5) computed over the prefix that has
 * arrived. (Through chunk-store's chunkstore.read, every
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

/* Bytes of chunk-log replies in flight per part read: enough requests to
 * keep nats-server busy (one at a time left it waiting on our round
 * trips), few enough to keep memory near the part buffer. */
#define UP_READ_WINDOW_BYTES (2u << 20)
#define UP_READ_WINDOW_MAX   32

/* One index row: a chunk that overlaps the part. */
typedef struct part_row {
    uint64_t off, size; /* the chunk's bytes in the track */
    bool placed;        /* its overlap is in the part buffer */
} part_row;

typedef struct part_read {
    up_item *it;
    const char *track_id;
    uint64_t offset, size;
    EVP_MD_CTX *md5;
    char *why;
    size_t whylen;
    bool lost;     /* the bytes left the log: only the store had them */
    bool draining; /* the worker is stopping */
    /* the index rows of this attempt, in order, and their log messages
     * (a separate array: ss_js_get_seqs takes the sequences as one) */
    int nrows;
    part_row *rows;
    uint64_t *stream_seq;
    int next_hash;   /* rows before it are hashed */
    uint64_t hashed; /* buf[0..hashed) is in the digests */
} part_read;

static void rows_free(part_read *r)
{
    free(r->rows);
    free(r->stream_seq);
    r->rows = NULL;
    r->stream_seq = NULL;
    r->nrows = 0;
}

/* The index rows of the chunks that overlap the part, in order; checks
 * that they cover it without a gap. */
static int chunk_rows(part_read *r)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%" PRIu64, r->offset);
    snprintf(b, sizeof b, "%" PRIu64, r->offset + r->size);
    const char *params[] = {r->track_id, a, b};
    PGresult *rows = ss_pg_query(r->it->pg,
                                 "SELECT byte_offset, size, stream_seq FROM chunks WHERE "
                                 "track_id = $1 AND byte_offset < $3::bigint AND "
                                 "byte_offset + size > $2::bigint ORDER BY seq",
                                 3, params, r->why, r->whylen);
    if (rows == NULL)
        return -1;
    int n = PQntuples(rows), rc = 0;
    r->rows = calloc((size_t)n + 1, sizeof *r->rows);
    r->stream_seq = calloc((size_t)n + 1, sizeof *r->stream_seq);
    if (!r->rows || !r->stream_seq) {
        snprintf(r->why, r->whylen, "out of memory for %d index rows", n);
        rc = -1;
    }
    uint64_t covered = r->offset;
    for (int i = 0; rc == 0 && i < n; i++, r->nrows++) {
        part_row *row = &r->rows[i];
        row->off = strtoull(PQgetvalue(rows, i, 0), NULL, 10);
        row->size = strtoull(PQgetvalue(rows, i, 1), NULL, 10);
        r->stream_seq[i] = strtoull(PQgetvalue(rows, i, 2), NULL, 10);
        if (row->off > covered) {
            snprintf(r->why, r->whylen,
                     "the index has no chunk at offset %" PRIu64 " of track %s (next one at "
                     "%" PRIu64 ")",
                     covered, r->track_id, row->off);
            rc = -1;
        }
        if (row->off + row->size > covered)
            covered = row->off + row->size;
    }
    PQclear(rows);
    if (rc == 0 && covered < r->offset + r->size) {
        snprintf(r->why, r->whylen,
                 "the index holds %" PRIu64 " of the %" PRIu64 " bytes at offset %" PRIu64
                 " of track %s",
                 covered - r->offset, r->size, r->offset, r->track_id);
        rc = -1;
    }
    return rc;
}

/* The part-buffer range [from, to) that row i fills. */
static void row_range(const part_read *r, int i, uint64_t *from, uint64_t *to)
{
    const part_row *row = &r->rows[i];
    uint64_t start = row->off > r->offset ? row->off : r->offset;
    uint64_t end = row->off + row->size;
    if (end > r->offset + r->size)
        end = r->offset + r->size;
    *from = start - r->offset;
    *to = end - r->offset;
}

/* Hashes the rows that have arrived in an unbroken run from the start:
 * the digests need the bytes in order, the replies need not come so. */
static int hash_ready(part_read *r)
{
    for (; r->next_hash < r->nrows && r->rows[r->next_hash].placed; r->next_hash++) {
        uint64_t from, to;
        row_range(r, r->next_hash, &from, &to);
        if (from < r->hashed)
            from = r->hashed;
        if (to <= from)
            continue;
        const uint8_t *p = r->it->buf + from;
        if (EVP_DigestUpdate(r->md5, p, to - from) != 1) {
            snprintf(r->why, r->whylen, "hashing the part failed (OpenSSL)");
            return -1;
        }
        r->hashed = to;
    }
    return 0;
}

/* ss_js_get_seqs callback: the log message of row i; its overlap with the
 * part goes to its place in the buffer. */
static int take_chunk(void *arg, size_t i, natsMsg *m)
{
    part_read *r = arg;
    Seashore__V1__ChunkRecord *c = seashore__v1__chunk_record__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    int rc = -1;
    if (c == NULL || c->offset != r->rows[i].off || c->data.len != r->rows[i].size ||
        strcmp(c->track_id, r->track_id) != 0) {
        snprintf(r->why, r->whylen,
                 "chunk log message %" PRIu64 " is not the chunk of track %s at offset %" PRIu64,
                 r->stream_seq[i], r->track_id, r->rows[i].off);
    } else {
        uint64_t from, to;
        row_range(r, (int)i, &from, &to);
        memcpy(r->it->buf + from, c->data.data + (r->offset + from - c->offset), to - from);
        r->rows[i].placed = true;
        rc = hash_ready(r);
    }
    seashore__v1__chunk_record__free_unpacked(c, NULL);
    natsMsg_Destroy(m);
    if (rc == 0 && ss_work_heartbeat(&r->it->w) != 0) {
        r->draining = true;
        rc = -1;
    }
    return rc;
}

static int read_window(const part_read *r)
{
    uint64_t largest = 1;
    for (int i = 0; i < r->nrows; i++)
        if (r->rows[i].size > largest)
            largest = r->rows[i].size;
    uint64_t w = UP_READ_WINDOW_BYTES / largest;
    return w < 1 ? 1 : w > UP_READ_WINDOW_MAX ? UP_READ_WINDOW_MAX : (int)w;
}

/* Fetches every row's log message, several in flight. */
static int fetch_rows(part_read *r)
{
    size_t missing = 0;
    natsStatus s = ss_js_get_seqs(&r->it->reads, UP_STREAM_CHUNKS, r->stream_seq, (size_t)r->nrows,
                                  read_window(r), up.store_timeout_ms, take_chunk, r, &missing);
    if (s == NATS_OK)
        return 0;
    if (r->draining)
        return -2;
    if (s == NATS_NOT_FOUND) {
        r->lost = true;
        snprintf(r->why, r->whylen,
                 "bytes at offset %" PRIu64 " of track %s were released from the chunk log",
                 r->rows[missing].off, r->track_id);
    } else if (s != NATS_ERR) { /* NATS_ERR: take_chunk said why */
        snprintf(r->why, r->whylen, "reading chunk log messages of track %s: %s", r->track_id,
                 natsStatus_GetText(s));
    }
    return -1;
}

/* One attempt at the whole part. 0, -1 (why; r->lost says whether to
 * retry), -2 when draining. */
static int read_attempt(part_read *r)
{
    rows_free(r);
    r->next_hash = 0;
    r->hashed = 0;
    if (EVP_DigestInit_ex(r->md5, EVP_md5(), NULL) != 1) {
        snprintf(r->why, r->whylen, "hashing the part failed (OpenSSL)");
        return -1;
    }
    int rc = chunk_rows(r);
    if (rc == 0)
        rc = fetch_rows(r);
    if (rc == 0 && r->hashed != r->size) {
        snprintf(r->why, r->whylen,
                 "hashed %" PRIu64 " of the %" PRIu64 " bytes at offset %" PRIu64 " of track %s",
                 r->hashed, r->size, r->offset, r->track_id);
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
                   .md5 = EVP_MD_CTX_new()};
    int rc = -2;
    if (r.md5 == NULL || buf_reserve(it, size, why, whylen) != 0)
        goto out;
    rc = read_attempts(&r);
    if (rc == 0 && EVP_DigestFinal_ex(r.md5, it->digests.md5, NULL) != 1)
        rc = -2;
out:
    rows_free(&r);
    EVP_MD_CTX_free(r.md5);
    return rc;
}
