#!/bin/sh
# fuzz.sh -- the libFuzzer targets of tests/fuzz (clang + libFuzzer).
#
#   scripts/fuzz.sh check        configure and build build-fuzz, then the
#                                short ctest set (-L fuzz): each target for
#                                FUZZ_SECONDS (default 20) over its corpus,
#                                and every seed and regression input once
#   scripts/fuzz.sh run SECONDS [TARGET...]
#                                each target (or those named) for SECONDS,
#                                one after the other, then a table of executions and
#                                crashes per target; crashing inputs are left
#                                in build-fuzz/tests/fuzz/artifacts/<target>/
#   scripts/fuzz.sh build        configure and build only
#
# Environment: BUILD_DIR (default build-fuzz), FUZZ_SECONDS, JOBS.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
jobs=${JOBS:-$(nproc)}
targets="fuzz_client_frame fuzz_ingest_token fuzz_api_json fuzz_api_http fuzz_clerk_token fuzz_mux_input"

usage() {
    sed -n '3,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

build() {
    cmake -S "$root" -B "$build" -DSEASHORE_FUZZ=ON -DCMAKE_C_COMPILER=clang \
        -DFUZZ_SECONDS="${FUZZ_SECONDS:-20}" >/dev/null
    # shellcheck disable=SC2086 # one word per target
    cmake --build "$build" -j "$jobs" --target $targets
}

# The -max_len of each target (its largest meaningful input).
max_len() {
    case $1 in
    fuzz_client_frame | fuzz_api_http) echo 4096 ;;
    fuzz_ingest_token | fuzz_clerk_token) echo 16384 ;;
    *) echo 65536 ;;
    esac
}

run() {
    seconds=$1
    dir=$build/tests/fuzz
    table=$(mktemp)
    failed=0
    trap 'rm -f "$table"' EXIT
    for t in $targets; do
        mkdir -p "$dir/work/$t" "$dir/artifacts/$t" "$dir/logs"
        log=$dir/logs/$t.log
        echo "== $t: $seconds s (log: $log)"
        status=0
        # -fork keeps going after a crash, so one run can find several.
        "$dir/$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=20 \
            -rss_limit_mb=2048 -print_final_stats=1 -fork=1 -ignore_crashes=1 \
            -ignore_timeouts=1 -ignore_ooms=1 -artifact_prefix="$dir/artifacts/$t/" \
            "$dir/work/$t" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1 || status=$?
        # -fork prints "#<execs>: ... oom/timeout/crash: O/T/C" as it goes
        last=$(grep -E '^#[0-9]+: .*oom/timeout/crash:' "$log" | tail -1)
        execs=$(printf '%s\n' "$last" | sed -n 's/^#\([0-9]*\):.*/\1/p')
        crashes=$(printf '%s\n' "$last" | sed -n 's|.*oom/timeout/crash: \([0-9]*\)/\([0-9]*\)/\([0-9]*\).*|\3 (+\1 oom, \2 timeout)|p')
        artifacts=$(find "$dir/artifacts/$t" -type f -newer "$table" | wc -l) # new ones
        printf '%-20s %12s %24s %10s\n' "$t" "${execs:-?}" "${crashes:-?}" "$artifacts" >>"$table"
        [ "$status" -eq 0 ] && [ "$artifacts" -eq 0 ] || failed=1
    done
    echo
    printf '%-20s %12s %24s %10s\n' target executions crashes artifacts
    cat "$table"
    return "$failed"
}

[ $# -ge 1 ] || usage
case $1 in
build)
    build
    ;;
check)
    build
    ctest --test-dir "$build" -L fuzz -j "$jobs" --output-on-failure
    ;;
run)
    [ $# -ge 2 ] || usage
    seconds=$2
    shift 2
    [ $# -eq 0 ] || targets="$*"
    build
    run "$seconds"
    ;;
*)
    usage
    ;;
esac
