#!/usr/bin/env bash
# Installs the Debian packages Outpost's demo and tests run, when their commands are
# missing: the real services (clamd, the OCI registry) and the build tools.
#   scripts/ensure-packages.sh PACKAGE:COMMAND...
# As root (or with passwordless sudo) it installs them with apt-get; otherwise it says
# which ones to install and fails.
set -euo pipefail

missing=()
for pair in "$@"; do
  pkg=${pair%%:*}
  cmd=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "error: missing Debian packages: ${missing[*]}" >&2
  echo "       install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}"
