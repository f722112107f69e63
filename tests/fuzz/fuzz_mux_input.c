/* fuzz_mux_input.c -- the muxer's input path: mx_make_outputs reading the
 * fuzzed bytes as the raw recorded track, through read/seek callbacks over
 * memory (as mux_source.c serves the object), writing the three outputs to
 * files in a per-process temporary directory (the same paths every run,
 * removed at exit). The length decides the path, so that every saved
 * input replays the same way:
 *   odd length: MUXER_TRANSCODE (video re-encoded with libx264);
 *   (length / 2) % 4 == 0 or 1: the three passes at once, as the muxer
 *     service runs them: `another` opens one more reader over the same
 *     memory (its own position), `release` frees it, `tick` runs on the
 *     calling thread while they run;
 *   2: the same, but the MP4 pass's reader cannot be opened (that pass
 *     then runs on the calling thread after the others);
 *   3: no callbacks: the passes one after another. */
#include <libavformat/avio.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mux_core.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MUX_MAX_ALLOC_BYTES (256 << 20)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *data;
    size_t size, pos;
} mem_input;

static char dir[64], webm_path[96], mp4_path[96], wav_path[96];

/* The readers of one run: the caller's, and those `another` handed out. */
typedef struct {
    mem_input *first;
    pthread_t caller;
    int fail_at; /* the `another` call that fails (1-based), or 0 */
    int calls;   /* of `another` (the calling thread's only) */
    atomic_int opened, released;
} readers;

static readers *current;

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    mem_input *m = opaque;
    size_t n = m->size - m->pos;
    if (n == 0)
        return AVERROR_EOF;
    if (n > (size_t)size)
        n = (size_t)size;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (int)n;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence)
{
    mem_input *m = opaque;
    int64_t base;
    if (whence & AVSEEK_SIZE)
        return (int64_t)m->size;
    switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)m->pos;
        break;
    case SEEK_END:
        base = (int64_t)m->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (offset > INT64_MAX - base || base + offset < 0 || base + offset > (int64_t)m->size)
        return AVERROR(EINVAL);
    m->pos = (size_t)(base + offset);
    return (int64_t)m->pos;
}

static void *mem_another(void *opaque)
{
    readers *r = current;
    mem_input *m = opaque;
    if (m != r->first) /* always asked of the caller's reader */
        __builtin_trap();
    if (!pthread_equal(pthread_self(), r->caller))
        __builtin_trap();
    if (++r->calls == r->fail_at)
        return NULL;
    mem_input *a = malloc(sizeof *a);
    if (a == NULL)
        return NULL;
    *a = (mem_input){.data = m->data, .size = m->size};
    atomic_fetch_add(&r->opened, 1);
    return a;
}

static void mem_release(void *another)
{
    if (another == current->first) /* the caller's own reader is not released */
        __builtin_trap();
    atomic_fetch_add(&current->released, 1);
    free(another); /* ASan: a double release or a stray pointer */
}

static void mem_tick(void *opaque)
{
    /* on the calling thread, with the caller's reader */
    if (opaque != current->first || !pthread_equal(pthread_self(), current->caller))
        __builtin_trap();
}

static void remove_dir(void)
{
    unlink(webm_path);
    unlink(mp4_path);
    unlink(wav_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_mux.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(webm_path, sizeof webm_path, "%s/out.webm", dir);
    snprintf(mp4_path, sizeof mp4_path, "%s/out.mp4", dir);
    snprintf(wav_path, sizeof wav_path, "%s/out.wav", dir);
    atexit(remove_dir);
    av_log_set_level(AV_LOG_QUIET);
    av_max_alloc(MUX_MAX_ALLOC_BYTES); /* as the muxer service does (MUXER_MAX_ALLOC) */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mem_input m = {.data = data, .size = size};
    int mode = (int)(size / 2 % 4);
    readers r = {.first = &m, .caller = pthread_self(), .fail_at = mode == 2 ? 2 : 0};
    atomic_init(&r.opened, 0);
    atomic_init(&r.released, 0);
    current = &r;
    mx_input in = {.read = mem_read,
                   .seek = mem_seek,
                   .opaque = &m,
                   .mime_type = "video/webm;codecs=vp8,opus"};
    if (mode != 3) {
        in.another = mem_another;
        in.release = mem_release;
        in.tick = mem_tick;
    }
    mx_options opt = {.transcode_video = size % 2 == 1, .wav_pad_us = 20000};
    mx_result res;
    char err[256];
    int rc = mx_make_outputs(&in, webm_path, mp4_path, wav_path, &opt, &res, err, sizeof err);
    /* the contract of mux_core.h: -1 fails all three, with a reason */
    if (rc < 0 && (res.webm.state != MX_OUT_FAILED || res.mp4.state != MX_OUT_FAILED ||
                   res.wav.state != MX_OUT_FAILED || err[0] == '\0'))
        __builtin_trap();
    if (rc == 0 && (res.webm.state == MX_OUT_DONE) != (res.webm.reason[0] == '\0'))
        __builtin_trap();
    /* every reader handed out is released once, none is left behind; with
     * the callbacks an opened input runs its passes on their own readers */
    if (atomic_load(&r.opened) != atomic_load(&r.released) ||
        (mode != 3 && rc == 0 && atomic_load(&r.opened) != (mode == 2 ? 2 : 3)))
        __builtin_trap();
    current = NULL;
    return 0;
}
