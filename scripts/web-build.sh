#!/usr/bin/env bash
# scripts/web-build.sh -- the studio's build step: copies the browser
# libraries the pages import from node_modules (installed by make deps from
# package-lock.json) and the protocol's .proto files into web/vendor/
# (generated, git-ignored). Run by make dev, make check and the web tests;
# idempotent and quick. No bundler: the pages are plain ES modules.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NM="$REPO/node_modules"
OUT="$REPO/web/vendor"
die() {
    printf 'web-build: error: %s\n' "$*" >&2
    exit 1
}
for f in protobufjs/dist/protobuf.min.js @noble/hashes/esm/sha2.js \
    livekit-client/dist/livekit-client.esm.mjs; do
    [ -f "$NM/$f" ] || die "node_modules/$f is missing: run make deps"
done
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/noble-hashes" "$OUT.tmp/proto"
# protobufjs (full build: parses the .proto files at run time), global `protobuf`
cp "$NM/protobufjs/dist/protobuf.min.js" "$OUT.tmp/"
# @noble/hashes: incremental SHA-256 whose state can be saved (recovery)
for f in sha2.js _md.js _u64.js utils.js crypto.js; do
    cp "$NM/@noble/hashes/esm/$f" "$OUT.tmp/noble-hashes/"
done
# browsers (and module workers, which have no import maps) need a path, not
# the package name, in its one self-import
sed -i "s|from '@noble/hashes/crypto'|from './crypto.js'|" "$OUT.tmp/noble-hashes/utils.js"
grep -q "from '@noble" "$OUT.tmp/noble-hashes/"*.js && die "a bare @noble/hashes import is left in web/vendor"
# livekit-client: the live call (only when LIVEKIT_URL is configured)
cp "$NM/livekit-client/dist/livekit-client.esm.mjs" "$OUT.tmp/"
cp "$REPO/proto/seashore/v1/"*.proto "$OUT.tmp/proto/"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
printf 'web-build: web/vendor ready\n'
