#!/usr/bin/env bash
# bench/run-all.sh -- `make bench`: every benchmark of bench/, each beside its
# peer in the same run, one after the other on this machine (never two at
# once: they would measure each other), then bench/results/<date>.md with the
# machine, the commands, how long each took and every report in full.
#
#   bench/run-all.sh [--quick]
# --quick: shorter runs and smaller sizes (a smoke test of the benchmarks,
# not figures to quote). Exit status 1 if any benchmark failed (the summary
# is written anyway).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LC_ALL=C

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

# name|command (full runs, then --quick runs)
if [ "$QUICK" = 0 ]; then
    BENCHES=(
        "ingest|bench/ingest/run.sh"
        "token|bench/token/run.sh"
        "upload|bench/upload/run.sh --size-mib 1024"
        "mux|bench/mux/run.sh"
        "e2e|bench/e2e/run.sh --minutes '5 30 60'"
        "scale|bench/scale/run.sh --recorders '10 50 100 200 400'"
    )
else
    BENCHES=(
        "ingest|bench/ingest/run.sh --seconds 5 --scenarios 20x262144 --idle-connections 100"
        "token|bench/token/run.sh --seconds 1"
        "upload|bench/upload/run.sh --size-mib 64"
        "mux|bench/mux/run.sh"
        "e2e|bench/e2e/run.sh --minutes 1"
        "scale|bench/scale/run.sh --recorders '10 50' --seconds 10"
    )
fi

log() { printf 'bench: %s\n' "$*" >&2; }
day="$(date -u +%Y-%m-%d)"
summary="bench/results/$day.md"
logdir="$(mktemp -d /tmp/seashore-bench-all.XXXXXX)"

log "building the release once (build-release)"
if ! { cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release -j2; } \
    >"$logdir/build.log" 2>&1; then
    tail -30 "$logdir/build.log" >&2
    exit 1
fi
export BENCH_SKIP_BUILD=1

rows=()
failed=0
for entry in "${BENCHES[@]}"; do
    name="${entry%%|*}"
    cmd="${entry#*|}"
    log "$name: $cmd"
    start=$SECONDS
    if eval "$cmd" >"$logdir/$name.log" 2>&1; then status=ok; else status="FAILED (exit $?)"; failed=1; fi
    took=$((SECONDS - start))
    [ "$status" = ok ] || tail -20 "$logdir/$name.log" >&2
    rows+=("| $name | \`$cmd\` | $status | $took s | [$day-$name.md]($day-$name.md) |")
done

{
    echo "# Benchmarks, $day"
    echo
    echo "- Machine: $(node -e 'const os=require("os");console.log(`${os.cpus().length} CPUs (${os.cpus()[0].model.trim()}), ${(os.totalmem()/2**30).toFixed(1)} GiB, Linux ${os.release()}`)')"
    echo "- Command: \`make bench\` (bench/run-all.sh$([ "$QUICK" = 1 ] && echo ' --quick')), release build, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    if [ "$QUICK" = 1 ]; then
        echo "- **A --quick smoke run** (shorter runs, smaller sizes): it shows the benchmarks work, its figures are not the ones to quote (docs/performance.md has those)."
    fi
    echo
    echo "| benchmark | command | result | time | report |"
    echo "| --- | --- | --- | ---: | --- |"
    printf '%s\n' "${rows[@]}"
    for entry in "${BENCHES[@]}"; do
        name="${entry%%|*}"
        echo
        if [ -f "bench/results/$day-$name.md" ]; then
            sed 's/^#/##/' "bench/results/$day-$name.md"
        else
            echo "## $name: no report (see the log above)"
        fi
    done
} >"$summary"
log "summary written to $summary (logs in $logdir)"
exit "$failed"
