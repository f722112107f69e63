/* mux_out.c -- an output file whose final parts can be uploaded while it
 * is written (see mux_out.h). */
#include "mux_out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavformat/avio.h>
#include <libavutil/error.h>
#include <libavutil/mem.h>

#define AVIO_BUFFER_BYTES (64 * 1024)

int mx_out_open(mx_out_file *f, const char *path, uint64_t part_size)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->part_size = part_size;
    f->dirty = calloc(MX_OUT_MAX_PARTS, 1);
    if (f->dirty == NULL || part_size == 0)
        return -1;
    pthread_mutex_init(&f->mu, NULL);
    f->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    return f->fd < 0 ? -1 : 0;
}

void mx_out_close(mx_out_file *f)
{
    if (f->dirty == NULL)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->dirty);
    pthread_mutex_destroy(&f->mu);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

/* Marks the claimed parts that [from, to) touches. Called locked. */
static void mark_dirty(mx_out_file *f, uint64_t from, uint64_t to)
{
    uint64_t claimed_end = (uint64_t)f->claimed * f->part_size;
    if (from >= claimed_end)
        return;
    if (to > claimed_end)
        to = claimed_end;
    for (uint64_t p = from / f->part_size; p * f->part_size < to && p < MX_OUT_MAX_PARTS; p++)
        f->dirty[p] = 1;
}

static int out_write(void *opaque, uint8_t *buf, int size)
{
    mx_out_file *f = opaque;
    pthread_mutex_lock(&f->mu);
    uint64_t at = f->pos;
    mark_dirty(f, at, at + (uint64_t)size);
    pthread_mutex_unlock(&f->mu);
    for (int done = 0; done < size;) {
        ssize_t n = pwrite(f->fd, buf + done, (size_t)(size - done), (off_t)(at + (uint64_t)done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return AVERROR(errno ? errno : EIO);
        done += (int)n;
    }
    pthread_mutex_lock(&f->mu);
    f->pos = at + (uint64_t)size;
    if (f->pos > f->written)
        f->written = f->pos;
    pthread_mutex_unlock(&f->mu);
    return size;
}

static int64_t out_seek(void *opaque, int64_t offset, int whence)
{
    mx_out_file *f = opaque;
    int64_t base;
    pthread_mutex_lock(&f->mu);
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        base = (int64_t)f->written;
        pthread_mutex_unlock(&f->mu);
        return base;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)f->pos;
        break;
    case SEEK_END:
        base = (int64_t)f->written;
        break;
    default:
        pthread_mutex_unlock(&f->mu);
        return AVERROR(EINVAL);
    }
    if (base + offset < 0) {
        pthread_mutex_unlock(&f->mu);
        return AVERROR(EINVAL);
    }
    f->pos = (uint64_t)(base + offset);
    pthread_mutex_unlock(&f->mu);
    return base + offset;
}

AVIOContext *mx_out_avio(mx_out_file *f)
{
    uint8_t *buf = av_malloc(AVIO_BUFFER_BYTES);
    if (buf == NULL)
        return NULL;
    AVIOContext *pb = avio_alloc_context(buf, AVIO_BUFFER_BYTES, 1, f, NULL, out_write, out_seek);
    if (pb == NULL) {
        av_free(buf);
        return NULL;
    }
    pb->seekable = AVIO_SEEKABLE_NORMAL;
    return pb;
}

void mx_out_avio_free(AVIOContext **pb)
{
    if (*pb == NULL)
        return;
    avio_flush(*pb);
    av_freep(&(*pb)->buffer);
    avio_context_free(pb);
}

void mx_out_finish(mx_out_file *f)
{
    pthread_mutex_lock(&f->mu);
    f->finished = true;
    pthread_mutex_unlock(&f->mu);
}

static uint64_t part_len(const mx_out_file *f, uint32_t part)
{
    uint64_t from = (uint64_t)part * f->part_size;
    uint64_t left = f->written > from ? f->written - from : 0;
    return left < f->part_size ? left : f->part_size;
}

bool mx_out_claim(mx_out_file *f, uint32_t *part, uint64_t *len)
{
    bool ok = false;
    pthread_mutex_lock(&f->mu);
    uint64_t from = (uint64_t)f->claimed * f->part_size;
    bool full = f->written >= from + f->part_size;
    bool last = f->finished && f->written > from; /* an empty file (skipped) has no part */
    if ((full || last) && f->claimed < MX_OUT_MAX_PARTS) {
        *part = f->claimed++;
        *len = part_len(f, *part);
        ok = true;
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

bool mx_out_next_dirty(mx_out_file *f, uint32_t *part, uint64_t *len)
{
    bool ok = false;
    pthread_mutex_lock(&f->mu);
    for (uint32_t p = 0; p < f->claimed; p++) {
        if (f->dirty[p]) {
            f->dirty[p] = 0;
            *part = p;
            *len = part_len(f, p);
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}
