#!/usr/bin/env bash
# The end-to-end run on the clusters up.sh made: applies examples/ (the retail storefront)
# and checks, on the real clusters, that
#
#   project   the Project gets its namespace, Git repository (Gitea) and Harbor project
#   register  the edges join Fleet (manager-initiated) with the labels the examples select
#   catalog   the catalog applications are Ready and scanned by clamd
#   deliver   after approval, the web runs on the store(s) and the database on central,
#             and neither runs where it does not belong
#   network   the Skupper sites and links are up on the edges and the Network is Ready
#   service   the database is reachable from a store through the network
#   rollback  a changed parameter (revision 2) rolled back gives revision 3 with revision
#             1's spec, and revision 1's values on the edge
#   delete    deleting the Project removes the namespace, GitRepos, Fleet bundles, the
#             Skupper sites on the edges, the releases, the Git repository and the Harbor
#             project
#
# Each phase runs even when an earlier one failed, unless it needs that one; the run ends
# with a summary and exits non-zero when any phase did not pass. OUTPOST_KIND_KEEP=1 keeps
# the project (no delete phase) to look at it afterwards.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEPLOYMENT=storefront
SITE_NAMESPACE=outpost-network-$PROJECT
WEB_RELEASE=storefront-web
WEB_NAMESPACE=storefront
DB_RELEASE=storefront-db
DB_NAMESPACE=storefront-data
APPROVER=store-operations-lead
APPLICATIONS=(storefront-web-1.0.0 storefront-db-1.0.0)
PACKAGE=storefront-1.0.0
# Resources by their full names (short names such as "clusters" are ambiguous).
PROJECTS=projects.tenancy.outpost.dev
APPS=applications.catalog.outpost.dev
PACKAGES=deploymentpackages.catalog.outpost.dev
APPDEPLOYMENTS=appdeployments.deploy.outpost.dev
NETWORKS=networks.interconnect.outpost.dev
NETWORKSERVICES=networkservices.interconnect.outpost.dev
FLEET_CLUSTERS=clusters.fleet.cattle.io
GITREPOS=gitrepos.fleet.cattle.io
BUNDLES=bundles.fleet.cattle.io
BUNDLEDEPLOYMENTS=bundledeployments.fleet.cattle.io
SITES=sites.skupper.io
LINKS=links.skupper.io

fail() {
  printf 'FAILED: %s\n' "$*" >&2
  exit 1
}

# output_of COMMAND...: COMMAND's output; when it fails, the phase fails with its errors.
output_of() {
  local out
  if ! out=$("$@" 2>/dev/null); then
    fail "$* failed: $("$@" 2>&1 | tail -n 5)"
  fi
  printf '%s' "$out"
}

# expect DESCRIPTION EXPECTED COMMAND...: COMMAND must print EXPECTED.
expect() {
  local what=$1 expected=$2 actual
  shift 2
  actual=$(output_of "$@")
  [[ $actual == "$expected" ]] || fail "$what: expected '$expected', got '$actual'"
  info "ok: $what"
}

# expect_none DESCRIPTION COMMAND...: COMMAND must succeed and print nothing.
expect_none() {
  local what=$1 out
  shift
  out=$(output_of "$@")
  [[ -z $out ]] || fail "$what: expected nothing, found: $(printf '%s' "$out" | tr '\n' ' ')"
  info "ok: $what"
}

# ---- what the checks read -----------------------------------------------------------------

# secret_value NAME KEY: a key of a Secret in the project namespace, decoded.
secret_value() { kmgmt -n "$PROJECT" get secret "$1" -o "jsonpath={.data.$2}" | base64 --decode; }
dep_field() { kmgmt -n "$PROJECT" get "$APPDEPLOYMENTS" "$DEPLOYMENT" -o "jsonpath=$1"; }
# release_workloads EDGE RELEASE [NAMESPACE]: the Deployments and StatefulSets of a Helm
# release on an edge (labelled app.kubernetes.io/instance=RELEASE), in any namespace or one.
release_workloads() {
  local where=(-A)
  [[ -z ${3:-} ]] || where=(-n "$3")
  kedge "$1" get deployments,statefulsets "${where[@]}" -l "app.kubernetes.io/instance=$2" -o name
}
web_replicas() {
  kedge "$1" -n "$WEB_NAMESPACE" get deployments -l "app.kubernetes.io/instance=$WEB_RELEASE" \
    -o 'jsonpath={.items[0].spec.replicas}'
}
# The revision hash of revision N in `kubectl outpost history`.
history_hash() {
  outpost_cli history "$DEPLOYMENT" -n "$PROJECT" -o json | node -e '
    let text = "";
    process.stdin.on("data", (d) => (text += d));
    process.stdin.on("end", () => {
      const row = JSON.parse(text).find((r) => r.revision === Number(process.argv[1]));
      if (!row) process.exit(1);
      process.stdout.write(row.hash);
    });' "$1"
}
# Ready Links on a store towards a hub: outpost-to-<hub>, or -<n> when Skupper split it.
link_ready() {
  kedge "$1" -n "$SITE_NAMESPACE" get "$LINKS" \
    -o 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -E "^outpost-to-$2(-[0-9]+)?=True$" >/dev/null
}

# ---- what is shown when a wait times out --------------------------------------------------

status_of() { "$@" -o yaml | sed -n '/^status:/,$p'; }
show_project() {
  status_of kmgmt get "$PROJECTS" "$PROJECT"
  kmgmt -n outpost-system logs deployment/outpost-tenancy --tail=20 || true
}
show_fleet_cluster() {
  kmgmt -n "$PROJECT" get "$FLEET_CLUSTERS" -o wide
  status_of kmgmt -n "$PROJECT" get "$FLEET_CLUSTERS" "$1"
  kedge "$1" get pods -A -l app=fleet-agent -o wide || true
  kmgmt -n cattle-fleet-system logs deployment/fleet-controller --tail=20 || true
}
show_catalog() {
  kmgmt -n "$PROJECT" get "registries.catalog.outpost.dev,$APPS,$PACKAGES"
  status_of kmgmt -n "$PROJECT" get "$APPS/$1"
}
show_deployment() {
  outpost_cli status "$DEPLOYMENT" -n "$PROJECT" || true
  outpost_cli status "$DEPLOYMENT" -n "$PROJECT" --clusters || true
  kmgmt -n "$PROJECT" get "$GITREPOS,$BUNDLES" -o wide || true
}
show_workloads() {
  local edge=$1 ns=$2
  show_deployment
  kedge "$edge" -n "$ns" get deployments,statefulsets,pods -o wide || true
  kedge "$edge" -n "$ns" get events --sort-by=.lastTimestamp | tail -n 15 || true
}
show_network() {
  status_of kmgmt -n "$PROJECT" get "$NETWORKS" "$PROJECT"
  local edge
  for edge in "${EDGES[@]}"; do
    printf -- '- %s:\n' "$edge"
    kedge "$edge" -n "$SITE_NAMESPACE" get "$SITES,accessgrants.skupper.io,accesstokens.skupper.io,$LINKS" || true
  done
}
show_network_service() {
  status_of kmgmt -n "$PROJECT" get "$NETWORKSERVICES" "$DB_RELEASE"
  local edge
  for edge in "${EDGES[@]}"; do
    printf -- '- %s:\n' "$edge"
    kedge "$edge" get listeners.skupper.io,connectors.skupper.io,attachedconnectors.skupper.io -A || true
  done
}

# ---- phases -------------------------------------------------------------------------------

phase_project() {
  step "applying the Project (examples/00-project.yaml)"
  kmgmt apply -f "$REPO_ROOT/examples/00-project.yaml"
  wait_until 300 "Project $PROJECT to be Ready" show_project -- \
    value_is True kmgmt get "$PROJECTS" "$PROJECT" -o "$(condition Ready)"
  open_services
  expect "namespace $PROJECT belongs to the project" "$PROJECT" \
    kmgmt get namespace "$PROJECT" -o 'jsonpath={.metadata.labels.outpost\.dev/project}'
  expect "Secret $PROJECT/outpost-git names the project's repository" \
    "http://gitea-http.gitea.svc.cluster.local:3000/$GITEA_ORGANIZATION/$PROJECT.git" \
    secret_value outpost-git url
  expect "the Gitea repository $GITEA_ORGANIZATION/$PROJECT exists" 200 gitea_repository_status "$PROJECT"
  expect "the Harbor project $PROJECT exists" 200 harbor_status "projects/$PROJECT"
  expect "Secret $PROJECT/outpost-harbor holds the robot account" "robot\$$PROJECT+outpost" \
    secret_value outpost-harbor username
}

# A kubeconfig for ServiceAccount kube-system/outpost-edge (config/edge) on an edge: the
# internal kubeconfig's server and CA with a token of that ServiceAccount.
outpost_edge_kubeconfig() {
  local edge=$1 internal=$2 out=$3 token
  token=$(kedge "$edge" -n kube-system create token outpost-edge --duration=24h)
  cp "$internal" "$out"
  kubectl --kubeconfig "$out" config set-credentials outpost-edge --token="$token" >/dev/null
  kubectl --kubeconfig "$out" config set-context --current --user=outpost-edge >/dev/null
}

phase_register() {
  local edge internal outpost
  for edge in "${EDGES[@]}"; do
    internal=$(internal_kubeconfig "$(kind_cluster "$edge")")
    [[ -s $internal ]] || fail "no internal kubeconfig of $edge at $internal: run up.sh"
    outpost="$STATE_DIR/$edge.outpost-edge.kubeconfig"
    outpost_edge_kubeconfig "$edge" "$internal" "$outpost"
    step "registering $edge with Fleet (Secrets $PROJECT/$edge-fleet-kubeconfig and $edge-kubeconfig, Cluster $PROJECT/$edge)"
    render "$KIND_DIR/manifests/fleet-cluster-$edge.yaml" \
      FLEET_KUBECONFIG_BASE64="$(base64 <"$internal" | tr -d '\n')" \
      OUTPOST_KUBECONFIG_BASE64="$(base64 <"$outpost" | tr -d '\n')" | kmgmt apply -f -
  done
  for edge in "${EDGES[@]}"; do
    wait_until 600 "the Fleet agent on $edge to check in" show_fleet_cluster "$edge" -- \
      nonempty kmgmt -n "$PROJECT" get "$FLEET_CLUSTERS" "$edge" -o 'jsonpath={.status.agent.lastSeen}'
    info "ok: the Fleet agent on $edge checked in"
  done
}

phase_catalog() {
  step "applying the rest of examples/"
  kmgmt apply -f "$REPO_ROOT/examples/"
  local app
  for app in "${APPLICATIONS[@]}"; do
    wait_until 900 "Application $app to be Ready (chart fetched and scanned)" show_catalog "$app" -- \
      value_is True kmgmt -n "$PROJECT" get "$APPS" "$app" -o "$(condition Ready)"
    expect "Application $app was scanned by clamd" True \
      kmgmt -n "$PROJECT" get "$APPS" "$app" -o "$(condition Scanned)"
  done
  wait_until 300 "DeploymentPackage $PACKAGE to be Ready" show_catalog "${APPLICATIONS[0]}" -- \
    value_is True kmgmt -n "$PROJECT" get "$PACKAGES" "$PACKAGE" -o "$(condition Ready)"
  info "ok: DeploymentPackage $PACKAGE is Ready"
}

approve() {
  wait_until 600 "AppDeployment $DEPLOYMENT to await approval" show_deployment -- \
    value_is AwaitingApproval dep_field '{.status.phase}'
  step "approving as $APPROVER"
  outpost_cli approve "$DEPLOYMENT" -n "$PROJECT" --as "$APPROVER"
}

expect_web_on_stores() {
  local edge
  for edge in "${STORE_EDGES[@]}"; do
    wait_until 900 "the web ($WEB_RELEASE) to be installed on $edge" show_workloads "$edge" "$WEB_NAMESPACE" -- \
      nonempty release_workloads "$edge" "$WEB_RELEASE" "$WEB_NAMESPACE"
    if ! kedge "$edge" -n "$WEB_NAMESPACE" wait --for=condition=Available deployments \
      -l "app.kubernetes.io/instance=$WEB_RELEASE" --timeout=600s; then
      show_workloads "$edge" "$WEB_NAMESPACE" >&2
      fail "the web is not available on $edge"
    fi
    info "ok: the web runs on $edge (namespace $WEB_NAMESPACE)"
  done
}

expect_db_on_central() {
  local edge statefulset
  for edge in "${CENTRAL_EDGES[@]}"; do
    wait_until 900 "the database ($DB_RELEASE) to be installed on $edge" show_workloads "$edge" "$DB_NAMESPACE" -- \
      nonempty release_workloads "$edge" "$DB_RELEASE" "$DB_NAMESPACE"
    statefulset=$(release_workloads "$edge" "$DB_RELEASE" "$DB_NAMESPACE" | grep -m 1 '^statefulset') ||
      fail "the database on $edge is not a StatefulSet: $(release_workloads "$edge" "$DB_RELEASE" "$DB_NAMESPACE")"
    if ! kedge "$edge" -n "$DB_NAMESPACE" rollout status "$statefulset" --timeout=600s; then
      show_workloads "$edge" "$DB_NAMESPACE" >&2
      fail "the database is not ready on $edge"
    fi
    info "ok: the database runs on $edge (namespace $DB_NAMESPACE)"
  done
}

phase_deliver() {
  wait_until 600 "AppDeployment $DEPLOYMENT to await approval" show_deployment -- \
    value_is AwaitingApproval dep_field '{.status.phase}'
  step "a deployer may not approve"
  local out
  if out=$(outpost_cli approve "$DEPLOYMENT" -n "$PROJECT" --as retail-dev --as-group retail-developers 2>&1); then
    fail "a member of retail-developers approved the deployment: $out"
  fi
  [[ $out == *"approver role"* ]] || fail "approving as a deployer failed for another reason: $out"
  info "ok: refused ($out)"
  approve
  wait_until 300 "revision 1 to be delivered" show_deployment -- value_is 1 dep_field '{.status.revision}'
  expect_db_on_central
  expect_web_on_stores
  local edge
  for edge in "${STORE_EDGES[@]}"; do
    expect_none "no database on $edge" release_workloads "$edge" "$DB_RELEASE"
  done
  for edge in "${CENTRAL_EDGES[@]}"; do
    expect_none "no web on $edge" release_workloads "$edge" "$WEB_RELEASE"
  done
  wait_until 600 "AppDeployment $DEPLOYMENT to be Ready" show_deployment -- \
    value_is True dep_field "{.status.conditions[?(@.type==\"Ready\")].status}"
  expect "AppDeployment $DEPLOYMENT is Running" Running dep_field '{.status.phase}'
  outpost_cli status "$DEPLOYMENT" -n "$PROJECT"
}

phase_network() {
  local edge hub members=${#EDGES[@]}
  for edge in "${EDGES[@]}"; do
    wait_until 600 "the Skupper Site $edge on $edge to be Ready" show_network -- \
      value_is True kedge "$edge" -n "$SITE_NAMESPACE" get "$SITES" "$edge" -o "$(condition Ready)"
    info "ok: Site $edge is Ready on $edge"
  done
  for edge in "${STORE_EDGES[@]}"; do
    for hub in "${CENTRAL_EDGES[@]}"; do
      wait_until 600 "the Skupper Link from $edge to $hub to be Ready" show_network -- link_ready "$edge" "$hub"
      info "ok: Link $edge -> $hub is Ready"
    done
  done
  for edge in "${EDGES[@]}"; do
    wait_until 300 "the Site on $edge to see $members sites in the network" show_network -- \
      value_is "$members" kedge "$edge" -n "$SITE_NAMESPACE" get "$SITES" "$edge" \
      -o 'jsonpath={.status.sitesInNetwork}'
    info "ok: the Site on $edge sees $members sites"
  done
  wait_until 300 "Network $PROJECT to be Ready" show_network -- \
    value_is True kmgmt -n "$PROJECT" get "$NETWORKS" "$PROJECT" -o "$(condition Ready)"
  local links expected=$((${#STORE_EDGES[@]} * ${#CENTRAL_EDGES[@]}))
  links=$(kmgmt -n "$PROJECT" get "$NETWORKS" "$PROJECT" -o 'jsonpath={.status.summary.links}')
  expect "Network $PROJECT asks for one link per store and hub" "$expected" printf '%s' "$links"
  expect "all links of Network $PROJECT are up" "$links" \
    kmgmt -n "$PROJECT" get "$NETWORKS" "$PROJECT" -o 'jsonpath={.status.summary.linksConnected}'
  expect "Network $PROJECT has $members members" "$members" \
    kmgmt -n "$PROJECT" get "$NETWORKS" "$PROJECT" -o 'jsonpath={.status.summary.members}'
  kmgmt -n "$PROJECT" get "$NETWORKS" -o wide
}

phase_service() {
  wait_until 600 "NetworkService $DB_RELEASE to be Ready" show_network_service -- \
    value_is True kmgmt -n "$PROJECT" get "$NETWORKSERVICES" "$DB_RELEASE" -o "$(condition Ready)"
  info "ok: NetworkService $DB_RELEASE is Ready"
  local edge
  for edge in "${STORE_EDGES[@]}"; do
    step "connecting from $edge to the database through the network (Job outpost-e2e-db-probe)"
    kedge "$edge" -n "$SITE_NAMESPACE" delete job outpost-e2e-db-probe --ignore-not-found --wait=true
    render "$KIND_DIR/manifests/db-probe.yaml" BUSYBOX_IMAGE="$BUSYBOX_IMAGE" | kedge "$edge" apply -f -
    if ! kedge "$edge" -n "$SITE_NAMESPACE" wait --for=condition=Complete job/outpost-e2e-db-probe \
      --timeout=300s; then
      kedge "$edge" -n "$SITE_NAMESPACE" get pods,services -o wide >&2 || true
      kedge "$edge" -n "$SITE_NAMESPACE" logs job/outpost-e2e-db-probe --tail=20 >&2 || true
      show_network_service >&2
      fail "$edge cannot reach storefront-db:5432 through the network"
    fi
    info "ok: $edge reaches the database on $(printf '%s ' "${CENTRAL_EDGES[@]}")through Skupper"
  done
}

expect_web_replicas() {
  local replicas=$1 edge
  for edge in "${STORE_EDGES[@]}"; do
    wait_until 600 "the web on $edge to have $replicas replica(s) in its spec" \
      show_workloads "$edge" "$WEB_NAMESPACE" -- value_is "$replicas" web_replicas "$edge"
    info "ok: the web on $edge has $replicas replica(s)"
  done
}

phase_rollback() {
  local first
  first=$(history_hash 1) || fail "kubectl outpost history shows no revision 1"
  info "revision 1: $first"
  expect_web_replicas 3

  step "revision 2: replicaCount of storefront-web 3 -> 1"
  kmgmt -n "$PROJECT" patch "$APPDEPLOYMENTS" "$DEPLOYMENT" --type=json \
    --patch-file "$KIND_DIR/patches/storefront-revision-2.json"
  approve
  wait_until 300 "revision 2 to be delivered" show_deployment -- value_is 2 dep_field '{.status.revision}'
  expect_web_replicas 1

  step "kubectl outpost rollback $DEPLOYMENT"
  outpost_cli rollback "$DEPLOYMENT" -n "$PROJECT"
  # Revision 1's spec was approved already; approving again only confirms it.
  outpost_cli approve "$DEPLOYMENT" -n "$PROJECT" --as "$APPROVER"
  wait_until 300 "revision 3 to be delivered" show_deployment -- value_is 3 dep_field '{.status.revision}'
  outpost_cli history "$DEPLOYMENT" -n "$PROJECT"
  expect "revision 3 is revision 1's spec (same hash)" "$first" history_hash 3
  expect "the spec has revision 1's replicaCount again" 3 dep_field '{.spec.parameters[0].value}'
  expect_web_replicas 3
}

phase_delete() {
  nonempty kmgmt get "$PROJECTS" --field-selector "metadata.name=$PROJECT" -o name ||
    fail "there is no Project $PROJECT to delete"
  step "deleting Project $PROJECT"
  kmgmt delete "$PROJECTS" "$PROJECT" --wait=false
  wait_until 1200 "Project $PROJECT to be deleted" show_project -- \
    empty kmgmt get "$PROJECTS" --field-selector "metadata.name=$PROJECT" -o name
  expect_none "namespace $PROJECT is gone" kmgmt get namespaces --field-selector "metadata.name=$PROJECT" -o name
  expect_none "no GitRepos of $PROJECT" kmgmt -n "$PROJECT" get "$GITREPOS" -o name
  expect_none "no Fleet Bundles of $PROJECT" kmgmt -n "$PROJECT" get "$BUNDLES" -o name
  wait_until 300 "Fleet to remove the BundleDeployments of $PROJECT" \
    kmgmt get "$BUNDLEDEPLOYMENTS" -A -l "fleet.cattle.io/bundle-namespace=$PROJECT" -- \
    empty kmgmt get "$BUNDLEDEPLOYMENTS" -A -l "fleet.cattle.io/bundle-namespace=$PROJECT" -o name
  info "ok: no BundleDeployments of $PROJECT"
  local edge release
  for edge in "${EDGES[@]}"; do
    wait_until 300 "the site namespace $SITE_NAMESPACE to be removed from $edge" \
      kedge "$edge" get namespace "$SITE_NAMESPACE" -o yaml -- \
      empty kedge "$edge" get namespaces --field-selector "metadata.name=$SITE_NAMESPACE" -o name
    expect_none "no Skupper Site left on $edge" kedge "$edge" get "$SITES" -A -o name
    for release in "$WEB_RELEASE" "$DB_RELEASE"; do
      wait_until 300 "Fleet to uninstall $release from $edge" \
        release_workloads "$edge" "$release" -- empty release_workloads "$edge" "$release"
    done
    info "ok: nothing of the storefront left on $edge"
  done
  open_services
  expect "the Gitea repository $GITEA_ORGANIZATION/$PROJECT is gone" 404 gitea_repository_status "$PROJECT"
  expect "the Harbor project $PROJECT is gone" 404 harbor_status "projects/$PROJECT"
}

# ---- the run ---------------------------------------------------------------------------

declare -A RESULT=()
PHASES=()

# run_phase NAME [NEEDED_PHASE...]: runs phase_NAME in a subshell (so a failure ends the
# phase, not the run) unless a phase it needs did not pass.
run_phase() {
  local name=$1 need started=$SECONDS rc
  shift
  PHASES+=("$name")
  for need in "$@"; do
    if [[ ${RESULT[$need]:-} != passed ]]; then
      RESULT[$name]="skipped: $need did not pass"
      step "phase $name: skipped, $need did not pass"
      return 0
    fi
  done
  step "phase $name"
  set +e
  (
    set -e
    forget_port_forwards
    trap stop_port_forwards EXIT
    "phase_$name"
  )
  rc=$?
  set -e
  if ((rc == 0)); then RESULT[$name]=passed; else RESULT[$name]=failed; fi
  step "phase $name: ${RESULT[$name]} after $((SECONDS - started))s"
}

preflight() {
  require_tools kubectl curl node base64
  require_node
  [[ -s $KUBECONFIG ]] || die "no kubeconfig at $KUBECONFIG: run test/kind/up.sh first"
  [[ -d $REPO_ROOT/node_modules/tsx ]] || die "the npm dependencies are missing: run make setup first"
  kmgmt get namespace outpost-system -o name >/dev/null ||
    die "Outpost is not installed on $MGMT_CLUSTER: run test/kind/up.sh"
  local edge
  for edge in "${EDGES[@]}"; do
    kedge "$edge" get namespace skupper -o name >/dev/null ||
      die "Skupper is not installed on $(kind_cluster "$edge"): run test/kind/up.sh"
  done
}

report() {
  local name failed=0
  step "summary after $((SECONDS / 60))m$((SECONDS % 60))s"
  for name in "${PHASES[@]}"; do
    printf '    %-9s %s\n' "$name" "${RESULT[$name]}"
    [[ ${RESULT[$name]} == passed || ${RESULT[$name]} == "not run"* ]] || failed=1
  done
  info ""
  info "clusters: export KUBECONFIG=$KUBECONFIG (contexts kind-$MGMT_CLUSTER, kind-$PREFIX-<edge>)"
  info "cleanup:  test/kind/down.sh deletes the clusters"
  if ((failed)); then
    printf 'FAILED: not every phase passed\n' >&2
    return 1
  fi
  step "PASSED"
}

main() {
  preflight
  print_layout
  run_phase project
  run_phase register project
  run_phase catalog project
  run_phase deliver register catalog
  run_phase network register catalog
  run_phase service deliver network
  run_phase rollback deliver
  if [[ ${OUTPOST_KIND_KEEP:-} == 1 ]]; then
    PHASES+=(delete)
    RESULT[delete]="not run (OUTPOST_KIND_KEEP=1: the project stays)"
  else
    # Runs whatever happened before, to clean up; it fails when there is no project.
    run_phase delete
  fi
  report
}

main "$@"
