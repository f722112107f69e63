/* mux_util.h -- what the muxer's pipeline tests share: media made by
 * ffmpeg, posting it, waiting for the outputs, fetching them from the
 * store (checked against their recorded sha256) and probing them. */
#ifndef MUX_UTIL_H
#define MUX_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "upload_util.h"

/* 3 s of testsrc2 320x240@30 and a 440 Hz sine, encoded with codec_args
 * (which end with the -f format) into <dir>/<name>. */
int mt_make_media(ingest_stack *s, const char *name, const char *codec_args, char *path_out,
                  size_t len);

/* Posts file as a new track (capture_start_us 0: now; session and
 * participant NULL: the stack's) and waits for seashore-send; its exit
 * status. */
int mt_post(ingest_stack *s, const char *file, const char *mime, int64_t capture_start_us,
            const char *session_id, const char *participant_id, char *track_id);
/* mt_post from a client whose clock runs skew_ms ahead of the machine's
 * (capture_start_us is on that clock). */
int mt_post_skewed(ingest_stack *s, const char *file, const char *mime, int64_t capture_start_us,
                   int skew_ms, const char *session_id, const char *participant_id, char *track_id);

/* The object is gone from the store (HEAD answers 404) within timeout_ms. */
bool mt_wait_object_gone(ingest_stack *s, const char *key, int timeout_ms);

/* All three outputs recorded and the manifest lists them. */
bool mt_wait_muxed(ingest_stack *s, const char *track_id, int timeout_ms);

bool mt_output_state_is(ingest_stack *s, const char *track_id, const char *kind, const char *state);
bool mt_output_reason_contains(ingest_stack *s, const char *track_id, const char *kind,
                               const char *text);

/* Downloads the output to <dir>/<track>.<kind>; 0 only when its size and
 * sha256 are the ones recorded in PostgreSQL. */
int mt_fetch_output(ingest_stack *s, const char *track_id, const char *kind, char *path_out,
                    size_t len);

/* The sha256 (hex) of the webm, mp4 and wav rows ("" when none). */
void mt_output_hashes(ingest_stack *s, const char *track_id, char out[3][65]);

/* TrackUploaded for the track again (Nats-Msg-Id "<track>:<tag>"). */
int mt_requeue(ingest_stack *s, const char *track_id, const char *tag);
/* Every output row of the track was written after the last mt_requeue. */
bool mt_wait_updated(ingest_stack *s, const char *track_id, int timeout_ms);

/* The store's manifests/<session>.json lists the track with its three
 * outputs, each sha256 equal to PostgreSQL's. */
bool mt_manifest_lists(ingest_stack *s, const char *track_id);
/* The track's start_offset_us in session_manifests (INT64_MIN if none). */
int64_t mt_manifest_offset_us(ingest_stack *s, const char *track_id);

/* Polls the muxer's JetStream consumer until it holds an unacked item
 * (one is being muxed); true if it did within timeout_ms. */
bool mt_wait_item_in_flight(ingest_stack *s, int timeout_ms);

/* GET path from the token-issuer as the stack's host; the JSON body or
 * NULL (the status goes to *status). Caller json_decref()s. */
struct json_t *mt_api_get(ingest_stack *s, const char *path, long *status);

/* Downloads url (a presigned URL) to path; its sha256 (hex) or -1. */
int mt_fetch_url(const char *url, const char *path, char *sha_hex);

/* ffprobe / ffmpeg checks. */
/* The file's duration is within tolerance_s of want_s. */
bool mt_duration_is(const char *path, double want_s, double tolerance_s);
bool mt_has_cues(const char *webm);
/* Every stream's codec in order, comma-separated: "vp8,opus". */
bool mt_codecs_are(const char *path, const char *want);
bool mt_decodes_cleanly(const char *path);
long mt_video_frames(const char *path);
bool mt_is_wav_48k(const char *path);
int64_t mt_wav_samples(const char *path);
/* H.264 + AAC, moov before mdat. */
bool mt_mp4_is_editor_ready(const char *path);
/* AAC only, moov before mdat. */
bool mt_mp4_is_audio_ready(const char *path);
/* The span of the input's packets (first start to last end), seconds. */
double mt_decoded_seconds(const char *path);
/* The file's audio decoded (as the ffmpeg CLI does) and resampled to
 * 48 kHz: samples per channel. */
int64_t mt_decoded_samples_48k(const char *path);

#endif
