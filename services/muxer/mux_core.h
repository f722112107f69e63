/* mux_core.h -- the muxer's FFmpeg core: one raw recorded track in, the
 * editor files out (seekable WebM, MP4 with faststart, 48 kHz s16 WAV).
 *
 * The input is read through caller-supplied read/seek callbacks (a custom
 * AVIOContext with a fixed 256 KiB buffer), never loaded whole; every
 * output is streamed packet by packet, so memory does not grow with the
 * length of the track. Each output is a separate pass over the input
 * (the input is reopened at offset 0 for each), so one output failing does
 * not spoil the others.
 *
 * Ownership: mx_make_outputs borrows everything it is given and keeps
 * nothing after it returns; it writes the output files at the given paths
 * (creating or truncating them) and fills the caller's mx_result. */
#ifndef MUX_CORE_H
#define MUX_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes read into buf (at most size), or AVERROR_EOF at the end, or another
 * negative AVERROR. */
typedef int (*mx_read_fn)(void *opaque, uint8_t *buf, int size);
/* Like avio seek: SEEK_SET/SEEK_CUR/SEEK_END, and AVSEEK_SIZE returning the
 * total size. New position, or a negative AVERROR. */
typedef int64_t (*mx_seek_fn)(void *opaque, int64_t offset, int whence);

#define MX_AVIO_BUFFER_BYTES (256 * 1024)

typedef struct mx_input {
    mx_read_fn read;       /* required */
    mx_seek_fn seek;       /* required: each output pass starts at offset 0 */
    void *opaque;          /* borrowed; passed to read and seek */
    const char *mime_type; /* e.g. "video/webm;codecs=vp8,opus"; may be NULL.
                            * Only quoted in messages: the container is
                            * probed from the bytes. */
    /* Optional, all three or none: `another` opens a second reader of the
     * same input (its own position and connection; NULL on failure) and
     * `release` frees it; with them the outputs are made at once, one thread
     * each, instead of one after another. `tick` is then called about once a
     * second on the calling thread while they run (e.g. a work heartbeat). */
    void *(*another)(void *opaque);
    void (*release)(void *another);
    void (*tick)(void *opaque);
} mx_input;

struct mx_out_file;

typedef struct mx_options {
    bool transcode_video; /* MUXER_TRANSCODE: VP8/VP9/AV1 -> libx264 for the MP4 */
    int64_t wav_pad_us;   /* silence before the audio in the WAV, >= 0 */
    /* Live muxing: each output written through its mx_out_file (mux_out.h)
     * instead of to its path, so final parts can be uploaded meanwhile; and
     * the MP4's moov written into this much space reserved at the front
     * instead of moved there by rewriting the file (faststart). NULL / 0:
     * plain files and faststart. */
    struct mx_out_file *live_out[3]; /* webm, mp4, wav */
    int64_t moov_reserve;
} mx_options;

typedef enum { MX_OUT_DONE, MX_OUT_FAILED, MX_OUT_SKIPPED } mx_out_state;

typedef struct mx_output {
    mx_out_state state;
    char reason[256];          /* why FAILED or SKIPPED; empty when DONE */
    int64_t duration_us;       /* of what was written (WAV: including the pad) */
    char codecs[64];           /* e.g. "vp8,opus", "h264,aac", "pcm_s16le" */
    int width, height;         /* 0 without video */
    int sample_rate, channels; /* 0 without audio */
} mx_output;

typedef struct mx_result {
    mx_output webm, mp4, wav;
    int64_t duration_us; /* of the track: the longest of its streams */
} mx_result;

/* Writes the three outputs; a NULL path skips that output. Returns -1 (all
 * three FAILED, the reason in err and in each output) only when the input
 * cannot be opened, probed or read at all; otherwise 0 with a state per
 * output: e.g. mp4 SKIPPED for VP8 video without transcode_video, wav
 * SKIPPED without audio, webm SKIPPED for H.264 or AAC sources. */
int mx_make_outputs(const mx_input *in, const char *webm_path, const char *mp4_path,
                    const char *wav_path, const mx_options *opt, mx_result *res, char *err,
                    size_t errlen);

/* ---- Shared by mux_core.c, mux_webm.c, mux_mp4.c, mux_wav.c only ---- */

struct AVFormatContext;
struct AVIOContext;
struct AVStream;
struct AVPacket;
struct AVCodecContext;
struct SwrContext;
struct AVFrame;

/* One opened pass over the input. */
typedef struct mx_src {
    struct AVFormatContext *fmt;
    struct AVIOContext *avio;
    int v, a;         /* index of the video / audio stream, -1 if none */
    int64_t start_us; /* first timestamp across both streams: becomes zero */
} mx_src;

int mx_src_open(mx_src *s, const mx_input *in, char *err, size_t errlen);
void mx_src_close(mx_src *s); /* accepts a zeroed or closed mx_src */

/* Sets o->state and a printf-formatted o->reason. */
void mx_set(mx_output *o, mx_out_state state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keeps a stream's timestamps monotonic (strict: dts strictly increasing)
 * after shifting them by -start_us and rescaling to the output stream. */
typedef struct mx_ts {
    int64_t last_dts; /* in the output time base; INT64_MIN before the first */
    int64_t end_us;   /* latest pts + duration written */
} mx_ts;
void mx_ts_fix(mx_ts *t, struct AVPacket *pkt, const struct AVStream *ist,
               const struct AVStream *ost, int64_t start_us, bool strict);

/* Audio decoder + resampler: packets in, interleaved or planar samples of
 * the requested format, rate and the source's channel count out. */
typedef int (*mx_samples_fn)(void *opaque, uint8_t **data, int nb_samples);
typedef struct mx_adec {
    struct AVCodecContext *dec;
    struct SwrContext *swr;
    struct AVFrame *frame;
    uint8_t **out; /* av_samples_alloc'ed, out_cap samples per channel */
    int out_cap, out_fmt, out_rate, channels;
    int64_t first_pts; /* of the first decoded frame, in 1/out_rate, or INT64_MIN */
} mx_adec;
int mx_adec_open(mx_adec *d, const struct AVStream *st, int out_fmt, int out_rate, char *err,
                 size_t errlen);
/* pkt NULL drains the decoder and the resampler. Calls sink for each batch. */
int mx_adec_send(mx_adec *d, const struct AVPacket *pkt, mx_samples_fn sink, void *opaque,
                 char *err, size_t errlen);
void mx_adec_close(mx_adec *d);

/* The output's AVIOContext: at path, or through live (NULL: a plain file). */
int mx_out_pb_open(struct AVIOContext **pb, const char *path, struct mx_out_file *live);
void mx_out_pb_close(struct AVIOContext **pb, struct mx_out_file *live);

void mx_write_webm(const mx_input *in, const char *path, const mx_options *opt, mx_output *o);
void mx_write_mp4(const mx_input *in, const char *path, const mx_options *opt, mx_output *o);
void mx_write_wav(const mx_input *in, const char *path, const mx_options *opt, mx_output *o);

#endif
