/* test_mux_core.c -- mx_make_outputs on fixtures made at test time with the
 * ffmpeg CLI (3 s of testsrc2 + sine), each output checked with ffprobe and
 * ffmpeg: the browsers' recordings, one case each, plus broken inputs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavformat/avio.h>
#include <libavutil/error.h>
#include <libavutil/log.h>

#include "check.h"
#include "mux_core.h"

#define SECONDS     3
#define FPS         30
#define PAD_US      2500000
#define PAD_SAMPLES 120000
#define AUDIO_FRAME 1024 /* tolerance: one AAC frame (an Opus one is 960) */
#define SRC                                                                                        \
    "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 "  \
    "-t 3 "

static char dir[64];

/* ---- the S3 reader's stand-in: read/seek over a FILE* ---- */

typedef struct file_src {
    FILE *f;
    int64_t size;
} file_src;

static int file_read(void *opaque, uint8_t *buf, int size)
{
    file_src *s = opaque;
    size_t n = fread(buf, 1, (size_t)size, s->f);
    return n > 0 ? (int)n : AVERROR_EOF;
}

static int64_t file_seek(void *opaque, int64_t offset, int whence)
{
    file_src *s = opaque;
    if (whence & AVSEEK_SIZE)
        return s->size;
    if (fseeko(s->f, offset, whence & ~AVSEEK_FORCE) != 0)
        return AVERROR(EIO);
    return ftello(s->f);
}

/* ---- CLI helpers ---- */

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* Output of cmd (stdout and stderr) into out; the exit status. */
static int capture(const char *cmd, char *out, size_t outlen)
{
    char full[1200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    size_t n = 0, r;
    if (!p)
        return -1;
    while (n + 1 < outlen && (r = fread(out + n, 1, outlen - 1 - n, p)) > 0)
        n += r;
    out[n] = '\0';
    return pclose(p);
}

static char *path_of(const char *name)
{
    static char bufs[4][256];
    static int i;
    char *p = bufs[i++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static long video_frames(const char *path)
{
    char cmd[512], out[256];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
             "stream=nb_read_frames -of csv=p=0 '%s'",
             path);
    return capture(cmd, out, sizeof out) == 0 ? atol(out) : -1;
}

/* Samples of the first audio stream, decoded at 48 kHz (one channel). */
static long audio_samples(const char *path)
{
    char cmd[512], buf[65536];
    long bytes = 0;
    size_t n;
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -i '%s' -map 0:a:0 -ac 1 -ar 48000 -f s16le -",
             path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        bytes += (long)n;
    return pclose(p) == 0 ? bytes / 2 : -1;
}

static double format_duration(const char *path)
{
    char cmd[512], out[256];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -show_entries format=duration -of csv=p=0 '%s'",
             path);
    if (capture(cmd, out, sizeof out) != 0 || strncmp(out, "N/A", 3) == 0)
        return -1;
    return atof(out);
}

static void streams(const char *path, char *out, size_t outlen)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -show_entries stream=codec_name,codec_tag_string,sample_rate,"
             "channels -of compact=p=0 '%s'",
             path);
    capture(cmd, out, outlen);
}

/* ffmpeg decodes the whole file (after seeking to ss when >= 0) without a word. */
static bool decodes_cleanly(const char *path, int ss)
{
    char cmd[512], out[4096];
    char seek[32] = "";
    if (ss >= 0)
        snprintf(seek, sizeof seek, "-ss %d", ss);
    /* -enc_time_base -1: judge the file's own timestamps, not their rounding to 1/fps. */
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error %s -i '%s' %s -enc_time_base -1 -f null -",
             seek, path, ss >= 0 ? "-frames:v 1" : "");
    int rc = capture(cmd, out, sizeof out);
    if (rc != 0 || out[0])
        fprintf(stderr, "%s: exit %d: %s\n", cmd, rc, out);
    return rc == 0 && out[0] == '\0';
}

/* Whether the file holds the Matroska Cues element ID (a byte search). */
static bool has_cues(const char *path)
{
    static const uint8_t id[4] = {0x1C, 0x53, 0xBB, 0x6B};
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    return memmem(buf, n, id, sizeof id) != NULL;
}

/* Top-level MP4 boxes: true when moov comes before mdat. */
static bool moov_before_mdat(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t h[16];
    int64_t pos = 0;
    bool moov = false, ok = false;
    while (f && fseeko(f, pos, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
        uint64_t size = (uint64_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
        if (size == 1 && fread(h + 8, 1, 8, f) == 8) {
            size = 0;
            for (int i = 8; i < 16; i++)
                size = size << 8 | h[i];
        }
        if (memcmp(h + 4, "moov", 4) == 0)
            moov = true;
        if (memcmp(h + 4, "mdat", 4) == 0) {
            ok = moov;
            break;
        }
        if (size < 8)
            break;
        pos += (int64_t)size;
    }
    if (f)
        fclose(f);
    return ok;
}

/* ---- running the core ---- */

static int make_outputs(const char *input, bool transcode, mx_result *res, char *err, size_t errlen)
{
    file_src s = {fopen(input, "rb"), 0};
    mx_input in = {file_read, file_seek, &s, "video/webm"};
    mx_options opt = {.transcode_video = transcode, .wav_pad_us = PAD_US};
    if (!s.f) {
        snprintf(err, errlen, "fopen %s failed", input);
        return -2;
    }
    fseeko(s.f, 0, SEEK_END);
    s.size = ftello(s.f);
    int rc = mx_make_outputs(&in, path_of("out.webm"), path_of("out.mp4"), path_of("out.wav"), &opt,
                             res, err, errlen);
    fclose(s.f);
    return rc;
}

typedef struct expect {
    bool video;
    bool webm; /* DONE, else SKIPPED */
    bool mp4;  /* DONE, else SKIPPED */
} expect;

static void check_webm(const char *input, const mx_output *o, expect e)
{
    const char *out = path_of("out.webm");
    double d = format_duration(out);
    if (!CHECK_EQ_INT(o->state, MX_OUT_DONE))
        return;
    CHECK(d > SECONDS - 1.0 / FPS - 0.03 && d < SECONDS + 1.0 / FPS + 0.03);
    CHECK(decodes_cleanly(out, -1));
    if (e.video) {
        CHECK(!has_cues(input)); /* else the fixture is not like MediaRecorder's */
        CHECK(has_cues(out));
        CHECK(decodes_cleanly(out, 2));
        CHECK_EQ_INT(video_frames(out), video_frames(input));
    }
}

static void check_mp4(const char *input, const mx_output *o, expect e)
{
    const char *out = path_of("out.mp4");
    char info[2048];
    if (!CHECK_EQ_INT(o->state, MX_OUT_DONE))
        return;
    streams(out, info, sizeof info);
    CHECK_CONTAINS(info, "codec_tag_string=mp4a");
    CHECK(moov_before_mdat(out));
    CHECK(decodes_cleanly(out, -1));
    if (e.video) {
        CHECK_CONTAINS(info, "codec_tag_string=avc1");
        CHECK_EQ_INT(video_frames(out), video_frames(input));
    }
}

static void check_wav(const char *input, const mx_output *o)
{
    const char *out = path_of("out.wav");
    char info[1024];
    if (!CHECK_EQ_INT(o->state, MX_OUT_DONE))
        return;
    streams(out, info, sizeof info);
    CHECK_CONTAINS(info, "codec_name=pcm_s16le");
    CHECK_CONTAINS(info, "sample_rate=48000");
    CHECK_CONTAINS(info, "channels=1");
    long want = audio_samples(input) + PAD_SAMPLES, got = audio_samples(out);
    if (!CHECK(labs(got - want) <= AUDIO_FRAME))
        fprintf(stderr, "  wav samples %ld, want %ld\n", got, want);
    CHECK(decodes_cleanly(out, -1));
}

static void check_fixture(const char *name, const char *ffmpeg_args, bool transcode, expect e)
{
    char cmd[1024], err[256];
    mx_result res;
    char input[256];

    snprintf(input, sizeof input, "%s", path_of(name)); /* path_of's buffers rotate */

    fprintf(stderr, "-- %s%s\n", name, transcode ? " (transcode)" : "");
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y %s '%s'", ffmpeg_args, input);
    if (access(input, R_OK) != 0 && !CHECK_EQ_INT(run(cmd), 0))
        return;
    int rc = make_outputs(input, transcode, &res, err, sizeof err);
    if (!CHECK_EQ_INT(rc, 0)) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    fprintf(stderr, "  webm: %d %s | mp4: %d %s | wav: %d %s\n", res.webm.state, res.webm.reason,
            res.mp4.state, res.mp4.reason, res.wav.state, res.wav.reason);
    if (e.webm)
        check_webm(input, &res.webm, e);
    else
        CHECK(res.webm.state == MX_OUT_SKIPPED && res.webm.reason[0]);
    if (e.mp4)
        check_mp4(input, &res.mp4, e);
    else
        CHECK(res.mp4.state == MX_OUT_SKIPPED && strstr(res.mp4.reason, "MUXER_TRANSCODE"));
    check_wav(input, &res.wav);
    CHECK(res.duration_us > (SECONDS - 0.1) * 1e6 && res.duration_us < (SECONDS + 0.1) * 1e6);
}

/* ---- the cases ---- */

#define LIVE_WEBM " -c:a libopus -f webm -live 1"

static void test_vp8_opus_mediarecorder_webm(void)
{
    check_fixture("vp8.webm", SRC "-c:v libvpx -deadline realtime -b:v 1M" LIVE_WEBM, false,
                  (expect){.video = true, .webm = true});
}

static void test_vp8_opus_transcoded_to_h264(void)
{
    check_fixture("vp8.webm", SRC "-c:v libvpx -deadline realtime -b:v 1M" LIVE_WEBM, true,
                  (expect){.video = true, .webm = true, .mp4 = true});
}

/* MediaRecorder repeats a timestamp now and then: frame 10 gets frame 9's. */
static void test_vp8_repeated_timestamp(void)
{
    check_fixture("dup.webm",
                  SRC "-c:v libvpx -deadline realtime -b:v 1M "
                      "-bsf:v 'setts=ts=if(eq(N\\,10)\\,PREV_OUTPTS\\,PTS)'" LIVE_WEBM,
                  true, (expect){.video = true, .webm = true, .mp4 = true});
}

static void test_vp9_opus_mediarecorder_webm(void)
{
    check_fixture("vp9.webm",
                  SRC "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 1M" LIVE_WEBM, false,
                  (expect){.video = true, .webm = true});
}

static void test_h264_annexb_matroska(void)
{
    check_fixture("h264.mkv",
                  SRC "-c:v libx264 -preset ultrafast -bsf:v h264_mp4toannexb -c:a libopus "
                      "-f matroska",
                  false, (expect){.video = true, .mp4 = true});
}

static void test_fragmented_mp4_h264_aac(void)
{
    check_fixture("frag.mp4",
                  SRC "-c:v libx264 -preset ultrafast -c:a aac "
                      "-movflags frag_keyframe+empty_moov -f mp4",
                  false, (expect){.video = true, .mp4 = true});
}

static void test_ogg_opus_audio_only(void)
{
    check_fixture("audio.ogg",
                  "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 -c:a libopus -f ogg",
                  false, (expect){.webm = true, .mp4 = true});
}

static void check_unreadable(const char *name)
{
    char err[256] = "", input[256];
    snprintf(input, sizeof input, "%s", path_of(name));
    mx_result res;
    int rc = make_outputs(input, false, &res, err, sizeof err);
    fprintf(stderr, "  %s: %s\n", input, err);
    CHECK_EQ_INT(rc, -1);
    CHECK(err[0] != '\0');
    CHECK(res.webm.state == MX_OUT_FAILED && res.webm.reason[0]);
    CHECK(res.mp4.state == MX_OUT_FAILED && res.mp4.reason[0]);
    CHECK(res.wav.state == MX_OUT_FAILED && res.wav.reason[0]);
}

/* bad-input: muxer core | random bytes as the input | -1; every output `failed` with the reason |
 * none */
static void test_random_bytes_fail(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "head -c 65536 /dev/urandom > '%s'", path_of("random.bin"));
    if (CHECK_EQ_INT(run(cmd), 0))
        check_unreadable("random.bin");
}

/* bad-input: muxer core | a WebM cut inside its header (300 bytes) | -1; every output `failed` with
 * the reason | none */
static void test_truncated_webm_fails(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "head -c 300 '%s' > '%s'", path_of("vp8.webm"),
             path_of("trunc.webm"));
    if (CHECK_EQ_INT(run(cmd), 0))
        check_unreadable("trunc.webm");
}

int main(void)
{
    char cmd[128];
    snprintf(dir, sizeof dir, "/tmp/test_mux_core.XXXXXX");
    if (!mkdtemp(dir) || system("ffmpeg -version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_mux_core: needs a temporary directory and the ffmpeg CLI\n");
        return 1;
    }
    av_log_set_level(AV_LOG_ERROR); /* libx264's statistics are not news */
    TEST_RUN(test_vp8_opus_mediarecorder_webm);
    TEST_RUN(test_vp8_opus_transcoded_to_h264);
    TEST_RUN(test_vp8_repeated_timestamp);
    TEST_RUN(test_vp9_opus_mediarecorder_webm);
    TEST_RUN(test_h264_annexb_matroska);
    TEST_RUN(test_fragmented_mp4_h264_aac);
    TEST_RUN(test_ogg_opus_audio_only);
    TEST_RUN(test_random_bytes_fail);
    TEST_RUN(test_truncated_webm_fails);
    int rc = check_finish();
    if (rc != 0) {
        fprintf(stderr, "test_mux_core: files kept in %s\n", dir);
        return rc;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_mux_core: could not remove %s\n", dir);
    return 0;
}
