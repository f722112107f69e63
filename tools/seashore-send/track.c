/* track.c -- the seashore.v1 protocol of one track (docs/protocol.md):
 * the frames we write, one per WRITEABLE callback.
 *
 * Chunk n is bytes [n * chunk_size, +chunk_size) of the source (the last
 * one shorter), so a resend is a re-read. The stream's sha256 is kept
 * incrementally over the source's bytes as chunks are first written (the
 * parts a resumed track skips are read just for the digest). End is sent
 * once every chunk is acked, so it never counts a chunk the server refused
 * meanwhile. The server's frames are handled in receive.c. */
#include "sender.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- stream arithmetic ---- */

/* Number of chunks of the input; final once the source is at EOF. */
uint64_t track_chunk_count(const track *t)
{
    if (!t->chunk_size)
        return 0;
    return (t->s->src.avail + t->chunk_size - 1) / t->chunk_size;
}

/* Bytes of chunks 0..seq-1 (seq may lie past what has arrived). */
uint64_t track_bytes_before(const track *t, uint64_t seq)
{
    const source *src = &t->s->src;
    if (seq > UINT64_MAX / t->chunk_size)
        return UINT64_MAX;
    uint64_t b = seq * t->chunk_size;
    return src->eof && b > src->avail ? src->avail : b;
}

/* Offset and length of chunk seq if all of it has arrived. */
static bool chunk_at(const track *t, uint64_t seq, uint64_t *off, uint32_t *len)
{
    const source *src = &t->s->src;
    if (seq >= UINT64_MAX / t->chunk_size)
        return false;
    *off = seq * t->chunk_size;
    if (src->avail >= *off + t->chunk_size) {
        *len = t->chunk_size;
        return true;
    }
    if (src->eof && src->avail > *off) {
        *len = (uint32_t)(src->avail - *off);
        return true;
    }
    return false;
}

/* Feeds the source's bytes [t->hashed, end) into the stream digest. */
static int hash_upto(track *t, uint64_t end)
{
    sender *s = t->s;
    while (t->hashed < end) {
        uint64_t left = end - t->hashed;
        size_t n = left < s->rbuf_cap ? (size_t)left : s->rbuf_cap;
        if (source_read(&s->src, t->hashed, s->rbuf, n) != 0)
            return -1;
        if (EVP_DigestUpdate(t->md, s->rbuf, n) != 1) {
            error_msg(s, "track %s: EVP_DigestUpdate failed", t->id);
            return -1;
        }
        t->hashed += n;
    }
    return 0;
}

static int finish_digest(track *t)
{
    unsigned int len = 0;
    if (t->digest_done)
        return 0;
    if (hash_upto(t, t->s->src.avail) != 0)
        return -1;
    if (EVP_DigestFinal_ex(t->md, t->digest, &len) != 1 || len != SHA256_LEN) {
        error_msg(t->s, "track %s: EVP_DigestFinal_ex failed", t->id);
        return -1;
    }
    t->digest_done = true;
    return 0;
}

/* ---- writing ---- */

static int write_frame(track *t, const Seashore__V1__ClientFrame *f, const char *what)
{
    sender *s = t->s;
    size_t n = seashore__v1__client_frame__get_packed_size(f);
    if (n > s->wbuf_cap - LWS_PRE) {
        track_fail(t, "the %s frame (%zu bytes) does not fit the write buffer", what, n);
        return -1;
    }
    seashore__v1__client_frame__pack(f, s->wbuf + LWS_PRE);
    int w = lws_write(t->wsi, s->wbuf + LWS_PRE, n, LWS_WRITE_BINARY);
    if (w < 0 || (size_t)w < n) {
        t->close_why = "writing to the websocket failed";
        return -1;
    }
    return 0;
}

static int send_hello(track *t)
{
    const send_opts *o = t->s->o;
    Seashore__V1__Hello h = SEASHORE__V1__HELLO__INIT;
    Seashore__V1__ClientFrame f = SEASHORE__V1__CLIENT_FRAME__INIT;
    h.protocol_version = PROTOCOL_VERSION;
    h.token = o->token;
    h.track_id = t->id;
    h.kind = o->kind;
    h.mime_type = (char *)o->mime;
    h.capture_start_unix_us = t->s->capture_start_unix_us;
    h.client_name = (char *)PROG "/" SEASHORE_VERSION;
    h.next_seq = t->acked;
    f.kind_case = SEASHORE__V1__CLIENT_FRAME__KIND_HELLO;
    f.hello = &h;
    if (write_frame(t, &f, "Hello") != 0)
        return -1;
    t->hello_sent = true;
    debug(t->s, "track %s: Hello (next_seq %llu)", t->id, (unsigned long long)t->acked);
    return 1;
}

static int send_ping(track *t)
{
    Seashore__V1__Ping p = SEASHORE__V1__PING__INIT;
    Seashore__V1__ClientFrame f = SEASHORE__V1__CLIENT_FRAME__INIT;
    p.client_time_us = client_us(t->s);
    p.nonce = ++t->nonce;
    if (t->best_rtt_us > 0) {
        p.offset_us = t->best_offset_us;
        p.rtt_us = t->best_rtt_us;
        t->offset_unreported = false;
    }
    f.kind_case = SEASHORE__V1__CLIENT_FRAME__KIND_PING;
    f.ping = &p;
    if (write_frame(t, &f, "Ping") != 0)
        return -1;
    t->pings_due--;
    return 1;
}

static void note_sent(track *t, uint64_t seq, uint32_t len)
{
    sent_slot *slot = &t->slots[seq % t->nslots];
    slot->seq = seq;
    slot->at_us = mono_us();
    t->next_send = seq + 1;
    if (t->sent_high < t->next_send)
        t->sent_high = t->next_send;
    t->chunks_sent++;
    t->bytes_sent += len;
    if (t->s->o->rate > 0) {
        /* on a fixed schedule, as a MediaRecorder's timeslice: a late write
         * does not push the next chunk back, a backlog goes out at once */
        int64_t step = (int64_t)(1e6 / t->s->o->rate);
        t->next_chunk_us = (t->next_chunk_us ? t->next_chunk_us : slot->at_us) + step;
    }
}

static int send_chunk(track *t, uint64_t seq, uint64_t off, uint32_t len)
{
    sender *s = t->s;
    unsigned char sha[SHA256_LEN];
    unsigned int shalen = 0;
    Seashore__V1__Chunk c = SEASHORE__V1__CHUNK__INIT;
    Seashore__V1__ClientFrame f = SEASHORE__V1__CLIENT_FRAME__INIT;
    if (hash_upto(t, off) != 0 || source_read(&s->src, off, s->rbuf, len) != 0) {
        track_fail(t, "cannot read chunk %llu of %s", (unsigned long long)seq, s->src.name);
        return -1;
    }
    if (t->hashed == off) {
        if (EVP_DigestUpdate(t->md, s->rbuf, len) != 1) {
            track_fail(t, "EVP_DigestUpdate failed on chunk %llu", (unsigned long long)seq);
            return -1;
        }
        t->hashed += len;
    }
    if (EVP_Digest(s->rbuf, len, sha, &shalen, EVP_sha256(), NULL) != 1 || shalen != SHA256_LEN) {
        track_fail(t, "EVP_Digest failed on chunk %llu", (unsigned long long)seq);
        return -1;
    }
    c.seq = seq;
    c.data.len = len;
    c.data.data = s->rbuf;
    c.sha256.len = SHA256_LEN;
    c.sha256.data = sha;
    f.kind_case = SEASHORE__V1__CLIENT_FRAME__KIND_CHUNK;
    f.chunk = &c;
    if (write_frame(t, &f, "Chunk") != 0)
        return -1;
    note_sent(t, seq, len);
    return 1;
}

static int send_end(track *t)
{
    Seashore__V1__End e = SEASHORE__V1__END__INIT;
    Seashore__V1__ClientFrame f = SEASHORE__V1__CLIENT_FRAME__INIT;
    if (finish_digest(t) != 0) {
        track_fail(t, "cannot compute the sha256 of %s", t->s->src.name);
        return -1;
    }
    e.chunk_count = track_chunk_count(t);
    e.total_bytes = t->s->src.avail;
    e.sha256.len = SHA256_LEN;
    e.sha256.data = t->digest;
    f.kind_case = SEASHORE__V1__CLIENT_FRAME__KIND_END;
    f.end = &e;
    if (write_frame(t, &f, "End") != 0)
        return -1;
    t->end_sent = true;
    if (t->end_sent_unix_us == 0)
        t->end_sent_unix_us = real_us();
    debug(t->s, "track %s: End (%llu chunks, %llu bytes)", t->id, (unsigned long long)e.chunk_count,
          (unsigned long long)e.total_bytes);
    return 1;
}

/* ---- Ended: the server's totals against ours ---- */

void track_maybe_done(track *t)
{
    if (!t->ended || t->state != TS_OPEN)
        return;
    if (t->s->o->wait_committed && t->committed < track_chunk_count(t))
        return;
    track_finished(t);
}

/* Once our totals are known (End due or sent): compare the server's Ended. */
int track_settle_ended(track *t)
{
    char ours[2 * SHA256_LEN + 1], theirs[2 * SHA256_LEN + 1];
    t->end_sent = true; /* nothing more to send for this track */
    if (finish_digest(t) != 0) {
        track_fail(t, "cannot compute the sha256 of %s", t->s->src.name);
        return -1;
    }
    if (t->srv_count == track_chunk_count(t) && t->srv_bytes == t->s->src.avail && t->srv_sha_ok &&
        memcmp(t->srv_sha, t->digest, SHA256_LEN) == 0) {
        t->ended = true;
        t->ended_unix_us = real_us();
        track_progress(t);
        if (t->s->o->wait_committed && t->committed < track_chunk_count(t))
            say(t->s, "track %s: ended; waiting until the object store holds all %llu chunks",
                t->id, (unsigned long long)track_chunk_count(t));
        track_maybe_done(t);
        return 0;
    }
    hex_encode(t->digest, SHA256_LEN, ours);
    if (t->srv_sha_ok)
        hex_encode(t->srv_sha, SHA256_LEN, theirs);
    else
        snprintf(theirs, sizeof theirs, "(none)");
    track_fail(t,
               "the server's track ended with %llu chunks, %llu bytes, sha256 %s; %s has %llu "
               "chunks, %llu bytes, sha256 %s",
               (unsigned long long)t->srv_count, (unsigned long long)t->srv_bytes, theirs,
               t->s->src.name, (unsigned long long)track_chunk_count(t),
               (unsigned long long)t->s->src.avail, ours);
    return -1;
}

/* ---- the next frame ---- */

static bool end_due(const track *t)
{
    uint64_t n = track_chunk_count(t);
    return t->s->src.eof && !t->end_sent && !t->ended && t->acked >= n && t->next_send >= n;
}

/* 1 a frame written, 0 nothing to write now, -1 close. */
static int write_stream(track *t)
{
    int64_t now = mono_us();
    uint64_t seq = t->next_send, off;
    uint32_t len;
    if (end_due(t) && t->srv_ended)
        return track_settle_ended(t);
    if (end_due(t) && t->offset_unreported && now < t->pings_started_us + OFFSET_WAIT_US) {
        track_wake_at(t, t->pings_started_us + OFFSET_WAIT_US); /* the track's clock first */
        return 0;
    }
    if (end_due(t))
        return send_end(t);
    if (now < t->hold_until_us || now < t->pause_until_us) {
        track_wake_at(t,
                      t->hold_until_us > t->pause_until_us ? t->hold_until_us : t->pause_until_us);
        return 0;
    }
    if (seq - t->acked >= t->max_inflight || !chunk_at(t, seq, &off, &len))
        return 0;
    if (t->srv_ended && seq >= t->srv_count)
        return track_settle_ended(t); /* the input is longer than the ended track */
    if (t->s->o->rate > 0 && now < t->next_chunk_us) {
        track_wake_at(t, t->next_chunk_us);
        return 0;
    }
    return send_chunk(t, seq, off, len);
}

int track_writeable(track *t)
{
    int rc;
    if (t->state == TS_DONE) {
        lws_close_reason(t->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (t->state != TS_OPEN) {
        lws_close_reason(t->wsi, LWS_CLOSE_STATUS_GOINGAWAY, NULL, 0);
        return -1;
    }
    if (!t->hello_sent)
        rc = send_hello(t);
    else if (!t->welcomed)
        rc = 0;
    else if (t->pings_due)
        rc = send_ping(t);
    else
        rc = write_stream(t);
    if (rc < 0) {
        lws_close_reason(t->wsi, LWS_CLOSE_STATUS_GOINGAWAY, NULL, 0);
        return -1;
    }
    if (rc > 0 || t->state != TS_OPEN)
        lws_callback_on_writable(t->wsi);
    return 0;
}
