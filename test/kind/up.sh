#!/usr/bin/env bash
# Creates the kind clusters of the end-to-end suite and installs everything on them:
#
#   <prefix>-mgmt     Fleet (manager), Gitea, Harbor, clamd and Outpost from config/
#   <prefix>-store-1  Skupper (cluster-scoped controller) and config/edge
#   <prefix>-central  Skupper (cluster-scoped controller) and config/edge
#
# Every version is pinned in lib.sh. Running it again reuses the clusters and upgrades
# every install (and rebuilds and reloads the Outpost image). Then run test/kind/e2e.sh;
# test/kind/down.sh deletes the clusters.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUTPOST_DEPLOYMENTS=(
  outpost-catalog outpost-deploy outpost-interconnect outpost-ops outpost-tenancy outpost-service-proxy
)
FIRST_CONTAINER='{.spec.template.spec.containers[0]'
GITEA_TOKEN_SCOPES='["write:organization","write:repository","write:user"]'

preflight() {
  require_tools docker kind helm kubectl curl node base64 od
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info): start it first"
  [[ -d $REPO_ROOT/node_modules/tsx ]] || die "the npm dependencies are missing: run make setup first"
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
}

# ---- clusters --------------------------------------------------------------------------

cluster_exists() { kind get clusters 2>/dev/null | grep -x "$1" >/dev/null; }

create_cluster() {
  local name=$1
  if cluster_exists "$name"; then
    info "kind cluster $name exists: reusing it"
    kind export kubeconfig --name "$name" >/dev/null
  else
    step "creating kind cluster $name"
    kind create cluster --name "$name" --image "$KIND_NODE_IMAGE" --wait 180s
  fi
  kind get kubeconfig --internal --name "$name" >"$(internal_kubeconfig "$name")"
  chmod 600 "$(internal_kubeconfig "$name")"
}

create_clusters() {
  if ! cluster_exists "$MGMT_CLUSTER"; then
    # Credentials belong to the services of one management cluster.
    rm -f "$CREDENTIALS_FILE"
  fi
  create_cluster "$MGMT_CLUSTER"
  local edge
  for edge in "${EDGES[@]}"; do
    create_cluster "$(kind_cluster "$edge")"
  done
}

generate_credentials() {
  local name
  for name in GITEA_PASSWORD HARBOR_PASSWORD; do
    has_credential "$name" || save_credential "$name" "$(random_secret)"
  done
}

# ---- management cluster: Fleet, Gitea, Harbor --------------------------------------------

install_fleet() {
  step "installing Fleet $FLEET_VERSION on $MGMT_CLUSTER (Helm charts fleet-crd and fleet)"
  local internal server ca_file=$STATE_DIR/$MGMT_CLUSTER.ca.pem
  internal=$(internal_kubeconfig "$MGMT_CLUSTER")
  # Agents on the edges reach the management API server at its address on the kind network.
  server=$(kubectl config view --kubeconfig "$internal" --raw -o 'jsonpath={.clusters[0].cluster.server}')
  kubectl config view --kubeconfig "$internal" --raw \
    -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' | base64 --decode >"$ca_file"
  [[ -s $ca_file && -n $server ]] || die "no API server address or CA in $internal"
  helm_mgmt upgrade --install fleet-crd fleet-crd --repo "$FLEET_CHART_REPO" --version "$FLEET_VERSION" \
    --namespace cattle-fleet-system --create-namespace --wait --timeout 5m
  helm_mgmt upgrade --install fleet fleet --repo "$FLEET_CHART_REPO" --version "$FLEET_VERSION" \
    --namespace cattle-fleet-system --wait --timeout 10m \
    --set apiServerURL="$server" --set-file apiServerCA="$ca_file"
  kmgmt -n cattle-fleet-system rollout status deployment/fleet-controller --timeout=300s
  info "Fleet agents will reach the management cluster at $server"
}

install_gitea() {
  step "installing Gitea $GITEA_IMAGE_TAG on $MGMT_CLUSTER (chart $GITEA_CHART_VERSION)"
  helm_mgmt upgrade --install gitea gitea --repo "$GITEA_CHART_REPO" --version "$GITEA_CHART_VERSION" \
    --namespace gitea --create-namespace --wait --timeout 10m \
    --values "$KIND_DIR/values/gitea.yaml" \
    --set image.tag="$GITEA_IMAGE_TAG" \
    --set gitea.admin.username="$GITEA_ADMIN" \
    --set gitea.admin.password="$(credential GITEA_PASSWORD)"
}

install_harbor() {
  step "installing Harbor on $MGMT_CLUSTER (chart $HARBOR_CHART_VERSION; takes a few minutes)"
  helm_mgmt upgrade --install harbor harbor --repo "$HARBOR_CHART_REPO" --version "$HARBOR_CHART_VERSION" \
    --namespace harbor --create-namespace --wait --timeout 15m \
    --values "$KIND_DIR/values/harbor.yaml" \
    --set harborAdminPassword="$(credential HARBOR_PASSWORD)"
  local status
  open_services
  status=$(harbor_status "users/current")
  [[ $status == 200 ]] || die "Harbor does not accept the admin password in $CREDENTIALS_FILE" \
    "(GET /api/v2.0/users/current: HTTP $status); Harbor keeps its first password: test/kind/down.sh, then up.sh"
}

# ---- edges: Skupper ----------------------------------------------------------------------

# Skupper's grant server and the hub's router are reached through NodePorts on the
# node's address on the kind network (there is no LoadBalancer on kind).
install_skupper() {
  local edge=$1 host image
  step "installing Skupper $SKUPPER_VERSION on $(kind_cluster "$edge") (cluster-scoped controller)"
  kedge "$edge" apply -f "$SKUPPER_MANIFEST_URL"
  host=$(kedge "$edge" get nodes -o 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}')
  [[ -n $host ]] || die "no InternalIP on the node of $(kind_cluster "$edge")"
  kedge "$edge" -n skupper set env deployment/skupper-controller \
    SKUPPER_ENABLED_ACCESS_TYPES=local,loadbalancer,route,nodeport \
    SKUPPER_DEFAULT_ACCESS_TYPE=nodeport \
    SKUPPER_CLUSTER_HOST="$host"
  kedge "$edge" -n skupper rollout status deployment/skupper-controller --timeout=300s
  image=$(kedge "$edge" -n skupper get deployment skupper-controller -o "jsonpath=$FIRST_CONTAINER.image}")
  info "controller $image, NodePorts on $host"
}

# ---- Outpost ---------------------------------------------------------------------------

build_image() {
  step "building $OUTPOST_IMAGE from $REPO_ROOT/Dockerfile"
  docker build -t "$OUTPOST_IMAGE" "$REPO_ROOT"
  step "loading $OUTPOST_IMAGE into $MGMT_CLUSTER"
  kind load docker-image "$OUTPOST_IMAGE" --name "$MGMT_CLUSTER"
}

wait_for_outpost() {
  local deployment
  for deployment in "${OUTPOST_DEPLOYMENTS[@]}"; do
    if ! kmgmt -n outpost-system rollout status "deployment/$deployment" --timeout=300s; then
      kmgmt -n outpost-system get pods -o wide >&2
      kmgmt -n outpost-system logs "deployment/$deployment" --tail=40 >&2 || true
      die "$deployment did not become available"
    fi
  done
}

install_outpost() {
  step "installing Outpost on $MGMT_CLUSTER (kubectl apply -k config/)"
  kmgmt apply -k "$REPO_ROOT/config"
  # The service proxy serves each route on <label>.<base domain>: *.localhost resolves to
  # this machine in browsers and curl, which reach the proxy through a port-forward.
  kmgmt -n outpost-system create configmap outpost-service-proxy --from-literal=base-domain=localhost \
    --dry-run=client -o yaml | kmgmt apply -f -
  kmgmt wait --for=condition=Established crd --all --timeout=120s
  # The image tag does not change when the image is rebuilt: restart to run the new one.
  kmgmt -n outpost-system rollout restart deployment
  wait_for_outpost
  local edge
  for edge in "${EDGES[@]}"; do
    step "applying config/edge on $(kind_cluster "$edge")"
    kedge "$edge" apply -k "$REPO_ROOT/config/edge"
  done
}

install_clamd() {
  step "running clamd ($CLAMAV_IMAGE) for malware scanning; it downloads its signatures first"
  render "$KIND_DIR/manifests/clamd.yaml" CLAMAV_IMAGE="$CLAMAV_IMAGE" | kmgmt apply -f -
  if ! kmgmt -n outpost-clamd rollout status deployment/clamd --timeout=900s; then
    kmgmt -n outpost-clamd get pods -o wide >&2
    kmgmt -n outpost-clamd logs deployment/clamd --tail=40 >&2 || true
    die "clamd did not become ready"
  fi
}

# config/ runs the catalog operator with --scan-mode=permissive (so that an install without
# clamd works); with clamd running, content that cannot be scanned must not be Ready.
enforce_scanning() {
  step "switching the catalog operator to --scan-mode=enforce"
  local args
  args=$(kmgmt -n outpost-system get deployment outpost-catalog -o "jsonpath=$FIRST_CONTAINER.args}")
  [[ $args == *--scan-mode=* ]] || die "outpost-catalog has no --scan-mode flag: $args"
  args=$(printf '%s' "$args" | sed -E 's/--scan-mode=[a-z]+/--scan-mode=enforce/')
  kmgmt -n outpost-system patch deployment outpost-catalog --type=json \
    -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/args\",\"value\":$args}]"
  kmgmt -n outpost-system rollout status deployment/outpost-catalog --timeout=300s
}

# ---- tenancy ---------------------------------------------------------------------------

gitea_token_works() {
  has_credential GITEA_TOKEN || return 1
  local url
  service_url gitea gitea-http 3000 url
  [[ $(http_status "$url/api/v1/user" -H "Authorization: token $(credential GITEA_TOKEN)") == 200 ]]
}

create_gitea_token() {
  local url body token
  service_url gitea gitea-http 3000 url
  body=$(curl -sS --fail-with-body -u "$GITEA_ADMIN:$(credential GITEA_PASSWORD)" \
    -H 'Content-Type: application/json' \
    -d "{\"name\":\"outpost-e2e-$(date +%s)\",\"scopes\":$GITEA_TOKEN_SCOPES}" \
    "$url/api/v1/users/$GITEA_ADMIN/tokens") || die "Gitea refused to create a token: $body"
  token=$(printf '%s' "$body" | json_get sha1) || die "no token in Gitea's answer: $body"
  save_credential GITEA_TOKEN "$token"
}

configure_tenancy() {
  step "configuring the tenancy operator (Secret outpost-system/outpost-tenancy: Gitea and Harbor)"
  open_services
  gitea_token_works || create_gitea_token
  render "$KIND_DIR/manifests/tenancy-secret.yaml" \
    GITEA_ORGANIZATION="$GITEA_ORGANIZATION" \
    GITEA_USERNAME="$GITEA_ADMIN" \
    GITEA_TOKEN="$(credential GITEA_TOKEN)" \
    HARBOR_PASSWORD="$(credential HARBOR_PASSWORD)" | kmgmt apply -f -
}

summary() {
  step "ready after $((SECONDS / 60))m$((SECONDS % 60))s"
  print_layout
  info "credentials         $CREDENTIALS_FILE"
  info ""
  info "next:    test/kind/e2e.sh"
  info "look:    export KUBECONFIG=$KUBECONFIG; kubectl --context kind-$MGMT_CLUSTER get pods -A"
  info "cleanup: test/kind/down.sh"
}

main() {
  preflight
  step "kind end-to-end suite: pinned versions"
  print_versions
  create_clusters
  generate_credentials
  build_image
  install_fleet
  install_gitea
  install_harbor
  local edge
  for edge in "${EDGES[@]}"; do
    install_skupper "$edge"
  done
  install_outpost
  install_clamd
  enforce_scanning
  configure_tenancy
  summary
}

main "$@"
