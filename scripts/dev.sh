#!/usr/bin/env bash
# `make dev`: the whole Sea Shore stack on loopback, from the built binaries.
#
# nats-server (JetStream), PostgreSQL, s3rver (S3), the migrations, then the
# five services. State lives in .dev/ and survives between runs; logs are in
# .dev/logs/<name>.log. Ctrl-C (or SIGTERM) stops everything this script
# started.
#
# Environment:
#   DEV_NATS_PORT (14222) DEV_PG_PORT (15432) DEV_S3_PORT (14568)
#   DEV_HTTP_PORT (8080, token-issuer) DEV_WS_PORT (8081, ingest-recorder)
#   DEV_OPS_PORT_BASE (9101: token-issuer 9101 ... muxer 9105)
#   LOG_LEVEL (info)
#   DEV_BUILD_DIR (build; e.g. build-asan to run the sanitizer build)
#   DEV_READY_TIMEOUT (60 s, for all five services together)
#   DEV_EXIT_AFTER_READY=1  stop everything and exit 0 once all are ready
#   DEV_S3_EXTERNAL=1       use the S3 server on DEV_S3_PORT (scripts/dev-env.sh)
#   DEV_INFRA_ONLY=1        start only nats, postgres and s3rver (+ migrations
#                           if built), e.g. to run one service in a debugger
set -euo pipefail

# shellcheck source=scripts/dev-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/dev-env.sh"
cd "$DEV_REPO"

READY_TIMEOUT="${DEV_READY_TIMEOUT:-60}" # seconds, for all five services together
STOP_TIMEOUT=10  # seconds between SIGTERM and SIGKILL

MIGRATE_BIN="$DEV_BUILD_DIR/tools/migrate/seashore-migrate"
LOGS="$DEV_DIR/logs"
PG_DATA="$DEV_DIR/pg"
PG_SOCK="$DEV_DIR/pgsock"

declare -A PIDS=() # name -> pid of what we started and has not been reaped

log() { printf 'dev: %s\n' "$*"; }
die() {
    printf 'dev: error: %s\n' "$*" >&2
    exit 1
}

# --- processes ---

# start NAME CMD...: run CMD in the background, output to .dev/logs/NAME.log.
start() {
    local name="$1"
    shift
    "$@" >>"$LOGS/$name.log" 2>&1 &
    PIDS[$name]=$!
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop_all SIGNAL NAME...: signal them all, wait up to STOP_TIMEOUT, then SIGKILL.
stop_all() {
    local sig="$1" name pid deadline=$((SECONDS + STOP_TIMEOUT))
    shift
    for name in "$@"; do
        pid="${PIDS[$name]:-}"
        if [ -n "$pid" ]; then kill "-$sig" "$pid" 2>/dev/null || true; fi
    done
    for name in "$@"; do
        pid="${PIDS[$name]:-}"
        [ -n "$pid" ] || continue
        while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if alive "$pid"; then
            log "$name did not stop within ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        unset "PIDS[$name]"
    done
}

cleanup() {
    local rc=$?
    trap - INT TERM EXIT
    if [ "${#PIDS[@]}" -gt 0 ]; then
        log "stopping everything"
        local services=() name
        for name in "${DEV_SERVICES[@]}"; do
            if [ -n "${PIDS[$name]:-}" ]; then services+=("$name"); fi
        done
        [ "${#services[@]}" -eq 0 ] || stop_all TERM "${services[@]}"
        stop_all TERM s3rver nats-server
        stop_all INT postgres # SIGINT = PostgreSQL's fast shutdown
        log "stopped"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- checks ---

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_ports() {
    local entry
    local s3_entry="s3rver:$DEV_S3_PORT"
    [ "$DEV_S3_EXTERNAL" = 1 ] && s3_entry=""
    for entry in "nats:$DEV_NATS_PORT" "postgres:$DEV_PG_PORT" $s3_entry "$@"; do
        if port_in_use "${entry##*:}"; then
            die "port ${entry##*:} (${entry%:*}) is already in use on 127.0.0.1; stop whatever holds it or override the port (see scripts/dev.sh)"
        fi
    done
}

check_binaries() {
    local name
    [ -x "$MIGRATE_BIN" ] || die "$MIGRATE_BIN missing: run make build"
    for name in "${DEV_SERVICES[@]}"; do
        [ -x "$DEV_BUILD_DIR/services/$name/$name" ] ||
            die "$DEV_BUILD_DIR/services/$name/$name missing: run make build"
    done
}

check_tools() {
    command -v nats-server >/dev/null || die "nats-server not found: run make deps"
    [ -n "$PG_BIN" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql: run make deps"
    [ -f node_modules/s3rver/bin/s3rver.js ] || die "node_modules/s3rver missing: run make deps"
    command -v openssl >/dev/null || die "openssl not found: run make deps"
}

# wait_port NAME PORT SECONDS: until something listens on PORT; fail early if
# NAME died.
wait_port() {
    local name="$1" port="$2" deadline=$((SECONDS + $3))
    until port_in_use "$port"; do
        alive "${PIDS[$name]}" || fail_with_log "$name exited during startup" "$name"
        [ "$SECONDS" -lt "$deadline" ] || fail_with_log "$name is not listening on port $port after $3s" "$name"
        sleep 0.2
    done
}

fail_with_log() { # message, log name
    printf 'dev: error: %s; last 20 lines of .dev/logs/%s.log:\n' "$1" "$2" >&2
    tail -n 20 "$LOGS/$2.log" >&2 || true
    exit 1
}

# --- state ---

# Each run starts fresh logs; the previous run's stay beside them as *.log.1.
rotate_logs() {
    local f
    mkdir -p "$LOGS"
    for f in "$LOGS"/*.log; do
        if [ -e "$f" ]; then mv -f "$f" "$f.1"; fi
    done
}

ensure_secrets() {
    local f="$DEV_DIR/secrets.env"
    if [ ! -f "$f" ]; then
        log "generating .dev/secrets.env"
        (
            umask 077
            {
                echo "# Sea Shore dev secrets, generated by scripts/dev.sh. Do not commit."
                echo "INGEST_TOKEN_SECRET=$(openssl rand -hex 32)"
                echo "# s3rver knows only its built-in key pair S3RVER/S3RVER (it checks the key id, not SigV4 signatures)."
                echo "R2_ACCESS_KEY_ID=S3RVER"
                echo "R2_SECRET_ACCESS_KEY=S3RVER"
            } >"$f.tmp"
            mv "$f.tmp" "$f"
        )
    fi
    chmod 600 "$f"
    # shellcheck disable=SC1090
    . "$f"
    dev_load_service_envs
}

# --- nats-server ---

start_nats() {
    mkdir -p "$DEV_DIR/nats"
    cat >"$DEV_DIR/nats.conf" <<EOF
# Generated by scripts/dev.sh on each run.
listen: 127.0.0.1:$DEV_NATS_PORT
max_payload: 8MB
jetstream {
    store_dir: "$DEV_DIR/nats"
}
EOF
    log "starting nats-server on 127.0.0.1:$DEV_NATS_PORT"
    start nats-server nats-server -c "$DEV_DIR/nats.conf"
    wait_port nats-server "$DEV_NATS_PORT" 15
}

# --- PostgreSQL ---

# The newest installed major version.
PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1 || true)"

# As root, PostgreSQL refuses to run: its files and process belong to the
# postgres OS user. setpriv execs, so the pid we keep is the postmaster's.
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
    AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

start_postgres() {
    mkdir -p "$PG_DATA" "$PG_SOCK"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$PG_DATA" "$PG_SOCK"
        "${AS_PG[@]}" test -w "$PG_DATA" ||
            die "the postgres user cannot write $PG_DATA (a parent directory is not accessible to it)"
    fi
    chmod 700 "$PG_DATA"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        log "initdb .dev/pg ($PG_BIN)"
        "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U seashore -E UTF8 --no-locale \
            >>"$LOGS/postgres.log" 2>&1 || fail_with_log "initdb failed" postgres
    fi
    log "starting postgres on 127.0.0.1:$DEV_PG_PORT"
    start postgres "${AS_PG[@]}" "$PG_BIN/postgres" -D "$PG_DATA" -p "$DEV_PG_PORT" -k "$PG_SOCK" \
        -c listen_addresses=127.0.0.1
    local deadline=$((SECONDS + 30))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$DEV_PG_PORT" -U seashore -d postgres; do
        alive "${PIDS[postgres]}" || fail_with_log "postgres exited during startup" postgres
        [ "$SECONDS" -lt "$deadline" ] || fail_with_log "postgres not ready after 30s" postgres
        sleep 0.2
    done
    local psql=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$DEV_PG_PORT" -U seashore -d postgres -v ON_ERROR_STOP=1)
    if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'seashore'")" != 1 ]; then
        log "creating database seashore"
        "${psql[@]}" -c "CREATE DATABASE seashore"
    fi
}

# --- s3rver ---

start_s3rver() {
    mkdir -p "$DEV_DIR/s3"
    log "starting s3rver on 127.0.0.1:$DEV_S3_PORT (bucket $DEV_BUCKET)"
    start s3rver node node_modules/s3rver/bin/s3rver.js --directory "$DEV_DIR/s3" \
        --address 127.0.0.1 --port "$DEV_S3_PORT" --configure-bucket "$DEV_BUCKET"
    wait_port s3rver "$DEV_S3_PORT" 20
}

# --- migrations and services ---

run_migrations() {
    log "running migrations"
    DATABASE_URL="$DEV_DATABASE_URL" LOG_LEVEL="${LOG_LEVEL:-info}" \
        "$MIGRATE_BIN" --dir migrations >>"$LOGS/migrate.log" 2>&1 ||
        fail_with_log "migrations failed" migrate
}

start_services() {
    local name envname
    for name in "${DEV_SERVICES[@]}"; do
        envname="SEASHORE_ENV_${name//-/_}[@]"
        log "starting $name (ops 127.0.0.1:$(dev_ops_port "$name"))"
        start "$name" env "${!envname}" "$DEV_BUILD_DIR/services/$name/$name"
    done
}

wait_services_ready() {
    local name port deadline=$((SECONDS + READY_TIMEOUT))
    for name in "${DEV_SERVICES[@]}"; do
        port="$(dev_ops_port "$name")"
        until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz" 2>/dev/null; do
            if ! alive "${PIDS[$name]}"; then
                fail_with_log "$name exited before it was ready" "$name"
            fi
            if [ "$SECONDS" -ge "$deadline" ]; then
                fail_with_log "$name is not ready (http://127.0.0.1:$port/readyz) after ${READY_TIMEOUT}s" "$name"
            fi
            sleep 0.25
        done
        log "$name ready"
    done
}

# A host API key for the studio's dashboard (.dev/dev-api-key), made again
# when the database no longer knows it.
ensure_dev_api_key() {
    local f="$DEV_DIR/dev-api-key" status
    if [ -s "$f" ]; then
        status="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$f")" \
            "http://127.0.0.1:$DEV_HTTP_PORT/v1/sessions" || true)"
        [ "$status" = 200 ] && return 0
    fi
    log "creating a dev host API key (.dev/dev-api-key)"
    (
        umask 077
        env DATABASE_URL="$DEV_DATABASE_URL" "$DEV_BUILD_DIR/services/token-issuer/token-issuer" \
            create-api-key --email dev@localhost --name "make dev" >"$f.tmp" 2>>"$LOGS/token-issuer-cli.log"
        mv "$f.tmp" "$f"
    ) || die "could not create a dev API key (see $LOGS/token-issuer-cli.log)"
}

print_urls() {
    local name
    cat <<EOF

Sea Shore dev stack is up (state and logs in .dev/):
  studio page     http://127.0.0.1:$DEV_HTTP_PORT/#key=$(cat "$DEV_DIR/dev-api-key")
  API (JSON)      http://127.0.0.1:$DEV_HTTP_PORT/
  ingest          $DEV_INGEST_URL
EOF
    for name in "${DEV_SERVICES[@]}"; do
        printf '  %-15s http://127.0.0.1:%s/metrics\n' "$name" "$(dev_ops_port "$name")"
    done
    cat <<EOF
  NATS            $DEV_NATS_URL
  PostgreSQL      $DEV_DATABASE_URL
  S3 endpoint     $DEV_S3_ENDPOINT (bucket $DEV_BUCKET)
Ctrl-C stops everything.

EOF
}

print_infra_urls() {
    cat <<EOF

Sea Shore dev infrastructure is up (DEV_INFRA_ONLY=1; state and logs in .dev/):
  NATS            $DEV_NATS_URL
  PostgreSQL      $DEV_DATABASE_URL
  S3 endpoint     $DEV_S3_ENDPOINT (bucket $DEV_BUCKET)
Run a service by hand with:
  source scripts/dev-env.sh; env "\${SEASHORE_ENV_muxer[@]}" build/services/muxer/muxer
Ctrl-C stops everything.

EOF
}

# Wait for our children; report any that exits on its own.
wait_children() {
    local name pid
    while [ "${#PIDS[@]}" -gt 0 ]; do
        wait -n || true
        for name in "${!PIDS[@]}"; do
            pid="${PIDS[$name]}"
            if ! alive "$pid"; then
                local status=0
                wait "$pid" 2>/dev/null || status=$?
                log "$name exited (status $status); see .dev/logs/$name.log"
                unset "PIDS[$name]"
            fi
        done
    done
}

main() {
    local infra_only="${DEV_INFRA_ONLY:-0}"
    local service_ports=()
    if [ "$infra_only" != 1 ]; then
        check_binaries
        service_ports=("token-issuer HTTP:$DEV_HTTP_PORT" "ingest-recorder WS:$DEV_WS_PORT")
        local name
        for name in "${DEV_SERVICES[@]}"; do
            service_ports+=("$name ops:$(dev_ops_port "$name")")
        done
    fi
    check_tools
    check_ports "${service_ports[@]}"

    rotate_logs
    ensure_secrets
    start_nats
    start_postgres
    [ "$DEV_S3_EXTERNAL" = 1 ] || start_s3rver
    if [ "$infra_only" = 1 ]; then
        if [ -x "$MIGRATE_BIN" ]; then run_migrations; fi
        print_infra_urls
    else
        run_migrations
        start_services
        wait_services_ready
        ensure_dev_api_key
        print_urls
    fi

    if [ "${DEV_EXIT_AFTER_READY:-0}" = 1 ]; then
        exit 0 # the EXIT trap stops everything
    fi
    wait_children
}

main "$@"
