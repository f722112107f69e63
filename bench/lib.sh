# shellcheck shell=bash
# bench/lib.sh -- what the end-to-end benchmarks share: the release build,
# the whole stack (scripts/dev.sh) on free loopback ports in a temporary
# directory, an API key, and cleanup of everything started. Sourced by
# bench/e2e/run.sh and bench/scale/run.sh after they set BENCH_NAME.
#
#   bench_init            temp dir ($BENCH_TMP), EXIT trap, REPO, cd there
#   bench_build_release   cmake Release into build-release (skipped when
#                         BENCH_SKIP_BUILD=1: `make bench` builds once)
#   bench_stack_start     dev stack up; sets BENCH_API, BENCH_KEY, BENCH_DEV_DIR;
#                         BENCH_S3=swift: Swift's s3api instead of s3rver
#   bench_stack_stop      SIGTERM to dev.sh, which stops what it started
#   bench_machine         one line: CPUs, model, memory

BENCH_BUILD=build-release
BENCH_DEV_PID=""

bench_log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
bench_die() {
    bench_log "error: $*"
    exit 1
}
bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_free_port_block N: the first of N consecutive free ports, below the
# kernel's ephemeral range (32768 and up), where outgoing connections and
# bench_free_port's picks cannot take one of them meanwhile.
bench_free_port_block() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32700 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(base)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit("no block of %d free ports" % n)
PY
}

bench_cleanup() {
    bench_stack_stop
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then
        bench_log "kept $BENCH_TMP"
    else
        rm -rf "$BENCH_TMP"
    fi
}

bench_init() {
    REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$REPO"
    export LC_ALL=C
    BENCH_TMP="$(mktemp -d "/tmp/seashore-bench-$BENCH_NAME.XXXXXX")"
    chmod 755 "$BENCH_TMP" # PostgreSQL runs as its own user and must reach its data dir
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_build_release() {
    if [ "${BENCH_SKIP_BUILD:-0}" = 1 ] && [ -x "$BENCH_BUILD/services/muxer/muxer" ]; then
        return 0
    fi
    bench_log "building the release ($BENCH_BUILD)"
    { cmake -S . -B "$BENCH_BUILD" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BENCH_BUILD" -j2; } \
        >"$BENCH_TMP/build.log" 2>&1 || {
        tail -30 "$BENCH_TMP/build.log" >&2
        bench_die "the release build failed"
    }
}

# Swift's s3api on DEV_S3_PORT for the dev stack (tests/harness/swift):
# verifies signatures and completes multipart uploads into a manifest, as
# R2 and S3 do, where s3rver copies every part into one file.
# The AWS CLI creates the bucket (Swift's access key holds a ':', which curl's
# --user cannot carry): Debian's awscli, installed when missing.
bench_need_aws() {
    command -v aws >/dev/null 2>&1 && return 0
    local sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    bench_log "installing awscli (apt-get)"
    { "${sudo_cmd[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" \
        apt-get install -y -q awscli; } >"$BENCH_TMP/apt.log" 2>&1 || bench_die "cannot install awscli"
}

bench_swift_start() {
    bench_need_aws
    local dir="$BENCH_TMP/swift-$BENCH_STACKS" log="$BENCH_TMP/swift-$BENCH_STACKS.log"
    tests/harness/swift/start-swift.sh "$dir" "$DEV_S3_PORT" >"$log" 2>&1 || {
        tail -20 "$log" >&2
        bench_die "Swift did not start"
    }
    BENCH_SWIFT_DIR="$dir"
    export DEV_S3_EXTERNAL=1 DEV_S3_REGION=us-east-1
    DEV_S3_ACCESS_KEY="$(sed -n 's/^S3_ACCESS_KEY=//p' "$log")"
    DEV_S3_SECRET_KEY="$(sed -n 's/^S3_SECRET_KEY=//p' "$log")"
    export DEV_S3_ACCESS_KEY DEV_S3_SECRET_KEY
    AWS_ACCESS_KEY_ID="$DEV_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$DEV_S3_SECRET_KEY" \
        aws --endpoint-url "http://127.0.0.1:$DEV_S3_PORT" --region us-east-1 s3 mb s3://seashore \
        >"$BENCH_TMP/mb.log" 2>&1 || bench_die "cannot create the bucket in Swift: $(tail -1 "$BENCH_TMP/mb.log")"
}

# bench_stack_start [NAME=value ...]: extra environment for every service.
bench_stack_start() {
    local i
    export DEV_DIR="$BENCH_TMP/dev-$((++BENCH_STACKS))" DEV_BUILD_DIR="$BENCH_BUILD"
    export DEV_EXIT_AFTER_READY=0 LOG_LEVEL=warn
    export DEV_NATS_PORT="$(bench_free_port)" DEV_PG_PORT="$(bench_free_port)"
    export DEV_S3_PORT="$(bench_free_port)" DEV_HTTP_PORT="$(bench_free_port)"
    export DEV_WS_PORT="$(bench_free_port)" DEV_OPS_PORT_BASE="$(bench_free_port_block 5)"
    export API_RATE_LIMIT=100000 API_RATE_BURST=100000 # measure the work, not the limiter
    BENCH_DEV_DIR="$DEV_DIR"
    if [ "${BENCH_S3:-s3rver}" = swift ]; then bench_swift_start; fi
    env "$@" scripts/dev.sh >"$BENCH_TMP/dev-$BENCH_STACKS.log" 2>&1 &
    BENCH_DEV_PID=$!
    for i in $(seq 1 180); do
        grep -q "dev stack is up" "$BENCH_TMP/dev-$BENCH_STACKS.log" && break
        kill -0 "$BENCH_DEV_PID" 2>/dev/null || break
        sleep 1
    done
    grep -q "dev stack is up" "$BENCH_TMP/dev-$BENCH_STACKS.log" || {
        tail -30 "$BENCH_TMP/dev-$BENCH_STACKS.log" >&2
        bench_die "the stack did not start"
    }
    BENCH_API="http://127.0.0.1:$DEV_HTTP_PORT"
    BENCH_KEY="$(DATABASE_URL="postgresql://seashore@127.0.0.1:$DEV_PG_PORT/seashore" LOG_LEVEL=warn \
        "$BENCH_BUILD/services/token-issuer/token-issuer" create-api-key \
        --email "bench@example.test" --name bench)"
    export BENCH_API BENCH_KEY BENCH_DEV_DIR
}
BENCH_STACKS=0

bench_stack_stop() {
    if [ -n "$BENCH_DEV_PID" ]; then
        kill -TERM "$BENCH_DEV_PID" 2>/dev/null || true
        wait "$BENCH_DEV_PID" 2>/dev/null || true
        BENCH_DEV_PID=""
    fi
    if [ -n "${BENCH_SWIFT_DIR:-}" ]; then
        tests/harness/swift/stop-swift.sh "$BENCH_SWIFT_DIR" >/dev/null 2>&1 || true
        BENCH_SWIFT_DIR=""
    fi
}

bench_machine() {
    node -e 'const os=require("os");console.log(`${os.cpus().length} CPUs (${os.cpus()[0].model.trim()}), ${(os.totalmem()/2**30).toFixed(1)} GiB, ${os.release()}`)'
}

# bench_media SECONDS OUT: 1080p30 H.264 (about 6 Mbit/s) + Opus 48 kHz
# stereo in Matroska, as Chromium records `video/webm;codecs=h264,opus`;
# a 10 s segment encoded once, then repeated by stream copy (fast at any length).
bench_media() {
    local seconds="$1" out="$2" seg="$BENCH_TMP/segment-1080p.mkv"
    if [ ! -s "$seg" ]; then
        bench_log "encoding a 10 s 1080p segment"
        ffmpeg -hide_banner -loglevel error -y \
            -f lavfi -i "testsrc2=size=1920x1080:rate=30,noise=alls=12:allf=t" \
            -f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo" -t 10 \
            -c:v libx264 -preset ultrafast -b:v 6M -maxrate 6M -bufsize 6M -g 60 -pix_fmt yuv420p \
            -c:a libopus -b:a 128k -f matroska "$seg" || bench_die "ffmpeg could not make the segment"
    fi
    ffmpeg -hide_banner -loglevel error -y -stream_loop -1 -i "$seg" -c copy -t "$seconds" \
        -f matroska "$out" || bench_die "ffmpeg could not make $out"
}
