#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd from the Go module in
# ./go once, and caches them. Prints the directory holding the binaries on its last line.
#
# Cache: ${OUTPOST_CACHE_DIR:-~/.cache/outpost}/controlplane/<key>, where <key> hashes
# go.mod, go.sum, tools.go, this script and `go version`: a second run does not rebuild.
# OUTPOST_CONTROLPLANE_BIN=<dir> skips the build and uses binaries you provide.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)

have_all() { for b in "${binaries[@]}"; do [ -x "$1/$b" ] || return 1; done; }

if [ -n "${OUTPOST_CONTROLPLANE_BIN:-}" ]; then
  have_all "$OUTPOST_CONTROLPLANE_BIN" || {
    echo "error: OUTPOST_CONTROLPLANE_BIN=$OUTPOST_CONTROLPLANE_BIN must contain ${binaries[*]}" >&2; exit 1; }
  echo "$OUTPOST_CONTROLPLANE_BIN"; exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  printf '%s\n' >&2 \
    "error: Go is not installed, and the test control plane (kube-apiserver, etcd," \
    "kube-controller-manager, kubectl) is built from Go modules." \
    "  fix: install Go 1.24 or newer (https://go.dev/doc/install, or scripts/ensure-go.sh," \
    "       which installs it into .tools/go; Debian 12's golang-go is too old), or set" \
    "       OUTPOST_CONTROLPLANE_BIN to a directory holding kube-apiserver," \
    "       kube-controller-manager, kubectl and etcd (Kubernetes v1.34)."
  exit 127
fi
go_version=$(go env GOVERSION)
case "$go_version" in
  go1.2[4-9]*|go1.[3-9][0-9]*) ;;
  *) echo "error: $go_version is too old to build Kubernetes v1.34; install Go 1.24 or newer" >&2; exit 1 ;;
esac

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$here/go/go.mod")
minor=$(echo "$k8s_version" | cut -d. -f2)
vpkg=k8s.io/component-base/version
cpkg=k8s.io/client-go/pkg/version
ldflags="-s -w"
for p in $vpkg $cpkg; do
  ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
# The key covers everything that changes the binaries, and nothing else.
key=$(cat "$here/go/go.mod" "$here/go/go.sum" "$here/go/tools.go" <(echo "$go_version $ldflags") | sha256sum | cut -c1-16)
cache_root=${OUTPOST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost}
out="$cache_root/controlplane/$k8s_version-$key"

if have_all "$out"; then echo "$out"; exit 0; fi

echo "building the control plane (Kubernetes $k8s_version, etcd) with $go_version into $out" >&2
echo "  the first build takes 10-20 minutes on 2 cores; later runs reuse the cache" >&2
mkdir -p "$cache_root/controlplane"
tmp=$(mktemp -d "$cache_root/controlplane/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
(
  cd "$here/go"
  go mod download
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    go.etcd.io/etcd/server/v3
)
# go names the binary of go.etcd.io/etcd/server/v3 after "server"
mv "$tmp/server" "$tmp/etcd"
have_all "$tmp" || { echo "error: the build did not produce ${binaries[*]}" >&2; exit 1; }
echo "{\"kubernetes\":\"$k8s_version\",\"go\":\"$go_version\",\"seconds\":$(( $(date +%s) - start ))}" > "$tmp/build.json"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
