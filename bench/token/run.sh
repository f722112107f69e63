#!/usr/bin/env bash
# bench/token/run.sh -- `make bench-token`: how fast token-issuer makes
# tokens, beside livekit-server-sdk in node doing the same in the same run.
#   1. token alone: our LiveKit and ingest signers (bench/token/token_bench.c,
#      release build) vs the SDK's AccessToken.toJwt();
#   2. join with the database: POST /v1/sessions/{sid}/participants against
#      the release stack (scripts/dev.sh on free loopback ports, temp dir).
# Writes bench/results/<date>-token.md.   Options: --seconds S (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER=5
[ "${1:-}" = "--seconds" ] && SECONDS_PER="$2"
BUILD=build-release
TMP="$(mktemp -d /tmp/seashore-bench-token.XXXXXX)"
chmod 755 "$TMP" # PostgreSQL runs as its own user and must reach its data dir
DEV_PID=""
cleanup() {
    if [ -n "$DEV_PID" ]; then kill -TERM "$DEV_PID" 2>/dev/null || true; wait "$DEV_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
log() { printf 'bench-token: %s\n' "$*" >&2; }
# Five free loopback ports and an ops base whose five consecutive ports are
# free, all held at once while they are picked so that none repeats (picked
# one by one, the ops range once overlapped another pick and a service could
# not listen).
free_ports() {
    python3 - <<'PY'
import socket
held = []
def bind(port=0):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    held.append(s)
    return s.getsockname()[1]
ports = [bind() for _ in range(5)]
while True:
    base = bind()
    try:
        for i in range(1, 5):
            bind(base + i)
        break
    except (OSError, OverflowError):
        continue
print(*ports, base)
PY
}

log "building the release ($BUILD)"
{ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BUILD" -j2; } >"$TMP/build.log" 2>&1 ||
    { tail -30 "$TMP/build.log"; exit 1; }
cc -O2 -o "$TMP/token_bench" bench/token/token_bench.c services/token-issuer/livekit.c \
    -Ilibseashore/include -I"$BUILD/proto/gen" "$BUILD/libseashore/libseashore.a" \
    $(pkg-config --cflags --libs libjwt jansson libmicrohttpd libpq libnats libcurl openssl) -lpthread

log "token alone: ours ($SECONDS_PER s each)"
ours="$("$TMP/token_bench" "$SECONDS_PER")"
log "token alone: livekit-server-sdk"
sdk="$(node bench/token/sdk_and_join.mjs sdk "$SECONDS_PER")"

log "starting the stack (scripts/dev.sh, release build)"
export DEV_DIR="$TMP/dev" DEV_BUILD_DIR="$BUILD" DEV_EXIT_AFTER_READY=0 LOG_LEVEL=warn
read -r DEV_NATS_PORT DEV_PG_PORT DEV_S3_PORT DEV_HTTP_PORT DEV_WS_PORT DEV_OPS_PORT_BASE < <(free_ports)
export DEV_NATS_PORT DEV_PG_PORT DEV_S3_PORT DEV_HTTP_PORT DEV_WS_PORT DEV_OPS_PORT_BASE
export API_RATE_LIMIT=100000 API_RATE_BURST=100000 # measure the work, not the limiter
scripts/dev.sh >"$TMP/dev.log" 2>&1 &
DEV_PID=$!
for _ in $(seq 1 120); do
    grep -q "dev stack is up" "$TMP/dev.log" && break
    kill -0 "$DEV_PID" 2>/dev/null || { tail -30 "$TMP/dev.log"; exit 1; }
    sleep 1
done
grep -q "dev stack is up" "$TMP/dev.log" || { tail -30 "$TMP/dev.log"; exit 1; }
key="$(DATABASE_URL="postgresql://seashore@127.0.0.1:$DEV_PG_PORT/seashore" \
    "$BUILD/services/token-issuer/token-issuer" create-api-key --email bench@example.test --name bench)"
api="http://127.0.0.1:$DEV_HTTP_PORT"
log "join with the database (8 concurrent clients)"
join="$(node bench/token/sdk_and_join.mjs join "$SECONDS_PER" "$api" "$key" 8)"

report="bench/results/$(date -u +%Y-%m-%d)-token.md"
node - "$ours" "$sdk" "$join" "$report" "$SECONDS_PER" <<'NODE'
const [ours, sdk, join, report, secs] = process.argv.slice(2);
const o = JSON.parse(ours), s = JSON.parse(sdk), j = JSON.parse(join);
const os = require('os');
const lines = [
  `# Token benchmark, ${new Date().toISOString().slice(0, 10)}`, '',
  `- Machine: ${os.cpus().length} CPUs (${os.cpus()[0].model.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; Node ${process.version}`,
  `- Command: \`bench/token/run.sh --seconds ${secs}\` (release build; peer: livekit-server-sdk ${require(process.cwd() + '/node_modules/livekit-server-sdk/package.json').version} in the same run)`, '',
  '| what | ours /s | livekit-server-sdk (node) /s | ours / SDK |', '| --- | ---: | ---: | ---: |',
  `| LiveKit access token alone | ${o.livekit_tokens_per_s} | ${s.sdk_tokens_per_s} | ${(o.livekit_tokens_per_s / s.sdk_tokens_per_s).toFixed(1)} |`,
  `| ingest token alone | ${o.ingest_tokens_per_s} | | |`,
  `| join over HTTP with PostgreSQL (participant row + ingest + LiveKit token), 8 clients, API_THREADS=${process.env.API_THREADS || 4} | ${j.joins_per_s} (p50 ${j.p50_ms} ms, p99 ${j.p99_ms} ms, ${j.errors} errors) | ${s.sdk_tokens_per_s} (token only) | ${(j.joins_per_s / s.sdk_tokens_per_s).toFixed(2)} |`,
  `| floor: libjwt HS256 token with one claim | ${o.libjwt_floor_per_s} | | ${(o.libjwt_floor_per_s / s.sdk_tokens_per_s).toFixed(1)} |`,
  `| floor: OpenSSL HMAC() alone, 330 bytes | ${o.hmac_sha256_per_s} | | ${(o.hmac_sha256_per_s / s.sdk_tokens_per_s).toFixed(1)} |`,
  '', `Target: 10x the SDK on the token alone: ${o.livekit_tokens_per_s >= 10 * s.sdk_tokens_per_s ? '**met**' : '**not met**'}.`,
  `10x is ${(1e6 / (10 * s.sdk_tokens_per_s)).toFixed(2)} us per token on one core; libjwt alone takes ${(1e6 / o.libjwt_floor_per_s).toFixed(2)} us, the one-shot HMAC it calls ${(1e6 / o.hmac_sha256_per_s).toFixed(2)} us, our whole token ${(1e6 / o.livekit_tokens_per_s).toFixed(2)} us.`, '',
];
require('fs').writeFileSync(report, lines.join('\n'));
console.log(lines.join('\n'));
NODE
log "report written to $report"
