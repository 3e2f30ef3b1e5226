#!/usr/bin/env bash
# Builds kwok (fake nodes and pod lifecycles without a kubelet) from its Go module once,
# and caches it. Prints the binary's path on its last line.
# Cache: ${OUTPOST_CACHE_DIR:-~/.cache/outpost}/kwok/<version>-<key>, where <key> hashes
# this script and `go version`. OUTPOST_KWOK_BIN=<path> uses a kwok binary you provide.
set -euo pipefail
version=v0.7.0

if [ -n "${OUTPOST_KWOK_BIN:-}" ]; then
  [ -x "$OUTPOST_KWOK_BIN" ] || { echo "error: OUTPOST_KWOK_BIN=$OUTPOST_KWOK_BIN is not executable" >&2; exit 1; }
  echo "$OUTPOST_KWOK_BIN"; exit 0
fi
command -v go >/dev/null 2>&1 || {
  echo "error: Go is not installed; kwok for the tests is built from its Go module (install Go ≥ 1.24, or scripts/ensure-go.sh)" >&2
  exit 127
}
ldflags="-s -w"
key=$(cat "$0" <(echo "$(go env GOVERSION) $ldflags") | sha256sum | cut -c1-16)
cache_root=${OUTPOST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost}
out="$cache_root/kwok/$version-$key"
if [ -x "$out/kwok" ]; then echo "$out/kwok"; exit 0; fi

echo "building kwok $version with $(go env GOVERSION) into $out (once; a few minutes on 2 cores)" >&2
mkdir -p "$cache_root/kwok"
tmp=$(mktemp -d "$cache_root/kwok/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
# kwok has no replace lines: `go install module@version` builds it as released.
GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "sigs.k8s.io/kwok/cmd/kwok@$version"
[ -x "$tmp/kwok" ] || { echo "error: the build did not produce kwok" >&2; exit 1; }
echo "{\"kwok\":\"$version\",\"go\":\"$(go env GOVERSION)\",\"seconds\":$(( $(date +%s) - start ))}" > "$tmp/build.json"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out/kwok"
