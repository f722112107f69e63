/* test_mux.c -- the editor files through the whole pipeline: media made by
 * ffmpeg, posted with seashore-send in 256 KiB chunks, uploaded by
 * r2-uploader, muxed by the muxer (s3rver, nats-server, PostgreSQL):
 *   - VP8/Opus WebM without duration or cues: a seekable WebM with the
 *     input's frames, no MP4 (the reason names MUXER_TRANSCODE), a WAV;
 *     every file's sha256 in PostgreSQL and the manifest matches the store;
 *     the same item again gives the same files;
 *   - H.264 in Matroska, and fragmented MP4 with AAC: an MP4 (avc1 + mp4a,
 *     moov before mdat); VP9 WebM: a seekable WebM;
 *   - two participants 2.5 s apart, the later one muxed first: offsets of
 *     2.5 s in the manifest, the later WAV made again with 2.5 s of silence;
 *   - deleting the session removes its editor files and its manifest;
 *   - bytes that are not media: outputs failed with a reason, the raw
 *     object kept, the muxer still serving. */
#include "check.h"
#include "mux_util.h"
#include "seashore/s3_client.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static ingest_stack stack = {
    .with_uploader = true,
    .with_muxer = true,
    .with_issuer = true,
    .extra_env = {"UPLOAD_PART_SIZE=5MiB"},
    /* a killed muxer's item returns soon; the work item path only (the
     * live path has test_mux_live) */
    .muxer_env = {"MUXER_ACK_WAIT=3s", "MUXER_LIVE_TRACKS=0"},
};

static char vp8_track[37]; /* test_vp8_webm's track, for test_editor_api */

/* The WAV's silence at the start, as the muxer rounds it. */
static int64_t wav_pad_samples(const char *track)
{
    int64_t off = mt_manifest_offset_us(&stack, track);
    return off > 0 ? (off * 48000 + 500000) / 1000000 : 0;
}

/* Every audio sample of the input is in out (after the pad, for a WAV). */
static bool samples_equal(const char *out, const char *media, int64_t pad)
{
    int64_t got = mt_decoded_samples_48k(out) - pad, want = mt_decoded_samples_48k(media);
    if (got != want)
        fprintf(stderr, "%s: %" PRId64 " samples after a pad of %" PRId64 ", %s has %" PRId64 "\n",
                out, got, pad, media, want);
    return got == want;
}

/* The WAV: one PCM stream, 48 kHz, the pad and then the input's audio. */
static void check_wav(const char *track, const char *media)
{
    char out[1024];
    if (!CHECK_EQ_INT(mt_fetch_output(&stack, track, "wav", out, sizeof out), 0))
        return;
    CHECK(mt_is_wav_48k(out));
    CHECK(mt_codecs_are(out, "pcm_s16le"));
    CHECK(mt_decodes_cleanly(out));
    CHECK(samples_equal(out, media, wav_pad_samples(track)));
}

/* A WebM from a MediaRecorder-like WebM: seekable, the same streams,
 * frames and samples, as long as the input to the frame. */
static void check_webm(const char *track, const char *media, const char *codecs)
{
    char out[1024];
    if (!CHECK_EQ_INT(mt_fetch_output(&stack, track, "webm", out, sizeof out), 0))
        return;
    CHECK(mt_codecs_are(out, codecs));
    CHECK(mt_duration_is(out, mt_decoded_seconds(media), 1.0 / 30));
    CHECK(mt_has_cues(out));
    CHECK(mt_decodes_cleanly(out));
    CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
    CHECK(samples_equal(out, media, 0));
}

static void test_vp8_webm(void)
{
    char media[1024], track[37];
    CHECK_EQ_INT(mt_make_media(&stack, "vp8.webm",
                               "-c:v libvpx -b:v 1M -c:a libopus -f webm -live 1", media,
                               sizeof media),
                 0);
    CHECK_EQ_INT(mt_post(&stack, media, "video/webm;codecs=vp8,opus", 0, NULL, NULL, track), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    snprintf(vp8_track, sizeof vp8_track, "%s", track);
    CHECK(mt_output_state_is(&stack, track, "webm", "done"));
    CHECK(mt_output_state_is(&stack, track, "wav", "done"));
    CHECK(mt_output_state_is(&stack, track, "mp4", "skipped"));
    CHECK(mt_output_reason_contains(&stack, track, "mp4", "MUXER_TRANSCODE"));

    check_webm(track, media, "vp8,opus");
    check_wav(track, media);
    CHECK(mt_manifest_lists(&stack, track));

    char before[3][65], after[3][65];
    mt_output_hashes(&stack, track, before);
    CHECK_EQ_INT(mt_requeue(&stack, track, "again"), 0);
    CHECK(mt_wait_updated(&stack, track, 120000));
    mt_output_hashes(&stack, track, after);
    for (int k = 0; k < 3; k++)
        CHECK_EQ_STR(after[k], before[k]);
}

/* The token-issuer's editor API: the manifest with download URLs that the
 * store serves, and each track's offset and output states. */
static void test_editor_api(void)
{
    char path[256], file[1024], sha[65], hashes[3][65];
    long status = 0;
    if (!CHECK(vp8_track[0]))
        return;
    snprintf(path, sizeof path, "/v1/sessions/%s/manifest", stack.session_id);
    json_t *m = mt_api_get(&stack, path, &status), *p, *t, *o;
    CHECK_EQ_INT(status, 200);
    CHECK(json_string_value(json_object_get(json_object_get(m, "manifest_object"), "url")));
    mt_output_hashes(&stack, vp8_track, hashes);
    size_t i, j, k;
    int fetched = 0;
    json_array_foreach(json_object_get(m, "participants"), i, p)
        json_array_foreach(json_object_get(p, "tracks"), j, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "id")) ?: "", vp8_track) != 0)
            continue;
        json_array_foreach(json_object_get(t, "outputs"), k, o)
        {
            const char *url = json_string_value(json_object_get(o, "url"));
            const char *kind = json_string_value(json_object_get(o, "kind"));
            if (url == NULL || kind == NULL)
                continue;
            snprintf(file, sizeof file, "%s/api-%s", harness_dir(stack.h), kind);
            CHECK_EQ_INT(mt_fetch_url(url, file, sha), 0);
            /* saved as "<title> - <participant> - <track's first 8>.<kind>" */
            char named[64];
            snprintf(named, sizeof named, "%%20-%%20%.8s.%s", vp8_track, kind);
            CHECK(strstr(url, "&response-content-disposition=attachment") && strstr(url, named));
            CHECK_EQ_STR(sha, json_string_value(json_object_get(o, "sha256")) ?: "");
            fetched++;
        }
    }
    CHECK_EQ_INT(fetched, 2); /* webm and wav; the mp4 was skipped */
    json_decref(m);
    snprintf(path, sizeof path, "/v1/sessions/%s/tracks", stack.session_id);
    json_t *tr = mt_api_get(&stack, path, &status);
    CHECK_EQ_INT(status, 200);
    bool seen = false;
    json_array_foreach(json_object_get(tr, "participants"), i, p) json_array_foreach(
        json_object_get(p, "tracks"), j,
        t) if (strcmp(json_string_value(json_object_get(t, "track_id")) ?: "", vp8_track) == 0)
    {
        seen = true;
        CHECK(json_is_integer(json_object_get(t, "start_offset_us")));
        CHECK_EQ_INT(json_array_size(json_object_get(t, "outputs")), 3);
        CHECK_EQ_INT(json_array_size(json_object_get(t, "files")), 2);
    }
    CHECK(seen);
    json_decref(tr);
}

/* The samples of an AAC track we encoded: its edit list's length less
 * its lead (where the first sample sits after the file's zero). FFmpeg
 * 5.1's mov demuxer trims the encoder's priming but not the last frame's
 * padding, so decoding it gives up to 1023 samples more than were put in. */
static int64_t aac_encoded_samples(const char *mp4)
{
    char cmd[1200], line[128];
    int64_t duration = -1, first = INT64_MIN;
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -select_streams a:0 -show_entries stream=duration_ts:packet=pts "
             "-of default=nw=1 '%s'",
             mp4);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p)) {
        if (strncmp(line, "pts=", 4) == 0 && first == INT64_MIN)
            first = strtoll(line + 4, NULL, 10);
        if (strncmp(line, "duration_ts=", 12) == 0)
            duration = strtoll(line + 12, NULL, 10);
    }
    if (p)
        pclose(p);
    int64_t lead = first + 1024 > 0 ? first + 1024 : 0; /* AAC's priming is 1024 */
    return duration < 0 || first == INT64_MIN ? -1 : duration - lead;
}

/* An editor MP4 of an H.264 input: H.264 copied, AAC, moov first, every
 * frame and sample, as long as the input to the frame. */
static void check_mp4(const char *track, const char *media, bool aac_encoded)
{
    char out[1024];
    if (!CHECK_EQ_INT(mt_fetch_output(&stack, track, "mp4", out, sizeof out), 0))
        return;
    CHECK(mt_mp4_is_editor_ready(out));
    CHECK(mt_codecs_are(out, "h264,aac"));
    CHECK(mt_decodes_cleanly(out));
    /* x264's B-frames start the video 2 frames late: the input's span */
    CHECK(mt_duration_is(out, mt_decoded_seconds(media), 1.0 / 30));
    CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
    if (aac_encoded)
        CHECK_EQ_INT(aac_encoded_samples(out), mt_decoded_samples_48k(media));
    else /* AAC copied: the same frames, decoded alike */
        CHECK(samples_equal(out, media, 0));
}

static void test_h264_mp4(void)
{
    char media[1024], track[37];
    CHECK_EQ_INT(mt_make_media(&stack, "h264.mkv",
                               "-c:v libx264 -pix_fmt yuv420p -bsf:v h264_mp4toannexb -c:a libopus "
                               "-f matroska",
                               media, sizeof media),
                 0);
    CHECK_EQ_INT(mt_post(&stack, media, "video/x-matroska;codecs=avc1,opus", 0, NULL, NULL, track),
                 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    CHECK(mt_output_state_is(&stack, track, "mp4", "done"));
    CHECK(mt_output_state_is(&stack, track, "webm", "skipped")); /* WebM has no H.264 */
    check_mp4(track, media, true);
    check_wav(track, media);

    char before[3][65], after[3][65]; /* the AAC encoder is deterministic too */
    mt_output_hashes(&stack, track, before);
    CHECK_EQ_INT(mt_requeue(&stack, track, "again"), 0);
    CHECK(mt_wait_updated(&stack, track, 120000));
    mt_output_hashes(&stack, track, after);
    for (int k = 0; k < 3; k++)
        CHECK_EQ_STR(after[k], before[k]);
}

static void test_vp9_webm(void)
{
    char media[1024], track[37];
    CHECK_EQ_INT(mt_make_media(&stack, "vp9.webm",
                               "-c:v libvpx-vp9 -b:v 1M -deadline realtime -c:a libopus -f webm "
                               "-live 1",
                               media, sizeof media),
                 0);
    CHECK_EQ_INT(mt_post(&stack, media, "video/webm;codecs=vp9,opus", 0, NULL, NULL, track), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    CHECK(mt_output_state_is(&stack, track, "mp4", "skipped"));
    check_webm(track, media, "vp9,opus");
    check_wav(track, media);
}

/* AV1 WebM, as Chromium records with codecs=av1. */
static void test_av1_webm(void)
{
    char media[1024], track[37];
    CHECK_EQ_INT(mt_make_media(&stack, "av1.webm",
                               "-c:v libsvtav1 -preset 12 -c:a libopus -f webm -live 1", media,
                               sizeof media),
                 0);
    CHECK_EQ_INT(mt_post(&stack, media, "video/webm;codecs=av01,opus", 0, NULL, NULL, track), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    CHECK(mt_output_reason_contains(&stack, track, "mp4", "MUXER_TRANSCODE"));
    check_webm(track, media, "av1,opus");
    check_wav(track, media);
}

/* Fragmented MP4 (empty moov, as Chromium and Safari record) with AAC. */
static void test_fragmented_mp4(void)
{
    char media[1024], track[37];
    CHECK_EQ_INT(mt_make_media(&stack, "frag.mp4",
                               "-c:v libx264 -pix_fmt yuv420p -c:a aac -movflags "
                               "frag_keyframe+empty_moov+default_base_moof -f mp4",
                               media, sizeof media),
                 0);
    CHECK_EQ_INT(mt_post(&stack, media, "video/mp4;codecs=avc1,mp4a.40.2", 0, NULL, NULL, track),
                 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    CHECK(mt_output_state_is(&stack, track, "webm", "skipped"));
    check_mp4(track, media, false);
    check_wav(track, media);
}

/* Audio-only fragmented MP4 with AAC, as Safari records audio. */
static void test_audio_mp4(void)
{
    char media[1024], track[37], out[1024];
    CHECK_EQ_INT(mt_make_media(&stack, "voice.mp4",
                               "-vn -c:a aac -movflags frag_keyframe+empty_moov+default_base_moof "
                               "-f mp4",
                               media, sizeof media),
                 0);
    CHECK_EQ_INT(mt_post(&stack, media, "audio/mp4;codecs=mp4a.40.2", 0, NULL, NULL, track), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    CHECK(mt_output_state_is(&stack, track, "webm", "skipped"));
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "mp4", out, sizeof out), 0);
    CHECK(mt_mp4_is_audio_ready(out));
    CHECK(mt_codecs_are(out, "aac"));
    CHECK(mt_decodes_cleanly(out));
    CHECK(samples_equal(out, media, 0));
    check_wav(track, media);
}

/* Rewrites the Opus track's SamplingFrequency from 48000.0 to 44100.0,
 * as Firefox labels its Opus. */
static int label_44100(const char *path)
{
    static const unsigned char f48[] = {0xB5, 0x88, 0x40, 0xE7, 0x70, 0, 0, 0, 0, 0};
    static const unsigned char f44[] = {0xB5, 0x88, 0x40, 0xE5, 0x88, 0x80, 0, 0, 0, 0};
    size_t len = 0;
    char *d = harness_read_file(path, &len);
    int rc = -1;
    for (size_t i = 0; d && i + sizeof f48 <= len && i < 4096; i++)
        if (memcmp(d + i, f48, sizeof f48) == 0) {
            memcpy(d + i, f44, sizeof f44);
            FILE *f = fopen(path, "wb");
            rc = f && fwrite(d, 1, len, f) == len ? 0 : -1;
            if (f)
                fclose(f);
            break;
        }
    free(d);
    return rc;
}

/* Firefox's Opus says 44.1 kHz (Opus is always 48 kHz inside): the WAV is
 * 48 kHz with every sample. */
/* bad-input: muxer | Opus labelled 44.1 kHz (as Firefox writes it) | a 48 kHz WAV with every sample
 * | none */
static void test_opus_labelled_44100(void)
{
    char media[1024], track[37], out[1024];
    CHECK_EQ_INT(
        mt_make_media(&stack, "ff.webm", "-vn -c:a libopus -f webm -live 1", media, sizeof media),
        0);
    int64_t want = mt_decoded_samples_48k(media); /* before the label is changed */
    CHECK_EQ_INT(label_44100(media), 0);
    CHECK_EQ_INT(mt_post(&stack, media, "audio/webm;codecs=opus", 0, NULL, NULL, track), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "wav", out, sizeof out), 0);
    CHECK(mt_is_wav_48k(out));
    CHECK_EQ_INT(mt_wav_samples(out) - wav_pad_samples(track), want);
}

/* A recording whose browser died mid-cluster: the files hold what is there. */
/* bad-input: muxer | a recording cut in the middle of a cluster | files of what is readable | the
 * raw object unchanged */
static void test_truncated_tail(void)
{
    char media[1024], track[37], out[1024];
    CHECK_EQ_INT(mt_make_media(&stack, "cut.webm",
                               "-c:v libvpx -b:v 1M -c:a libopus -f webm -live 1", media,
                               sizeof media),
                 0);
    CHECK_EQ_INT(truncate(media, 200000), 0);
    CHECK_EQ_INT(mt_post(&stack, media, "video/webm;codecs=vp8,opus", 0, NULL, NULL, track), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    snprintf(vp8_track, sizeof vp8_track, "%s", track);
    CHECK(mt_output_state_is(&stack, track, "webm", "done"));
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "webm", out, sizeof out), 0);
    CHECK(mt_decodes_cleanly(out));
    CHECK(mt_video_frames(out) > 0 && mt_video_frames(out) <= mt_video_frames(media));
}

/* kill -9 while a track is being muxed: the item comes back after the ack
 * wait and the restarted muxer makes the files. */
static void test_kill_while_muxing(void)
{
    char media[1024], track[37], out[1024];
    CHECK_EQ_INT(mt_make_media(&stack, "long.webm",
                               "-t 20 -c:v libvpx -b:v 2M -deadline realtime -c:a libopus -f webm "
                               "-live 1",
                               media, sizeof media),
                 0);
    pid_t sender = up_send_track(&stack, "send-kill", media, 0, NULL, NULL,
                                 (const char *const[]){"--mime", "video/webm", NULL}, track);
    if (!CHECK(sender > 0))
        return;
    CHECK_EQ_INT(up_send_wait(&stack, sender, 60000), 0);
    if (CHECK(mt_wait_item_in_flight(&stack, 60000))) {
        CHECK_EQ_INT(harness_signal(stack.h, stack.muxer_pid, SIGKILL), 0);
        harness_wait_exit(stack.h, stack.muxer_pid, 10000, NULL);
        stack.muxer_pid = 0;
        CHECK(stack_start_muxer(&stack) > 0);
    }
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    CHECK_EQ_INT(mt_fetch_output(&stack, track, "webm", out, sizeof out), 0);
    CHECK(mt_decodes_cleanly(out));
    CHECK_EQ_INT(mt_video_frames(out), mt_video_frames(media));
}

/* A guest of session (caller frees the id). */
static char *new_guest(const char *session, const char *identity)
{
    char sql[512], *participant = NULL;
    snprintf(sql, sizeof sql,
             "INSERT INTO participants (session_id, identity, role) VALUES ('%s', '%s', 'guest') "
             "RETURNING id",
             session, identity);
    CHECK_EQ_INT(harness_pg_exec(&stack.pg, sql, &participant), 0);
    return participant;
}

/* A new session of the stack's host with one guest (caller frees both). */
static void new_session(const char *title, char **session, char **participant)
{
    char sql[512], *host_id = NULL;
    snprintf(sql, sizeof sql, "SELECT host_id FROM sessions WHERE id = '%s'", stack.session_id);
    CHECK_EQ_INT(harness_pg_exec(&stack.pg, sql, &host_id), 0);
    snprintf(sql, sizeof sql,
             "INSERT INTO sessions (host_id, title) VALUES ('%s', '%s') RETURNING id", host_id,
             title);
    CHECK_EQ_INT(harness_pg_exec(&stack.pg, sql, session), 0);
    *participant = *session ? new_guest(*session, "g") : NULL;
    free(host_id);
}

#define SKEW_US 7000000LL

static void test_two_participants_aligned(void)
{
    char media[1024], first[37], second[37], wav_first[1024], wav_second[1024];
    char sql[512], v[64], *session = NULL, *p1 = NULL, *p2 = NULL;
    int64_t t0 = (int64_t)time(NULL) * 1000000;
    /* a session of its own: its zero is the earlier of the two starts */
    new_session("two participants", &session, &p1);
    p2 = session ? new_guest(session, "g2") : NULL;
    if (!CHECK(p1 && p2))
        goto out;
    CHECK_EQ_INT(mt_make_media(&stack, "voice.ogg", "-vn -c:a libopus -f ogg", media, sizeof media),
                 0);
    /* The later participant is posted and muxed first: its WAV is made
     * against its own start, then again once the earlier one arrives. Its
     * clock runs 7 s fast: its capture start says t0 + 9.5 s, and the
     * offset measured over the websocket puts it back at t0 + 2.5 s. */
    CHECK_EQ_INT(mt_post_skewed(&stack, media, "audio/ogg;codecs=opus", t0 + 2500000 + SKEW_US,
                                (int)(SKEW_US / 1000), session, p2, second),
                 0);
    if (!CHECK(mt_wait_muxed(&stack, second, 120000)))
        goto out;
    snprintf(sql, sizeof sql, "SELECT clock_offset_us FROM tracks WHERE id = '%s'", second);
    CHECK_EQ_INT(up_sql(&stack, sql, v, sizeof v), 0);
    CHECK(llabs(strtoll(v, NULL, 10) + SKEW_US) < 100000); /* within the loopback's rtt */
    CHECK_EQ_INT(mt_post(&stack, media, "audio/ogg;codecs=opus", t0, session, p1, first), 0);
    if (!CHECK(mt_wait_muxed(&stack, first, 120000)))
        goto out;
    snprintf(sql, sizeof sql,
             "SELECT timeline_zero_unix_us = (SELECT capture_start_unix_us + clock_offset_us "
             "FROM tracks WHERE id = '%s') FROM outputs WHERE track_id = '%s' AND kind = 'wav'",
             first, second);
    CHECK(up_wait_sql(&stack, sql, "t", 120000, v, sizeof v));
    int64_t off_first = mt_manifest_offset_us(&stack, first);
    int64_t off_second = mt_manifest_offset_us(&stack, second);
    CHECK_EQ_INT(off_first, 0);
    CHECK(off_second >= 2490000 && off_second <= 2510000);
    CHECK_EQ_INT(mt_fetch_output(&stack, first, "wav", wav_first, sizeof wav_first), 0);
    CHECK_EQ_INT(mt_fetch_output(&stack, second, "wav", wav_second, sizeof wav_second), 0);
    int64_t pad = mt_wav_samples(wav_second) - mt_wav_samples(wav_first);
    int64_t want = off_second * 48000 / 1000000;
    CHECK(pad >= want - 2 && pad <= want + 2);
out:
    free(session);
    free(p1);
    free(p2);
}

/* The object keys of the track's done outputs into keys; how many. */
static int done_output_keys(const char *track, char keys[3][512])
{
    static const char *kinds[] = {"webm", "mp4", "wav"};
    char sql[256];
    int n = 0;
    for (int k = 0; k < 3; k++) {
        snprintf(sql, sizeof sql,
                 "SELECT object_key FROM outputs WHERE track_id = '%s' AND kind = '%s' AND "
                 "state = 'done'",
                 track, kinds[k]);
        if (up_sql(&stack, sql, keys[n], sizeof keys[n]) == 0 && keys[n][0])
            n++;
    }
    return n;
}

/* Deleting a session through the API removes its editor files and its
 * manifest from the store; once the uploader and the muxer have both done
 * their share the session is deleted: gone from the API (404). */
static void test_session_delete(void)
{
    char media[1024], track[37], sql[512], keys[4][512], v[64];
    char *session = NULL, *participant = NULL;
    new_session("doomed", &session, &participant);
    CHECK_EQ_INT(
        mt_make_media(&stack, "doomed.ogg", "-vn -c:a libopus -f ogg", media, sizeof media), 0);
    if (CHECK_EQ_INT(
            mt_post(&stack, media, "audio/ogg;codecs=opus", 0, session, participant, track), 0) &&
        CHECK(mt_wait_muxed(&stack, track, 120000))) {
        int n = done_output_keys(track, keys);
        CHECK_EQ_INT(n, 3); /* Opus: WebM, MP4 (AAC) and WAV */
        snprintf(keys[n++], sizeof keys[0], "manifests/%s.json", session);
        char *api_key = stack_api_key(&stack, "host@example.test");
        snprintf(sql, sizeof sql,
                 "curl -s -o /dev/null -w '%%{http_code}' -X DELETE -H 'Authorization: Bearer %s' "
                 "'%s/v1/sessions/%s'",
                 api_key ? api_key : "", stack.api_url, session);
        FILE *f = popen(sql, "r");
        CHECK(f != NULL && fgets(v, sizeof v, f) && strcmp(v, "202") == 0);
        if (f)
            pclose(f);
        free(api_key);
        for (int i = 0; i < n; i++)
            CHECK(mt_wait_object_gone(&stack, keys[i], 60000));
        snprintf(sql, sizeof sql,
                 "SELECT state || ' ' || (deleted_at IS NOT NULL) FROM sessions WHERE id = '%s'",
                 session);
        CHECK(up_wait_sql(&stack, sql, "deleted true", 60000, v, sizeof v));
        char path[128];
        long status = 0;
        snprintf(path, sizeof path, "/v1/sessions/%s", session);
        json_decref(mt_api_get(&stack, path, &status));
        CHECK_EQ_INT(status, 404);
    }
    free(session);
    free(participant);
}

/* How many backends wait on a lock in a statement starting with `prefix`. */
static int lock_waiters(const char *prefix)
{
    char sql[256], *n = NULL;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
             "query LIKE '%s%%'",
             prefix);
    int count = harness_pg_exec(&stack.pg, sql, &n) == 0 && n ? atoi(n) : -1;
    free(n);
    return count;
}

/* A session deleted while one of its tracks is muxed: the SessionDelete
 * may list the keys before the job has recorded its files. Here it has
 * already run and found none (the session is marked deleting directly
 * while the job's first file, uploaded, waits to be recorded behind a lock
 * the test holds on outputs); the job must remove its files and the
 * manifest itself once they are recorded. */
static void test_session_deleted_while_muxing(void)
{
    char media[1024], track[37] = "", sql[512], key[512], keys[3][512];
    char *session = NULL, *participant = NULL;
    new_session("doomed", &session, &participant);
    CHECK_EQ_INT(
        mt_make_media(&stack, "doomed2.ogg", "-vn -c:a libopus -f ogg", media, sizeof media), 0);
    PGconn *lock = PQconnectdb(stack.pg.url);
    PGresult *r = PQexec(lock, "BEGIN; LOCK TABLE outputs IN EXCLUSIVE MODE");
    bool locked = CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    if (locked &&
        CHECK_EQ_INT(
            mt_post(&stack, media, "audio/ogg;codecs=opus", 0, session, participant, track), 0)) {
        int waiting = 0;
        for (int i = 0; i < 1200 && (waiting = lock_waiters("INSERT INTO outputs")) == 0; i++)
            usleep(100000);
        CHECK(waiting >= 1); /* a file is in the store, its row waits */
        snprintf(sql, sizeof sql, "UPDATE sessions SET state = 'deleting' WHERE id = '%s'",
                 session);
        CHECK_EQ_INT(harness_pg_exec(&stack.pg, sql, NULL), 0);
    }
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    /* no session_manifests row for a session being deleted: wait for the rows */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM outputs WHERE track_id = '%s' AND state = 'done'", track);
    if (track[0] && CHECK(up_wait_sql(&stack, sql, "3", 120000, NULL, 0))) {
        int n = done_output_keys(track, keys);
        CHECK_EQ_INT(n, 3);
        for (int k = 0; k < n; k++)
            CHECK(mt_wait_object_gone(&stack, keys[k], 60000));
        snprintf(key, sizeof key, "manifests/%s.json", session);
        CHECK(mt_wait_object_gone(&stack, key, 60000));
    }
    free(session);
    free(participant);
}

/* The raw object is gone from the store when the muxer gets to it (a 404,
 * as after a delete raced the job): the outputs fail naming it, and the
 * muxer goes on with the next track instead of retrying for ever. */
/* bad-input: muxer | a raw object missing from the store (HEAD 404) | the three outputs `failed`
 * naming the object and the store's answer | none; the muxer goes on with the next track */
static void test_raw_object_missing(void)
{
    static const char *kinds[] = {"webm", "mp4", "wav"};
    char media[1024], track[37], sql[256], key[512];
    CHECK_EQ_INT(harness_signal(stack.h, stack.muxer_pid, SIGTERM), 0);
    harness_wait_exit(stack.h, stack.muxer_pid, 30000, NULL);
    stack.muxer_pid = 0;
    CHECK_EQ_INT(mt_make_media(&stack, "gone.ogg", "-vn -c:a libopus -f ogg", media, sizeof media),
                 0);
    CHECK_EQ_INT(mt_post(&stack, media, "audio/ogg;codecs=opus", 0, NULL, NULL, track), 0);
    snprintf(sql, sizeof sql, "SELECT state FROM tracks WHERE id = '%s'", track);
    CHECK(up_wait_sql(&stack, sql, "complete", 60000, NULL, 0));
    snprintf(sql, sizeof sql, "SELECT object_key FROM uploads WHERE track_id = '%s'", track);
    CHECK_EQ_INT(up_sql(&stack, sql, key, sizeof key), 0);
    ss_s3_client *c = stack_s3_client(&stack);
    ss_s3_conn *conn = c ? ss_s3_conn_new(c) : NULL;
    ss_s3_result res;
    CHECK(conn && ss_s3_delete_object(conn, key, &res) == 0);
    ss_s3_conn_free(conn);
    ss_s3_client_free(c);
    CHECK(stack_start_muxer(&stack) > 0);
    if (CHECK(mt_wait_muxed(&stack, track, 60000)))
        for (int k = 0; k < 3; k++)
            CHECK(mt_output_reason_contains(&stack, track, kinds[k], key));
    CHECK_EQ_INT(mt_post(&stack, media, "audio/ogg;codecs=opus", 0, NULL, NULL, track), 0);
    CHECK(mt_wait_muxed(&stack, track, 60000) && mt_output_state_is(&stack, track, "wav", "done"));
}

/* bad-input: muxer | a raw track that is not media | the three outputs `failed` with FFmpeg's
 * reason; `UploadFailed` (stage mux) | the raw object stays downloadable; the muxer goes on */
static void test_not_media(void)
{
    char media[1024], track[37], sql[256], v[64];
    CHECK_EQ_INT(up_make_media(&stack, "noise.webm", 300000, media, sizeof media), 0);
    CHECK_EQ_INT(mt_post(&stack, media, "video/webm;codecs=vp8,opus", 0, NULL, NULL, track), 0);
    if (!CHECK(mt_wait_muxed(&stack, track, 120000)))
        return;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM outputs WHERE track_id = '%s' AND state = 'failed' AND "
             "failure_reason <> ''",
             track);
    CHECK(up_wait_sql(&stack, sql, "3", 1000, v, sizeof v));
    CHECK(up_object_matches(&stack, track, media)); /* the raw object stays */
}

int main(void)
{
    if (stack_start(&stack, "test_mux") != 0) {
        fprintf(stderr, "stack did not start\n");
        stack_stop(&stack);
        return 1;
    }
    TEST_RUN(test_not_media);
    TEST_RUN(test_raw_object_missing);
    TEST_RUN(test_vp8_webm);
    TEST_RUN(test_editor_api);
    TEST_RUN(test_h264_mp4);
    TEST_RUN(test_vp9_webm);
    TEST_RUN(test_av1_webm);
    TEST_RUN(test_fragmented_mp4);
    TEST_RUN(test_audio_mp4);
    TEST_RUN(test_opus_labelled_44100);
    TEST_RUN(test_truncated_tail);
    TEST_RUN(test_kill_while_muxing);
    TEST_RUN(test_two_participants_aligned);
    TEST_RUN(test_session_delete);
    TEST_RUN(test_session_deleted_while_muxing);
    CHECK_EQ_INT(stack_stop(&stack), 0);
    return check_finish();
}
