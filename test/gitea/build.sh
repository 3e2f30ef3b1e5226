#!/usr/bin/env bash
# Builds Gitea from the Go module in ./go once, and caches it. Prints the binary's path on
# its last line. Cache: ${OUTPOST_CACHE_DIR:-~/.cache/outpost}/gitea/<version>-<key>,
# where <key> hashes go.mod, go.sum, this script and `go version`.
# OUTPOST_GITEA_BIN=<path> skips the build and uses a gitea binary you provide.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${OUTPOST_GITEA_BIN:-}" ]; then
  [ -x "$OUTPOST_GITEA_BIN" ] || { echo "error: OUTPOST_GITEA_BIN=$OUTPOST_GITEA_BIN is not executable" >&2; exit 1; }
  echo "$OUTPOST_GITEA_BIN"; exit 0
fi
command -v go >/dev/null 2>&1 || {
  echo "error: Go is not installed; Gitea for the tests is built from its Go module (install Go ≥ 1.26.3, or scripts/ensure-go.sh)" >&2
  exit 127
}
go_version=$(go env GOVERSION)
version=$(awk '$1 == "require" && $2 == "code.gitea.io/gitea" { print $3 }' "$here/go/go.mod")
tags="sqlite sqlite_unlock_notify"
ldflags="-s -w -X main.Version=${version#v} -X 'main.Tags=$tags'"
key=$(cat "$here/go/go.mod" "$here/go/go.sum" "$0" <(echo "$go_version $tags $ldflags") | sha256sum | cut -c1-16)
cache_root=${OUTPOST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost}
out="$cache_root/gitea/$version-$key"
if [ -x "$out/gitea" ]; then echo "$out/gitea"; exit 0; fi

echo "building Gitea $version with $go_version into $out (once; several minutes on 2 cores)" >&2
mkdir -p "$cache_root/gitea"
tmp=$(mktemp -d "$cache_root/gitea/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
(
  cd "$here/go"
  CGO_ENABLED=1 go build -mod=mod -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/gitea" code.gitea.io/gitea
  # Without the bindata tag Gitea reads its locales and templates from STATIC_ROOT_PATH:
  # keep them next to the binary.
  src=$(go list -mod=mod -m -f '{{.Dir}}' code.gitea.io/gitea)
  cp -r "$src/options" "$src/templates" "$tmp/"
  chmod -R u+w "$tmp/options" "$tmp/templates"
)
echo "{\"gitea\":\"$version\",\"go\":\"$go_version\",\"seconds\":$(( $(date +%s) - start ))}" > "$tmp/build.json"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out/gitea"
