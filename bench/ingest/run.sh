#!/usr/bin/env bash
# The ingest benchmark: Sea Shore's durable-ingest path (seashore-send ->
# ingest-recorder -> JetStream -> chunk-store) against JetStream alone.
#
#   bench/ingest/run.sh [--scenarios "NxBYTES ..."] [--seconds S]
#                       [--idle-connections K] [--keep-tmp]
#   make bench-ingest BENCH_ARGS='--seconds 5 --scenarios "20x65536"'
#
# 1. Builds the release build (build-release/, CMAKE_BUILD_TYPE=Release).
# 2. Starts nats-server (JetStream), PostgreSQL, the migrations, one host,
#    session and participant, chunk-store and ingest-recorder, all on free
#    127.0.0.1 ports in a temporary directory (removed at exit, with every
#    process this script started).
# 3. Idle connections: K (default 1000) websocket connections that say Hello
#    and hold (bench/ingest/idle.mjs); ingest-recorder's VmRSS before/after.
#    Run first, so freed memory of the load runs cannot hide their cost.
# 4. Per scenario N x BYTES: seashore-send --copies N --rate 1 (N recorders,
#    one chunk of BYTES per second each, S seconds), sampling CPU time and
#    RSS of ingest-recorder, chunk-store and nats-server every 0.5 s; then
#    the peer (bench/ingest/jetstream_peer.c): the same N x BYTES x 1/s
#    published straight to a JetStream stream, each publisher waiting for
#    its PubAck, as ingest does per track.
# 5. Prints a markdown report on stdout and writes it to
#    bench/results/<YYYY-MM-DD>-ingest.md.
#
# Progress goes to stderr. Exit status: 0 every step worked, 1 a scenario or
# the idle test failed (the report is still written), 2 bad usage.
set -euo pipefail
export LC_ALL=C # decimal points in $EPOCHREALTIME and awk

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/../.." && pwd)"
cd "$REPO"

DEFAULT_SCENARIOS="200x262144 50x262144 200x65536 20x1048576"
SCENARIOS="$DEFAULT_SCENARIOS"
DEFAULT_DURATION=20 # seconds of recording per client
DURATION="$DEFAULT_DURATION"
IDLE_K=1000
KEEP_TMP=0
MAX_CHUNK=1048576 # ingest-recorder's MAX_CHUNK_BYTES default, kept
SAMPLE_INTERVAL=0.5
READY_TIMEOUT=60 # seconds, per service
STOP_TIMEOUT=15  # seconds between SIGTERM and SIGKILL

# Targets.
TARGET_SCENARIO=200x262144
TARGET_P99_MS=50
TARGET_IDLE_BYTES=65536

BUILD=build-release
SEND="$BUILD/tools/seashore-send/seashore-send"
MIGRATE="$BUILD/tools/migrate/seashore-migrate"
INGEST_BIN="$BUILD/services/ingest-recorder/ingest-recorder"
STORE_BIN="$BUILD/services/chunk-store/chunk-store"
# The command line as typed (single quotes where the shell needs them).
COMMAND="bench/ingest/run.sh"
for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then
        COMMAND+=" $arg"
    else
        COMMAND+=" '${arg//\'/\'\\\'\'}'"
    fi
done

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}
usage() {
    sed -n '5,7p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    printf 'Scenarios are CLIENTSxCHUNK_BYTES (chunk <= %s), default "%s"; --seconds defaults to %s.\n' \
        "$MAX_CHUNK" "$DEFAULT_SCENARIOS" "$DEFAULT_DURATION" >&2
    exit 2
}

# --- arguments ---

while [ $# -gt 0 ]; do
    case "$1" in
    --scenarios)
        [ $# -ge 2 ] || usage
        SCENARIOS="$2"
        shift 2
        ;;
    --seconds)
        [ $# -ge 2 ] || usage
        DURATION="$2"
        shift 2
        ;;
    --idle-connections)
        [ $# -ge 2 ] || usage
        IDLE_K="$2"
        shift 2
        ;;
    --keep-tmp)
        KEEP_TMP=1
        shift
        ;;
    -h | --help) usage ;;
    *)
        printf 'bench: unknown argument: %s\n' "$1" >&2
        usage
        ;;
    esac
done

is_uint() { [[ "$1" =~ ^[1-9][0-9]{0,8}$ ]]; }
is_uint "$DURATION" || { printf 'bench: --seconds: %s is not a whole number > 0\n' "$DURATION" >&2; usage; }
is_uint "$IDLE_K" || { printf 'bench: --idle-connections: %s is not a whole number > 0\n' "$IDLE_K" >&2; usage; }
read -ra SCENARIO_LIST <<<"$SCENARIOS"
[ "${#SCENARIO_LIST[@]}" -gt 0 ] || { printf 'bench: --scenarios is empty\n' >&2; usage; }
for sc in "${SCENARIO_LIST[@]}"; do
    if ! [[ "$sc" =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || [ "${BASH_REMATCH[1]}" -gt 10000 ] ||
        [ "${BASH_REMATCH[2]}" -gt "$MAX_CHUNK" ]; then
        printf 'bench: scenario "%s" is not CLIENTSxCHUNK_BYTES with 1..10000 clients and 1..%s bytes\n' \
            "$sc" "$MAX_CHUNK" >&2
        usage
    fi
done

# --- tools ---

for tool in cmake cc pkg-config nats-server node curl openssl awk; do
    command -v "$tool" >/dev/null || die "$tool not found: run make deps"
done
PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1 || true)"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    die "PostgreSQL server binaries not found under /usr/lib/postgresql: run make deps"
fi
for mod in jsonwebtoken ws protobufjs; do
    [ -d "node_modules/$mod" ] || die "node_modules/$mod missing: run make deps (npm ci)"
done
pkg-config --exists libnats openssl || die "libnats or openssl development files missing: run make deps"
CLK_TCK="$(getconf CLK_TCK)"

# As root, PostgreSQL refuses to run: it runs as the postgres OS user.
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
    getent passwd postgres >/dev/null || die "running as root and there is no postgres user"
    AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

# --- processes ---

TMP=""
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
    for name in client idle; do stop "$name" TERM; done
    for name in ingest-recorder chunk-store nats-server; do stop "$name" TERM; done
    stop postgres INT # PostgreSQL's fast shutdown
    for name in "${!PIDS[@]}"; do stop "$name" KILL; done # anything else
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

# fail_with_log MESSAGE LOGNAME: the message and the log's last lines, exit 1.
fail_with_log() {
    printf 'bench: error: %s; last 20 lines of %s.log:\n' "$1" "$2" >&2
    tail -n 20 "$TMP/$2.log" >&2 2>/dev/null || true
    [ "$KEEP_TMP" = 1 ] || printf 'bench: (rerun with --keep-tmp to keep every log)\n' >&2
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

# --- /proc sampling ---

# sample OUT NAME...: one line per live process: time name cpu_ticks rss_kb hwm_kb
sample() {
    local out="$1" name pid stat rss hwm key value
    local -a f
    shift
    for name in "$@"; do
        pid="${PIDS[$name]:-}"
        [ -n "$pid" ] || continue
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        read -ra f <<<"${stat##*) }" # fields from 3 (state) on: utime is 14, stime 15
        rss=0 hwm=0
        while read -r key value _; do
            case "$key" in
            VmRSS:) rss="$value" ;;
            VmHWM:) hwm="$value" ;;
            esac
        done 2>/dev/null <"/proc/$pid/status" || true
        printf '%s %s %s %s %s\n' "$EPOCHREALTIME" "$name" "$((f[11] + f[12]))" "$rss" "$hwm" >>"$out"
    done
}

vmrss_kb() { # PID
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"
}

# summary SAMPLES NAME: "cpu_seconds cpu_percent peak_rss_mib hwm_mib" over the samples.
summary() {
    awk -v name="$2" -v tck="$CLK_TCK" '
        $2 == name {
            if (n++ == 0) { t0 = $1; c0 = $3 }
            t1 = $1; c1 = $3; if ($4 > peak) peak = $4; if ($5 > hwm) hwm = $5
        }
        END {
            if (n < 2 || t1 <= t0) { print "- - - -"; exit }
            cpu = (c1 - c0) / tck
            printf "%.1f %.0f %.0f %.0f\n", cpu, 100 * cpu / (t1 - t0), peak / 1024, hwm / 1024
        }' "$1"
}

# run_load NAME SAMPLES LIMIT_S CMD...: runs CMD (output to $TMP/NAME.log),
# sampling it and the services every SAMPLE_INTERVAL until it exits; kills it
# after LIMIT_S. Returns its exit status (124 after the limit).
run_load() {
    local name="$1" samples="$2" limit="$3" deadline status=0 timed_out=0
    shift 3
    deadline=$((SECONDS + limit))
    sample "$samples" ingest-recorder chunk-store nats-server
    start "$name" "$@"
    while alive "${PIDS[$name]}"; do
        sample "$samples" ingest-recorder chunk-store nats-server "$name"
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name still running after ${limit}s: stopping it"
            timed_out=1
            stop "$name" TERM
            break
        fi
        sleep "$SAMPLE_INTERVAL"
    done
    if [ -n "${PIDS[$name]:-}" ]; then
        wait "${PIDS[$name]}" || status=$?
        unset "PIDS[$name]"
    fi
    sample "$samples" ingest-recorder chunk-store nats-server
    # the server's own view of the ack latency (chunk received -> PubAck)
    curl -fsS "http://127.0.0.1:$INGEST_OPS/metrics" >"$TMP/$name.metrics" 2>/dev/null || true
    [ "$timed_out" = 0 ] || status=124
    return "$status"
}

check_stack() { # the services must outlive every scenario
    local name
    for name in nats-server postgres chunk-store ingest-recorder; do
        alive "${PIDS[$name]}" || fail_with_log "$name exited during the benchmark" "$name"
    done
}

# --- setup ---

TMP="$(mktemp -d "${TMPDIR:-/tmp}/seashore-bench.XXXXXX")"
chmod 711 "$TMP" # the postgres user must reach its directories inside

# Disk: the chunk log keeps every scenario's chunks; the peer's stream is
# deleted after each scenario.
total_bytes=0 peer_max=0 payload_bytes=0 max_clients=0
for sc in "${SCENARIO_LIST[@]}"; do
    n="${sc%x*}" size="${sc#*x}"
    total_bytes=$((total_bytes + n * size * DURATION))
    [ $((n * size * DURATION)) -le "$peer_max" ] || peer_max=$((n * size * DURATION))
    payload_bytes=$((payload_bytes + size * DURATION))
    [ "$n" -le "$max_clients" ] || max_clients="$n"
done
LOG_MAX_MIB=$(((total_bytes * 5 / 4) / 1048576 + 256))
[ "$LOG_MAX_MIB" -ge 2048 ] || LOG_MAX_MIB=2048 # chunk-store's default
# Every open recording track must be admitted, i.e. the log must have room
# for a whole 8 MiB part (+ 3 chunks of 1 MiB) per track (docs/chunk-path.md,
# "Admission"): size it for the idle connections and the largest scenario.
# A limit, not an allocation: the file store takes only what is written.
tracks_max=$((IDLE_K > max_clients ? IDLE_K : max_clients))
[ "$LOG_MAX_MIB" -ge $((tracks_max * 23 / 2 + 2)) ] || LOG_MAX_MIB=$((tracks_max * 23 / 2 + 2))
need_kib=$(((total_bytes + peer_max + payload_bytes) * 11 / 10 / 1024 + 262144))
avail_kib="$(df -Pk "$TMP" | awk 'NR == 2 { print $4 }')"
[ "$avail_kib" -ge "$need_kib" ] ||
    die "$TMP has $((avail_kib / 1024)) MiB free; these scenarios need about $((need_kib / 1024)) MiB (set TMPDIR elsewhere, or fewer --seconds)"

# Open files: K idle connections on both ends, N tracks.
need_fd=$((IDLE_K + max_clients + 512))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fd" ]; then
    hard="$(ulimit -Hn)"
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$need_fd" ]; then
        die "need $need_fd open files, the hard limit (ulimit -Hn) is $hard"
    fi
    ulimit -n "$need_fd" || die "cannot raise ulimit -n to $need_fd"
fi

log "building $BUILD (Release)"
{ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BUILD" -j2; } >"$TMP/build.log" 2>&1 ||
    fail_with_log "the release build failed" build
for bin in "$SEND" "$MIGRATE" "$INGEST_BIN" "$STORE_BIN"; do
    [ -x "$bin" ] || die "$bin was not built"
done
PEER="$TMP/jetstream_peer"
read -ra NATS_FLAGS <<<"$(pkg-config --cflags --libs libnats openssl)"
cc -O2 -Wall -Wextra -D_GNU_SOURCE -o "$PEER" bench/ingest/jetstream_peer.c "${NATS_FLAGS[@]}" -lpthread \
    >"$TMP/peer-build.log" 2>&1 || fail_with_log "bench/ingest/jetstream_peer.c does not compile" peer-build

read -r NATS_PORT PG_PORT WS_PORT INGEST_OPS STORE_OPS <<<"$(free_ports 5)"
[ -n "$STORE_OPS" ] || die "could not find free loopback ports"
NATS_URL="nats://127.0.0.1:$NATS_PORT"
DATABASE_URL="postgresql://seashore@127.0.0.1:$PG_PORT/seashore"
WS_URL="ws://127.0.0.1:$WS_PORT/v1/ingest"
SECRET="$(openssl rand -hex 32)"

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
         s AS (INSERT INTO sessions (host_id, title) SELECT id, 'ingest benchmark' FROM h RETURNING id),
         p AS (INSERT INTO participants (session_id, identity, role)
               SELECT id, 'bench-guest', 'guest' FROM s RETURNING id, session_id)
    SELECT session_id || ' ' || id FROM p" 2>"$TMP/psql.log")" || fail_with_log "inserting the session rows failed" psql
read -r SESSION_ID PARTICIPANT_ID <<<"$ids"
[ -n "${PARTICIPANT_ID:-}" ] || die "no participant id from PostgreSQL (got: $ids)"

TOKEN="$(BENCH_SECRET="$SECRET" BENCH_SESSION="$SESSION_ID" BENCH_PARTICIPANT="$PARTICIPANT_ID" node -e '
    const jwt = require("jsonwebtoken");
    const now = Math.floor(Date.now() / 1000), e = process.env;
    process.stdout.write(jwt.sign({ iss: "seashore", aud: "seashore-ingest", sub: e.BENCH_PARTICIPANT,
        sid: e.BENCH_SESSION, iat: now, exp: now + 86400 }, e.BENCH_SECRET,
        { algorithm: "HS256", noTimestamp: true }));')" || die "cannot mint the ingest token (node, jsonwebtoken)"
TOKEN_FILE="$TMP/token"
(umask 077 && printf '%s\n' "$TOKEN" >"$TOKEN_FILE")

log "starting chunk-store and ingest-recorder"
start chunk-store env NATS_URL="$NATS_URL" DATABASE_URL="$DATABASE_URL" OPS_LISTEN="127.0.0.1:$STORE_OPS" \
    LOG_LEVEL=warn CHUNK_LOG_MAX_BYTES="${LOG_MAX_MIB}MiB" "$STORE_BIN"
wait_ready chunk-store "$STORE_OPS"
start ingest-recorder env NATS_URL="$NATS_URL" DATABASE_URL="$DATABASE_URL" OPS_LISTEN="127.0.0.1:$INGEST_OPS" \
    WS_LISTEN="127.0.0.1:$WS_PORT" INGEST_TOKEN_SECRET="$SECRET" LOG_LEVEL=warn "$INGEST_BIN"
wait_ready ingest-recorder "$INGEST_OPS"
wait_port ingest-recorder "$WS_PORT"

FAILURES=()

# --- idle connections ---

IDLE_LINE=""
IDLE_PER_CONN=""
idle_test() {
    local before after deadline status=0
    log "idle connections: opening $IDLE_K"
    sleep 1
    before="$(vmrss_kb "${PIDS[ingest-recorder]}")"
    INGEST_TOKEN="$TOKEN" start idle node bench/ingest/idle.mjs "$WS_URL" "$IDLE_K"
    deadline=$((SECONDS + 120 + IDLE_K / 20))
    until grep -q '^ready' "$TMP/idle.log"; do
        if ! alive "${PIDS[idle]}" || [ "$SECONDS" -ge "$deadline" ]; then
            stop idle TERM
            log "idle connections failed: $(tail -n 3 "$TMP/idle.log" | tr '\n' ' ')"
            IDLE_LINE="Idle connections: **failed**: $(tail -n 1 "$TMP/idle.log")"
            FAILURES+=("idle connections")
            return 0
        fi
        sleep 0.2
    done
    sleep 2 # let the last Welcomes' work settle
    alive "${PIDS[idle]}" || status=1
    after="$(vmrss_kb "${PIDS[ingest-recorder]}")"
    stop idle TERM
    if [ "$status" != 0 ]; then
        IDLE_LINE="Idle connections: **failed**: $(tail -n 1 "$TMP/idle.log")"
        FAILURES+=("idle connections")
        return 0
    fi
    IDLE_PER_CONN=$(((after - before) * 1024 / IDLE_K))
    IDLE_LINE="$(awk -v k="$IDLE_K" -v b="$before" -v a="$after" -v per="$IDLE_PER_CONN" 'BEGIN {
        printf "Idle connections: %d websocket connections after Hello/Welcome, ingest-recorder VmRSS %.1f MiB -> %.1f MiB: **%.1f KiB per idle connection**", k, b / 1024, a / 1024, per / 1024 }')"
    log "$IDLE_LINE"
    sleep 2 # the server closes them
}
idle_test
check_stack

# --- scenarios ---

ROWS=()
DETAILS=()
TARGET_RESULT=""

# json_fields FILE KEY...: the values (dotted keys) on one line.
json_fields() {
    node -e '
        const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const v = process.argv.slice(2).map((k) => k.split(".").reduce((o, p) => (o == null ? o : o[p]), j));
        if (v.some((x) => x === undefined || x === null)) process.exit(1);
        console.log(v.join(" "));' "$@"
}

detail_rows() { # SCENARIO RUN SAMPLES CLIENT_NAME
    local name s
    for name in ingest-recorder chunk-store nats-server "$4"; do
        read -r -a s <<<"$(summary "$3" "$name")"
        [ "${s[0]}" != - ] || continue
        DETAILS+=("| $1 | $2 | $name | ${s[0]} | ${s[1]} | ${s[2]} | ${s[3]} |")
    done
}

i=0
for sc in "${SCENARIO_LIST[@]}"; do
    i=$((i + 1))
    n="${sc%x*}" size="${sc#*x}"
    if [ $((size % 1048576)) -eq 0 ]; then
        label="$n × $((size / 1048576)) MiB"
    elif [ $((size % 1024)) -eq 0 ]; then
        label="$n × $((size / 1024)) KiB"
    else
        label="$n × $size B"
    fi
    payload="$TMP/payload-$size.bin"
    [ -f "$payload" ] || head -c $((size * DURATION)) /dev/urandom >"$payload"
    limit=$((DURATION * 3 + 120))

    log "scenario $i/${#SCENARIO_LIST[@]}: $label, ${DURATION}s: seashore-send"
    stats="$TMP/send-$i.json"
    status=0
    run_load client "$TMP/samples-$i.txt" "$limit" "$SEND" --url "$WS_URL" --token-file "$TOKEN_FILE" \
        --copies "$n" --rate 1 --chunk-size "$size" --quiet --stats-json "$stats" "$payload" || status=$?
    mv "$TMP/client.log" "$TMP/send-$i.log"
    ok=1 why=""
    if [ "$status" != 0 ]; then
        ok=0 why="seashore-send exited $status$([ "$status" != 124 ] || echo ' (timed out)')"
    elif ! s_fields="$(json_fields "$stats" tracks ended bytes seconds ack_latency_us.p50 ack_latency_us.p99 reconnects)"; then
        ok=0 why="no usable --stats-json"
    else
        read -r s_tracks s_ended s_bytes s_secs s_p50 s_p99 s_reconnects <<<"$s_fields"
        if [ "$s_tracks" != "$n" ] || [ "$s_ended" != "$n" ] || [ "$s_bytes" != $((n * size * DURATION)) ]; then
            ok=0 why="$s_ended of $s_tracks tracks ended, $s_bytes of $((n * size * DURATION)) bytes acked"
        fi
    fi
    if [ "$ok" = 0 ]; then
        log "scenario $label FAILED: $why; last lines of its log:"
        tail -n 10 "$TMP/send-$i.log" >&2 || true
        FAILURES+=("$label: $why")
    fi
    check_stack
    read -r -a ing <<<"$(summary "$TMP/samples-$i.txt" ingest-recorder)"
    read -r -a sto <<<"$(summary "$TMP/samples-$i.txt" chunk-store)"
    read -r -a nat <<<"$(summary "$TMP/samples-$i.txt" nats-server)"
    detail_rows "$label" seashore-send "$TMP/samples-$i.txt" client

    log "scenario $i/${#SCENARIO_LIST[@]}: $label, ${DURATION}s: JetStream peer"
    pstatus=0
    run_load peer "$TMP/peer-samples-$i.txt" "$limit" "$PEER" --url "$NATS_URL" --publishers "$n" \
        --size "$size" --seconds "$DURATION" --rate 1 --stream BENCHPEER || pstatus=$?
    mv "$TMP/peer.log" "$TMP/peer-$i.log"
    pok=1
    if [ "$pstatus" != 0 ] || ! p_fields="$(grep '^{' "$TMP/peer-$i.log" >"$TMP/peer-$i.json" &&
        json_fields "$TMP/peer-$i.json" bytes seconds latency_us.p50 latency_us.p99)"; then
        pok=0
        log "peer for $label FAILED (exit $pstatus); last lines of its log:"
        tail -n 10 "$TMP/peer-$i.log" >&2 || true
        FAILURES+=("$label: JetStream peer exited $pstatus")
    else
        read -r p_bytes p_secs p_p50 p_p99 <<<"$p_fields"
    fi
    detail_rows "$label" "JetStream peer" "$TMP/peer-samples-$i.txt" peer
    check_stack

    offered="$(awk -v n="$n" -v s="$size" 'BEGIN { printf "%.2f", n * s / 1e6 }')"
    if [ "$ok" = 1 ]; then
        ours="$(awk -v b="$s_bytes" -v t="$s_secs" -v p50="$s_p50" -v p99="$s_p99" 'BEGIN {
            printf "%.2f %.1f %.1f", b / t / 1e6, p50 / 1000, p99 / 1000 }')"
        read -r mbs p50ms p99ms <<<"$ours"
        result="ok ($s_reconnects reconnects)"
    else
        mbs=- p50ms=- p99ms=- result="**FAILED**: $why"
    fi
    if [ "$pok" = 1 ]; then
        peer="$(awk -v b="$p_bytes" -v t="$p_secs" -v p50="$p_p50" -v p99="$p_p99" 'BEGIN {
            printf "%.2f %.1f %.1f", b / t / 1e6, p50 / 1000, p99 / 1000 }')"
        read -r pmbs pp50ms pp99ms <<<"$peer"
    else
        pmbs=- pp50ms=- pp99ms=-
    fi
    if [ "$ok" = 1 ] && [ "$pok" = 1 ]; then
        ratios="$(awk -v a="$s_bytes" -v at="$s_secs" -v b="$p_bytes" -v bt="$p_secs" \
            -v x="$s_p99" -v y="$p_p99" 'BEGIN {
            r1 = (b > 0 && at > 0) ? sprintf("%.2f", (a / at) / (b / bt)) : "-"
            r2 = y > 0 ? sprintf("%.1f", x / y) : "-"
            print r1, r2 }')"
        read -r r_mbs r_p99 <<<"$ratios"
    else
        r_mbs=- r_p99=-
    fi
    ROWS+=("| $label | $offered | $mbs | $p50ms | $p99ms | $pmbs | $pp50ms | $pp99ms | $r_mbs | $r_p99 | ${ing[1]} / ${sto[1]} / ${nat[1]} | ${ing[2]} / ${sto[2]} / ${nat[2]} | $result |")
    if [ "$sc" = "$TARGET_SCENARIO" ]; then
        if [ "$ok" = 1 ] && awk -v p="$s_p99" -v t="$TARGET_P99_MS" 'BEGIN { exit !(p < t * 1000) }'; then
            TARGET_RESULT="**met**: every chunk acked, p99 ack $p99ms ms"
        elif [ "$ok" = 1 ]; then
            TARGET_RESULT="**not met**: p99 ack $p99ms ms"
        else
            TARGET_RESULT="**not met**: the scenario failed ($why)"
        fi
    fi
done

# --- report ---

cpu_model="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
[ -n "$cpu_model" ] || cpu_model="$(awk -F': *' '/^(Hardware|CPU part)/ { print $2; exit }' /proc/cpuinfo)"
mem_gib="$(awk '$1 == "MemTotal:" { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
fs_type="$(df -PT "$TMP" | awk 'NR == 2 { print $2 }')"
nats_version="$(nats-server --version 2>&1 | head -n 1)"
pg_version="$("$PG_BIN/postgres" --version)"
[ -n "$TARGET_RESULT" ] || TARGET_RESULT="not measured (scenario $TARGET_SCENARIO not in this run)"
if [ -n "$IDLE_PER_CONN" ]; then
    if [ "$IDLE_PER_CONN" -lt "$TARGET_IDLE_BYTES" ]; then
        idle_target="**met** ($(awk -v b="$IDLE_PER_CONN" 'BEGIN { printf "%.1f", b / 1024 }') KiB)"
    else
        idle_target="**not met** ($(awk -v b="$IDLE_PER_CONN" 'BEGIN { printf "%.1f", b / 1024 }') KiB)"
    fi
else
    idle_target="**not met**: the idle test failed"
fi

DATE="$(date +%F)"
REPORT_DIR="bench/results"
REPORT="$REPORT_DIR/$DATE-ingest.md"
mkdir -p "$REPORT_DIR"
# shellcheck disable=SC2016 # backquotes are markdown
{
    printf '# Ingest benchmark, %s\n\n' "$DATE"
    printf -- '- Machine: %s CPUs (%s), %s GiB RAM, Linux %s; temporary directory on %s\n' \
        "$(nproc)" "${cpu_model:-unknown model}" "$mem_gib" "$(uname -r)" "$fs_type"
    printf -- '- Date: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    printf -- '- Command: `%s`\n' "$COMMAND"
    printf -- '- Build: `%s` (CMAKE_BUILD_TYPE=Release); %s; %s; services at their defaults (PUBLISH_THREADS 16, MAX_INFLIGHT 32), LOG_LEVEL=warn, chunk log limit %s MiB\n' \
        "$BUILD" "$nats_version" "$pg_version" "$LOG_MAX_MIB"
    printf -- '- Load: each client is one `seashore-send --copies N --rate 1` track sending one chunk per second (a recorder with a 1 s timeslice) for %s s, everything on this machine over loopback. The peer publishes the same N × chunk × 1/s straight to a JetStream file stream (BENCHPEER), N publishers on one connection, each waiting for its PubAck before the next, with Nats-Msg-Id and expected last subject sequence as ingest does per track.\n' "$DURATION"
    printf -- '- MB = 10^6 bytes. Acked MB/s = acked bytes / run time of the client (ours: from start, connections included, to the last Ended, End verification included; the peer: first publish to last PubAck), which weighs on short runs; S chunks at 1/s take about S−1 s, so it may exceed the offered rate by up to S/(S−1). Latency: chunk write to its Ack (ours), publish to PubAck (peer). CPU %% = CPU time / wall time of the run, 100 = one core. Peak RSS = largest VmRSS sampled every %s s.\n\n' "$SAMPLE_INTERVAL"
    printf '| clients × chunk | offered MB/s | acked MB/s | ack p50 ms | ack p99 ms | peer MB/s | peer p50 ms | peer p99 ms | MB/s ours/peer | p99 ours/peer | CPU %% ingest / store / nats | peak RSS MiB ingest / store / nats | result |\n'
    printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n'
    printf '%s\n' "${ROWS[@]}"
    printf '\n%s\n\n' "$IDLE_LINE"
    printf '## Targets\n\n'
    printf -- '- 200 clients × 256 KiB/s with p99 ack < %s ms: %s\n' "$TARGET_P99_MS" "$TARGET_RESULT"
    printf -- '- < 64 KiB per idle connection: %s\n' "$idle_target"
    if [ "${#FAILURES[@]}" -gt 0 ]; then
        printf '\n## Failures\n\n'
        printf -- '- %s\n' "${FAILURES[@]}"
    fi
    printf '\n## Per process\n\n'
    printf 'VmHWM is the process'"'"'s lifetime peak at the end of the run (it includes earlier scenarios); the client is seashore-send or jetstream_peer, on the same machine.\n\n'
    printf '| scenario | run | process | CPU s | CPU %% | peak VmRSS MiB | VmHWM MiB |\n'
    printf '| --- | --- | --- | ---: | ---: | ---: | ---: |\n'
    printf '%s\n' "${DETAILS[@]}"
} >"$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
cat "$REPORT"
log "report written to $REPORT"

if [ "${#FAILURES[@]}" -gt 0 ]; then
    log "failed: ${FAILURES[*]}"
    exit 1
fi
