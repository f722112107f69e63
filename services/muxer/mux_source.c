/* mux_source.c -- ranged GETs behind FFmpeg's read and seek callbacks. */
#include "mux_source.h"

#include <libavformat/avio.h>
#include <libavutil/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seashore/log.h"

#define DEFAULT_ATTEMPTS 6
#define RETRY_BASE_US    200000

int mx_s3_source_open(mx_s3_source *s, ss_s3_conn *conn, const char *key, size_t window_bytes,
                      char *err, size_t errlen)
{
    ss_s3_result res;
    memset(s, 0, sizeof *s);
    if (strlen(key) >= sizeof s->key || window_bytes == 0) {
        snprintf(err, errlen, "object key longer than %zu bytes, or an empty window",
                 sizeof s->key - 1);
        return -1;
    }
    snprintf(s->key, sizeof s->key, "%s", key);
    s->conn = conn;
    s->max_attempts = DEFAULT_ATTEMPTS;
    if (ss_s3_head_object(conn, key, &s->size, NULL, &res) != 0) {
        s->last_error = res;
        snprintf(err, errlen, "raw object %s: %s: %s", key, res.code, res.message);
        return -1;
    }
    s->win = malloc(window_bytes);
    if (s->win == NULL) {
        snprintf(err, errlen, "out of memory for a read window of %zu bytes", window_bytes);
        return -1;
    }
    s->win_cap = window_bytes;
    return 0;
}

void mx_s3_source_close(mx_s3_source *s)
{
    free(s->win);
    s->win = NULL;
}

/* Fills the window from s->pos, retrying transient store errors a few
 * times (the work item is retried later if the store stays down). */
static int window_fill(mx_s3_source *s)
{
    uint64_t left = s->size - s->pos;
    size_t want = left < s->win_cap ? (size_t)left : s->win_cap;
    for (int attempt = 0; attempt < s->max_attempts; attempt++) {
        size_t got = 0;
        if (ss_s3_get_range(s->conn, s->key, s->pos, want, s->win, &got, &s->last_error) == 0) {
            s->win_off = s->pos;
            s->win_len = got;
            return got > 0 ? 0 : -1;
        }
        if (!s->last_error.transient)
            break;
        ss_log_warn("reading the raw track failed, retrying", "{s:s, s:I, s:s, s:s}", "key", s->key,
                    "offset", (long long)s->pos, "code", s->last_error.code, "message",
                    s->last_error.message);
        usleep((useconds_t)RETRY_BASE_US << attempt);
    }
    return -1;
}

int mx_s3_read(void *opaque, uint8_t *buf, int size)
{
    mx_s3_source *s = opaque;
    if (size <= 0)
        return 0;
    if (s->pos >= s->size)
        return AVERROR_EOF;
    if (s->pos < s->win_off || s->pos >= s->win_off + s->win_len) {
        if (window_fill(s) != 0)
            return AVERROR(EIO);
    }
    size_t avail = (size_t)(s->win_off + s->win_len - s->pos);
    size_t n = avail < (size_t)size ? avail : (size_t)size;
    memcpy(buf, s->win + (s->pos - s->win_off), n);
    s->pos += n;
    return (int)n;
}

int64_t mx_s3_seek(void *opaque, int64_t offset, int whence)
{
    mx_s3_source *s = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return (int64_t)s->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)s->pos;
        break;
    case SEEK_END:
        base = (int64_t)s->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (base + offset < 0)
        return AVERROR(EINVAL);
    s->pos = (uint64_t)(base + offset);
    return (int64_t)s->pos;
}
