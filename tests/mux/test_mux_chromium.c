/* test_mux_chromium.c -- real MediaRecorder output through the whole
 * pipeline: Debian's Chromium records its fake camera and microphone in
 * every type it supports (tests/mux/capture_media.mjs, 1 s timeslice: WebM
 * without duration or cues, Chromium's "video/webm;codecs=h264", which is
 * Matroska with Annex-B H.264 and no avcC, fragmented MP4 with a zero movie
 * duration, audio only), each recording is posted with seashore-send and
 * muxed. Every file the muxer makes decodes cleanly with the input's frame
 * count and duration; a WebM for VP8/VP9/AV1, an editor-ready MP4 for H.264
 * and for audio, a WAV with the input's samples after the track's offset. */
#include "check.h"
#include "mux_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct capture {
    const char *name, *ext, *mime;
    bool required;   /* Debian 12's Chromium records it */
    bool video_webm; /* VP8/VP9/AV1 or audio: a WebM is made */
    bool mp4;        /* H.264 video or audio only: an MP4 is made */
    bool video;
    const char *webm_codecs, *mp4_codecs; /* the outputs' streams */
} capture;

static const capture captures[] = {
    {"webm-vp8-opus", "webm", "video/webm;codecs=vp8,opus", true, true, false, true, "vp8,opus",
     NULL},
    {"webm-vp9-opus", "webm", "video/webm;codecs=vp9,opus", true, true, false, true, "vp9,opus",
     NULL},
    {"webm-av1-opus", "webm", "video/webm;codecs=av01,opus", true, true, false, true, "av1,opus",
     NULL},
    {"webm-h264-opus", "webm", "video/x-matroska;codecs=avc1,opus", true, false, true, true, NULL,
     "h264,aac"},
    {"mp4-avc1-opus", "mp4", "video/mp4;codecs=avc1,opus", true, false, true, true, NULL,
     "h264,aac"},
    {"mp4-vp9-opus", "mp4", "video/mp4;codecs=vp9,opus", true, true, false, true, "vp9,opus", NULL},
    /* Safari's kind; Debian 12's Chromium does not record AAC */
    {"mp4-avc1-mp4a", "mp4", "video/mp4;codecs=avc1,mp4a.40.2", false, false, true, true, NULL,
     "h264,aac"},
    {"audio-webm-opus", "webm", "audio/webm;codecs=opus", true, true, true, false, "opus", "aac"},
    {"audio-mp4-opus", "mp4", "audio/mp4;codecs=opus", true, true, true, false, "opus", "aac"},
};

static ingest_stack stack = {
    .with_uploader = true,
    .with_muxer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB"},
};

static char capture_dir[1024];

static void check_outputs(const capture *c, const char *media, const char *track)
{
    char out[1024];
    double want_s = mt_decoded_seconds(media);
    if (c->video_webm && CHECK(mt_output_state_is(&stack, track, "webm", "done")) &&
        CHECK_EQ_INT(mt_fetch_output(&stack, track, "webm", out, sizeof out), 0)) {
        CHECK(mt_has_cues(out));
        CHECK(mt_codecs_are(out, c->webm_codecs));
        CHECK(mt_decodes_cleanly(out));
        CHECK(mt_duration_is(out, want_s, 0.08)); /* a frame at 20 fps and an Opus packet */
        if (c->video)
            CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
    }
    if (!c->video_webm)
        CHECK(mt_output_state_is(&stack, track, "webm", "skipped"));
    if (c->mp4 && CHECK(mt_output_state_is(&stack, track, "mp4", "done")) &&
        CHECK_EQ_INT(mt_fetch_output(&stack, track, "mp4", out, sizeof out), 0)) {
        CHECK(c->video ? mt_mp4_is_editor_ready(out) : mt_mp4_is_audio_ready(out));
        CHECK(mt_codecs_are(out, c->mp4_codecs));
        CHECK(mt_decodes_cleanly(out));
        if (c->video)
            CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
    }
    if (!c->mp4)
        CHECK(mt_output_reason_contains(&stack, track, "mp4", "MUXER_TRANSCODE"));
    if (CHECK(mt_output_state_is(&stack, track, "wav", "done")) &&
        CHECK_EQ_INT(mt_fetch_output(&stack, track, "wav", out, sizeof out), 0)) {
        CHECK(mt_is_wav_48k(out));
        CHECK(mt_codecs_are(out, "pcm_s16le"));
        int64_t off = mt_manifest_offset_us(&stack, track);
        int64_t pad = off > 0 ? (off * 48000 + 500000) / 1000000 : 0;
        int64_t got = mt_wav_samples(out) - pad, want = mt_decoded_samples_48k(media);
        if (!CHECK_EQ_INT(got, want))
            fprintf(stderr, "%s: %lld samples after the pad, the input decodes to %lld\n", c->name,
                    (long long)got, (long long)want);
    }
}

static void test_chromium_recordings(void)
{
    char *script = harness_source_path("tests/mux/capture_media.mjs");
    char *argv[] = {"node", script, capture_dir, "3", NULL};
    int rc = stack_run(&stack, "capture", argv, 180000);
    free(script);
    if (!CHECK_EQ_INT(rc, 0))
        return;
    for (size_t i = 0; i < sizeof captures / sizeof captures[0]; i++) {
        const capture *c = &captures[i];
        char media[1200], track[37];
        snprintf(media, sizeof media, "%s/%s.%s", capture_dir, c->name, c->ext);
        if (access(media, R_OK) != 0) {
            if (!CHECK(!c->required))
                fprintf(stderr, "Chromium recorded no %s\n", c->mime);
            continue;
        }
        fprintf(stderr, "-- %s\n", c->name);
        if (!CHECK_EQ_INT(mt_post(&stack, media, c->mime, 0, NULL, NULL, track), 0) ||
            !CHECK(mt_wait_muxed(&stack, track, 120000)))
            continue;
        check_outputs(c, media, track);
    }
}

int main(void)
{
    if (stack_start(&stack, "test_mux_chromium") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    snprintf(capture_dir, sizeof capture_dir, "%s/captures", harness_dir(stack.h));
    TEST_RUN(test_chromium_recordings);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
