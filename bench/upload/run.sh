#!/usr/bin/env bash
# The upload benchmark: r2-uploader moving a track that is already durable in
# chunk-store into an S3 bucket, beside the AWS CLI (`aws s3 cp`) uploading
# the same bytes from a local file, same part size, concurrency and server.
#
#   bench/upload/run.sh [--size-mib N] [--server swift|s3rver] [--chunk-size BYTES]
#                       [--tail-bytes B] [--aws PATH] [--keep-tmp]
#   make bench-upload BENCH_ARGS='--size-mib 256'
#
# 1. Builds the release build (build-release/, CMAKE_BUILD_TYPE=Release).
# 2. Starts, on free 127.0.0.1 ports in a temporary directory: the S3 server
#    (default OpenStack Swift's s3api, tests/harness/swift/start-swift.sh,
#    which verifies SigV4 signatures and payload hashes; or s3rver), the
#    bucket, nats-server (JetStream), PostgreSQL, the migrations, one host,
#    session and participant, chunk-store and ingest-recorder.
# 3. Sends N MiB (+ B bytes) of random bytes (default 1024 MiB) as one track with
#    seashore-send at full speed, r2-uploader NOT running: the track is
#    durable (ended) in chunk-store, its part work items wait in JetStream.
# 4. Ours: starts r2-uploader (UPLOAD_CONCURRENCY=4, 8 MiB parts) and times
#    it from its start until it logs the track uploaded (its log read every 100 ms
#    with shell builtins) and tracks.state = 'complete';
#    peak RSS = its VmHWM just before it is stopped; CPU time of r2-uploader,
#    chunk-store, nats-server and the S3 server over that window. The object
#    is downloaded and its sha256 compared with the file's.
# 5. The peer: `aws s3 cp FILE s3://bucket/KEY` (8 MiB multipart chunks,
#    4 concurrent requests, path-style) under /usr/bin/time -v (peak RSS),
#    and its object verified the same way.
# 6. Prints a markdown report and writes it to bench/results/<date>-upload.md.
#
# The AWS CLI is Debian's `awscli` package (/usr/bin/aws), installed with
# apt-get when missing (as is GNU time); --aws PATH uses another one.
# Everything this script starts is stopped at exit; the temporary directory
# is removed (--keep-tmp keeps it, with every log).
# Progress goes to stderr. Exit status: 0 both uploads verified, 1 a failure,
# 2 bad usage.
set -euo pipefail
export LC_ALL=C # decimal points in $EPOCHREALTIME and awk

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/../.." && pwd)"
cd "$REPO"

SIZE_MIB=1024
SERVER=swift
CHUNK_SIZE=262144 # seashore-send's default
TAIL_BYTES=0
AWS_BIN=""
KEEP_TMP=0
PART_SIZE_MIB=8
CONCURRENCY=4
BUCKET=seashore-bench
REGION=us-east-1
POLL_INTERVAL=0.1
READY_TIMEOUT=60 # seconds, per service
STOP_TIMEOUT=15  # seconds between SIGTERM and SIGKILL

# Target of the issue: at least this fraction of the AWS CLI's throughput
# (at a fraction of its memory).
TARGET_RATIO=0.9

BUILD=build-release
SEND="$BUILD/tools/seashore-send/seashore-send"
MIGRATE="$BUILD/tools/migrate/seashore-migrate"
INGEST_BIN="$BUILD/services/ingest-recorder/ingest-recorder"
STORE_BIN="$BUILD/services/chunk-store/chunk-store"
UPLOADER_BIN="$BUILD/services/r2-uploader/r2-uploader"

COMMAND="bench/upload/run.sh"
for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then
        COMMAND+=" $arg"
    else
        COMMAND+=" '${arg//\'/\'\\\'\'}'"
    fi
done

log() { printf 'bench-upload: %s\n' "$*" >&2; }
die() {
    printf 'bench-upload: error: %s\n' "$*" >&2
    exit 1
}
usage() {
    sed -n '6,8p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    printf 'Defaults: --size-mib %s, --server %s, --chunk-size %s (bytes per chunk sent to ingest), --tail-bytes 0\n(bytes added to the track, e.g. so that its length is not a multiple of the part size), --aws /usr/bin/aws.\n' \
        "$SIZE_MIB" "$SERVER" "$CHUNK_SIZE" >&2
    exit 2
}

# --- arguments ---

while [ $# -gt 0 ]; do
    case "$1" in
    --size-mib)
        [ $# -ge 2 ] || usage
        SIZE_MIB="$2"
        shift 2
        ;;
    --server)
        [ $# -ge 2 ] || usage
        SERVER="$2"
        shift 2
        ;;
    --chunk-size)
        [ $# -ge 2 ] || usage
        CHUNK_SIZE="$2"
        shift 2
        ;;
    --tail-bytes)
        [ $# -ge 2 ] || usage
        TAIL_BYTES="$2"
        shift 2
        ;;
    --aws)
        [ $# -ge 2 ] || usage
        AWS_BIN="$2"
        shift 2
        ;;
    --keep-tmp)
        KEEP_TMP=1
        shift
        ;;
    -h | --help) usage ;;
    *)
        printf 'bench-upload: unknown argument: %s\n' "$1" >&2
        usage
        ;;
    esac
done

[[ "$SIZE_MIB" =~ ^[1-9][0-9]{0,5}$ ]] || { printf 'bench-upload: --size-mib: %s is not a whole number in 1..999999\n' "$SIZE_MIB" >&2; usage; }
if ! [[ "$CHUNK_SIZE" =~ ^[1-9][0-9]{0,7}$ ]] || [ "$CHUNK_SIZE" -gt 1048576 ]; then
    printf 'bench-upload: --chunk-size: %s is not in 1..1048576\n' "$CHUNK_SIZE" >&2
    usage
fi
case "$SERVER" in
swift | s3rver) ;;
*)
    printf 'bench-upload: --server: %s is neither swift nor s3rver\n' "$SERVER" >&2
    usage
    ;;
esac
[[ "$TAIL_BYTES" =~ ^(0|[1-9][0-9]{0,9})$ ]] || { printf 'bench-upload: --tail-bytes: %s is not a whole number >= 0\n' "$TAIL_BYTES" >&2; usage; }
SIZE_BYTES=$((SIZE_MIB * 1048576 + TAIL_BYTES))
SIZE_LABEL="$SIZE_MIB MiB"
[ "$TAIL_BYTES" = 0 ] || SIZE_LABEL+=" + $TAIL_BYTES B"

# --- tools ---

APT_UPDATED=0
apt_install() { # PACKAGE...: Debian packages, with apt-get update first
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "need the Debian package(s) $*: run apt-get install $* as root"
        sudo=(sudo -n)
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2 ||
        die "apt-get install $* failed"
}

for tool in cmake cc nats-server node curl openssl awk sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found: run make deps"
done
PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1 || true)"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    die "PostgreSQL server binaries not found under /usr/lib/postgresql: run make deps"
fi
[ -d node_modules/jsonwebtoken ] || die "node_modules/jsonwebtoken missing: run make deps (npm ci)"
if [ "$SERVER" = s3rver ]; then
    [ -f node_modules/s3rver/bin/s3rver.js ] || die "node_modules/s3rver missing: run make deps (npm ci)"
else
    { [ -x /usr/bin/python3 ] && command -v memcached >/dev/null && /usr/bin/python3 -c 'import swift' 2>/dev/null; } ||
        die "Swift is missing (python3-swift, memcached): run make deps"
fi
[ -x /usr/bin/time ] || apt_install time
# The AWS CLI: Debian's package unless --aws names another. (A different
# `aws` may come first in PATH, e.g. a pip-installed v1: it is not the peer
# the report names unless asked for.)
if [ -z "$AWS_BIN" ]; then
    AWS_BIN=/usr/bin/aws
    [ -x "$AWS_BIN" ] || apt_install awscli
fi
[ -x "$AWS_BIN" ] || AWS_BIN="$(command -v "$AWS_BIN" || true)"
if [ -z "$AWS_BIN" ] || [ ! -x "$AWS_BIN" ]; then die "no AWS CLI at ${AWS_BIN:-/usr/bin/aws}"; fi
CLK_TCK="$(getconf CLK_TCK)"

# As root, PostgreSQL refuses to run: it runs as the postgres OS user.
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
    getent passwd postgres >/dev/null || die "running as root and there is no postgres user"
    AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

# --- processes ---

TMP=""
SWIFT_DIR=""
declare -A PIDS=() # name -> pid, for what we started and have not reaped

alive() { kill -0 "$1" 2>/dev/null; }

# start NAME CMD...: in the background, output to $TMP/NAME.log.
start() {
    local name="$1"
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS[$name]=$!
}

# stop NAME SIGNAL: signal, wait up to STOP_TIMEOUT, then SIGKILL; reap.
stop() {
    local name="$1" sig="$2" pid deadline=$((SECONDS + STOP_TIMEOUT))
    pid="${PIDS[$name]:-}"
    [ -n "$pid" ] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
        log "$name did not stop within ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
}

cleanup() {
    local rc=$? name
    trap - EXIT INT TERM
    for name in aws send; do stop "$name" TERM; done
    for name in r2-uploader ingest-recorder chunk-store nats-server s3rver; do stop "$name" TERM; done
    stop postgres INT # PostgreSQL's fast shutdown
    for name in "${!PIDS[@]}"; do stop "$name" KILL; done # anything else
    if [ -n "$SWIFT_DIR" ]; then
        tests/harness/swift/stop-swift.sh "$SWIFT_DIR" >/dev/null 2>&1 || log "stop-swift.sh $SWIFT_DIR failed"
    fi
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "$KEEP_TMP" = 1 ]; then
            log "kept $TMP (logs: $TMP/*.log)"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_with_log() { # MESSAGE LOGNAME: the message and the log's last lines, exit 1
    printf 'bench-upload: error: %s; last 20 lines of %s.log:\n' "$1" "$2" >&2
    tail -n 20 "$TMP/$2.log" >&2 2>/dev/null || true
    [ "$KEEP_TMP" = 1 ] || printf 'bench-upload: (rerun with --keep-tmp to keep every log)\n' >&2
    exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_ports N: N distinct free loopback ports, held together while chosen.
free_ports() {
    node -e '
        const net = require("net");
        const n = Number(process.argv[1]), servers = [];
        let ready = 0;
        for (let i = 0; i < n; i++) {
            const s = net.createServer();
            servers.push(s);
            s.listen(0, "127.0.0.1", () => {
                if (++ready === n) {
                    console.log(servers.map((x) => x.address().port).join(" "));
                    servers.forEach((x) => x.close());
                }
            });
        }' "$1"
}

wait_port() { # NAME PORT
    local deadline=$((SECONDS + READY_TIMEOUT))
    until port_open "$2"; do
        alive "${PIDS[$1]}" || fail_with_log "$1 exited during startup" "$1"
        [ "$SECONDS" -lt "$deadline" ] || fail_with_log "$1 not listening on port $2 after ${READY_TIMEOUT}s" "$1"
        sleep 0.2
    done
}

wait_ready() { # NAME OPS_PORT
    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$2/readyz" 2>/dev/null; do
        alive "${PIDS[$1]}" || fail_with_log "$1 exited before it was ready" "$1"
        [ "$SECONDS" -lt "$deadline" ] ||
            fail_with_log "$1 not ready (http://127.0.0.1:$2/readyz) after ${READY_TIMEOUT}s" "$1"
        sleep 0.25
    done
}

# cpu_ticks PID...: utime + stime of the processes, summed (clock ticks).
cpu_ticks() {
    local pid stat total=0
    local -a f
    for pid in "$@"; do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        read -ra f <<<"${stat##*) }" # fields from 3 (state) on: utime is 14, stime 15
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

status_kb() { # PID FIELD (VmHWM, VmRSS): kB
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

secs() { awk -v t="$1" -v k="$CLK_TCK" 'BEGIN { printf "%.1f", t / k }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- build ---

TMP="$(mktemp -d "${TMPDIR:-/tmp}/seashore-bench-upload.XXXXXX")"
chmod 755 "$TMP" # PostgreSQL runs as its own user and must reach its data dir
LOADAVG0="$(cut -d' ' -f1-3 /proc/loadavg)"

# Only what runs here: the tests are not needed (and a -Werror warning in a
# test must not stop the benchmark).
log "building the release ($BUILD)"
{ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
    cmake --build "$BUILD" -j2 --target chunk-store ingest-recorder r2-uploader seashore-send seashore-migrate; } \
    >"$TMP/build.log" 2>&1 || fail_with_log "the release build failed" build

read -r NATS_PORT PG_PORT S3_PORT WS_PORT INGEST_OPS STORE_OPS UPLOADER_OPS <<<"$(free_ports 7)"
[ -n "$UPLOADER_OPS" ] || die "could not find free loopback ports"
NATS_URL="nats://127.0.0.1:$NATS_PORT"
DATABASE_URL="postgresql://seashore@127.0.0.1:$PG_PORT/seashore"
WS_URL="ws://127.0.0.1:$WS_PORT/v1/ingest"
SECRET="$(openssl rand -hex 32)"

# --- the S3 server and the AWS CLI's configuration ---

S3_PIDS=() # the server's processes, for their CPU time
if [ "$SERVER" = swift ]; then
    log "starting Swift s3api on 127.0.0.1:$S3_PORT (tests/harness/swift/start-swift.sh)"
    SWIFT_DIR="$TMP/swift"
    tests/harness/swift/start-swift.sh "$SWIFT_DIR" "$S3_PORT" >"$TMP/swift-start.log" 2>&1 ||
        fail_with_log "Swift did not start" swift-start
    S3_ACCESS_KEY="$(sed -n 's/^S3_ACCESS_KEY=//p' "$TMP/swift-start.log")"
    S3_SECRET_KEY="$(sed -n 's/^S3_SECRET_KEY=//p' "$TMP/swift-start.log")"
    read -ra S3_PIDS <<<"$(sed -n 's/^PIDS=//p' "$TMP/swift-start.log")"
    if [ -z "$S3_ACCESS_KEY" ] || [ "${#S3_PIDS[@]}" -eq 0 ]; then
        fail_with_log "no settings from start-swift.sh" swift-start
    fi
    SERVER_VERSION="OpenStack Swift $(dpkg-query -W -f '${Version}' python3-swift 2>/dev/null || echo '?') (s3api, tempauth; one replica; workers = 0)"
else
    log "starting s3rver on 127.0.0.1:$S3_PORT"
    mkdir -p "$TMP/s3"
    start s3rver node node_modules/s3rver/bin/s3rver.js --directory "$TMP/s3" --address 127.0.0.1 \
        --port "$S3_PORT" --configure-bucket "$BUCKET"
    wait_port s3rver "$S3_PORT"
    S3_ACCESS_KEY=S3RVER S3_SECRET_KEY=S3RVER
    S3_PIDS=("${PIDS[s3rver]}")
    SERVER_VERSION="s3rver $(node -p 'require("./node_modules/s3rver/package.json").version') (does not verify signatures)"
fi
S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

# The AWS CLI reads only our files: no profile, key or endpoint from the
# environment.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE \
    AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_CA_BUNDLE AWS_CLI_S3_MV_VALIDATE_SAME_S3_PATHS
mkdir -p "$TMP/aws"
export AWS_CONFIG_FILE="$TMP/aws/config" AWS_SHARED_CREDENTIALS_FILE="$TMP/aws/credentials"
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
(umask 077 && : >"$AWS_SHARED_CREDENTIALS_FILE")
AWS_SETTINGS=(
    "aws_access_key_id $S3_ACCESS_KEY"
    "aws_secret_access_key $S3_SECRET_KEY"
    "region $REGION"
    "default.s3.multipart_chunksize ${PART_SIZE_MIB}MB"
    "default.s3.multipart_threshold ${PART_SIZE_MIB}MB"
    "default.s3.max_concurrent_requests $CONCURRENCY"
    "default.s3.addressing_style path"
    # Newer CLIs (aws-cli >= 2.23, botocore >= 1.36) send CRC checksums in
    # aws-chunked trailers by default, which Swift 2.30 does not know; older
    # ones ignore these two keys.
    "default.request_checksum_calculation when_required"
    "default.response_checksum_validation when_required"
)
for kv in "${AWS_SETTINGS[@]}"; do
    # shellcheck disable=SC2086 # "key value"
    "$AWS_BIN" configure set ${kv} || die "aws configure set ${kv%% *} failed"
done
AWS=("$AWS_BIN" --endpoint-url "$S3_ENDPOINT")
AWS_VERSION="$("$AWS_BIN" --version 2>&1 | head -n 1)"
if [ "$SERVER" = swift ]; then
    "${AWS[@]}" s3 mb "s3://$BUCKET" >"$TMP/mb.log" 2>&1 || fail_with_log "cannot create the bucket" mb
fi

# --- nats-server, PostgreSQL, migrations, rows, token ---

log "starting nats-server on 127.0.0.1:$NATS_PORT"
mkdir -p "$TMP/nats"
cat >"$TMP/nats.conf" <<EOF
listen: 127.0.0.1:$NATS_PORT
max_payload: 8MB
jetstream {
    store_dir: "$TMP/nats"
}
EOF
start nats-server nats-server -c "$TMP/nats.conf"
wait_port nats-server "$NATS_PORT"

log "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
mkdir -p "$TMP/pg" "$TMP/pgsock"
chmod 700 "$TMP/pg"
if [ "${#AS_PG[@]}" -gt 0 ]; then
    chown postgres:postgres "$TMP/pg" "$TMP/pgsock"
    "${AS_PG[@]}" test -w "$TMP/pg" ||
        die "the postgres user cannot write $TMP/pg (a parent directory is not accessible to it; set TMPDIR)"
fi
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$TMP/pg" -A trust -U seashore -E UTF8 --no-locale --no-sync \
    >"$TMP/initdb.log" 2>&1 || fail_with_log "initdb failed" initdb
start postgres "${AS_PG[@]}" "$PG_BIN/postgres" -D "$TMP/pg" -p "$PG_PORT" -k "$TMP/pgsock" \
    -c listen_addresses=127.0.0.1
deadline=$((SECONDS + READY_TIMEOUT))
until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U seashore -d postgres; do
    alive "${PIDS[postgres]}" || fail_with_log "postgres exited during startup" postgres
    [ "$SECONDS" -lt "$deadline" ] || fail_with_log "postgres not ready after ${READY_TIMEOUT}s" postgres
    sleep 0.2
done
PSQL=("$PG_BIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U seashore -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE seashore" >"$TMP/psql.log" 2>&1 ||
    fail_with_log "CREATE DATABASE failed" psql

log "running migrations"
DATABASE_URL="$DATABASE_URL" LOG_LEVEL=warn "$MIGRATE" --dir migrations >"$TMP/migrate.log" 2>&1 ||
    fail_with_log "migrations failed" migrate

# One host, an open session, one participant (as tests/ingest/ingest_stack.c).
ids="$("${PSQL[@]}" -d seashore -c "
    WITH h AS (INSERT INTO hosts (email) VALUES ('bench@example.test') RETURNING id),
         s AS (INSERT INTO sessions (host_id, title) SELECT id, 'upload benchmark' FROM h RETURNING id),
         p AS (INSERT INTO participants (session_id, identity, role)
               SELECT id, 'bench-guest', 'guest' FROM s RETURNING id, session_id)
    SELECT session_id || ' ' || id FROM p" 2>"$TMP/psql.log")" || fail_with_log "inserting the session rows failed" psql
read -r SESSION_ID PARTICIPANT_ID <<<"$ids"
[ -n "${PARTICIPANT_ID:-}" ] || die "no participant id from PostgreSQL (got: $ids)"

TOKEN_FILE="$TMP/token"
(umask 077 && BENCH_SECRET="$SECRET" BENCH_SESSION="$SESSION_ID" BENCH_PARTICIPANT="$PARTICIPANT_ID" node -e '
    const jwt = require("jsonwebtoken");
    const now = Math.floor(Date.now() / 1000), e = process.env;
    process.stdout.write(jwt.sign({ iss: "seashore", aud: "seashore-ingest", sub: e.BENCH_PARTICIPANT,
        sid: e.BENCH_SESSION, iat: now, exp: now + 86400 }, e.BENCH_SECRET,
        { algorithm: "HS256", noTimestamp: true }) + "\n");' >"$TOKEN_FILE") ||
    die "cannot mint the ingest token (node, jsonwebtoken)"

# --- chunk-store, ingest-recorder; the track ---

LOG_MAX_MIB=$((SIZE_MIB * 2 > 4096 ? SIZE_MIB * 2 : 4096))
log "starting chunk-store and ingest-recorder"
start chunk-store env NATS_URL="$NATS_URL" DATABASE_URL="$DATABASE_URL" OPS_LISTEN="127.0.0.1:$STORE_OPS" \
    LOG_LEVEL=warn CHUNK_LOG_MAX_BYTES="${LOG_MAX_MIB}MiB" UPLOAD_PART_SIZE="${PART_SIZE_MIB}MiB" "$STORE_BIN"
wait_ready chunk-store "$STORE_OPS"
start ingest-recorder env NATS_URL="$NATS_URL" DATABASE_URL="$DATABASE_URL" OPS_LISTEN="127.0.0.1:$INGEST_OPS" \
    WS_LISTEN="127.0.0.1:$WS_PORT" INGEST_TOKEN_SECRET="$SECRET" LOG_LEVEL=warn "$INGEST_BIN"
wait_ready ingest-recorder "$INGEST_OPS"
wait_port ingest-recorder "$WS_PORT"

TRACK_FILE="$TMP/track.bin"
log "writing $SIZE_LABEL of random bytes"
head -c "$SIZE_BYTES" /dev/urandom >"$TRACK_FILE"
FILE_SHA="$(sha256sum "$TRACK_FILE" | awk '{ print $1 }')"

log "sending the track to ingest (seashore-send, full speed, $CHUNK_SIZE-byte chunks; r2-uploader not running)"
t_send0="$EPOCHREALTIME"
start send "$SEND" --url "$WS_URL" --token-file "$TOKEN_FILE" --chunk-size "$CHUNK_SIZE" --quiet \
    --give-up-after 60 "$TRACK_FILE"
send_status=0
wait "${PIDS[send]}" || send_status=$?
unset "PIDS[send]"
t_send1="$EPOCHREALTIME"
[ "$send_status" = 0 ] || fail_with_log "seashore-send exited $send_status" send
read -r TRACK_ID CHUNKS SENT_BYTES SENT_SHA <<<"$(grep -E '^[0-9a-f-]{36} ' "$TMP/send.log" | tail -n 1)"
[ -n "${SENT_SHA:-}" ] || fail_with_log "no '<track> <chunks> <bytes> <sha256>' line from seashore-send" send
if [ "$SENT_BYTES" != "$SIZE_BYTES" ] || [ "$SENT_SHA" != "$FILE_SHA" ]; then
    die "seashore-send reports $SENT_BYTES bytes, sha256 $SENT_SHA; the file has $SIZE_BYTES bytes, $FILE_SHA"
fi
SEND_SECONDS="$(elapsed "$t_send0" "$t_send1")"
log "track $TRACK_ID: $CHUNKS chunks, $SENT_BYTES bytes in $SEND_SECONDS s"

track_state() { "${PSQL[@]}" -d seashore -c "SELECT state FROM tracks WHERE id = '$TRACK_ID'"; }
state="$(track_state)"
[ "$state" = ended ] || die "track $TRACK_ID is '$state' after seashore-send, expected 'ended'"

# --- ours: r2-uploader ---

sync # the chunk log's writes are on disk, not written back during the run
# The S3 server's (and nats-server's) own CPU, for both runs.
NATS_PID="${PIDS[nats-server]}"
STORE_PID="${PIDS[chunk-store]}"
log "ours: starting r2-uploader (UPLOAD_CONCURRENCY=$CONCURRENCY, ${PART_SIZE_MIB} MiB parts)"
store0="$(cpu_ticks "$STORE_PID")" nats0="$(cpu_ticks "$NATS_PID")" s3_0="$(cpu_ticks "${S3_PIDS[@]}")"
: >"$TMP/r2-uploader.log" # exists before the watch below opens it
t0="$EPOCHREALTIME"
start r2-uploader env NATS_URL="$NATS_URL" DATABASE_URL="$DATABASE_URL" OPS_LISTEN="127.0.0.1:$UPLOADER_OPS" \
    R2_ENDPOINT="$S3_ENDPOINT" R2_ACCESS_KEY_ID="$S3_ACCESS_KEY" R2_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
    R2_BUCKET_NAME="$BUCKET" R2_REGION="$REGION" UPLOAD_CONCURRENCY="$CONCURRENCY" LOG_LEVEL=debug \
    "$UPLOADER_BIN"
UP_PID="${PIDS[r2-uploader]}"
limit=$((120 + SIZE_MIB)) # seconds: 1 MB/s would be a failure anyway
deadline=$((SECONDS + limit))
up_hwm=0
# The end is watched in r2-uploader's log with shell builtins only: a psql
# every 100 ms cost about a tenth of a core, which the CLI's run does not
# pay, on a machine whose two cores the upload keeps busy.
exec {uplog}<"$TMP/r2-uploader.log"
partial=""
uploader_said() { # reads what r2-uploader logged since the last call
    local line
    while :; do
        if IFS= read -r -u "$uplog" line; then
            line="$partial$line" partial=""
            case "$line" in
            *'"msg":"track uploaded"'*) said=uploaded ;;
            *'"msg":"track upload failed"'*) said=failed ;;
            esac
        else
            partial+="$line" # a line still being written
            return 0
        fi
    done
}
said=""
while :; do
    uploader_said
    state="?"
    [ -n "$said" ] && { state="$(track_state)" || state="?"; }
    [ "$state" = complete ] && break
    if [ "$state" = failed ]; then
        failure="$("${PSQL[@]}" -d seashore -c "SELECT failure FROM tracks WHERE id = '$TRACK_ID'")"
        fail_with_log "the track's upload failed ($failure)" r2-uploader
    fi
    alive "$UP_PID" || fail_with_log "r2-uploader exited" r2-uploader
    [ "$SECONDS" -lt "$deadline" ] || fail_with_log "the track is not complete after ${limit}s (state $state)" r2-uploader
    sleep "$POLL_INTERVAL"
done
t1="$EPOCHREALTIME"
exec {uplog}<&-
up_hwm="$(status_kb "$UP_PID" VmHWM)"
up_cpu="$(cpu_ticks "$UP_PID")"
store1="$(cpu_ticks "$STORE_PID")" nats1="$(cpu_ticks "$NATS_PID")" s3_1="$(cpu_ticks "${S3_PIDS[@]}")"
stop r2-uploader TERM
OURS_SECONDS="$(elapsed "$t0" "$t1")"
log "ours: complete after $OURS_SECONDS s, VmHWM $up_hwm kB"

OBJECT_KEY="$("${PSQL[@]}" -d seashore -c "SELECT object_key FROM uploads WHERE track_id = '$TRACK_ID'")"
[ -n "$OBJECT_KEY" ] || die "no upload row for track $TRACK_ID"
log "verifying s3://$BUCKET/$OBJECT_KEY"
ours_sha="$("${AWS[@]}" s3 cp --only-show-errors "s3://$BUCKET/$OBJECT_KEY" - 2>"$TMP/verify-ours.log" | sha256sum | awk '{ print $1 }')"
[ "$ours_sha" = "$FILE_SHA" ] ||
    fail_with_log "our object's sha256 is $ours_sha, the file's $FILE_SHA: the run is void" verify-ours

# Per-part timing from r2-uploader's debug log: first and last part.
PARTS_LINE="$(node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
    const t = (l) => Date.parse(JSON.parse(l).ts) / 1000;
    let start = null, created = null, first = null, last = null, parts = 0, done = null;
    for (const l of lines) {
        if (!l.startsWith("{")) continue;
        const j = JSON.parse(l);
        if (j.msg === "started" && start === null) start = t(l);
        if (j.msg === "multipart upload created") created = t(l);
        if (j.msg === "part uploaded") { parts++; if (first === null) first = t(l); last = t(l); }
        if (j.msg === "track uploaded") done = t(l);
    }
    if (start === null || first === null || done === null) { console.log("-"); process.exit(0); }
    console.log([parts, (created - start).toFixed(2), (first - start).toFixed(2), (last - start).toFixed(2),
        (done - last).toFixed(2)].join(" "));' "$TMP/r2-uploader.log" 2>/dev/null || echo -)"

# --- the peer: aws s3 cp ---

sync
AWS_KEY="aws-cli/$TRACK_ID.bin"
log "AWS CLI: aws s3 cp ($AWS_VERSION)"
s3_2="$(cpu_ticks "${S3_PIDS[@]}")"
t2="$EPOCHREALTIME"
aws_status=0
/usr/bin/time -v -o "$TMP/aws-time.txt" "${AWS[@]}" s3 cp --only-show-errors "$TRACK_FILE" "s3://$BUCKET/$AWS_KEY" \
    >"$TMP/aws.log" 2>&1 || aws_status=$?
t3="$EPOCHREALTIME"
s3_3="$(cpu_ticks "${S3_PIDS[@]}")"
[ "$aws_status" = 0 ] || fail_with_log "aws s3 cp exited $aws_status" aws
AWS_SECONDS="$(elapsed "$t2" "$t3")"
aws_rss="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/aws-time.txt")"
aws_user="$(awk -F': ' '/User time \(seconds\)/ { print $2 }' "$TMP/aws-time.txt")"
aws_sys="$(awk -F': ' '/System time \(seconds\)/ { print $2 }' "$TMP/aws-time.txt")"
log "AWS CLI: $AWS_SECONDS s, max RSS $aws_rss kB"
log "verifying s3://$BUCKET/$AWS_KEY"
aws_sha="$("${AWS[@]}" s3 cp --only-show-errors "s3://$BUCKET/$AWS_KEY" - 2>"$TMP/verify-aws.log" | sha256sum | awk '{ print $1 }')"
[ "$aws_sha" = "$FILE_SHA" ] ||
    fail_with_log "the AWS CLI's object's sha256 is $aws_sha, the file's $FILE_SHA: the run is void" verify-aws

# --- report ---

read -r OURS_MBS AWS_MBS R_MBS OURS_MIB AWS_MIB R_RSS <<<"$(awk -v b="$SIZE_BYTES" -v ot="$OURS_SECONDS" \
    -v at="$AWS_SECONDS" -v oh="$up_hwm" -v ah="$aws_rss" 'BEGIN {
    o = b / ot / 1e6; a = b / at / 1e6
    printf "%.1f %.1f %.2f %.1f %.1f %.2f\n", o, a, o / a, oh / 1024, ah / 1024, oh / ah }')"
pct() { awk -v t="$1" -v k="$CLK_TCK" -v s="$2" 'BEGIN { printf "%.0f", 100 * t / k / s }'; }
UP_CPU_S="$(secs "$up_cpu")" UP_CPU_P="$(pct "$up_cpu" "$OURS_SECONDS")"
STORE_CPU_S="$(secs $((store1 - store0)))" STORE_CPU_P="$(pct $((store1 - store0)) "$OURS_SECONDS")"
NATS_CPU_S="$(secs $((nats1 - nats0)))" NATS_CPU_P="$(pct $((nats1 - nats0)) "$OURS_SECONDS")"
S3_OURS_S="$(secs $((s3_1 - s3_0)))" S3_OURS_P="$(pct $((s3_1 - s3_0)) "$OURS_SECONDS")"
S3_AWS_S="$(secs $((s3_3 - s3_2)))" S3_AWS_P="$(pct $((s3_3 - s3_2)) "$AWS_SECONDS")"
AWS_CPU_S="$(awk -v u="$aws_user" -v s="$aws_sys" 'BEGIN { printf "%.1f", u + s }')"
AWS_CPU_P="$(awk -v u="$aws_user" -v s="$aws_sys" -v t="$AWS_SECONDS" 'BEGIN { printf "%.0f", 100 * (u + s) / t }')"
SEND_MBS="$(awk -v b="$SIZE_BYTES" -v t="$SEND_SECONDS" 'BEGIN { printf "%.1f", b / t / 1e6 }')"
if awk -v r="$R_MBS" -v t="$TARGET_RATIO" 'BEGIN { exit !(r >= t) }'; then tput_ok="**met**"; else tput_ok="**not met**"; fi
if awk -v r="$R_RSS" 'BEGIN { exit !(r < 1) }'; then rss_ok="**met**"; else rss_ok="**not met**"; fi

cpu_model="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
mem_gib="$(awk '$1 == "MemTotal:" { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
fs_type="$(df -PT "$TMP" | awk 'NR == 2 { print $2 }')"
nats_version="$(nats-server --version 2>&1 | head -n 1)"
pg_version="$("$PG_BIN/postgres" --version)"
curl_version="$(curl --version | head -n 1 | awk '{ print $1, $2 }')"
git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
git diff --quiet HEAD -- services libseashore 2>/dev/null || git_rev+=" (services or libseashore modified)"

DATE="$(date +%F)"
REPORT_DIR="bench/results"
REPORT="$REPORT_DIR/$DATE-upload.md"
mkdir -p "$REPORT_DIR"
# shellcheck disable=SC2016 # backquotes are markdown
{
    printf '# Upload benchmark, %s\n\n' "$DATE"
    printf -- '- Machine: %s CPUs (%s), %s GiB RAM, Linux %s; temporary directory on %s; load average before the run: %s\n' \
        "$(nproc)" "${cpu_model:-unknown model}" "$mem_gib" "$(uname -r)" "$fs_type" "$LOADAVG0"
    printf -- '- Date: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    printf -- '- Command: `%s`\n' "$COMMAND"
    printf -- '- Build: `%s` (CMAKE_BUILD_TYPE=Release) at %s; %s; %s; %s\n' \
        "$BUILD" "$git_rev" "$nats_version" "$pg_version" "$curl_version"
    printf -- '- S3 server: %s on 127.0.0.1, region %s, path-style\n' "$SERVER_VERSION" "$REGION"
    printf -- '- Track: %s of random bytes, sent beforehand with `seashore-send --chunk-size %s` (%s chunks, %s s, %s MB/s) while r2-uploader was not running\n' \
        "$SIZE_LABEL ($SIZE_BYTES bytes)" "$CHUNK_SIZE" "$CHUNKS" "$SEND_SECONDS" "$SEND_MBS"
    printf -- '- Ours: `r2-uploader` with `UPLOAD_CONCURRENCY=%s`, chunk-store `UPLOAD_PART_SIZE=%sMiB` (each part read from the chunk log: the index in PostgreSQL, then JetStream direct gets, 2 MiB in flight), `LOG_LEVEL=debug`; timed from its start until it logs the track uploaded (its log read every %s s with shell builtins; then `tracks.state` is checked to be `complete`), i.e. CreateMultipartUpload, every part read from the chunk log and uploaded, ListParts, Complete and HEAD\n' \
        "$CONCURRENCY" "$PART_SIZE_MIB" "$POLL_INTERVAL"
    printf -- '- Peer: `%s`; `aws s3 cp --only-show-errors FILE s3://%s/KEY` from the local file (page cache), timed from start to exit; settings: `aws configure set` %s\n' \
        "$AWS_VERSION" "$BUCKET" "$(printf '`%s`, ' "${AWS_SETTINGS[@]:2}" | sed 's/, $//')"
    printf -- '- MB = 10^6 bytes. Peak RSS: r2-uploader'"'"'s VmHWM just before it is stopped; the CLI'"'"'s maximum RSS from `/usr/bin/time -v`. CPU %% = CPU time / wall time of that upload, 100 = one core.\n'
    printf -- '- Both objects downloaded again and their sha256 compared with the file'"'"'s: equal (%s).\n\n' "$FILE_SHA"
    printf '| size | ours s | ours MB/s | AWS CLI s | AWS CLI MB/s | MB/s ours / AWS CLI | ours peak RSS MiB | AWS CLI peak RSS MiB | RSS ours / AWS CLI |\n'
    printf '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n\n' "$SIZE_LABEL" "$OURS_SECONDS" "$OURS_MBS" \
        "$AWS_SECONDS" "$AWS_MBS" "$R_MBS" "$OURS_MIB" "$AWS_MIB" "$R_RSS"
    printf '## CPU during each upload\n\n'
    printf '| upload | process | CPU s | CPU %% |\n| --- | --- | ---: | ---: |\n'
    printf '| ours | r2-uploader | %s | %s |\n' "$UP_CPU_S" "$UP_CPU_P"
    printf '| ours | chunk-store (releases committed chunks) | %s | %s |\n' "$STORE_CPU_S" "$STORE_CPU_P"
    printf '| ours | nats-server | %s | %s |\n' "$NATS_CPU_S" "$NATS_CPU_P"
    printf '| ours | S3 server (%s) | %s | %s |\n' "$SERVER" "$S3_OURS_S" "$S3_OURS_P"
    printf '| AWS CLI | aws | %s | %s |\n' "$AWS_CPU_S" "$AWS_CPU_P"
    printf '| AWS CLI | S3 server (%s) | %s | %s |\n\n' "$SERVER" "$S3_AWS_S" "$S3_AWS_P"
    if [ "$PARTS_LINE" != - ]; then
        read -r n_parts t_created t_first t_last t_done <<<"$PARTS_LINE"
        printf 'r2-uploader'"'"'s log (seconds after its "started" line): multipart upload created at %s s, first of %s parts uploaded at %s s, last at %s s; Complete (ListParts, Complete, HEAD) took %s s after the last part.\n\n' \
            "$t_created" "$n_parts" "$t_first" "$t_last" "$t_done"
    fi
    printf '## Target\n\n'
    printf -- '- At least %s× the AWS CLI'"'"'s throughput: %s (%s×)\n' "$TARGET_RATIO" "$tput_ok" "$R_MBS"
    printf -- '- At a fraction of its memory (peak RSS below the CLI'"'"'s): %s (%s×)\n' "$rss_ok" "$R_RSS"
} >"$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
cat "$REPORT"
log "report written to $REPORT"
