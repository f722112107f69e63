#!/usr/bin/env bash
# bench/mux/run.sh -- `make bench-mux`: the muxer's remux of a large WebM
# beside `ffmpeg -i IN -c copy OUT.webm` on the same file in the same run.
#
#   bench/mux/run.sh [--size-mib N] [--runs R] [--keep-tmp]
#
# 1. Builds the release (build-release/) and bench/mux/mux_bench.c against
#    the muxer's FFmpeg core (services/muxer/mux_core.h).
# 2. Makes the input: a 20 s 1280x720 VP8 + Opus clip (ffmpeg), joined with
#    the concat demuxer (-c copy) until it is N MiB (default 2048), written
#    in live mode like MediaRecorder's: no duration, no cues. A second input
#    of N/8 MiB shows whether memory depends on the input's size.
# 3. For each input, R rounds (default 3) alternating: ours (WebM only, the
#    same work as the CLI's stream copy; then all three outputs once) and
#    `ffmpeg -v error -y -i IN -c copy OUT.webm`, each under /usr/bin/time -v
#    (wall time, maximum RSS). Both read the file from the page cache.
# 4. Checks both WebMs: duration present, same packet count as the input.
# Writes bench/results/<date>-mux.md.
set -euo pipefail
SELF="$(readlink -f "$0")"
cd "$(dirname "$SELF")/../.."
SIZE_MIB=2048
RUNS=3
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --size-mib) SIZE_MIB="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --keep-tmp) KEEP=1; shift ;;
    *) sed -n '2,20p' "$SELF" >&2; exit 2 ;;
    esac
done
BUILD=build-release
TMP="$(mktemp -d /tmp/seashore-bench-mux.XXXXXX)"
cleanup() { if [ "$KEEP" = 1 ]; then echo "bench-mux: kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
log() { printf 'bench-mux: %s\n' "$*" >&2; }

log "building the release ($BUILD)"
{ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BUILD" -j2 --target muxer_core; } \
    >"$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log"; exit 1; }
cc -O2 -o "$TMP/mux_bench" bench/mux/mux_bench.c -Iservices/muxer \
    "$BUILD/services/muxer/libmuxer_core.a" \
    $(pkg-config --cflags --libs libavformat libavcodec libavutil libswresample)

make_input() { # make_input MIB PATH
    local mib="$1" out="$2" clip="$TMP/clip.webm" list="$TMP/list.txt"
    [ -f "$clip" ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
        -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -c:v libvpx -b:v 12M \
        -deadline realtime -cpu-used 8 -c:a libopus -f webm "$clip"
    local clip_bytes copies
    clip_bytes="$(stat -c %s "$clip")"
    copies=$(((mib * 1048576 + clip_bytes - 1) / clip_bytes))
    : >"$list"
    for _ in $(seq 1 "$copies"); do echo "file '$clip'" >>"$list"; done
    ffmpeg -v error -y -f concat -safe 0 -i "$list" -c copy -f webm -live 1 "$out"
}

peak_rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }
wall_s() { # from /usr/bin/time -v's "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:01.23"
    awk -F': ' '/Elapsed/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s}' "$1"
}
packets() { ffprobe -v error -show_entries packet=stream_index -of csv=p=0 "$1" | wc -l; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

measure() { # measure NAME INPUT -> appends "name size ours_s ours_rss cli_s cli_rss all_s all_rss"
    local name="$1" in="$2" ours_t=() cli_t=() ours_m=0 cli_m=0 r
    for r in $(seq 1 "$RUNS"); do
        /usr/bin/time -v "$TMP/mux_bench" "$in" "$TMP/ours" webm >"$TMP/ours.json" 2>"$TMP/ours.time"
        ours_t+=("$(wall_s "$TMP/ours.time")")
        ours_m="$(printf '%s\n%s\n' "$ours_m" "$(peak_rss_mib "$TMP/ours.time")" | sort -g | tail -1)"
        /usr/bin/time -v ffmpeg -nostdin -v error -y -i "$in" -c copy "$TMP/cli.webm" 2>"$TMP/cli.time"
        cli_t+=("$(wall_s "$TMP/cli.time")")
        cli_m="$(printf '%s\n%s\n' "$cli_m" "$(peak_rss_mib "$TMP/cli.time")" | sort -g | tail -1)"
        log "$name round $r: ours ${ours_t[-1]} s, ffmpeg ${cli_t[-1]} s"
    done
    /usr/bin/time -v "$TMP/mux_bench" "$in" "$TMP/all" all >"$TMP/all.json" 2>"$TMP/all.time"
    local in_p ours_p cli_p
    in_p="$(packets "$in")"
    ours_p="$(packets "$TMP/ours.webm")"
    cli_p="$(packets "$TMP/cli.webm")"
    [ "$in_p" = "$ours_p" ] || { log "ours has $ours_p packets, the input $in_p"; exit 1; }
    ffprobe -v error -show_entries format=duration -of csv=p=0 "$TMP/ours.webm" | grep -q '^[0-9]' ||
        { log "our WebM has no duration"; exit 1; }
    echo "$name $(stat -c %s "$in") $(printf '%s\n' "${ours_t[@]}" | median) $ours_m" \
        "$(printf '%s\n' "${cli_t[@]}" | median) $cli_m $(wall_s "$TMP/all.time")" \
        "$(peak_rss_mib "$TMP/all.time") $in_p $cli_p" >>"$TMP/rows"
}

small=$((SIZE_MIB / 8))
log "making the inputs (${SIZE_MIB} MiB and ${small} MiB)"
make_input "$SIZE_MIB" "$TMP/big.webm"
make_input "$small" "$TMP/small.webm"
: >"$TMP/rows"
measure small "$TMP/small.webm"
measure big "$TMP/big.webm"

report="bench/results/$(date -u +%Y-%m-%d)-mux.md"
{
    echo "# Mux benchmark, $(date -u +%Y-%m-%d)"
    echo
    echo "- Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
    echo "- Command: \`bench/mux/run.sh --size-mib $SIZE_MIB --runs $RUNS\`; build \`$BUILD\` at $(git rev-parse --short HEAD)"
    echo "- Input: a 20 s 1280x720 VP8 (12 Mbit/s) + Opus clip joined to the size with ffmpeg's concat demuxer, WebM in live mode (no duration, no cues, as MediaRecorder writes); read from the page cache"
    echo "- Ours: \`mux_bench IN OUT webm\` = the muxer's FFmpeg core (\`mx_make_outputs\`, WebM only: stream copy, timestamps from zero, duration and cues) reading through the custom-AVIO callbacks the service uses; \"all\" = WebM, MP4 (skipped: VP8) and WAV (Opus decoded and resampled) as the service makes them"
    echo "- Peer: \`$(ffmpeg -version | head -1 | cut -d' ' -f1-3)\`: \`ffmpeg -v error -y -i IN -c copy OUT.webm\`"
    echo "- Times: median wall time of $RUNS alternating rounds; RSS: the largest maximum resident set size (\`/usr/bin/time -v\`)"
    echo
    echo "| input | size MiB | ours s | ffmpeg -c copy s | speed ours / ffmpeg | ours peak RSS MiB | ffmpeg peak RSS MiB | all three outputs s | all three peak RSS MiB | packets (input = ours = ffmpeg) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    while read -r name size os om cs cm as am ip cp; do
        printf '| %s | %.0f | %s | %s | %.2f | %s | %s | %s | %s | %s = %s = %s |\n' "$name" \
            "$(echo "$size / 1048576" | bc -l)" "$os" "$cs" "$(echo "$cs / $os" | bc -l)" "$om" "$cm" \
            "$as" "$am" "$ip" "$ip" "$cp"
    done <"$TMP/rows"
} >"$report"
cat "$report"
log "report written to $report"
