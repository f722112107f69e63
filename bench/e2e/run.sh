#!/usr/bin/env bash
# bench/e2e/run.sh -- `make bench-e2e`: time to file. For synthetic 1080p
# tracks (H.264 ~6 Mbit/s + Opus, Matroska as Chromium records it) of each
# length, posted through the whole stack faster than real time, the time from
# the client's End to (a) the raw object complete in the object store and
# (b) every editor file listed by the API with a download URL.
#
# Posted at --speed times real time (default 10: a 60-minute track in 6
# minutes; 0 = as fast as the stack acknowledges, which on one machine piles
# up a backlog in front of the uploader that a real-time recording never has).
#
# Peer, same run, same file: `ffmpeg -i raw -c copy -movflags +faststart`,
# the one remux to an editor MP4 that any upload-then-process pipeline must
# do after the guest stops, on local disk (no network, no upload).
#
# The store is Swift's s3api (--server swift, the default: it completes a
# multipart upload from its parts' metadata, as R2 and S3 do) or s3rver
# (--server s3rver: it copies every part into one file on Complete, which for
# gigabytes takes longer than the muxer itself).
#
#   bench/e2e/run.sh [--minutes "5 30 60"] [--speed 10] [--server swift|s3rver]
# Writes bench/results/<date>-e2e.md (and prints it).
set -euo pipefail
BENCH_NAME=e2e
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

MINUTES="5 30 60"
SPEED=10
export BENCH_S3=swift
CHUNK=1048576
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --speed) SPEED="$2"; shift 2 ;;
    --server) BENCH_S3="$2"; shift 2 ;;
    *) echo "usage: bench/e2e/run.sh [--minutes \"5 30 60\"] [--speed 10]" >&2; exit 2 ;;
    esac
done

bench_init
bench_build_release
bench_stack_start
SEND="$BENCH_BUILD/tools/seashore-send/seashore-send"
MIME="video/webm;codecs=h264,opus"

rows=()
for m in $MINUTES; do
    media="$BENCH_TMP/track-${m}min.webm"
    bench_log "making a ${m}-minute track"
    bench_media $((m * 60)) "$media"
    bench_log "posting the ${m}-minute track ($(du -h "$media" | cut -f1)) and waiting for its files"
    rate="$(awk -v b="$(stat -c %s "$media")" -v s=$((m * 60)) -v x="$SPEED" -v c="$CHUNK" \
        'BEGIN { printf "%.3f", b / s * x / c }')" # chunks a second, 0 = unlimited
    ours="$(node bench/e2e/e2e.mjs time-to-file "$SEND" "$media" "$MIME" "$BENCH_TMP/ttf-$m" "$rate")" ||
        bench_die "time to file of the ${m}-minute track failed (see $BENCH_TMP/ttf-$m.*)"
    bench_log "peer: ffmpeg remux to a faststart MP4"
    t0=$EPOCHREALTIME
    ffmpeg -hide_banner -loglevel error -y -i "$media" -c copy -movflags +faststart \
        "$BENCH_TMP/peer.mp4"
    t1=$EPOCHREALTIME
    rm -f "$BENCH_TMP/peer.mp4" "$media"
    rows+=("$(node -e 'const o=JSON.parse(process.argv[1]);o.minutes=+process.argv[2];o.peer_s=+process.argv[3];console.log(JSON.stringify(o))' \
        "$ours" "$m" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')")")
done

report="bench/results/$(date -u +%Y-%m-%d)-e2e.md"
printf '%s\n' "${rows[@]}" | node bench/e2e/e2e.mjs report-ttf "$(bench_machine)" \
    "bench/e2e/run.sh --minutes \"$MINUTES\" --speed $SPEED --server $BENCH_S3" "$SPEED" >"$report"
cat "$report"
bench_log "report written to $report"
