#!/usr/bin/env bash
# Settings and functions shared by up.sh, e2e.sh and down.sh (sourced, not run). Every
# pinned version of the kind end-to-end suite is in the first section.
set -euo pipefail

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
  echo "error: bash >= 4.4 is needed (this is bash $BASH_VERSION)" >&2
  exit 1
fi

# ---- pinned versions -------------------------------------------------------------------

# Kubernetes v1.34.0, the default node image of kind v0.30.0 (Fleet 0.16 needs >= 1.34).
KIND_NODE_IMAGE=kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a
# Fleet: the Helm charts fleet-crd and fleet.
FLEET_CHART_REPO=https://rancher.github.io/fleet-helm-charts/
FLEET_VERSION=0.16.1
# Skupper v2: the release manifest of the cluster-scoped controller.
SKUPPER_VERSION=2.2.1
SKUPPER_RELEASES=https://github.com/skupperproject/skupper/releases/download
SKUPPER_MANIFEST_URL=$SKUPPER_RELEASES/$SKUPPER_VERSION/skupper-cluster-scope.yaml
# Harbor: chart 1.19.1 is Harbor v2.15.1.
HARBOR_CHART_REPO=https://helm.goharbor.io
HARBOR_CHART_VERSION=1.19.1
# Gitea: the chart, and the Gitea image it runs (the version the integration tests build).
GITEA_CHART_REPO=https://dl.gitea.com/charts/
GITEA_CHART_VERSION=12.6.0
GITEA_IMAGE_TAG=1.26.3
# clamd for the catalog operator's malware scanning, and the image of the network probe.
CLAMAV_IMAGE=clamav/clamav:1.4.3
BUSYBOX_IMAGE=busybox:1.37.0
# The Outpost image config/ installs, built from the repository's Dockerfile.
OUTPOST_IMAGE=ghcr.io/outpost-dev/outpost:0.1.0

# ---- layout ----------------------------------------------------------------------------

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KIND_DIR/../.." && pwd)
# Kubeconfigs, generated credentials and logs; removed by down.sh.
STATE_DIR=${OUTPOST_KIND_DIR:-$REPO_ROOT/.outpost/kind}
CREDENTIALS_FILE=$STATE_DIR/credentials
# kind cluster names: <prefix>-mgmt and <prefix>-<edge>.
PREFIX=${OUTPOST_KIND_PREFIX:-outpost}
MGMT_CLUSTER=$PREFIX-mgmt
# The edges are Fleet Clusters of these names (test/kind/manifests/fleet-cluster-<edge>.yaml).
STORE_EDGES=(store-1)
CENTRAL_EDGES=(central)
EDGES=("${STORE_EDGES[@]}" "${CENTRAL_EDGES[@]}")
# The Project of examples/ and its namespace.
PROJECT=retail
# The Gitea account the tenancy operator pushes with, and the organization of project
# repositories (also in manifests/tenancy-secret.yaml through placeholders).
GITEA_ADMIN=outpost-admin
GITEA_ORGANIZATION=outpost-projects
POLL_SECONDS=5

# Every kubectl, helm and kind call uses the suite's own kubeconfig, never ~/.kube/config.
export KUBECONFIG=$STATE_DIR/kubeconfig
# The Node that `make setup` installs when the system's is too old (the CLI needs >= 22.19).
if [[ -d $REPO_ROOT/.tools/node/node_modules/.bin ]]; then
  PATH=$REPO_ROOT/.tools/node/node_modules/.bin:$PATH
fi

# ---- output ----------------------------------------------------------------------------

step() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

print_layout() {
  info "management cluster  $MGMT_CLUSTER (context kind-$MGMT_CLUSTER)"
  local edge
  for edge in "${EDGES[@]}"; do
    info "edge cluster        $(kind_cluster "$edge") (context kind-$(kind_cluster "$edge")," \
      "Fleet Cluster $PROJECT/$edge)"
  done
  info "kubeconfig          $KUBECONFIG"
}

print_versions() {
  info "kind node image  $KIND_NODE_IMAGE"
  info "Fleet            $FLEET_VERSION ($FLEET_CHART_REPO)"
  info "Skupper          $SKUPPER_VERSION ($SKUPPER_MANIFEST_URL)"
  info "Harbor chart     $HARBOR_CHART_VERSION ($HARBOR_CHART_REPO)"
  info "Gitea chart      $GITEA_CHART_VERSION ($GITEA_CHART_REPO), image tag $GITEA_IMAGE_TAG"
  info "clamd            $CLAMAV_IMAGE"
  info "probe            $BUSYBOX_IMAGE"
  info "Outpost          $OUTPOST_IMAGE (built from $REPO_ROOT)"
}

require_tools() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (see test/kind/README.md)"
}

# The kubectl outpost plugin (cli/) needs Node >= 22.19; `make setup` installs one.
require_node() {
  node -e 'const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 22 || (a === 22 && b >= 19) ? 0 : 1)' ||
    die "Node >= 22.19 is needed to run kubectl outpost (this is $(node --version)): run make setup"
}

# ---- clusters --------------------------------------------------------------------------

kind_cluster() { printf '%s-%s' "$PREFIX" "$1"; }
kmgmt() { kubectl --context "kind-$MGMT_CLUSTER" "$@"; }
kedge() {
  local edge=$1
  shift
  kubectl --context "kind-$(kind_cluster "$edge")" "$@"
}
helm_mgmt() { helm --kube-context "kind-$MGMT_CLUSTER" "$@"; }
# The kubeconfig containers on the kind network use (`kind get kubeconfig --internal`),
# written by up.sh: what Fleet and Outpost's operators reach a cluster with.
internal_kubeconfig() { printf '%s/%s.internal.kubeconfig' "$STATE_DIR" "$1"; }
# A jsonpath printing the status of condition TYPE.
condition() { printf 'jsonpath={.status.conditions[?(@.type=="%s")].status}' "$1"; }

# ---- manifests -------------------------------------------------------------------------

# render FILE [NAME=VALUE...]: prints FILE with every @NAME@ replaced by VALUE, verbatim
# (the manifests quote their placeholders; the values are names, hex or base64). Names are
# upper case (A-Z, 0-9, _); a placeholder left without a value is an error. This is the
# only substitution the suite makes (test/integration/kind-manifests.test.ts uses it too).
render() {
  local file=$1 text pair name value
  shift
  text=$(<"$file")
  for pair in "$@"; do
    name=${pair%%=*}
    value=${pair#*=}
    [[ $name =~ ^[A-Z][A-Z0-9_]*$ ]] || die "render: bad placeholder name '$name'"
    text=${text//"@${name}@"/"$value"}
  done
  if [[ $text =~ @[A-Z][A-Z0-9_]*@ ]]; then
    die "render: $file: no value given for ${BASH_REMATCH[0]}"
  fi
  printf '%s\n' "$text"
}

# ---- waiting ---------------------------------------------------------------------------

# wait_until SECONDS WHAT [SHOW_COMMAND...] -- CHECK_COMMAND...
# Runs CHECK_COMMAND every POLL_SECONDS until it succeeds. After SECONDS it prints what it
# waited for and the output of SHOW_COMMAND (the relevant objects' status), and fails.
wait_until() {
  local timeout=$1 what=$2 show=()
  shift 2
  while (($#)) && [[ $1 != -- ]]; do
    show+=("$1")
    shift
  done
  (($#)) || die "wait_until: no -- before the check"
  shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf 'error: timed out after %ss waiting for %s\n' "$timeout" "$what" >&2
      if ((${#show[@]})); then
        printf -- '--- status ---\n' >&2
        "${show[@]}" >&2 || true
        printf -- '--------------\n' >&2
      fi
      return 1
    fi
    sleep "$POLL_SECONDS"
  done
}

# value_is EXPECTED COMMAND...: whether COMMAND prints EXPECTED.
value_is() {
  local expected=$1 actual
  shift
  actual=$("$@") || return 1
  [[ $actual == "$expected" ]]
}
# nonempty COMMAND...: whether COMMAND succeeds and prints something.
nonempty() {
  local out
  out=$("$@") || return 1
  [[ -n $out ]]
}
# empty COMMAND...: whether COMMAND succeeds and prints nothing.
empty() {
  local out
  out=$("$@") || return 1
  [[ -z $out ]]
}

# ---- credentials -----------------------------------------------------------------------

random_secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

credential() {
  local value
  value=$(sed -n "s/^$1=//p" "$CREDENTIALS_FILE" 2>/dev/null || true)
  value=${value##*$'\n'}
  [[ -n $value ]] || die "no $1 in $CREDENTIALS_FILE: run test/kind/up.sh first"
  printf '%s' "$value"
}
has_credential() { grep -q "^$1=" "$CREDENTIALS_FILE" 2>/dev/null; }
save_credential() {
  local name=$1 value=$2 tmp
  tmp=$(mktemp "$STATE_DIR/credentials.XXXXXX")
  chmod 600 "$tmp"
  if [[ -f $CREDENTIALS_FILE ]]; then grep -v "^$name=" "$CREDENTIALS_FILE" >"$tmp" || true; fi
  printf '%s=%s\n' "$name" "$value" >>"$tmp"
  mv "$tmp" "$CREDENTIALS_FILE"
}

# ---- services of the management cluster ------------------------------------------------

declare -A PF_PID=() PF_URL=()
# The shell (subshell level) that owns the port-forwards: the one that stops them.
PF_OWNER=$BASH_SUBSHELL

# service_url NAMESPACE SERVICE PORT VARIABLE: sets VARIABLE to a local http:// URL of the
# management cluster's Service, through a `kubectl port-forward` kept for this shell and
# stopped when it exits (stop_port_forwards). Start it in the shell that owns them
# (open_services), not in a command substitution, whose processes nothing would stop.
service_url() {
  local _ns=$1 _svc=$2 _port=$3 _var=$4 _key="$1/$2/$3"
  if [[ -n ${PF_PID[$_key]:-} ]] && kill -0 "${PF_PID[$_key]}" 2>/dev/null; then
    printf -v "$_var" '%s' "${PF_URL[$_key]}"
    return 0
  fi
  ((BASH_SUBSHELL == PF_OWNER)) || die "service_url $_ns/$_svc: call open_services first (not in \$(...))"
  local _log="$STATE_DIR/port-forward-$_ns-$_svc.log" _local="" _deadline=$((SECONDS + 30))
  : >"$_log"
  # kubectl itself in the background (not through a function), so that $! is its PID.
  kubectl --context "kind-$MGMT_CLUSTER" -n "$_ns" port-forward "service/$_svc" ":$_port" >"$_log" 2>&1 &
  PF_PID[$_key]=$!
  while :; do
    if [[ $(<"$_log") =~ Forwarding\ from\ 127\.0\.0\.1:([0-9]+) ]]; then
      _local=${BASH_REMATCH[1]}
      break
    fi
    if ! kill -0 "${PF_PID[$_key]}" 2>/dev/null || ((SECONDS >= _deadline)); then
      cat "$_log" >&2
      die "kubectl port-forward to service $_ns/$_svc did not start"
    fi
    sleep 1
  done
  PF_URL[$_key]=http://127.0.0.1:$_local
  printf -v "$_var" '%s' "${PF_URL[$_key]}"
}

stop_port_forwards() {
  local pid
  for pid in "${PF_PID[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  forget_port_forwards
}
# In a subshell that starts its own: those inherited belong to the parent, which stops them.
forget_port_forwards() {
  PF_PID=()
  PF_URL=()
  PF_OWNER=$BASH_SUBSHELL
}

# http_status URL [CURL_ARGS...]: the HTTP status of a GET (000 when nothing answered).
http_status() {
  local url=$1
  shift
  curl -sS -o /dev/null -w '%{http_code}' "$@" "$url" 2>/dev/null || true
}

# (Re)starts the port-forwards to Gitea and Harbor in the current shell, right before
# they are used: one started long before may have lost its pod.
open_services() {
  local url
  stop_port_forwards
  service_url gitea gitea-http 3000 url
  service_url harbor harbor 80 url
}

# gitea_status PATH / harbor_status PATH: the HTTP status of GET PATH on their API, as the
# administrator (Gitea: /api/v1/PATH, Harbor: /api/v2.0/PATH, addressing projects by name).
gitea_status() {
  local url
  service_url gitea gitea-http 3000 url
  http_status "$url/api/v1/$1" -u "$GITEA_ADMIN:$(credential GITEA_PASSWORD)"
}
harbor_status() {
  local url
  service_url harbor harbor 80 url
  http_status "$url/api/v2.0/$1" -u "admin:$(credential HARBOR_PASSWORD)" -H 'X-Is-Resource-Name: true'
}
# The HTTP status of the project's repository on Gitea (200 while it exists, 404 after).
gitea_repository_status() { gitea_status "repos/$GITEA_ORGANIZATION/$1"; }

# ---- JSON and the Outpost CLI ----------------------------------------------------------

# json_get KEY...: the value at KEY... of the JSON document on stdin (strings raw, the rest
# as JSON); fails when there is none.
json_get() {
  node -e '
    let text = "";
    process.stdin.on("data", (d) => (text += d));
    process.stdin.on("end", () => {
      let v = JSON.parse(text);
      for (const k of process.argv.slice(1)) v = v == null ? undefined : v[k];
      if (v == null) process.exit(1);
      process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));
    });' "$@"
}

# kubectl outpost, run from this checkout against the management cluster.
outpost_cli() { node "$REPO_ROOT/cli/kubectl-outpost.js" "$@" --context "kind-$MGMT_CLUSTER"; }

trap stop_port_forwards EXIT
