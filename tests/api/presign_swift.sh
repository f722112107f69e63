#!/usr/bin/env bash
# presign_swift.sh PRESIGN_CLI -- starts Swift with s3api in a temporary
# directory on a free loopback port, runs presign_fetch.mjs against it,
# stops it. (ctest: presign_verified_by_swift)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
swift="$here/../harness/swift"
dir="$(mktemp -d /tmp/seashore-swift.XXXXXX)"
cleanup() { "$swift/stop-swift.sh" "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
settings="$("$swift/start-swift.sh" "$dir" "$port")"
while IFS='=' read -r name value; do
    case "$name" in S3_*) export "$name=$value" ;; esac
done <<<"$settings"
node "$here/presign_fetch.mjs" "$1"
