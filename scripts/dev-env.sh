# shellcheck shell=bash
# The local dev stack's ports, paths and per-service environment.
# Sourced by scripts/dev.sh; also handy by hand, to run one service in a
# debugger against the infrastructure of `DEV_INFRA_ONLY=1 make dev`:
#
#   source scripts/dev-env.sh
#   env "${SEASHORE_ENV_muxer[@]}" gdb --args build/services/muxer/muxer
#
# Every port, and the build directory, can be overridden from the environment.

DEV_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV_DIR="${DEV_DIR:-$DEV_REPO/.dev}" # state: kept between runs
DEV_BUILD_DIR="${DEV_BUILD_DIR:-build}" # e.g. build-asan, relative to the repo

DEV_NATS_PORT="${DEV_NATS_PORT:-14222}"
DEV_PG_PORT="${DEV_PG_PORT:-15432}"
DEV_S3_PORT="${DEV_S3_PORT:-14568}"
# DEV_S3_EXTERNAL=1: an S3 server already listens on DEV_S3_PORT (e.g. Swift's
# s3api for benchmarks), with DEV_S3_ACCESS_KEY, DEV_S3_SECRET_KEY and
# DEV_S3_REGION and the bucket created; s3rver is not started.
DEV_S3_EXTERNAL="${DEV_S3_EXTERNAL:-0}"
DEV_HTTP_PORT="${DEV_HTTP_PORT:-8080}"       # token-issuer: API + studio page
DEV_WS_PORT="${DEV_WS_PORT:-8081}"           # ingest-recorder: websocket
DEV_OPS_PORT_BASE="${DEV_OPS_PORT_BASE:-9101}" # ops ports: base + index below

# Start order; the index gives the ops port (token-issuer 9101 ... muxer 9105).
DEV_SERVICES=(token-issuer ingest-recorder chunk-store r2-uploader muxer)

DEV_BUCKET=seashore
DEV_NATS_URL="nats://127.0.0.1:$DEV_NATS_PORT"
DEV_DATABASE_URL="postgresql://seashore@127.0.0.1:$DEV_PG_PORT/seashore"
DEV_S3_ENDPOINT="http://127.0.0.1:$DEV_S3_PORT"
DEV_INGEST_URL="ws://127.0.0.1:$DEV_WS_PORT/v1/ingest"

# .dev/secrets.env (created by dev.sh) holds INGEST_TOKEN_SECRET and the S3
# key pair.
if [ -r "$DEV_DIR/secrets.env" ]; then
    # shellcheck disable=SC1091
    . "$DEV_DIR/secrets.env"
fi

dev_ops_port() { # service name -> its ops port
    local i
    for i in "${!DEV_SERVICES[@]}"; do
        if [ "${DEV_SERVICES[$i]}" = "$1" ]; then
            echo $((DEV_OPS_PORT_BASE + i))
            return 0
        fi
    done
    return 1
}

# SEASHORE_ENV_<name> arrays (dashes become underscores): the NAME=value
# pairs each service reads, for `env "${SEASHORE_ENV_x[@]}" binary`.
dev_service_env() { # service name -> prints one NAME=value per line
    local name="$1"
    local s3=(R2_ENDPOINT="$DEV_S3_ENDPOINT"
        R2_ACCESS_KEY_ID="${DEV_S3_ACCESS_KEY:-${R2_ACCESS_KEY_ID:-}}"
        R2_SECRET_ACCESS_KEY="${DEV_S3_SECRET_KEY:-${R2_SECRET_ACCESS_KEY:-}}"
        R2_BUCKET_NAME="$DEV_BUCKET" R2_REGION="${DEV_S3_REGION:-auto}")
    local vars=(LOG_LEVEL="${LOG_LEVEL:-info}" OPS_LISTEN="127.0.0.1:$(dev_ops_port "$name")"
        NATS_URL="$DEV_NATS_URL")
    case "$name" in
    token-issuer)
        vars+=(DATABASE_URL="$DEV_DATABASE_URL" HTTP_LISTEN="127.0.0.1:$DEV_HTTP_PORT"
            WEB_ROOT="$DEV_REPO/web" INGEST_TOKEN_SECRET="${INGEST_TOKEN_SECRET:-}"
            INGEST_PUBLIC_URL="$DEV_INGEST_URL" "${s3[@]}")
        ;;
    ingest-recorder)
        vars+=(WS_LISTEN="127.0.0.1:$DEV_WS_PORT" INGEST_TOKEN_SECRET="${INGEST_TOKEN_SECRET:-}")
        ;;
    chunk-store)
        vars+=(DATABASE_URL="$DEV_DATABASE_URL")
        ;;
    r2-uploader | muxer)
        vars+=(DATABASE_URL="$DEV_DATABASE_URL" "${s3[@]}")
        ;;
    *) return 1 ;;
    esac
    printf '%s\n' "${vars[@]}"
}

dev_load_service_envs() {
    local name
    for name in "${DEV_SERVICES[@]}"; do
        mapfile -t "SEASHORE_ENV_${name//-/_}" < <(dev_service_env "$name")
    done
}
dev_load_service_envs
