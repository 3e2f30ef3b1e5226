#!/usr/bin/env bash
# Builds Argo CD (one argocd binary: application controller, repo-server, ApplicationSet
# controller) from the Go module in ./go, and helm for its repo-server, once, and caches
# them. Prints the directory holding `argocd` and `helm` on its last line.
#
# Argo CD 3.6 declares go 1.27: this build alone runs with GOTOOLCHAIN=go1.27.3, which the
# go command fetches from the module proxy. Helm builds with the machine's Go.
# Cache: ${OUTPOST_CACHE_DIR:-~/.cache/outpost}/argocd/<version>-<key>, where <key> hashes
# go.mod, go.sum, tools.go, this script and the toolchain.
# OUTPOST_ARGOCD_BIN=<dir> skips the build and uses a directory holding argocd and helm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helm_version=v3.22.0
toolchain=${OUTPOST_ARGOCD_TOOLCHAIN:-go1.27.3}

have_all() { [ -x "$1/argocd" ] && [ -x "$1/helm" ]; }
if [ -n "${OUTPOST_ARGOCD_BIN:-}" ]; then
  have_all "$OUTPOST_ARGOCD_BIN" || {
    echo "error: OUTPOST_ARGOCD_BIN=$OUTPOST_ARGOCD_BIN must contain argocd and helm" >&2; exit 1; }
  echo "$OUTPOST_ARGOCD_BIN"; exit 0
fi
command -v go >/dev/null 2>&1 || {
  echo "error: Go is not installed; Argo CD for the tests is built from its Go module (install Go ≥ 1.24, or scripts/ensure-go.sh)" >&2
  exit 127
}
version=$(awk '$1 == "require" && $2 == "github.com/argoproj/argo-cd/v3" { print $3 }' "$here/go/go.mod")
ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${version#v} -X github.com/argoproj/argo-cd/v3/common.gitTag=$version -X github.com/argoproj/argo-cd/v3/common.gitTreeState=clean"
key=$(cat "$here/go/go.mod" "$here/go/go.sum" "$here/go/tools.go" "$0" <(echo "$toolchain $(go env GOVERSION) $ldflags $helm_version") | sha256sum | cut -c1-16)
cache_root=${OUTPOST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost}
out="$cache_root/argocd/$version-$key"
if have_all "$out"; then echo "$out"; exit 0; fi

echo "building Argo CD $version (with $toolchain) and helm $helm_version into $out" >&2
echo "  once: about 15 minutes on 2 cores; later runs reuse the cache" >&2
mkdir -p "$cache_root/argocd"
tmp=$(mktemp -d "$cache_root/argocd/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
(
  cd "$here/go"
  GOTOOLCHAIN=$toolchain CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/argocd" github.com/argoproj/argo-cd/v3/cmd
)
# Helm has no replace lines: `go install module@version` builds it as released.
GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" "helm.sh/helm/v3/cmd/helm@$helm_version"
have_all "$tmp" || { echo "error: the build did not produce argocd and helm" >&2; exit 1; }
echo "{\"argocd\":\"$version\",\"helm\":\"$helm_version\",\"toolchain\":\"$toolchain\",\"seconds\":$(( $(date +%s) - start ))}" > "$tmp/build.json"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
