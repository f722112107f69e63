/* track.c -- a track's row in PostgreSQL, its object key, and publishing
 * work items to JetStream. */
#include "chunk_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seashore/log.h"
#include "seashore/v1/chunks.pb-c.h"
#include "seashore/v1/work.pb-c.h"

#define PUBLISH_ATTEMPTS 5

static const char track_select[] =
    "SELECT session_id, participant_id, state, kind, mime_type, ext, durable_seq, "
    "durable_bytes, committed_seq, committed_bytes, chunk_count, total_bytes, part_size, "
    "encode(sha256, 'hex'), encode(sha256_state, 'hex'), coalesce(capture_start_unix_us, 0), "
    "coalesce(clock_offset_us, 0), coalesce(duration_us, 0), "
    "coalesce(failure, ''), purged_seq, log_released FROM tracks WHERE id = $1";

static void copy_field(char *dst, size_t len, const PGresult *r, int col)
{
    snprintf(dst, len, "%s", PQgetvalue(r, 0, col));
}

static uint64_t u64_field(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? 0 : strtoull(PQgetvalue(r, 0, col), NULL, 10);
}

int cs_unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return (int)(n / 2);
}

int cs_track_load(ss_pg *pg, const char *track_id, cs_track *t, char *err, size_t errlen)
{
    const char *params[] = {track_id};
    memset(t, 0, sizeof *t);
    PGresult *r = ss_pg_query(pg, track_select, 1, params, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 1) {
        t->found = true;
        copy_field(t->session_id, sizeof t->session_id, r, 0);
        copy_field(t->participant_id, sizeof t->participant_id, r, 1);
        copy_field(t->state, sizeof t->state, r, 2);
        copy_field(t->kind, sizeof t->kind, r, 3);
        copy_field(t->mime_type, sizeof t->mime_type, r, 4);
        copy_field(t->ext, sizeof t->ext, r, 5);
        t->durable_seq = u64_field(r, 6);
        t->durable_bytes = u64_field(r, 7);
        t->committed_seq = u64_field(r, 8);
        t->committed_bytes = u64_field(r, 9);
        t->ended = !PQgetisnull(r, 0, 10);
        t->chunk_count = u64_field(r, 10);
        t->total_bytes = u64_field(r, 11);
        t->part_size = u64_field(r, 12);
        if (t->ended)
            cs_unhex(PQgetvalue(r, 0, 13), t->sha256, sizeof t->sha256);
        t->sha_state_len = cs_unhex(PQgetvalue(r, 0, 14), t->sha_state, sizeof t->sha_state);
        if (t->sha_state_len < 0)
            t->sha_state_len = 0;
        t->capture_start_unix_us = strtoll(PQgetvalue(r, 0, 15), NULL, 10);
        t->clock_offset_us = strtoll(PQgetvalue(r, 0, 16), NULL, 10);
        t->duration_us = strtoll(PQgetvalue(r, 0, 17), NULL, 10);
        copy_field(t->failure, sizeof t->failure, r, 18);
        t->purged_seq = u64_field(r, 19);
        t->log_released = PQgetvalue(r, 0, 20)[0] == 't';
    }
    PQclear(r);
    return 0;
}

const char *cs_ext_for_mime(const char *mime)
{
    static const struct {
        const char *prefix, *ext;
    } map[] = {
        {"video/webm", "webm"}, {"audio/webm", "webm"}, {"video/x-matroska", "mkv"},
        {"video/mp4", "mp4"},   {"audio/mp4", "m4a"},   {"audio/ogg", "ogg"},
        {"audio/wav", "wav"},   {"audio/mpeg", "mp3"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strncmp(mime, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].ext;
    return "bin";
}

void cs_object_key(const cs_track *t, const char *track_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "raw/%s/%s/%s.%s", t->session_id, t->participant_id, track_id, t->ext);
}

int cs_publish(cs_ctx *cs, const char *subject, const char *msg_id, const void *body, size_t len)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = 5000;
    for (int attempt = 1; attempt <= PUBLISH_ATTEMPTS; attempt++) {
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_Publish(&pa, cs->js, subject, body, (int)len, &po, &jerr);
        jsPubAck_Destroy(pa);
        if (s == NATS_OK)
            return 0;
        ss_log_warn("publish failed", "{s:s, s:s, s:s, s:i, s:i}", "subject", subject, "msg_id",
                    msg_id, "error", natsStatus_GetText(s), "js_error", (int)jerr, "attempt",
                    attempt);
        usleep(100000u * (unsigned)attempt);
    }
    return -1;
}

static int publish_part(cs_ctx *cs, const cs_track *t, const char *track_id, uint32_t part,
                        uint64_t offset, uint64_t size, bool is_last)
{
    Seashore__V1__PartReady pr = SEASHORE__V1__PART_READY__INIT;
    char key[256], msg_id[96];
    uint8_t buf[1024];

    cs_object_key(t, track_id, key, sizeof key);
    pr.session_id = (char *)t->session_id;
    pr.participant_id = (char *)t->participant_id;
    pr.track_id = (char *)track_id;
    pr.part_number = part;
    pr.offset = offset;
    pr.size = size;
    pr.part_size = t->part_size;
    pr.is_last = is_last;
    pr.object_key = key;
    pr.content_type = (char *)t->mime_type;
    if (seashore__v1__part_ready__get_packed_size(&pr) > sizeof buf)
        return -1;
    size_t n = seashore__v1__part_ready__pack(&pr, buf);
    snprintf(msg_id, sizeof msg_id, "%s:part:%" PRIu32 "%s", track_id, part,
             is_last ? ":last" : "");
    return cs_publish(cs, "work.upload", msg_id, buf, n);
}

int cs_publish_parts_crossed(cs_ctx *cs, const cs_track *t, const char *track_id,
                             uint64_t from_bytes, uint64_t to_bytes)
{
    uint64_t ps = t->part_size;
    for (uint64_t part = from_bytes / ps + 1; part * ps <= to_bytes; part++)
        if (publish_part(cs, t, track_id, (uint32_t)part, (part - 1) * ps, ps, false) != 0)
            return -1;
    return 0;
}

/* The tail part of an ended track (or, when the length is a multiple of
 * the part size, the last full part again, flagged last). */
int cs_publish_last_part(cs_ctx *cs, const cs_track *t, const char *track_id)
{
    uint64_t ps = t->part_size, total = t->total_bytes;
    if (total == 0)
        return 0;
    uint64_t parts = (total + ps - 1) / ps;
    uint64_t offset = (parts - 1) * ps;
    return publish_part(cs, t, track_id, (uint32_t)parts, offset, total - offset, true);
}

int cs_log_tail_read(cs_ctx *ctx, const char *track_id, cs_log_tail *lt, char *err, size_t errlen)
{
    char subject[64];
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    memset(lt, 0, sizeof *lt);
    snprintf(subject, sizeof subject, "chunks.%s", track_id);
    natsStatus s = js_GetLastMsg(&m, ctx->js, CS_STREAM_CHUNKS, subject, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return 0;
    if (s != NATS_OK) {
        snprintf(err, errlen, "chunk log unreachable: %s", natsStatus_GetText(s));
        return -1;
    }
    Seashore__V1__ChunkRecord *c = seashore__v1__chunk_record__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    if (c != NULL) {
        lt->any = true;
        lt->next_seq = c->seq + 1;
        lt->bytes = c->offset + c->data.len;
        lt->stream_seq = natsMsg_GetSequence(m);
        snprintf(lt->session_id, sizeof lt->session_id, "%s", c->session_id);
        snprintf(lt->participant_id, sizeof lt->participant_id, "%s", c->participant_id);
        lt->kind = c->kind;
    }
    seashore__v1__chunk_record__free_unpacked(c, NULL);
    natsMsg_Destroy(m);
    if (!lt->any) {
        snprintf(err, errlen, "last record of %s is not a ChunkRecord", subject);
        return -1;
    }
    return 0;
}
