/* mux_bench.c -- the muxer's FFmpeg core on a local file, for bench/mux:
 *
 *   mux_bench IN OUT_PREFIX webm|all
 *
 * webm: only the seekable WebM (the work `ffmpeg -i IN -c copy OUT.webm`
 * does); all: WebM, MP4 and WAV as the service makes them. Reads IN through
 * the same custom-AVIO callbacks the service uses for the object store, here
 * over a FILE. Prints {"seconds": S, "webm": "...", "mp4": "...",
 * "wav": "..."} (the states). */
#include <libavformat/avio.h>
#include <libavutil/error.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mux_core.h"

static int file_read(void *opaque, uint8_t *buf, int size)
{
    size_t n = fread(buf, 1, (size_t)size, opaque);
    return n > 0 ? (int)n : AVERROR_EOF;
}

static int64_t file_seek(void *opaque, int64_t offset, int whence)
{
    FILE *f = opaque;
    if (whence == AVSEEK_SIZE) {
        long at = ftell(f), size;
        if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, at, SEEK_SET) != 0)
            return AVERROR(EIO);
        return size;
    }
    if (fseeko(f, offset, whence & ~AVSEEK_FORCE) != 0)
        return AVERROR(EIO);
    return ftello(f);
}

static const char *state(const mx_output *o)
{
    return o->state == MX_OUT_DONE ? "done" : o->state == MX_OUT_SKIPPED ? "skipped" : "failed";
}

int main(int argc, char **argv)
{
    char webm[1024], mp4[1024], wav[1024], err[512] = "";
    struct timespec t0, t1;
    mx_result res;
    if (argc != 4 || (strcmp(argv[3], "webm") != 0 && strcmp(argv[3], "all") != 0)) {
        fprintf(stderr, "usage: mux_bench IN OUT_PREFIX webm|all\n");
        return 2;
    }
    bool all = strcmp(argv[3], "all") == 0;
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    snprintf(webm, sizeof webm, "%s.webm", argv[2]);
    snprintf(mp4, sizeof mp4, "%s.mp4", argv[2]);
    snprintf(wav, sizeof wav, "%s.wav", argv[2]);
    mx_input in = {file_read, file_seek, f, NULL};
    mx_options opt = {.transcode_video = false, .wav_pad_us = 0};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc =
        mx_make_outputs(&in, webm, all ? mp4 : NULL, all ? wav : NULL, &opt, &res, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fclose(f);
    if (rc != 0) {
        fprintf(stderr, "mux_bench: %s\n", err);
        return 1;
    }
    printf("{\"seconds\": %.3f, \"webm\": \"%s\", \"mp4\": \"%s\", \"wav\": \"%s\"}\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           state(&res.webm), state(&res.mp4), state(&res.wav));
    return 0;
}
