/* part_read.c -- a part's bytes from chunk-store: chunkstore.read requests
 * of UPLOAD_READ_BYTES, up to READ_WINDOW of them in flight at once on
 * the worker's own reply inbox, so a part costs about one round trip
 * rather than one per request. Replies are tagged <inbox>.<round>.<piece>;
 * a late reply from an earlier round is dropped. The part's MD5 and SHA-256
 * are computed over the pieces in order as they arrive, while the next
 * replies are still on their way. */
#include "uploader.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/log.h"
#include "seashore/v1/chunks.pb-c.h"

#define READ_WINDOW 4 /* replies of READ_BYTES each held at most per worker */

typedef struct read_round {
    up_item *it;
    const char *track_id;
    uint64_t offset, size, pieces, next, done;
    uint64_t hashed; /* pieces 0..hashed-1 are in the digests */
    uint8_t *have;   /* per piece: 1 once its bytes are in it->buf */
    EVP_MD_CTX *md5, *sha256;
    char *why;
    size_t whylen;
    bool lost; /* chunk-store says the bytes left the log */
} read_round;

int up_read_sub_open(up_item *it)
{
    char subject[128];
    if (natsInbox_Create(&it->read_inbox) != NATS_OK)
        return -1;
    snprintf(subject, sizeof subject, "%s.>", it->read_inbox);
    return natsConnection_SubscribeSync(&it->read_sub, up.svc->nats.conn, subject) == NATS_OK ? 0
                                                                                              : -1;
}

static uint64_t piece_len(const read_round *r, uint64_t i)
{
    uint64_t from = i * (uint64_t)up.read_bytes;
    uint64_t left = r->size - from;
    return left < (uint64_t)up.read_bytes ? left : (uint64_t)up.read_bytes;
}

/* Sends the request for the next piece not yet held. */
static int request_next(read_round *r)
{
    while (r->next < r->pieces && r->have[r->next])
        r->next++;
    if (r->next >= r->pieces)
        return 0;
    Seashore__V1__ReadRangeRequest q = SEASHORE__V1__READ_RANGE_REQUEST__INIT;
    uint8_t qbuf[128];
    char reply[128];
    q.track_id = (char *)r->track_id;
    q.offset = r->offset + r->next * (uint64_t)up.read_bytes;
    q.length = (uint32_t)piece_len(r, r->next);
    size_t n = seashore__v1__read_range_request__pack(&q, qbuf);
    snprintf(reply, sizeof reply, "%s.%" PRIu64 ".%" PRIu64, r->it->read_inbox, r->it->read_round,
             r->next);
    natsStatus s =
        natsConnection_PublishRequest(up.svc->nats.conn, "chunkstore.read", reply, qbuf, (int)n);
    if (s != NATS_OK) {
        snprintf(r->why, r->whylen, "chunkstore.read: %s", natsStatus_GetText(s));
        return -1;
    }
    r->next++;
    return 1;
}

/* Which piece of the current round a reply answers; -1 if stale. */
static int64_t reply_piece(const read_round *r, natsMsg *m)
{
    uint64_t round, piece;
    const char *subj = natsMsg_GetSubject(m);
    size_t n = strlen(r->it->read_inbox);
    if (strncmp(subj, r->it->read_inbox, n) != 0 ||
        sscanf(subj + n, ".%" SCNu64 ".%" SCNu64, &round, &piece) != 2 ||
        round != r->it->read_round || piece >= r->pieces)
        return -1;
    return (int64_t)piece;
}

/* Copies one reply into it->buf. 0, or -1 with the reason. */
static int reply_take(read_round *r, uint64_t piece, natsMsg *m)
{
    uint64_t want = piece_len(r, piece), at = piece * (uint64_t)up.read_bytes;
    Seashore__V1__ReadRangeReply *rep = seashore__v1__read_range_reply__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    int rc = -1;
    if (rep == NULL)
        snprintf(r->why, r->whylen, "chunkstore.read: the reply is not a ReadRangeReply");
    else if (rep->error[0]) {
        snprintf(r->why, r->whylen, "chunkstore.read: %s", rep->error);
        r->lost = strstr(rep->error, "purged") != NULL || strstr(rep->error, "released") != NULL;
    } else if (rep->data.len != want)
        snprintf(r->why, r->whylen,
                 "chunkstore.read: %zu of %" PRIu64 " bytes at offset %" PRIu64
                 " (track has %" PRIu64 " durable bytes)",
                 rep->data.len, want, r->offset + at, rep->track_bytes);
    else {
        memcpy(r->it->buf + at, rep->data.data, want);
        r->have[piece] = 1;
        r->done++;
        rc = 0;
    }
    seashore__v1__read_range_reply__free_unpacked(rep, NULL);
    return rc;
}

/* Hashes the pieces that now follow the hashed prefix without a gap. */
static int hash_advance(read_round *r)
{
    for (; r->hashed < r->pieces && r->have[r->hashed]; r->hashed++) {
        const uint8_t *p = r->it->buf + r->hashed * (uint64_t)up.read_bytes;
        size_t n = (size_t)piece_len(r, r->hashed);
        if (EVP_DigestUpdate(r->md5, p, n) != 1 || EVP_DigestUpdate(r->sha256, p, n) != 1) {
            snprintf(r->why, r->whylen, "hashing the part failed (OpenSSL)");
            return -1;
        }
    }
    return 0;
}

/* One round: every piece not yet held, READ_WINDOW in flight. 0 when all
 * are held, -1 on the first failure (why), -2 when draining. */
static int read_round_run(read_round *r)
{
    int inflight = 0;
    r->it->read_round++;
    r->next = 0;
    for (;;) {
        while (inflight < READ_WINDOW) {
            int sent = request_next(r);
            if (sent < 0)
                return -1;
            if (sent == 0)
                break;
            inflight++;
        }
        if (inflight == 0)
            return r->done == r->pieces ? 0 : -1;
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, r->it->read_sub, (int64_t)up.store_timeout_ms);
        if (s != NATS_OK) {
            snprintf(r->why, r->whylen, "chunkstore.read: %s", natsStatus_GetText(s));
            return -1;
        }
        int64_t piece = reply_piece(r, m);
        int rc = piece < 0 ? 0 : reply_take(r, (uint64_t)piece, m);
        natsMsg_Destroy(m);
        if (piece < 0)
            continue;
        inflight--;
        if (rc != 0 || hash_advance(r) != 0)
            return -1;
        if (ss_work_heartbeat(&r->it->w) != 0)
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

static int digests_start(read_round *r)
{
    r->md5 = EVP_MD_CTX_new();
    r->sha256 = EVP_MD_CTX_new();
    return r->md5 && r->sha256 && EVP_DigestInit_ex(r->md5, EVP_md5(), NULL) == 1 &&
                   EVP_DigestInit_ex(r->sha256, EVP_sha256(), NULL) == 1
               ? 0
               : -1;
}

static int digests_finish(read_round *r, ss_s3_digests *out)
{
    return EVP_DigestFinal_ex(r->md5, out->md5, NULL) == 1 &&
                   EVP_DigestFinal_ex(r->sha256, out->sha256, NULL) == 1
               ? 0
               : -1;
}

/* Rounds until every piece is held: a round that made progress resets the
 * backoff. */
static int read_rounds(read_round *r)
{
    int rc, attempt = 0;
    for (;;) {
        uint64_t done_before = r->done;
        rc = read_round_run(r);
        if (rc != -1 || r->lost) /* lost: those bytes left the log, only the store had them */
            return rc;
        attempt = r->done > done_before ? 0 : attempt + 1;
        ss_log_warn("reading a part from chunk-store failed, retrying", "{s:s, s:I, s:s, s:i}",
                    "track_id", r->track_id, "offset", (long long)r->offset, "reason", r->why,
                    "attempt", attempt);
        if (ss_work_retry_sleep(&r->it->w, attempt) != 0)
            return -2;
    }
}

int up_read_part(up_item *it, const char *track_id, uint64_t offset, uint64_t size, char *why,
                 size_t whylen)
{
    read_round r = {.it = it,
                    .track_id = track_id,
                    .offset = offset,
                    .size = size,
                    .why = why,
                    .whylen = whylen};
    int rc = -2;
    if (it->read_sub == NULL) {
        snprintf(why, whylen, "no reply subscription for chunkstore.read");
        return -2;
    }
    if (buf_reserve(it, size, why, whylen) != 0)
        return -2;
    r.pieces = (size + (uint64_t)up.read_bytes - 1) / (uint64_t)up.read_bytes;
    r.have = calloc(r.pieces, 1);
    if (r.have == NULL || digests_start(&r) != 0)
        goto out;
    rc = read_rounds(&r);
    if (rc == 0 && digests_finish(&r, &it->digests) != 0)
        rc = -2;
out:
    EVP_MD_CTX_free(r.md5);
    EVP_MD_CTX_free(r.sha256);
    free(r.have);
    return rc;
}
