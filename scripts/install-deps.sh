#!/usr/bin/env bash
# Install what Sea Shore needs to build, test and run locally (Debian 12).
# Idempotent: installs only what is missing, so a second run is fast and
# touches nothing. Uses sudo only when not root.
set -euo pipefail

# Debian packages, one group per purpose.
APT_PACKAGES=(
    # toolchain, downloads, and `openssl rand` for the secrets of `make dev`
    build-essential cmake pkg-config git ca-certificates curl openssl
    # C style: make format / format-check
    clang-format
    # libraries of the services: NATS client, PostgreSQL client, libcurl (S3),
    # websockets, JSON, JWT, TLS and hashes, HTTP (API and ops endpoints),
    # XML (the S3 answers)
    libnats-dev libpq-dev libcurl4-openssl-dev libwebsockets-dev libjansson-dev libjwt-dev
    libssl-dev libmicrohttpd-dev libxml2-dev
    # protobuf messages between services
    libprotobuf-c-dev protobuf-c-compiler
    # remuxing and WAV extraction in the muxer
    libavformat-dev libavcodec-dev libavutil-dev libswresample-dev
    # servers for make dev and the integration tests; ffmpeg makes test media
    nats-server postgresql ffmpeg
    # a signature-verifying S3 server for the tests: OpenStack Swift's s3api
    # (tests/harness/swift/; tempauth needs memcached)
    python3-swift memcached
    # a real browser: MediaRecorder output for the muxer's tests and the web
    # pages' tests (driven by playwright-core; no browser is downloaded)
    chromium
    # fuzzing: clang with libFuzzer (tests/fuzz/, scripts/fuzz.sh)
    clang libclang-rt-14-dev
    # promtool, to check the Prometheus rules under deploy/ (the daemon is not
    # wanted: it is stopped if the package started it)
    prometheus
)

# Only when a machine has no node at all: Debian's own Node.js and npm.
NODE_PACKAGES=(nodejs npm)

# Only when no kubectl is installed (another vendor's may be): Debian's, for
# `kubectl kustomize` in the manifests' test (tests/deploy/).
KUBECTL_PACKAGES=(kubernetes-client)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'install-deps: %s\n' "$*"; }
die() {
    printf 'install-deps: error: %s\n' "$*" >&2
    exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is not installed"
    SUDO=(sudo)
fi

# Wait for a dpkg lock held by another apt run instead of failing at once.
APT_OPTS=(-o DPkg::Lock::Timeout=600)

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

apt_install() {
    log "apt-get update"
    "${SUDO[@]}" apt-get "${APT_OPTS[@]}" update -qq
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends "$@"
}

# The prometheus package is here for promtool only; stop a daemon its
# postinst may have started (on systemd machines; containers usually do not
# start services from postinst).
stop_prometheus_daemon() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet prometheus 2>/dev/null; then
            log "stopping and disabling the prometheus daemon (only promtool is needed)"
            "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
        fi
    elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
        log "stopping the prometheus daemon (only promtool is needed)"
        "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
}

# 1. Debian packages.
wanted=("${APT_PACKAGES[@]}")
if ! command -v node >/dev/null 2>&1; then
    log "node not found: adding Debian's packages (${NODE_PACKAGES[*]})"
    wanted+=("${NODE_PACKAGES[@]}")
fi
if ! command -v kubectl >/dev/null 2>&1; then
    log "kubectl not found: adding Debian's ${KUBECTL_PACKAGES[*]}"
    wanted+=("${KUBECTL_PACKAGES[@]}")
fi
missing=()
for pkg in "${wanted[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    log "apt: all ${#wanted[@]} packages already installed"
else
    log "apt: missing ${missing[*]}"
    apt_install "${missing[@]}"
    case " ${missing[*]} " in
    *" prometheus "*) stop_prometheus_daemon ;;
    esac
fi

# 2. Node tooling (s3rver and friends) from package-lock.json.
command -v node >/dev/null 2>&1 || die "node is still missing after the apt step"
command -v npm >/dev/null 2>&1 || die "node is installed but npm is not: install npm"
log "node $(node --version), npm $(npm --version 2>/dev/null)"
cd "$REPO"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund
else
    log "npm: node_modules up to date"
fi
log "done"
