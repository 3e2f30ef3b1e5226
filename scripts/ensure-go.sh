#!/usr/bin/env bash
# Makes sure Go >= 1.24 is available to build the test control plane. When it is missing
# or too old, installs the official Go toolchain module (golang.org/toolchain) from the Go
# module proxy into .tools/go; Makefile targets put .tools/go/bin on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want=1.26.0

ok() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null) || return 1
  [[ "$v" =~ ^go1\.(2[4-9]|[3-9][0-9]) ]]
}

if command -v go >/dev/null 2>&1 && ok go; then exit 0; fi
if [ -x "$root/.tools/go/bin/go" ] && ok "$root/.tools/go/bin/go"; then exit 0; fi

proxy=${GOPROXY:-https://proxy.golang.org}
proxy=${proxy%%,*}
arch=$(uname -m); case "$arch" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; esac
mod="golang.org/toolchain/@v/v0.0.1-go${want}.linux-${arch}.zip"
echo "Go 1.24+ not found: installing go${want} from ${proxy}/${mod} into .tools/go" >&2
command -v unzip >/dev/null || { echo "error: unzip is needed to install Go (apt-get install unzip)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/go.zip" "${proxy}/${mod}"
unzip -q "$tmp/go.zip" -d "$tmp"
rm -rf "$root/.tools/go"; mkdir -p "$root/.tools"
mv "$tmp/golang.org/toolchain@v0.0.1-go${want}.linux-${arch}" "$root/.tools/go"
chmod +x "$root/.tools/go/bin/"* "$root/.tools/go/pkg/tool/"*/* 2>/dev/null || true
"$root/.tools/go/bin/go" version
