/* requests.c -- chunk-store's request/reply API on core NATS (queue group
 * "chunk-store"): chunkstore.status, .chunk, .end and .read
 * (docs/chunk-path.md). Each subscription runs on its own nats.c thread;
 * chunkstore.read has READ_THREADS subscriptions in the queue group, so
 * that many reads are served at once. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: the running hash is stored */
#include "chunk_store.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seashore/log.h"
#include "seashore/v1/chunks.pb-c.h"
#include "seashore/v1/work.pb-c.h"

cs_ctx *cs_requests_ctx;
static natsSubscription **subs;
static size_t nsubs;

static void respond(natsMsg *req, const ProtobufCMessage *reply)
{
    size_t n = protobuf_c_message_get_packed_size(reply);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL || natsMsg_GetReply(req) == NULL) {
        free(buf);
        return;
    }
    protobuf_c_message_pack(reply, buf);
    natsStatus s =
        natsConnection_Publish(cs_requests_ctx->svc->nats.conn, natsMsg_GetReply(req), buf, (int)n);
    if (s != NATS_OK)
        ss_log_warn("reply failed", "{s:s, s:s}", "subject", natsMsg_GetSubject(req), "error",
                    natsStatus_GetText(s));
    free(buf);
}

static Seashore__V1__TrackState state_enum(const char *s)
{
    if (strcmp(s, "recording") == 0)
        return SEASHORE__V1__TRACK_STATE__TRACK_STATE_RECORDING;
    if (strcmp(s, "ended") == 0)
        return SEASHORE__V1__TRACK_STATE__TRACK_STATE_ENDED;
    if (strcmp(s, "complete") == 0)
        return SEASHORE__V1__TRACK_STATE__TRACK_STATE_COMPLETE;
    if (strcmp(s, "failed") == 0)
        return SEASHORE__V1__TRACK_STATE__TRACK_STATE_FAILED;
    return SEASHORE__V1__TRACK_STATE__TRACK_STATE_UNSPECIFIED;
}

/* Whether a participant exists, and its session's state ("" if none). */
static int participant_lookup(const char *session_id, const char *participant_id, bool *exists,
                              char *state, size_t statelen, char *err, size_t errlen)
{
    const char *params[] = {session_id, participant_id};
    *exists = false;
    state[0] = '\0';
    PGresult *r = ss_pg_query(cs_requests_ctx->pg_requests,
                              "SELECT s.state, p.id IS NOT NULL FROM sessions s "
                              "LEFT JOIN participants p ON p.session_id = s.id AND p.id = $2 "
                              "WHERE s.id = $1",
                              2, params, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 1) {
        snprintf(state, statelen, "%s", PQgetvalue(r, 0, 0));
        *exists = PQgetvalue(r, 0, 1)[0] == 't';
    }
    PQclear(r);
    return 0;
}

static void status_fill(Seashore__V1__TrackStatusReply *rep, const cs_log_tail *lt, cs_track *t)
{
    if (lt->any) {
        rep->state = SEASHORE__V1__TRACK_STATE__TRACK_STATE_RECORDING;
        rep->durable_seq = lt->next_seq;
        rep->durable_bytes = lt->bytes;
        rep->last_stream_seq = lt->stream_seq;
        rep->session_id = (char *)lt->session_id;
        rep->participant_id = (char *)lt->participant_id;
    }
    if (!t->found)
        return;
    rep->state = state_enum(t->state);
    if (!lt->any || t->durable_seq > lt->next_seq) { /* released after upload: the index knows */
        rep->durable_seq = t->durable_seq;
        rep->durable_bytes = t->durable_bytes;
        rep->last_stream_seq = 0;
    }
    rep->session_id = t->session_id;
    rep->participant_id = t->participant_id;
    rep->committed_seq = t->committed_seq;
    rep->committed_bytes = t->committed_bytes;
    rep->mime_type = t->mime_type;
    if (t->ended) {
        rep->chunk_count = t->chunk_count;
        rep->total_bytes = t->total_bytes;
        rep->sha256.data = t->sha256;
        rep->sha256.len = 32;
    }
    if (t->failure[0])
        rep->error = t->failure;
}

/* A new track of an open session needs admission (admission.c); one that
 * is recording is in the log already, so it is admitted where there is
 * room (it was before an upgrade) but never refused: it may hold an
 * unfinished part only it can complete. */
static int status_admit(Seashore__V1__TrackStatusReply *rep, const char *track_id, char *err,
                        size_t errlen)
{
    bool is_new = rep->state == SEASHORE__V1__TRACK_STATE__TRACK_STATE_UNSPECIFIED &&
                  rep->participant_exists && strcmp(rep->session_state, "open") == 0;
    bool admitted = false;
    if (!is_new && rep->state != SEASHORE__V1__TRACK_STATE__TRACK_STATE_RECORDING)
        return 0;
    if (cs_admit(cs_requests_ctx, track_id, &admitted, err, errlen) != 0)
        return -1;
    rep->log_full = is_new && !admitted;
    return 0;
}

static void on_status(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    Seashore__V1__TrackStatusReply rep = SEASHORE__V1__TRACK_STATUS_REPLY__INIT;
    char err[512] = "", sstate[16] = "";
    cs_log_tail lt;
    cs_track t;
    bool exists = false;
    (void)nc, (void)sub, (void)closure;
    Seashore__V1__TrackStatusRequest *req = seashore__v1__track_status_request__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));

    if (req == NULL || !ss_uuid_valid(req->track_id))
        snprintf(err, sizeof err, "request is not a TrackStatusRequest with a UUID track_id");
    else if (cs_log_tail_read(cs_requests_ctx, req->track_id, &lt, err, sizeof err) == 0 &&
             cs_track_load(cs_requests_ctx->pg_requests, req->track_id, &t, err, sizeof err) == 0) {
        status_fill(&rep, &lt, &t);
        if (ss_uuid_valid(req->session_id) && ss_uuid_valid(req->participant_id) &&
            participant_lookup(req->session_id, req->participant_id, &exists, sstate, sizeof sstate,
                               err, sizeof err) == 0) {
            rep.participant_exists = exists;
            rep.session_state = sstate;
            status_admit(&rep, req->track_id, err, sizeof err);
        }
    }
    if (err[0])
        rep.error = err;
    respond(msg, &rep.base);
    seashore__v1__track_status_request__free_unpacked(req, NULL);
    natsMsg_Destroy(msg);
}

/* Looks a chunk up in the index: 1 found, 0 not indexed, -1 error. */
static int chunk_lookup(const char *track_id, uint64_t seq, uint32_t *size, uint8_t sha[32],
                        char *err, size_t errlen)
{
    char seqs[24];
    snprintf(seqs, sizeof seqs, "%" PRIu64, seq);
    const char *params[] = {track_id, seqs};
    PGresult *r = ss_pg_query(cs_requests_ctx->pg_requests,
                              "SELECT size, encode(sha256, 'hex') FROM chunks "
                              "WHERE track_id = $1 AND seq = $2",
                              2, params, err, errlen);
    if (r == NULL)
        return -1;
    int found = PQntuples(r) == 1 && cs_unhex(PQgetvalue(r, 0, 1), sha, 32) == 32;
    if (found)
        *size = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return found;
}

/* chunk_lookup, waiting for the indexer when the log holds the chunk but
 * the index does not yet. The log's tail is read once: it fetches a whole
 * chunk. */
static void chunk_lookup_indexed(const char *track_id, uint64_t seq, uint32_t *size,
                                 uint8_t sha[32], char *err, size_t errlen)
{
    cs_log_tail lt;
    if (chunk_lookup(track_id, seq, size, sha, err, errlen) != 0 ||
        cs_log_tail_read(cs_requests_ctx, track_id, &lt, err, errlen) != 0 || !lt.any ||
        lt.next_seq <= seq)
        return;
    for (int waited = 0, poll_us = CS_INDEX_POLL_US; waited < CS_INDEX_WAIT_MS;
         waited += poll_us / 1000, poll_us = cs_index_poll_next(poll_us)) {
        usleep((useconds_t)poll_us);
        if (chunk_lookup(track_id, seq, size, sha, err, errlen) != 0)
            return;
    }
    snprintf(err, errlen, "chunk %" PRIu64 " of %s is in the log but not indexed yet", seq,
             track_id);
}

static void on_chunk(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    Seashore__V1__ChunkInfoReply rep = SEASHORE__V1__CHUNK_INFO_REPLY__INIT;
    char err[512] = "";
    uint8_t sha[32];
    uint32_t size = 0;
    (void)nc, (void)sub, (void)closure;
    Seashore__V1__ChunkInfoRequest *req = seashore__v1__chunk_info_request__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));

    if (req == NULL || !ss_uuid_valid(req->track_id)) {
        snprintf(err, sizeof err, "request is not a ChunkInfoRequest with a UUID track_id");
    } else {
        chunk_lookup_indexed(req->track_id, req->seq, &size, sha, err, sizeof err);
        if (err[0] == '\0' && size > 0) {
            rep.found = true;
            rep.size = size;
            rep.sha256.data = sha;
            rep.sha256.len = 32;
        }
    }
    if (err[0])
        rep.error = err;
    respond(msg, &rep.base);
    seashore__v1__chunk_info_request__free_unpacked(req, NULL);
    natsMsg_Destroy(msg);
}

static void on_end(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    Seashore__V1__TrackEndReply rep = SEASHORE__V1__TRACK_END_REPLY__INIT;
    char text[512] = "";
    (void)nc, (void)sub, (void)closure;
    Seashore__V1__TrackEndRecord *req = seashore__v1__track_end_record__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    if (req == NULL || !ss_uuid_valid(req->track_id)) {
        rep.code = SEASHORE__V1__ERROR_CODE__ERROR_CODE_BAD_FRAME;
        snprintf(text, sizeof text, "request is not a TrackEndRecord with a UUID track_id");
    } else {
        cs_end_handle(req, &rep, text, sizeof text);
    }
    rep.message = text;
    respond(msg, &rep.base);
    seashore__v1__track_end_record__free_unpacked(req, NULL);
    natsMsg_Destroy(msg);
}

static void on_read(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    Seashore__V1__ReadRangeReply rep = SEASHORE__V1__READ_RANGE_REPLY__INIT;
    char err[512] = "";
    (void)nc, (void)sub, (void)closure;
    Seashore__V1__ReadRangeRequest *req = seashore__v1__read_range_request__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    if (req == NULL || !ss_uuid_valid(req->track_id))
        snprintf(err, sizeof err, "request is not a ReadRangeRequest with a UUID track_id");
    else
        cs_read_handle(req, &rep, err, sizeof err);
    if (err[0])
        rep.error = err;
    respond(msg, &rep.base);
    free(rep.data.data);
    seashore__v1__read_range_request__free_unpacked(req, NULL);
    natsMsg_Destroy(msg);
}

static int subscribe(cs_ctx *cs, const char *subject, natsMsgHandler cb)
{
    natsStatus s = natsConnection_QueueSubscribe(&subs[nsubs], cs->svc->nats.conn, subject,
                                                 CS_QUEUE, cb, NULL);
    if (s != NATS_OK) {
        ss_log_error("cannot subscribe", "{s:s, s:s}", "subject", subject, "error",
                     natsStatus_GetText(s));
        return -1;
    }
    nsubs++;
    return 0;
}

int cs_requests_start(cs_ctx *cs)
{
    cs_requests_ctx = cs;
    subs = calloc(1 + (size_t)(cs->read_threads + 2 * cs->index_wait_threads), sizeof *subs);
    if (subs == NULL || subscribe(cs, "chunkstore.status", on_status) != 0)
        return -1;
    /* each subscription has its own delivery thread: an End or a chunk
     * lookup waiting for the indexer does not hold up the others, nor a
     * read the next one */
    for (int64_t i = 0; i < cs->index_wait_threads; i++)
        if (subscribe(cs, "chunkstore.end", on_end) != 0 ||
            subscribe(cs, "chunkstore.chunk", on_chunk) != 0)
            return -1;
    for (int64_t i = 0; i < cs->read_threads; i++)
        if (subscribe(cs, "chunkstore.read", on_read) != 0)
            return -1;
    return 0;
}

void cs_requests_stop(void)
{
    for (size_t i = 0; i < nsubs; i++)
        natsSubscription_Drain(subs[i]);
    for (size_t i = 0; i < nsubs; i++) {
        natsSubscription_WaitForDrainCompletion(subs[i], 5000);
        natsSubscription_Destroy(subs[i]);
    }
    free(subs);
    subs = NULL;
    nsubs = 0;
}
