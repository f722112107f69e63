/* read_range.c -- chunkstore.read: a byte range of a track's raw stream,
 * assembled from the chunk log through the index. */
#include "chunk_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seashore/v1/chunks.pb-c.h"

/* Copies the overlap of one chunk with [start, end) into out. */
static int copy_chunk(uint64_t stream_seq, uint64_t chunk_off, uint64_t start, uint64_t end,
                      uint8_t *out, char *err, size_t errlen)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = ss_js_get_seq(cs_requests_ctx->js, CS_STREAM_CHUNKS, stream_seq, 0, &m, &jerr);
    if (s == NATS_NOT_FOUND) {
        snprintf(err, errlen,
                 "bytes at offset %" PRIu64 " were released from the chunk log "
                 "after upload (committed); read the raw object instead",
                 chunk_off);
        return -1;
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "chunk log message %" PRIu64 " unreadable: %s", stream_seq,
                 natsStatus_GetText(s));
        return -1;
    }
    Seashore__V1__ChunkRecord *c = seashore__v1__chunk_record__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    int rc = -1;
    if (c == NULL || c->offset != chunk_off) {
        snprintf(err, errlen, "chunk log message %" PRIu64 " is not the indexed chunk", stream_seq);
    } else {
        uint64_t from = start > chunk_off ? start : chunk_off;
        uint64_t to = end < chunk_off + c->data.len ? end : chunk_off + c->data.len;
        memcpy(out + (from - start), c->data.data + (from - chunk_off), (size_t)(to - from));
        rc = 0;
    }
    seashore__v1__chunk_record__free_unpacked(c, NULL);
    natsMsg_Destroy(m);
    return rc;
}

int cs_read_handle(const Seashore__V1__ReadRangeRequest *req, Seashore__V1__ReadRangeReply *rep,
                   char *err, size_t errlen)
{
    cs_track t;
    if (req->length == 0 || req->length > cs_requests_ctx->read_max_bytes) {
        snprintf(err, errlen, "length %" PRIu32 " is outside 1..%" PRId64, req->length,
                 cs_requests_ctx->read_max_bytes);
        return -1;
    }
    if (cs_track_load(cs_requests_ctx->pg_reads, req->track_id, &t, err, errlen) != 0)
        return -1;
    if (!t.found) {
        snprintf(err, errlen, "unknown track %s", req->track_id);
        return -1;
    }
    rep->track_bytes = t.durable_bytes;
    if (t.log_released) {
        snprintf(err, errlen,
                 "track %s was released from the chunk log after upload and "
                 "remux; read the raw object instead",
                 req->track_id);
        return -1;
    }
    uint64_t start = req->offset;
    uint64_t end = start + req->length < t.durable_bytes ? start + req->length : t.durable_bytes;
    rep->eof = t.ended && end >= t.total_bytes && start <= t.total_bytes;
    if (start >= end)
        return 0;

    char s1[24], s2[24];
    snprintf(s1, sizeof s1, "%" PRIu64, start);
    snprintf(s2, sizeof s2, "%" PRIu64, end);
    const char *params[] = {req->track_id, s1, s2};
    PGresult *r = ss_pg_query(cs_requests_ctx->pg_reads,
                              "SELECT byte_offset, stream_seq FROM chunks WHERE track_id = $1 "
                              "AND byte_offset < $3::bigint AND byte_offset + size > $2::bigint "
                              "ORDER BY seq",
                              3, params, err, errlen);
    if (r == NULL)
        return -1;
    uint8_t *out = malloc((size_t)(end - start));
    int rc = out ? 0 : -1;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = copy_chunk(strtoull(PQgetvalue(r, i, 1), NULL, 10),
                        strtoull(PQgetvalue(r, i, 0), NULL, 10), start, end, out, err, errlen);
    if (rc == 0 && PQntuples(r) == 0) {
        snprintf(err, errlen, "bytes %" PRIu64 "..%" PRIu64 " of %s are no longer in the index",
                 start, end, req->track_id);
        rc = -1;
    }
    PQclear(r);
    if (rc != 0) {
        free(out);
        rep->eof = false;
        return -1;
    }
    rep->data.data = out;
    rep->data.len = (size_t)(end - start);
    return 0;
}
