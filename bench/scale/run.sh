#!/usr/bin/env bash
# bench/scale/run.sh -- `make bench-scale`: the scale curve. N concurrent
# recorders, each at 6 Mbit/s (one 750 kB chunk a second: a MediaRecorder
# with a 1 s timeslice), through the whole pipeline on this machine: acked
# throughput against the offered load, ack latency p50/p99, CPU and peak RSS
# of every process, the time until every raw object is complete, and the
# first step where back-pressure starts. A fresh stack per step, so that one
# step's backlog does not load the next.
#
#   bench/scale/run.sh [--recorders "10 50 100 200 400"] [--seconds S]
# BENCH_KEEP_LOGS=DIR keeps each step's service logs and the client's in DIR/N/.
# Writes bench/results/<date>-scale.md (and prints it) and the rows behind it
# as <date>-scale.jsonl.
set -euo pipefail
BENCH_NAME=scale
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RECORDERS="10 50 100 200 400"
SECONDS_PER=20
CHUNK=750000 # 6 Mbit/s with a 1 s timeslice
while [ $# -gt 0 ]; do
    case "$1" in
    --recorders) RECORDERS="$2"; shift 2 ;;
    --seconds) SECONDS_PER="$2"; shift 2 ;;
    *) echo "usage: bench/scale/run.sh [--recorders \"10 50 ...\"] [--seconds S]" >&2; exit 2 ;;
    esac
done

bench_init
bench_build_release
SEND="$BENCH_BUILD/tools/seashore-send/seashore-send"
export BENCH_BUILD
media="$BENCH_TMP/recorder.webm"
bench_media "$SECONDS_PER" "$media"

rows=()
for n in $RECORDERS; do
    bench_log "$n recorders x 6 Mbit/s for ${SECONDS_PER} s"
    bench_stack_start
    rows+=("$(node bench/e2e/e2e.mjs scale "$SEND" "$media" "video/webm;codecs=h264,opus" \
        "$BENCH_TMP/scale-$n" "$n" "$CHUNK")") || bench_die "the step with $n recorders failed"
    bench_stack_stop
    if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
        mkdir -p "$BENCH_KEEP_LOGS/$n"
        cp "$BENCH_DEV_DIR"/logs/*.log "$BENCH_TMP/scale-$n.log" "$BENCH_TMP/scale-$n.stats.json" \
            "$BENCH_KEEP_LOGS/$n/"
    fi
    rm -rf "$BENCH_DEV_DIR"
done

report="bench/results/$(date -u +%Y-%m-%d)-scale.md"
printf '%s\n' "${rows[@]}" >"${report%.md}.jsonl" # the measurements behind the report
printf '%s\n' "${rows[@]}" | node bench/e2e/e2e.mjs report-scale "$(bench_machine)" \
    "bench/scale/run.sh --recorders \"$RECORDERS\" --seconds $SECONDS_PER" >"$report"
cat "$report"
bench_log "report written to $report"
