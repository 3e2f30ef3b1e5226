#!/usr/bin/env bash
# Deletes the kind clusters of the end-to-end suite and its state (kubeconfigs, generated
# credentials, logs). The Outpost image stays in Docker: `docker rmi` it if you like.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  require_tools kind
  local cluster clusters=("$MGMT_CLUSTER") edge
  for edge in "${EDGES[@]}"; do
    clusters+=("$(kind_cluster "$edge")")
  done
  for cluster in "${clusters[@]}"; do
    if kind get clusters 2>/dev/null | grep -x "$cluster" >/dev/null; then
      step "deleting kind cluster $cluster"
      kind delete cluster --name "$cluster"
    else
      info "kind cluster $cluster does not exist"
    fi
  done
  step "removing $STATE_DIR"
  rm -rf "$STATE_DIR"
}

main "$@"
