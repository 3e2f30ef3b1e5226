// A test driver that plays Rancher Fleet v0.16 (github.com/rancher/fleet at v0.16.1)
// against a real kube-apiserver, because Fleet's own controllers cannot run here. It lets
// the deployment operator's integration tests check that what the operator produces —
// GitRepos, and the fleet.yaml folders it commits to Git — would work with Fleet, and
// get the status Fleet would report back.
//
// What it plays, in one `sync()` pass (every step cites the Fleet code it follows, paths
// inside github.com/rancher/fleet at tag v0.16.1):
//   1. agent management: a namespace per Cluster, agent check-ins (lastSeen);
//   2. the gitjob: polling the branch, cloning, `fleet apply` (fleet.yaml → Bundles);
//   3. the bundle controller: targeting, rollout, BundleDeployments per (bundle, cluster);
//   4. the agents: "deploying" BundleDeployments (no Helm) and
//      reporting their status as Fleet's agent does;
//   5. the status controllers of BundleDeployments, Clusters, ClusterGroups, GitRepos.
//
// It is strict on purpose. Where Fleet reports an error the driver reports the same
// error in the same place (GitRepo Stalled, Bundle Ready=False, BundleDeployment
// ErrApplied...). Some mistakes Fleet accepts silently (an unknown fleet.yaml key is
// ignored by Go's JSON decoder): the driver reports those too, saying it is stricter
// than Fleet, because our operator must not depend on Fleet ignoring them.
//
// What Fleet does that surprises, and the driver reproduces: Helm values do not stay in
// Bundles and BundleDeployments but move into Secrets (valuesOf()/bundleValues() read them);
// an unreachable repository or a missing branch (an empty branch means `master`) is a
// polling error (Stalled=True, GitPolling=False; gitJobStatus untouched; Ready stays True
// while no bundle exists); a failed `fleet apply` leaves status.commit at the new commit
// with gitJobStatus=Failed; a Bundle's Ready=False replaces the GitRepo's Ready; with
// rolloutStrategy.partitions a cluster no partition selects is never deployed.
//
// Simplifications: charts are downloaded with the GitRepo's helm Secret as Fleet's gitjob
// does (fleet-charts.ts), but a stand-in Chart.yaml takes their place in Bundle resources,
// so deployment IDs have Fleet's shape but not Fleet's values; the
// downstream cluster is simulated and holds only what downstreamResources copied there;
// Go templates in helm values support `${ .ClusterName }`-style lookups only; Content
// objects, finalizers on Bundles and BundleDeployments, resources/resourceCounts in
// statuses, kustomize, OCI storage, image scans and webhooks are not played; drift is
// what a test declares (drift()), compared as the agent's desiredset/diff.go does; the
// branch is polled on every pass (not every pollingInterval).
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { gzipSync } from "node:zlib";
import git from "isomorphic-git";
import http from "isomorphic-git/http/node";
import { parseAllDocuments } from "yaml";
import {
  downloadChart,
  helmAuthFromSecret,
  shouldAddAuth,
  type ChartFetch,
  type HelmAuth,
} from "./fleet-charts.ts";
import {
  ApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from "../../operators/runtime/client.ts";

// ---------------------------------------------------------------------------------------
// API types (pkg/apis/fleet.cattle.io/v1alpha1/*.go), as far as the driver uses them.

const fleetResource = (kind: string, plural: string): ResourceType => ({
  group: "fleet.cattle.io",
  version: "v1alpha1",
  kind,
  plural,
  namespaced: true,
});

export const GitRepoResource = fleetResource("GitRepo", "gitrepos");
export const BundleResource = fleetResource("Bundle", "bundles");
export const BundleDeploymentResource = fleetResource("BundleDeployment", "bundledeployments");
export const ClusterResource = fleetResource("Cluster", "clusters");
export const ClusterGroupResource = fleetResource("ClusterGroup", "clustergroups");
const NamespaceResource: ResourceType = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
const SecretResource: ResourceType = {
  group: "",
  version: "v1",
  kind: "Secret",
  plural: "secrets",
  namespaced: true,
};
const ConfigMapResource: ResourceType = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};

// Labels and annotations: gitrepo_types.go, cluster_types.go, bundledeployment_types.go.
export const RepoLabel = "fleet.cattle.io/repo-name";
export const CommitLabel = "fleet.cattle.io/commit";
export const BundleLabel = "fleet.cattle.io/bundle-name";
export const BundleNamespaceLabel = "fleet.cattle.io/bundle-namespace";
export const ManagedLabel = "fleet.cattle.io/managed";
export const ClusterNamespaceLabel = "fleet.cattle.io/cluster-namespace";
export const ClusterLabel = "fleet.cattle.io/cluster";
export const ContentNameLabel = "fleet.cattle.io/content-name";
const ClusterNamespaceAnnotation = "fleet.cattle.io/cluster-namespace";
const ClusterAnnotation = "fleet.cattle.io/cluster";
const BundleDeploymentOwnershipLabel = "fleet.cattle.io/bundledeployment";
/** internal/cmd/controller/target/matcher/clustermatcher.go */
export const ClusterDisplayNameLabel = "management.cattle.io/cluster-display-name";
/** internal/cmd/controller/finalize/finalize.go */
export const GitRepoFinalizer = "fleet.cattle.io/gitrepo-finalizer";
/** bundle_types.go SecretTypeBundleValues; bundledeployment_types.go SecretTypeBundleDeploymentOptions */
const BundleValuesSecretType = "fleet.cattle.io/bundle-values/v1alpha1";
const BundleDeploymentOptionsSecretType = "fleet.cattle.io/bundle-deployment/v1alpha1";
/** internal/config/config.go DefaultNamespace: where agents run downstream. */
export const AgentNamespace = "cattle-fleet-system";
/** internal/config/config.go DefaultGitCredentialsSecretName */
const DefaultGitCredentialsSecretName = "gitcredential";
/** internal/cmd/agent/operator.go defaultNamespace: Helm's namespace when options name none. */
const AgentDefaultNamespace = "default";

export type Values = Record<string, unknown>;

export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** wrangler's genericcondition.GenericCondition */
export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

export interface GitTarget {
  name?: string;
  clusterName?: string;
  clusterSelector?: LabelSelector | null;
  clusterGroup?: string;
  clusterGroupSelector?: LabelSelector | null;
}

export interface ValuesFrom {
  configMapKeyRef?: { name?: string; namespace?: string; key?: string } | null;
  secretKeyRef?: { name?: string; namespace?: string; key?: string } | null;
}

export interface HelmOptions {
  chart?: string;
  repo?: string;
  releaseName?: string;
  version?: string;
  timeoutSeconds?: number;
  values?: Values | null;
  templateValues?: Record<string, string> | null;
  valuesFrom?: ValuesFrom[];
  valuesFiles?: string[];
  force?: boolean;
  takeOwnership?: boolean;
  maxHistory?: number;
  waitForJobs?: boolean;
  atomic?: boolean;
  disablePreProcess?: boolean;
  disableDNS?: boolean;
  skipSchemaValidation?: boolean;
  disableDependencyUpdate?: boolean;
}

export interface DownstreamResource {
  kind?: string;
  name?: string;
}

export interface ComparePatch {
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  jsonPointers?: string[];
  operations?: { op?: string; path?: string; value?: string }[];
}

/** BundleDeploymentOptions (bundledeployment_types.go) */
export interface DeploymentOptions {
  yaml?: { overlays?: string[] } | null;
  kustomize?: { dir?: string } | null;
  defaultNamespace?: string;
  namespace?: string;
  helm?: HelmOptions | null;
  serviceAccount?: string;
  createNamespace?: boolean | null;
  forceSyncGeneration?: number;
  diff?: { comparePatches?: ComparePatch[] } | null;
  keepResources?: boolean;
  deleteNamespace?: boolean;
  ignore?: { conditions?: Record<string, string>[] } | null;
  correctDrift?: { enabled?: boolean; force?: boolean; keepFailHistory?: boolean } | null;
  namespaceLabels?: Record<string, string> | null;
  namespaceAnnotations?: Record<string, string> | null;
  deleteCRDResources?: boolean;
  downstreamResources?: DownstreamResource[];
}

const deploymentOptionKeys = [
  "yaml",
  "kustomize",
  "defaultNamespace",
  "namespace",
  "helm",
  "serviceAccount",
  "createNamespace",
  "forceSyncGeneration",
  "diff",
  "keepResources",
  "deleteNamespace",
  "ignore",
  "correctDrift",
  "namespaceLabels",
  "namespaceAnnotations",
  "deleteCRDResources",
  "downstreamResources",
] as const;

export interface BundleTarget extends DeploymentOptions, GitTarget {
  doNotDeploy?: boolean;
}

export interface BundleRef {
  name?: string;
  selector?: LabelSelector | null;
  acceptedStates?: string[];
}

export interface Partition {
  name?: string;
  maxUnavailable?: number | string | null;
  clusterName?: string;
  clusterSelector?: LabelSelector | null;
  clusterGroup?: string;
  clusterGroupSelector?: LabelSelector | null;
}

export interface RolloutStrategy {
  maxUnavailable?: number | string | null;
  maxUnavailablePartitions?: number | string | null;
  autoPartitionSize?: number | string | null;
  autoPartitionThreshold?: number | null;
  maxNew?: number | null;
  partitions?: Partition[];
}

export interface BundleResourceFile {
  name: string;
  content: string;
  encoding?: string;
}

export interface BundleSpec extends DeploymentOptions {
  paused?: boolean;
  rolloutStrategy?: RolloutStrategy | null;
  resources?: BundleResourceFile[];
  targetCustomizationMode?: string;
  targets?: BundleTarget[];
  targetRestrictions?: GitTarget[];
  dependsOn?: BundleRef[];
  valuesHash?: string;
}

export interface NonReadyStatus {
  uid?: string;
  kind?: string;
  apiVersion?: string;
  namespace?: string;
  name?: string;
  summary?: { state?: string; error?: boolean; transitioning?: boolean; message?: string[] };
}

export interface ModifiedStatus {
  kind?: string;
  apiVersion?: string;
  namespace?: string;
  name?: string;
  missing?: boolean;
  exist?: boolean;
  delete?: boolean;
  patch?: string;
}

export interface NonReadyResource {
  name?: string;
  bundleState?: string;
  message?: string;
  modifiedStatus?: ModifiedStatus[];
  nonReadyStatus?: NonReadyStatus[];
}

/** BundleSummary: only ready and desiredReady are always serialized (bundle_types.go). */
export interface BundleSummary {
  notReady?: number;
  waitApplied?: number;
  errApplied?: number;
  outOfSync?: number;
  modified?: number;
  ready: number;
  pending?: number;
  desiredReady: number;
  nonReadyResources?: NonReadyResource[];
}

export interface PartitionStatus {
  name?: string;
  count?: number;
  maxUnavailable?: number;
  unavailable?: number;
  summary?: BundleSummary;
}

export interface BundleStatus {
  conditions?: Condition[];
  summary?: BundleSummary;
  newlyCreated?: number;
  unavailable?: number;
  unavailablePartitions?: number;
  maxUnavailable?: number;
  maxUnavailablePartitions?: number;
  partitions?: PartitionStatus[];
  display?: { readyClusters?: string; state?: string };
  observedGeneration?: number;
  resourcesSha256Sum?: string;
}

export interface Bundle extends KubeObject {
  spec: BundleSpec;
  status?: BundleStatus;
}

export interface BundleDeploymentSpec {
  paused?: boolean;
  stagedOptions?: DeploymentOptions;
  stagedDeploymentID?: string;
  options?: DeploymentOptions;
  deploymentID?: string;
  dependsOn?: BundleRef[];
  correctDrift?: DeploymentOptions["correctDrift"];
  valuesHash?: string;
  downstreamResourcesGeneration?: number;
  offSchedule?: boolean;
  waitingForValues?: boolean;
}

export interface BundleDeploymentStatus {
  conditions?: Condition[];
  appliedDeploymentID?: string;
  release?: string;
  ready?: boolean;
  nonModified?: boolean;
  nonReadyStatus?: NonReadyStatus[];
  modifiedStatus?: ModifiedStatus[];
  display?: { deployed?: string; monitored?: string; state?: string };
  syncGeneration?: number;
  downstreamResourcesGeneration?: number;
}

export interface BundleDeployment extends KubeObject {
  spec: BundleDeploymentSpec;
  status?: BundleDeploymentStatus;
}

export interface ResourceCounts {
  ready: number;
  desiredReady: number;
  waitApplied: number;
  modified: number;
  orphaned: number;
  missing: number;
  unknown: number;
  notReady: number;
}

export interface ClusterStatus {
  conditions?: Condition[];
  namespace?: string;
  summary?: BundleSummary;
  resourceCounts?: ResourceCounts;
  readyGitRepos?: number;
  desiredReadyGitRepos?: number;
  readyHelmOps?: number;
  desiredReadyHelmOps?: number;
  display?: { readyBundles?: string; state?: string };
  agent?: { lastSeen: string | null; namespace: string };
}

export interface FleetCluster extends KubeObject {
  spec?: { paused?: boolean; templateValues?: Values | null } & Record<string, unknown>;
  status?: ClusterStatus;
}

export interface ClusterGroup extends KubeObject {
  spec?: { selector?: LabelSelector | null };
  status?: {
    clusterCount?: number;
    nonReadyClusterCount?: number;
    nonReadyClusters?: string[];
    conditions?: Condition[];
    summary?: BundleSummary;
    display?: { readyClusters?: string; readyBundles?: string; state?: string };
    resourceCounts?: ResourceCounts;
  };
}

export interface GitRepoSpec {
  repo?: string;
  branch?: string;
  revision?: string;
  targetNamespace?: string;
  clientSecretName?: string;
  helmSecretName?: string;
  helmSecretNameForPaths?: string;
  helmRepoURLRegex?: string;
  paths?: string[];
  paused?: boolean;
  serviceAccount?: string;
  targets?: GitTarget[];
  forceSyncGeneration?: number;
  keepResources?: boolean;
  deleteNamespace?: boolean;
  correctDrift?: DeploymentOptions["correctDrift"];
  bundles?: unknown[];
  [key: string]: unknown;
}

export interface GitRepoStatus {
  readyClusters?: number;
  desiredReadyClusters?: number;
  summary?: BundleSummary;
  display?: { readyBundleDeployments?: string; state?: string; message?: string; error?: boolean };
  conditions?: Condition[];
  observedGeneration?: number;
  updateGeneration?: number;
  commit?: string;
  pollingCommit?: string;
  gitJobStatus?: string;
  lastPollingTriggered?: string;
}

export interface GitRepo extends KubeObject {
  spec: GitRepoSpec;
  status?: GitRepoStatus;
}

interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

// ---------------------------------------------------------------------------------------
// Small helpers.

/** metav1.Time: RFC 3339 with seconds, UTC. */
const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, "Z");
const sha256hex = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");
const md5hex = (data: string): string => createHash("md5").update(data).digest("hex");
const b64 = (text: string | Buffer): string => Buffer.from(text).toString("base64");
const unb64 = (text: string | undefined): string => Buffer.from(text ?? "", "base64").toString("utf8");
const clone = <T>(v: T): T => structuredClone(v);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
/** The first non-empty string (Go's `if x == "" { x = default }`). */
const or = (...xs: (string | null | undefined)[]): string =>
  xs.find((x) => x !== undefined && x !== null && x !== "") ?? "";
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * JSON as Go's encoding/json writes it: map keys sorted, <, > and & escaped. Used for
 * the values Fleet stores in Secrets (GenericMap.MarshalJSON) and the hashes over them.
 */
export function goJSON(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") {
    return JSON.stringify(v).replace(
      /[<>&\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
  }
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) return `[${v.map(goJSON).join(",")}]`;
  if (v instanceof Date) return goJSON(v.toISOString());
  if (isObject(v)) {
    const keys = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${goJSON(k)}:${goJSON(v[k])}`).join(",")}}`;
  }
  return "null";
}

/** Drops undefined, null, false, 0, "" and [] — Go's `omitempty` for the fields Fleet writes. */
function omitEmpty<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x: unknown) => omitEmpty(x)) as T;
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined || x === null || x === false || x === 0 || x === "") continue;
    if (Array.isArray(x) && x.length === 0) continue;
    out[k] = omitEmpty(x);
  }
  return out as T;
}

/** The object as JSON would carry it (no undefined members). */
const dropUndefined = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

function deepEqual(a: unknown, b: unknown): boolean {
  return goJSON(a) === goJSON(b);
}

/** wrangler data.MergeMaps: overlay wins, nested maps merged. */
function mergeMaps(base: Values, overlay: Values): Values {
  const result: Values = { ...base };
  for (const [k, v] of Object.entries(overlay)) {
    const b = result[k];
    result[k] = isObject(b) && isObject(v) ? mergeMaps(b, v) : v;
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Names (internal/names/name.go, safeconcat.go, keyhash.go).

const disallowedChars = /[^a-zA-Z0-9-]+/g;
const helmReleaseNameRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dnsLabelRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** MaxHelmReleaseNameLen (bundledeployment_types.go) */
const maxHelmReleaseNameLen = 53;

/** names.Hex: md5, hex, cut to `length`. */
const nameHex = (s: string, length: number): string => md5hex(s).slice(0, length);

/** names.Limit */
export function limitName(s: string, count: number): string {
  if (s.length <= count) return s;
  const hexLen = 5;
  let separator = "-";
  if (count <= hexLen + separator.length) return s.slice(0, count);
  const keep = count - hexLen - separator.length;
  if (s[keep - 1] === separator) separator = "";
  return `${s.slice(0, keep)}${separator}${nameHex(s, hexLen)}`;
}

/** names.HelmReleaseName: how `fleet apply` names a bundle from `<gitrepo>/<path>`. */
export function helmReleaseName(input: string): string {
  let str = input.replaceAll("/", "-");
  const needHex = str !== str.toLowerCase() || new RegExp(disallowedChars.source).test(str);
  if (needHex) str = `${str}-${nameHex(str, 8)}`;
  str = str
    .toLowerCase()
    .replace(disallowedChars, "-")
    .replace(/-+/g, "-")
    .replace(/^-+/, "")
    .replace(/-+$/, "");
  if (helmReleaseNameRe.test(str) && dnsLabelRe.test(str)) return limitName(str, maxHelmReleaseNameLen);
  return nameHex(input, 24);
}

/** names.SafeConcatName */
export function safeConcatName(...parts: string[]): string {
  const full = parts.join("-");
  if (full.length < 64) return full;
  const digest = sha256hex(full);
  const c = full[56] ?? "";
  if (/^[a-z0-9]$/.test(c)) return `${full.slice(0, 57)}-${digest.slice(0, 5)}`;
  return `${full.slice(0, 56)}-${digest.slice(0, 6)}`;
}

/** names.KeyHash */
const keyHash = (s: string): string => sha256hex(s.slice(0, 100)).slice(0, 12);

/**
 * The namespace holding a cluster's BundleDeployments
 * (internal/cmd/controller/agentmanagement/controllers/cluster/controller.go clusterNamespace).
 */
export function clusterNamespaceName(workspace: string, cluster: string): string {
  return safeConcatName("cluster", workspace, cluster, keyHash(`${workspace}::${cluster}`));
}

/** manifest.ToSHA256ID (internal/manifest/manifest.go) */
const toSHA256ID = (shasum: string): string => `s-${shasum}`.slice(0, 63);

// ---------------------------------------------------------------------------------------
// Kubernetes validation the API server would apply to Bundles (names, labels) and that
// metav1.LabelSelectorAsSelector applies to selectors (k8s.io/apimachinery).

const dnsSubdomainRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const labelNameRe = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const labelValueRe = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function labelKeyProblem(key: string): string | undefined {
  const i = key.lastIndexOf("/");
  const prefix = i >= 0 ? key.slice(0, i) : undefined;
  const name = i >= 0 ? key.slice(i + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !dnsSubdomainRe.test(prefix)))
    return `label key ${JSON.stringify(key)}: the prefix must be a DNS-1123 subdomain`;
  if (name.length > 63 || !labelNameRe.test(name))
    return `label key ${JSON.stringify(key)}: the name part must be 63 characters or less, alphanumeric, '-', '_' or '.', starting and ending alphanumeric`;
  return undefined;
}

function labelValueProblem(value: string): string | undefined {
  if (value.length > 63 || !labelValueRe.test(value))
    return `label value ${JSON.stringify(value)}: must be 63 characters or less, empty or alphanumeric, '-', '_' or '.', starting and ending alphanumeric`;
  return undefined;
}

type LabelMatcher = (labels: Record<string, string> | undefined) => boolean;

/**
 * metav1.LabelSelectorAsSelector: an empty selector matches everything, a requirement
 * with a bad operator or values is an error (returned as a string).
 */
export function selectorMatcher(sel: LabelSelector): LabelMatcher | string {
  const matchLabels = Object.entries(sel.matchLabels ?? {});
  const exprs = sel.matchExpressions ?? [];
  if (matchLabels.length + exprs.length === 0) return () => true;
  for (const [k, v] of matchLabels) {
    const p = labelKeyProblem(k) ?? labelValueProblem(v);
    if (p) return p;
  }
  for (const e of exprs) {
    const p = labelKeyProblem(e.key);
    if (p) return p;
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
      case "NotIn":
        if (values.length === 0)
          return `values: Required value: for 'in', 'notin' operators, values set can't be empty`;
        break;
      case "Exists":
      case "DoesNotExist":
        if (values.length > 0)
          return `values: Invalid value: ${JSON.stringify(values)}: values set must be empty for exists and does not exist`;
        break;
      default:
        return `${JSON.stringify(e.operator)} is not a valid label selector operator`;
    }
    for (const v of values) {
      const vp = labelValueProblem(v);
      if (vp) return vp;
    }
  }
  return (labels) => {
    const l = labels ?? {};
    for (const [k, v] of matchLabels) if (l[k] !== v) return false;
    for (const e of exprs) {
      const has = Object.hasOwn(l, e.key);
      const values = e.values ?? [];
      switch (e.operator) {
        case "In":
          if (!has || !values.includes(l[e.key] ?? "")) return false;
          break;
        case "NotIn":
          if (has && values.includes(l[e.key] ?? "")) return false;
          break;
        case "Exists":
          if (!has) return false;
          break;
        default:
          if (has) return false;
      }
    }
    return true;
  };
}

/** Cluster groups of a cluster, as a map name → group labels (target/query.go ClusterGroupsToLabelMap). */
type GroupLabels = Map<string, Record<string, string>>;

type Criteria = (
  clusterName: string,
  group: string,
  groupLabels: Record<string, string> | undefined,
  clusterLabels: Record<string, string>,
) => boolean;

/**
 * matcher.NewClusterMatcher (internal/cmd/controller/target/matcher/clustermatcher.go):
 * the criteria of one target are ANDed; a target without any criterion matches nothing;
 * a nil selector adds no criterion while an empty one ({}) matches everything.
 */
function clusterMatcher(t: GitTarget): Criteria | string {
  const criteria: Criteria[] = [];
  if (t.clusterName) {
    const name = t.clusterName;
    criteria.push(
      (clusterName, _g, _gl, labels) => name === clusterName || labels[ClusterDisplayNameLabel] === name,
    );
  }
  if (t.clusterGroup) {
    const group = t.clusterGroup;
    criteria.push((_n, g) => g === group);
  }
  if (t.clusterGroupSelector) {
    const m = selectorMatcher(t.clusterGroupSelector);
    if (typeof m === "string") return m;
    criteria.push((_n, _g, groupLabels) => m(groupLabels));
  }
  if (t.clusterSelector) {
    const m = selectorMatcher(t.clusterSelector);
    if (typeof m === "string") return m;
    criteria.push((_n, _g, _gl, labels) => m(labels));
  }
  return (name, group, groupLabels, labels) =>
    criteria.length > 0 && criteria.every((c) => c(name, group, groupLabels, labels));
}

/** Evaluates criteria once without groups, or once per group (matcher/bundlematch.go match). */
function matchesWithGroups(
  c: Criteria,
  name: string,
  groups: GroupLabels,
  labels: Record<string, string>,
): boolean {
  if (groups.size === 0) return c(name, "", undefined, labels);
  for (const [g, gl] of groups) if (c(name, g, gl, labels)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------
// fleet.yaml: the shape of FleetYAML (pkg/apis/fleet.cattle.io/v1alpha1/fleetyaml.go and
// the types it embeds), to check types as Go's JSON decoder does and keys strictly.

type Shape =
  | "string"
  | "bool"
  | "int"
  | "intOrString"
  | "values"
  | "stringMap"
  | "any"
  | { go: string; fields: Record<string, Shape> }
  | { items: Shape };

const obj = (go: string, fields: Record<string, Shape>): Shape => ({ go, fields });
const arr = (items: Shape): Shape => ({ items });

const selectorShape = obj("LabelSelector", {
  matchLabels: "stringMap",
  matchExpressions: arr(
    obj("LabelSelectorRequirement", { key: "string", operator: "string", values: arr("string") }),
  ),
});
const keyRefShape = (go: string): Shape => obj(go, { name: "string", namespace: "string", key: "string" });
const helmShape = obj("HelmOptions", {
  chart: "string",
  repo: "string",
  releaseName: "string",
  version: "string",
  timeoutSeconds: "int",
  values: "values",
  templateValues: "stringMap",
  valuesFrom: arr(
    obj("ValuesFrom", {
      configMapKeyRef: keyRefShape("ConfigMapKeySelector"),
      secretKeyRef: keyRefShape("SecretKeySelector"),
    }),
  ),
  valuesFiles: arr("string"),
  force: "bool",
  takeOwnership: "bool",
  maxHistory: "int",
  waitForJobs: "bool",
  atomic: "bool",
  disablePreProcess: "bool",
  disableDNS: "bool",
  skipSchemaValidation: "bool",
  disableDependencyUpdate: "bool",
});
/** BundleDeploymentOptions, without the fields Fleet sets itself (overwrites, allowedTargetNamespaceSelector). */
const deploymentOptionFields: Record<string, Shape> = {
  yaml: obj("YAMLOptions", { overlays: arr("string") }),
  kustomize: obj("KustomizeOptions", { dir: "string" }),
  defaultNamespace: "string",
  namespace: "string",
  helm: helmShape,
  serviceAccount: "string",
  createNamespace: "bool",
  forceSyncGeneration: "int",
  diff: obj("DiffOptions", {
    comparePatches: arr(
      obj("ComparePatch", {
        apiVersion: "string",
        kind: "string",
        name: "string",
        namespace: "string",
        jsonPointers: arr("string"),
        operations: arr(obj("Operation", { op: "string", path: "string", value: "string" })),
      }),
    ),
  }),
  keepResources: "bool",
  deleteNamespace: "bool",
  ignore: obj("IgnoreOptions", { conditions: arr("stringMap") }),
  correctDrift: obj("CorrectDrift", { enabled: "bool", force: "bool", keepFailHistory: "bool" }),
  namespaceLabels: "stringMap",
  namespaceAnnotations: "stringMap",
  deleteCRDResources: "bool",
  downstreamResources: arr(obj("DownstreamResource", { kind: "string", name: "string" })),
};
const targetFields: Record<string, Shape> = {
  name: "string",
  clusterName: "string",
  clusterSelector: selectorShape,
  clusterGroup: "string",
  clusterGroupSelector: selectorShape,
};
const bundleTargetShape = obj("BundleTarget", {
  ...deploymentOptionFields,
  ...targetFields,
  doNotDeploy: "bool",
});
const gitTargetShape = obj("GitTarget", targetFields);
/** FleetYAML = name, labels, BundleSpec (inline), targetCustomizations, imageScans, overrideTargets. */
const fleetYAMLShape = obj("FleetYAML", {
  name: "string",
  labels: "stringMap",
  ...deploymentOptionFields,
  paused: "bool",
  rolloutStrategy: obj("RolloutStrategy", {
    maxUnavailable: "intOrString",
    maxUnavailablePartitions: "intOrString",
    autoPartitionSize: "intOrString",
    autoPartitionThreshold: "int",
    maxNew: "int",
    partitions: arr(
      obj("Partition", {
        name: "string",
        maxUnavailable: "intOrString",
        clusterName: "string",
        clusterSelector: selectorShape,
        clusterGroup: "string",
        clusterGroupSelector: selectorShape,
      }),
    ),
  }),
  targetCustomizationMode: "string",
  targets: arr(bundleTargetShape),
  dependsOn: arr(
    obj("BundleRef", { name: "string", selector: selectorShape, acceptedStates: arr("string") }),
  ),
  targetCustomizations: arr(bundleTargetShape),
  imageScans: arr("any"),
  overrideTargets: arr(gitTargetShape),
});
/** GitRepoSpec (gitrepo_types.go): a real CRD prunes unknown fields silently, the driver reports them. */
const gitRepoSpecShape = obj("GitRepoSpec", {
  repo: "string",
  branch: "string",
  revision: "string",
  targetNamespace: "string",
  clientSecretName: "string",
  helmSecretName: "string",
  helmSecretNameForPaths: "string",
  helmRepoURLRegex: "string",
  caBundle: "string",
  insecureSkipTLSVerify: "bool",
  paths: arr("string"),
  paused: "bool",
  serviceAccount: "string",
  targets: arr(gitTargetShape),
  pollingInterval: "string",
  forceSyncGeneration: "int",
  imageScanInterval: "string",
  imageScanCommit: "any",
  keepResources: "bool",
  deleteNamespace: "bool",
  correctDrift: obj("CorrectDrift", { enabled: "bool", force: "bool", keepFailHistory: "bool" }),
  disablePolling: "bool",
  ociRegistrySecret: "string",
  webhookSecret: "string",
  bundles: arr(obj("BundlePath", { base: "string", options: "string" })),
});

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "boolean") return "bool";
  return typeof v;
}

const goTypeOf = (shape: Shape): string => {
  if (typeof shape === "string") {
    const names: Record<string, string> = {
      string: "string",
      bool: "bool",
      int: "int",
      intOrString: "intstr.IntOrString",
      values: "GenericMap",
      stringMap: "map[string]string",
      any: "interface {}",
    };
    return names[shape] ?? shape;
  }
  return "go" in shape ? `v1alpha1.${shape.go}` : `[]${goTypeOf(shape.items)}`;
};

interface Problems {
  /** Errors Fleet reports too. */
  fleet: string[];
  /** Errors only the driver reports (Fleet accepts these silently). */
  strict: string[];
}

/**
 * Checks `value` against `shape` the way sigs.k8s.io/yaml + encoding/json decode it into
 * FleetYAML (bundlereader/read.go bundleFromDir): a type mismatch is Fleet's "reading
 * fleet.yaml" error; null is every type's zero value. Unknown keys are ignored by Go, so
 * reporting them is the driver being stricter.
 */
function checkShape(value: unknown, shape: Shape, path: string, out: Problems): void {
  if (value === null || value === undefined) return;
  const mismatch = (): void => {
    out.fleet.push(`${path}: cannot unmarshal ${jsonType(value)} into Go value of type ${goTypeOf(shape)}`);
  };
  if (typeof shape === "string") {
    switch (shape) {
      case "string":
        if (typeof value !== "string") mismatch();
        return;
      case "bool":
        if (typeof value !== "boolean") mismatch();
        return;
      case "int":
        if (typeof value !== "number" || !Number.isInteger(value)) mismatch();
        return;
      case "intOrString":
        if (typeof value !== "string" && !(typeof value === "number" && Number.isInteger(value))) mismatch();
        return;
      case "values":
        if (!isObject(value)) mismatch();
        return;
      case "stringMap":
        if (!isObject(value)) mismatch();
        else
          for (const [k, v] of Object.entries(value))
            if (v !== null && typeof v !== "string")
              out.fleet.push(`${path}.${k}: cannot unmarshal ${jsonType(v)} into Go value of type string`);
        return;
      default:
        return;
    }
  }
  if ("items" in shape) {
    if (!Array.isArray(value)) {
      mismatch();
      return;
    }
    value.forEach((item: unknown, i) => {
      checkShape(item, shape.items, `${path}[${i}]`, out);
    });
    return;
  }
  if (!isObject(value)) {
    mismatch();
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    const field = shape.fields[k];
    const p = path ? `${path}.${k}` : k;
    if (!field) {
      out.strict.push(`${p}: unknown field (Fleet ignores it silently; ${shape.go} has no such field)`);
      continue;
    }
    checkShape(v, field, p, out);
  }
}

/**
 * Parses YAML as sigs.k8s.io/yaml does (go-yaml v2, so YAML 1.1: `yes`/`no`/`on`/`off` are
 * booleans) into plain JSON values. Returns an error text for invalid YAML.
 */
function parseYAML(text: string): { value: unknown; documents: number } | { error: string } {
  const docs = parseAllDocuments(text, { version: "1.1", uniqueKeys: true });
  if (!Array.isArray(docs)) return { value: null, documents: 0 };
  for (const d of docs) {
    const e = d.errors[0];
    if (e) return { error: e.message.split("\n")[0] ?? e.message };
  }
  const first = docs[0];
  const raw: unknown = first ? first.toJS({ maxAliasCount: 1000 }) : null;
  const normalize = (v: unknown): unknown => {
    if (v instanceof Date) return v.toISOString();
    if (Array.isArray(v)) return v.map(normalize);
    if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
    return v;
  };
  return { value: normalize(raw), documents: docs.length };
}

// ---------------------------------------------------------------------------------------
// `fleet apply` (internal/cmd/cli/apply/apply.go, internal/bundlereader/*.go): the files of
// one commit become Bundles.

/** The files of one commit, by path relative to the repository root. */
export interface RepoTree {
  commit: string;
  files: Map<string, Buffer>;
  /** Every directory holding files, "." for the root. */
  dirs: Set<string>;
}

function treeOf(commit: string, files: Map<string, Buffer>): RepoTree {
  const dirs = new Set<string>(["."]);
  for (const path of files.keys()) {
    let d = posix.dirname(path);
    while (d !== "." && !dirs.has(d)) {
      dirs.add(d);
      d = posix.dirname(d);
    }
  }
  return { commit, files, dirs };
}

const childPath = (dir: string, name: string): string => (dir === "." ? name : `${dir}/${name}`);

/** Entries (files and directories) directly in `dir`, sorted as os.ReadDir sorts them. */
function entries(tree: RepoTree, dir: string): { name: string; isDir: boolean }[] {
  const prefix = dir === "." ? "" : `${dir}/`;
  const seen = new Map<string, boolean>();
  for (const path of tree.files.keys()) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length);
    const i = rest.indexOf("/");
    if (i < 0) seen.set(rest, false);
    else seen.set(rest.slice(0, i), true);
  }
  return [...seen.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, isDir]) => ({ name, isDir }));
}

/** path.Match for one path segment (`*`, `?`, `[...]`, `\` escapes). */
function segmentRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) re += `\\${pattern.charAt(++i)}`;
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, end);
      if (body.startsWith("^")) body = `^${body.slice(1)}`;
      re += `[${body.replaceAll("\\", "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * apply.go globDirs: leading slashes are stripped (so "/" becomes "" and matches nothing,
 * as filepath.Glob("") does), then the glob is matched and only directories are kept.
 */
function globDirs(pattern: string, tree: RepoTree): string[] {
  const stripped = pattern.replace(/^\/+/, "");
  if (stripped === "") return [];
  const normalized = posix.normalize(stripped).replace(/\/+$/, "");
  if (normalized === ".." || normalized.startsWith("../")) return [];
  if (!/[*?[\\]/.test(normalized)) return tree.dirs.has(normalized) ? [normalized] : [];
  let candidates = ["."];
  for (const seg of normalized.split("/")) {
    const next: string[] = [];
    for (const dir of candidates) {
      if (seg === ".") next.push(dir);
      else if (/[*?[\\]/.test(seg)) {
        const re = segmentRegExp(seg);
        for (const e of entries(tree, dir)) if (e.isDir && re.test(e.name)) next.push(childPath(dir, e.name));
      } else if (tree.dirs.has(childPath(dir, seg))) next.push(childPath(dir, seg));
    }
    candidates = next;
  }
  return candidates;
}

/** Directories under `base` (itself included), in filepath.WalkDir order, skipping .git. */
function walkDirs(tree: RepoTree, base: string): string[] {
  const out = [base];
  for (const e of entries(tree, base)) {
    if (!e.isDir || e.name === ".git") continue;
    out.push(...walkDirs(tree, childPath(base, e.name)));
  }
  return out;
}

/** fleetyaml.GetFleetYamlPath: fleet.yaml, else the fallback fleet.yml. */
function fleetYAMLFile(tree: RepoTree, dir: string): string | undefined {
  for (const name of ["fleet.yaml", "fleet.yml"])
    if (tree.files.has(childPath(dir, name))) return childPath(dir, name);
  return undefined;
}

/** apply.go hasSubDirectoryWithResourcesAndWithoutFleetYaml */
function hasResourcesWithoutFleetYAML(tree: RepoTree, dir: string): boolean {
  if (fleetYAMLFile(tree, dir)) return false;
  for (const e of entries(tree, dir)) {
    if (!e.isDir) {
      if (/\.ya?ml$/.test(e.name)) return true;
    } else if (hasResourcesWithoutFleetYAML(tree, childPath(dir, e.name))) return true;
  }
  return false;
}

/** apply.go shouldCreateBundleForThisPath */
function shouldCreateBundle(tree: RepoTree, base: string, dir: string): boolean {
  if (dir === base) return fleetYAMLFile(tree, dir) !== undefined || hasResourcesWithoutFleetYAML(tree, dir);
  return fleetYAMLFile(tree, dir) !== undefined;
}

interface FleetYAML extends BundleSpec {
  name?: string;
  labels?: Record<string, string>;
  targetCustomizations?: BundleTarget[];
  imageScans?: unknown[];
  overrideTargets?: GitTarget[];
}

/** A Bundle as `fleet apply` writes it, with the values it moves into the values Secret. */
export interface BuiltBundle {
  name: string;
  /** The folder, relative to the repository root ("." for the root). */
  dir: string;
  labels: Record<string, string>;
  spec: BundleSpec;
  /** Data of the values Secret (helmvalues.ExtractValues): key → JSON. */
  valuesData: Record<string, string>;
  /** Charts the job downloads (resources.go addRemoteCharts): the bundle's and its targets'. */
  remoteCharts: HelmOptions[];
}

/** StateRank (bundle_types.go) */
const stateRank: Record<string, number> = {
  ErrApplied: 7,
  WaitApplied: 6,
  Modified: 5,
  OutOfSync: 4,
  Pending: 3,
  NotReady: 2,
  Ready: 1,
};

const strictNote = " (the Fleet test driver is stricter than Fleet here)";

/** Local bundle files that become resources (bundlereader/loaddirectory.go GetContent). */
function localResources(tree: RepoTree, dir: string, ignore: string[]): BundleResourceFile[] {
  const prefix = dir === "." ? "" : `${dir}/`;
  const out: BundleResourceFile[] = [];
  for (const [path, data] of tree.files) {
    if (!path.startsWith(prefix)) continue;
    const name = path.slice(prefix.length);
    // Hidden files and folders are skipped; fleet.yaml and the values files are options.
    if (name.split("/").some((s) => s.startsWith("."))) continue;
    if (ignore.includes(name)) continue;
    out.push(resourceOf(name, data));
  }
  return out;
}

/** Content as-is when UTF-8, else base64+gz (loaddirectory.go loadDirectory). */
function resourceOf(name: string, data: Buffer): BundleResourceFile {
  try {
    return { name, content: new TextDecoder("utf-8", { fatal: true }).decode(data) };
  } catch {
    return { name, content: gzipSync(data).toString("base64"), encoding: "base64+gz" };
  }
}

const isRemoteChart = (h: HelmOptions): boolean => (h.chart ?? "") !== "" || (h.repo ?? "") !== "";

/**
 * What Fleet downloads for a chart from a repository is not downloaded here: a stand-in
 * Chart.yaml takes its place under Fleet's prefix (resources.go checksum), so the bundle
 * has resources and its manifest ID changes with chart, repo and version.
 */
function chartStandIn(h: HelmOptions): BundleResourceFile {
  const sum = sha256hex(`${h.chart ?? ""}:${h.repo ?? ""}:${h.version ?? ""}`);
  const chartName = (h.chart ?? h.repo ?? "chart").replace(/\/+$/, "").split("/").pop() ?? "chart";
  return {
    name: `.chart/${sum}/${chartName}/Chart.yaml`,
    content: `# stand-in: the Fleet test driver does not download charts\napiVersion: v2\nname: ${chartName}\nversion: ${h.version ?? ""}\n`,
  };
}

interface ApplyInput {
  repo: GitRepo;
  tree: RepoTree;
  /** Bundles in the workspace: name → the GitRepo (repo-name label) that wrote it. */
  existing: Map<string, string>;
}

export type ApplyResult = { ok: true; bundles: BuiltBundle[] } | { ok: false; error: string; prune: boolean };

/** Fleet's `fleet apply` of one GitRepo at one commit: Bundles, or the error the job fails with. */
export function applyRepo(input: ApplyInput): ApplyResult {
  const { repo, tree } = input;
  const repoName = repo.metadata.name ?? "";
  const spec = repo.spec;
  if ((spec.bundles ?? []).length > 0) {
    return {
      ok: false,
      prune: false,
      error: `spec.bundles (driven scan) is not simulated by the Fleet test driver`,
    };
  }
  // gitjob.go newJobSpec: paths default to ".".
  const paths = (spec.paths ?? []).length > 0 ? (spec.paths ?? []) : ["."];
  const errors: string[] = [];
  const missing: string[] = [];
  const dirs: string[] = [];
  for (const p of paths) {
    const bases = globDirs(p, tree);
    if (bases.length === 0) missing.push(p);
    for (const base of bases)
      for (const d of walkDirs(tree, base)) if (shouldCreateBundle(tree, base, d)) dirs.push(d);
  }
  const built: BuiltBundle[] = [];
  for (const dir of dirs) {
    const r = readBundle(repo, tree, dir);
    errors.push(...r.errors);
    if (r.bundle) built.push(r.bundle);
  }
  // Dependencies by name are Fleet's agent's business, per cluster (deployer.go
  // checkDependency, ErrApplied "no bundles matching labels" until the bundle exists):
  // GitRepos are applied in no particular order, so a bundle of another GitRepo may
  // simply not be there yet. A name that never appears keeps its BundleDeployments failing.
  // Two folders naming the same bundle overwrite each other (apply.go keeps one per name);
  // a bundle of another GitRepo with the same name would be taken over.
  const byName = new Map<string, string>();
  for (const b of built) {
    const other = byName.get(b.name);
    if (other !== undefined)
      errors.push(
        `bundle ${b.name}: both ${other} and ${b.dir} produce it; one overwrites the other${strictNote}`,
      );
    byName.set(b.name, b.dir);
    const owner = input.existing.get(b.name);
    if (owner !== undefined && owner !== repoName)
      errors.push(
        `bundle ${b.name} (from ${b.dir}) already exists for GitRepo ${owner}; Fleet would overwrite it${strictNote}`,
      );
  }
  if (errors.length > 0) return { ok: false, prune: false, error: errors.join("; ") };
  if (built.length === 0) {
    // apply.go CreateBundles: bundles of the GitRepo are pruned first, then this error.
    return {
      ok: false,
      prune: true,
      error: `no resource found at the following paths to deploy: [${paths.join(" ")}]`,
    };
  }
  if (missing.length > 0) {
    // Fleet skips a path that matches nothing when others give bundles.
    return {
      ok: false,
      prune: false,
      error: `spec.paths: ${missing.map((m) => JSON.stringify(m)).join(", ")} matches no folder in commit ${tree.commit}${strictNote}`,
    };
  }
  return { ok: true, bundles: built };
}

/** Checks of one HelmOptions block of a fleet.yaml; `at` is its path ("helm", "targetCustomizations[0].helm"). */
function helmProblems(
  h: HelmOptions,
  at: string,
  tree: RepoTree,
  dir: string,
  top: boolean,
  out: Problems,
): void {
  // The Bundle CRD's pattern and maxLength on helm.releaseName (the API server rejects the Bundle).
  if (h.releaseName !== undefined && h.releaseName !== "") {
    if (h.releaseName.length > maxHelmReleaseNameLen || !helmReleaseNameRe.test(h.releaseName))
      out.fleet.push(
        `${at}.releaseName: Invalid value: ${JSON.stringify(h.releaseName)}: must be at most 53 characters and match ${helmReleaseNameRe.source}`,
      );
  }
  const chart = h.chart ?? "";
  const repo = h.repo ?? "";
  if (repo !== "") {
    if (repo.startsWith("oci://")) {
      // charturl.go isOCIChart: with an oci:// repo, helm.repo is the chart reference and helm.chart is unused.
      const last = repo.replace(/\/+$/, "").split("/").pop() ?? "";
      if (chart !== "" && chart !== last)
        out.strict.push(
          `${at}.chart: ${JSON.stringify(chart)} is ignored when ${at}.repo is an oci:// URL (Fleet pulls ${repo})${strictNote}`,
        );
    } else if (!/^https?:\/\/[^/]+/.test(repo)) {
      out.strict.push(
        `${at}.repo: ${JSON.stringify(repo)} must be an http(s):// Helm repository or an oci:// reference${strictNote}`,
      );
    } else if (chart === "") {
      // charturl.go ChartURL: the chart is looked up by name in the repository index.
      out.fleet.push(`${at}.chart: a chart name is required with an http(s) ${at}.repo`);
    }
    if (chart.startsWith("oci://"))
      out.strict.push(
        `${at}.chart: an oci:// chart must not have ${at}.repo (Fleet looks ${JSON.stringify(chart)} up in ${repo})${strictNote}`,
      );
  } else if (chart !== "" && !chart.startsWith("oci://") && !/^[a-z][a-z0-9+.-]*(::|:\/\/)/i.test(chart)) {
    // resources.go addRemoteCharts: a chart that is no folder of the bundle is fetched as a URL.
    const local = posix.normalize(childPath(dir, chart.replace(/\/+$/, "")));
    if (!tree.files.has(`${local}/Chart.yaml`))
      out.fleet.push(
        `${at}.chart: ${JSON.stringify(chart)} is not a chart folder of ${dir} (no ${local}/Chart.yaml) and not a URL`,
      );
  }
  const remote = repo !== "" || chart.startsWith("oci://");
  if (remote && (h.version ?? "") === "")
    out.strict.push(
      `${at}.version: required for a chart from a repository (without it Fleet deploys the newest version)${strictNote}`,
    );
  if (top && chart === "" && repo === "" && (h.version ?? "") !== "")
    out.strict.push(`${at}.version is set but ${at}.chart is not${strictNote}`);
  (h.valuesFrom ?? []).forEach((v, i) => {
    const refs = [v.configMapKeyRef, v.secretKeyRef].filter((r) => r !== undefined && r !== null);
    if (refs.length !== 1)
      out.strict.push(
        `${at}.valuesFrom[${i}]: give exactly one of configMapKeyRef and secretKeyRef${strictNote}`,
      );
    for (const r of refs)
      if (!r.name) out.strict.push(`${at}.valuesFrom[${i}]: name is required${strictNote}`);
  });
}

/** resources.go parseValuesFiles/generateValues: inline values, then each file merged over them. */
function mergeValuesFiles(h: HelmOptions, at: string, tree: RepoTree, dir: string, out: Problems): void {
  const files = h.valuesFiles ?? [];
  if (files.length === 0) return;
  let values: Values = h.values ?? {};
  files.forEach((f, i) => {
    const path = posix.normalize(childPath(dir, f));
    const data = tree.files.get(path);
    if (data === undefined) {
      out.fleet.push(
        `${at}.valuesFiles[${i}]: reading values file: ${dir}/${f}: open ${path}: no such file or directory`,
      );
      return;
    }
    const parsed = parseYAML(data.toString("utf8"));
    if ("error" in parsed) {
      out.fleet.push(`${at}.valuesFiles[${i}]: ${path}: ${parsed.error}`);
      return;
    }
    if (parsed.value === null || parsed.value === undefined) return;
    if (!isObject(parsed.value)) {
      out.fleet.push(
        `${at}.valuesFiles[${i}]: ${path}: cannot unmarshal ${jsonType(parsed.value)} into Go value of type map[string]interface {}`,
      );
      return;
    }
    values = mergeMaps(values, parsed.value);
  });
  if (Object.keys(values).length > 0) h.values = values;
}

/** A percentage ("25%") or an integer: what target/status.go limit accepts. */
function intOrPercentProblem(v: number | string | null | undefined): string | undefined {
  if (v === undefined || v === null || typeof v === "number") return undefined;
  if (/^-?\d+$/.test(v)) return undefined;
  if (!v.endsWith("%") || Number.isNaN(Number.parseFloat(v.slice(0, -1))))
    return `invalid maxUnavailable, must be int or percentage (ending with %): ${v}`;
  return undefined;
}

/** bundlereader/style.go DetermineStyle: a Helm chart, a kustomization, or raw YAML. */
function styleOf(resources: BundleResourceFile[], opts: DeploymentOptions): "helm" | "kustomize" | "raw" {
  const h = opts.helm;
  const chartPath = posix.join(h ? or(h.chart, h.repo) : "", "Chart.yaml").replace(/^\/+/, "");
  const external = h ? `.chart/${sha256hex(`${h.chart ?? ""}:${h.repo ?? ""}:${h.version ?? ""}`)}/` : "";
  const kustomizePath = opts.kustomize?.dir
    ? posix.join(opts.kustomize.dir, "kustomization.yaml").replace(/^\/+/, "")
    : "kustomization.yaml";
  let style: "helm" | "kustomize" | "raw" = "raw";
  for (const r of resources) {
    const rest = external && r.name.startsWith(external) ? r.name.slice(external.length).split("/") : [];
    if (
      r.name === chartPath ||
      (rest.length === 1 && rest[0] === "Chart.yaml") ||
      (rest.length === 2 && rest[1] === "Chart.yaml")
    )
      return "helm";
    if (r.name === kustomizePath) style = "kustomize";
  }
  return style;
}

/**
 * Raw YAML as the agent turns it into objects (render/helm.go manifests,
 * rawyaml.ToObjects): fleet.yaml and folders holding a fleet.yaml or a Chart.yaml are left
 * out; documents without a kind are skipped; other decoding errors fail the deployment.
 */
function rawObjects(resources: BundleResourceFile[]): { count: number; error?: string } {
  const ignore = resources
    .filter((r) => /\/fleet\.ya?ml$/.test(r.name) || r.name.endsWith("/Chart.yaml"))
    .map((r) => `${posix.dirname(r.name)}/`);
  let count = 0;
  for (const r of resources) {
    if (r.name === "fleet.yaml" || r.name === "fleet.yml" || !/\.(yaml|yml|json)$/.test(r.name)) continue;
    if (r.encoding || r.name.startsWith("templates/") || ignore.some((p) => r.name.startsWith(p))) continue;
    for (const doc of parseAllDocuments(r.content, { version: "1.1" })) {
      const e = doc.errors[0];
      if (e) return { count, error: `YAML parse error on ${r.name}: ${e.message.split("\n")[0] ?? ""}` };
      const v: unknown = doc.toJS();
      if (v === null || v === undefined) continue;
      if (!isObject(v))
        return {
          count,
          error: `json: cannot unmarshal ${jsonType(v)} into Go value of type map[string]interface {}`,
        };
      if (!v.kind) continue;
      if (!v.apiVersion) return { count, error: `Object 'apiVersion' is missing in '${goJSON(v)}'` };
      count++;
    }
  }
  return { count };
}

/** bundlereader/read.go bundleFromDir, for one folder; with the driver's stricter checks. */
function readBundle(repo: GitRepo, tree: RepoTree, dir: string): { bundle?: BuiltBundle; errors: string[] } {
  const repoName = repo.metadata.name ?? "";
  const file = fleetYAMLFile(tree, dir);
  const fileName = file ?? childPath(dir, "fleet.yaml");
  const out: Problems = { fleet: [], strict: [] };
  const report = (): string[] => [
    ...out.fleet.map((p) => `${fileName}: ${p}`),
    ...out.strict.map((p) => `${fileName}: ${p}`),
  ];
  let raw: unknown = {};
  if (file) {
    const parsed = parseYAML(tree.files.get(file)?.toString("utf8") ?? "");
    if ("error" in parsed) return { errors: [`${fileName}: reading fleet.yaml: ${parsed.error}`] };
    if (parsed.documents > 1)
      out.strict.push(`holds ${parsed.documents} YAML documents; Fleet reads the first only${strictNote}`);
    raw = parsed.value ?? {};
  }
  checkShape(raw, fleetYAMLShape, "", out);
  if (out.fleet.length > 0 || !isObject(raw)) return { errors: report() };
  const fy = clone(raw) as FleetYAML;

  // validate_fleetyaml.go validateFleetYAML
  (fy.dependsOn ?? []).forEach((d, i) => {
    if (!d.name && !d.selector)
      out.fleet.push(`validating fleet.yaml: dependsOn[${i}]: must specify either 'name' or 'selector'`);
    (d.acceptedStates ?? []).forEach((s, j) => {
      if (!(s in stateRank))
        out.fleet.push(
          `validating fleet.yaml: dependsOn[${i}].acceptedStates[${j}]: invalid state ${JSON.stringify(s)}, valid values are: [Ready NotReady Pending OutOfSync Modified WaitApplied ErrApplied]`,
        );
    });
    if (d.selector) {
      const m = selectorMatcher(d.selector);
      if (typeof m === "string") out.fleet.push(`dependsOn[${i}].selector: ${m}`);
    }
  });
  // read.go: image scans need the feature, which is off by default.
  if ((fy.imageScans ?? []).length > 0)
    out.fleet.push("imagescan is disabled; remove imagescans from your config files, or enable imagescan");
  // The name becomes metadata.name of the Bundle (the API server wants a DNS-1123 subdomain)
  // and, with no helm.releaseName, the Helm release name (at most 53 characters).
  if (fy.name !== undefined && fy.name !== "") {
    if (fy.name.length > 253 || !dnsSubdomainRe.test(fy.name))
      out.fleet.push(
        `name: Invalid value: ${JSON.stringify(fy.name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
      );
    else if (fy.name.length > maxHelmReleaseNameLen || !dnsLabelRe.test(fy.name))
      out.strict.push(
        `name: ${JSON.stringify(fy.name)} must be a DNS-1123 label of at most 53 characters (it names the Helm release)${strictNote}`,
      );
  }
  for (const [k, v] of Object.entries(fy.labels ?? {})) {
    const p = labelKeyProblem(k) ?? labelValueProblem(v);
    if (p) out.fleet.push(`labels: ${p}`);
  }
  // The Bundle CRD's enum.
  if (
    fy.targetCustomizationMode !== undefined &&
    !["FirstMatch", "AllMatches", ""].includes(fy.targetCustomizationMode)
  )
    out.fleet.push(
      `targetCustomizationMode: Unsupported value: ${JSON.stringify(fy.targetCustomizationMode)}: supported values: "FirstMatch", "AllMatches"`,
    );

  // resources.go ignoreApplyConfigs: fleet.yaml and the values files are options, not resources.
  const ignore = ["fleet.yaml", ""];
  for (const h of [
    fy.helm,
    ...[...(fy.targets ?? []), ...(fy.targetCustomizations ?? [])].map((t) => t.helm),
  ])
    for (const f of h?.valuesFiles ?? []) ignore.push(f, posix.basename(f));
  if (fy.helm) helmProblems(fy.helm, "helm", tree, dir, true, out);

  const customizations = [...(fy.targets ?? []), ...(fy.targetCustomizations ?? [])];
  const customizationNames = new Set<string>();
  (fy.targetCustomizations ?? []).forEach((t, i) => {
    if (!t.name)
      out.strict.push(
        `targetCustomizations[${i}].name: required (Fleet names it target${String(i).padStart(3, "0")}, which changes when entries move)${strictNote}`,
      );
  });
  customizations.forEach((t, i) => {
    const at =
      i < (fy.targets ?? []).length
        ? `targets[${i}]`
        : `targetCustomizations[${i - (fy.targets ?? []).length}]`;
    if (t.name) {
      // helmvalues.ExtractValues keys each customization's values by name: duplicates collide.
      if (customizationNames.has(t.name))
        out.strict.push(
          `${at}.name: ${JSON.stringify(t.name)} is used twice; their values would overwrite each other${strictNote}`,
        );
      customizationNames.add(t.name);
    }
    if (t.helm) helmProblems(t.helm, `${at}.helm`, tree, dir, false, out);
    (t.downstreamResources ?? []).forEach((r, j) => {
      if (!r.name) out.strict.push(`${at}.downstreamResources[${j}].name: required${strictNote}`);
    });
  });
  (fy.downstreamResources ?? []).forEach((r, j) => {
    if (!r.name) out.strict.push(`downstreamResources[${j}].name: required${strictNote}`);
  });
  const rollout = fy.rolloutStrategy;
  if (rollout) {
    for (const key of ["maxUnavailable", "maxUnavailablePartitions", "autoPartitionSize"] as const) {
      const p = intOrPercentProblem(rollout[key]);
      if (p) out.fleet.push(`rolloutStrategy.${key}: ${p}`);
    }
    (rollout.partitions ?? []).forEach((p, i) => {
      if (!p.name) out.strict.push(`rolloutStrategy.partitions[${i}].name: required${strictNote}`);
      const mp = intOrPercentProblem(p.maxUnavailable);
      if (mp) out.fleet.push(`rolloutStrategy.partitions[${i}].maxUnavailable: ${mp}`);
      if (!p.clusterName && !p.clusterGroup && !p.clusterSelector && !p.clusterGroupSelector)
        out.strict.push(
          `rolloutStrategy.partitions[${i}]: selects no cluster (a partition without criteria matches nothing)${strictNote}`,
        );
    });
  }

  // read.go bundleFromDir: customizations become the first targets, named target000... if unnamed.
  const targets: BundleTarget[] = customizations.map((t, i) => ({
    ...t,
    name: or(t.name, `target${String(i).padStart(3, "0")}`),
  }));
  // propagateHelmChartProperties
  if (fy.helm) {
    for (const t of targets) {
      if (!t.helm) continue;
      if (!t.helm.repo && fy.helm.repo) t.helm.repo = fy.helm.repo;
      if (!t.helm.chart && fy.helm.chart) t.helm.chart = fy.helm.chart;
      if (!t.helm.version && fy.helm.version) t.helm.version = fy.helm.version;
    }
  }
  // readResources: values files are read into values; remote charts are fetched.
  if (fy.helm) mergeValuesFiles(fy.helm, "helm", tree, dir, out);
  targets.forEach((t, i) => {
    if (t.helm) mergeValuesFiles(t.helm, `targets[${i}].helm`, tree, dir, out);
  });
  if (out.fleet.length > 0 || out.strict.length > 0) return { errors: report() };

  const resources = localResources(tree, dir, ignore);
  const charts = [fy.helm, ...targets.map((t) => t.helm)].filter(
    (h): h is HelmOptions => h !== undefined && h !== null && isRemoteChart(h) && !isLocalChart(h, tree, dir),
  );
  for (const h of charts) {
    const r = chartStandIn(h);
    if (!resources.some((x) => x.name === r.name)) resources.push(r);
  }
  resources.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // What would be deployed (bundlereader/style.go, helmdeployer/render/helm.go).
  if (resources.length === 0) {
    out.strict.push(
      `the folder has nothing to deploy: Fleet skips this bundle silently (apply.go ErrNoResources)${strictNote}`,
    );
  } else if (styleOf(resources, fy) === "raw") {
    const raw = rawObjects(resources);
    if (raw.error === undefined && raw.count === 0)
      out.strict.push(
        `no chart (helm.chart) and no Kubernetes objects in the folder: Fleet would deploy an empty release${strictNote}`,
      );
  }
  if (out.strict.length > 0) return { errors: report() };

  const bundleID = helmReleaseName(posix.join(repoName, dir));
  const name = or(fy.name, bundleID);
  // gitjob.go argsAndEnvs --label: the GitRepo's labels and repo-name; apply.go adds the commit.
  const labels: Record<string, string> = {
    ...(repo.metadata.labels ?? {}),
    [RepoLabel]: repoName,
    [CommitLabel]: tree.commit,
    ...(fy.labels ?? {}),
  };
  const spec: BundleSpec = {};
  const specKeys = [
    ...deploymentOptionKeys,
    "paused",
    "rolloutStrategy",
    "targetCustomizationMode",
    "dependsOn",
  ] as const;
  for (const k of specKeys) if (fy[k] !== undefined) Object.assign(spec, { [k]: fy[k] });
  spec.resources = resources;
  spec.targets = targets;
  const gr = repo.spec;
  if (gr.serviceAccount) spec.serviceAccount = gr.serviceAccount;
  // read.go: the GitRepo's forceSyncGeneration replaces the fleet.yaml one.
  delete spec.forceSyncGeneration;
  if (gr.forceSyncGeneration) spec.forceSyncGeneration = gr.forceSyncGeneration;
  if (fy.overrideTargets !== undefined) {
    for (const t of fy.overrideTargets) {
      spec.targets.push(pickTarget(t));
      (spec.targetRestrictions ??= []).push(pickTarget(t));
    }
  } else {
    // targetsyaml.go newTargetsConfigMap: the GitRepo's targets (default: clusterGroup default).
    const gitTargets =
      (gr.targets ?? []).length > 0 ? (gr.targets ?? []) : [{ name: "default", clusterGroup: "default" }];
    for (const t of gitTargets) {
      spec.targets.push(pickTarget(t));
      (spec.targetRestrictions ??= []).push(pickTarget(t));
    }
  }
  if (spec.targets.length === 0) spec.targets = [{ name: "default", clusterGroup: "default" }];
  if (gr.targetNamespace) {
    spec.namespace = gr.targetNamespace;
    for (const t of spec.targets) t.namespace = gr.targetNamespace;
  }
  if (gr.paused) spec.paused = true;
  if (gr.keepResources) spec.keepResources = true;
  if (gr.deleteNamespace) spec.deleteNamespace = true;
  if (gr.correctDrift?.enabled) spec.correctDrift = gr.correctDrift;

  // apply.go writeBundle: helmvalues.ExtractValues moves values into the values Secret.
  const valuesData: Record<string, string> = {};
  if (spec.helm?.values && Object.keys(spec.helm.values).length > 0)
    valuesData["values.yaml"] = goJSON(spec.helm.values);
  for (const t of spec.targets) {
    if (t.helm?.values && Object.keys(t.helm.values).length > 0)
      valuesData[t.name ?? ""] = goJSON(t.helm.values);
  }
  // helmvalues.ClearValues
  if (spec.helm) spec.helm = { ...spec.helm, values: undefined, valuesFiles: undefined };
  spec.targets = spec.targets.map((t) =>
    t.helm ? { ...t, helm: { ...t.helm, values: undefined, valuesFiles: undefined } } : t,
  );
  spec.valuesHash = Object.keys(valuesData).length > 0 ? valuesHashOf(valuesData) : "";
  return {
    bundle: { name, dir, labels, spec: dropUndefined(spec), valuesData, remoteCharts: charts },
    errors: [],
  };
}

function isLocalChart(h: HelmOptions, tree: RepoTree, dir: string): boolean {
  if ((h.repo ?? "") !== "") return false;
  const chart = (h.chart ?? "").replace(/\/+$/, "");
  return chart !== "" && tree.files.has(`${posix.normalize(childPath(dir, chart))}/Chart.yaml`);
}

const pickTarget = (t: GitTarget): GitTarget =>
  omitEmpty({
    name: t.name,
    clusterName: t.clusterName,
    clusterSelector: t.clusterSelector ?? undefined,
    clusterGroup: t.clusterGroup,
    clusterGroupSelector: t.clusterGroupSelector ?? undefined,
  });

/** helmvalues.HashValuesSecret: sha256 of json.Marshal(map[string][]byte) (values base64). */
function valuesHashOf(data: Record<string, string>): string {
  return sha256hex(goJSON(Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)]))));
}

// ---------------------------------------------------------------------------------------
// Git: polling (pkg/git/fetch.go LatestCommit, pkg/git/remote.go) and the clone of the
// gitjob (gitjob.go, `fleet gitcloner`). Errors read like go-git's.

interface GitAuth {
  username: string;
  password: string;
}

function gitError(err: unknown, url: string): Error {
  const e = err as {
    code?: string;
    data?: { statusCode?: number };
    message?: string;
    cause?: { code?: string; message?: string };
  };
  const status = e.data?.statusCode;
  // go-git transport errors (plumbing/transport/common.go, http/common.go). isomorphic-git
  // reports a refused or missing credential as a cancelled request (onAuthFailure).
  if (status === 401 || e.code === "UserCanceledError") return new Error("authentication required");
  if (status === 403) return new Error("authorization failed");
  if (status === 404) return new Error("repository not found");
  const infoRefs = `${url.replace(/\/+$/, "")}/info/refs?service=git-upload-pack`;
  if (status !== undefined)
    return new Error(
      `unexpected client error: unexpected requesting ${JSON.stringify(infoRefs)} status code: ${status}`,
    );
  return new Error(`Get ${JSON.stringify(infoRefs)}: ${e.cause?.message ?? e.message ?? String(err)}`);
}

const authCallbacks = (
  auth: GitAuth | undefined,
): { onAuth: () => GitAuth | { cancel: true }; onAuthFailure: () => { cancel: true } } => ({
  onAuth: () => auth ?? { cancel: true },
  onAuthFailure: () => ({ cancel: true }),
});

/** remote.go validateBranch */
function branchProblem(name: string): string | undefined {
  if (name.length > 255) return "invalid branch name: too long";
  if (name.endsWith(".lock")) return `invalid branch name: cannot end with ".lock"`;
  if (name.startsWith(".")) return `invalid branch name: cannot start with "."`;
  if (name === "@") return `invalid branch name: "@"`;
  for (const bad of ["..", "//", "?", "*", "[", "@{", "\\", " ", "~", "^", ":"])
    if (name.includes(bad)) return `invalid branch name: cannot contain ${JSON.stringify(bad)}`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "invalid branch name: control chars are not supported";
  return undefined;
}

const isCommitID = (s: string): boolean => /^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/.test(s);

/**
 * fetch.go LatestCommit: the head of spec.branch — `master` when both branch and
 * revision are empty — or the commit of spec.revision (a commit ID or a tag).
 */
async function latestCommit(spec: GitRepoSpec, auth: GitAuth | undefined): Promise<string> {
  const url = spec.repo ?? "";
  if (spec.revision) {
    if (isCommitID(spec.revision)) return spec.revision;
    const refs = await git
      .listServerRefs({
        http,
        url,
        protocolVersion: 1,
        prefix: "refs/tags/",
        peelTags: true,
        ...authCallbacks(auth),
      })
      .catch((err: unknown) => {
        throw gitError(err, url);
      });
    const tag = refs.find((r) => r.ref === `refs/tags/${spec.revision ?? ""}`);
    if (tag) return tag.peeled ?? tag.oid;
    throw new Error(`commit not found for revision: ${spec.revision}`);
  }
  const branch = or(spec.branch, "master");
  const bad = branchProblem(branch);
  if (bad) throw new Error(bad);
  const refs = await git
    .listServerRefs({ http, url, protocolVersion: 1, prefix: "refs/heads/", ...authCallbacks(auth) })
    .catch((err: unknown) => {
      throw gitError(err, url);
    });
  const head = refs.find((r) => r.ref === `refs/heads/${branch}`);
  if (!head) throw new Error(`commit not found for branch: ${branch}`);
  return head.oid;
}

async function readTree(dir: string, base = ""): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const e of await readdir(join(dir, base), { withFileTypes: true })) {
    const rel = base ? `${base}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (rel === ".git") continue;
      for (const [k, v] of await readTree(dir, rel)) files.set(k, v);
    } else if (e.isFile()) files.set(rel, await readFile(join(dir, rel)));
  }
  return files;
}

/**
 * The gitjob's clone (`fleet gitcloner`, gitops/reconciler/gitjob.go): of spec.branch when
 * it is set — even with a revision, the branch wins — else of spec.revision, else of
 * `master`. The job's COMMIT (what its Bundles are labelled with) is the GitRepo's
 * status.commit whatever the clone holds, so a GitRepo with both a branch and a revision
 * applies the branch's head under the revision's commit, as Fleet does.
 */
async function checkout(spec: GitRepoSpec, commit: string, auth: GitAuth | undefined): Promise<RepoTree> {
  const url = spec.repo ?? "";
  const dir = await mkdtemp(join(tmpdir(), "fleet-driver-"));
  try {
    const byBranch = !!spec.branch || !spec.revision;
    await git
      .clone({
        fs,
        http,
        dir,
        url,
        ...(byBranch ? { ref: or(spec.branch, "master"), singleBranch: true, depth: 1 } : {}),
        noTags: byBranch,
        ...authCallbacks(auth),
      })
      .catch((err: unknown) => {
        throw gitError(err, url);
      });
    if (!byBranch) {
      const head = await git.resolveRef({ fs, dir, ref: "HEAD" });
      if (head !== commit) await git.checkout({ fs, dir, ref: commit, force: true });
    }
    return treeOf(commit, await readTree(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Options, targeting and rollout of the bundle controller
// (internal/cmd/controller/options/calculate.go, internal/cmd/controller/target/*.go).

function deploymentOptionsOf(x: DeploymentOptions): DeploymentOptions {
  const out: DeploymentOptions = {};
  for (const k of deploymentOptionKeys) if (x[k] !== undefined) Object.assign(out, { [k]: clone(x[k]) });
  return out;
}

/** merge.ByKey: custom entries replace base entries of the same key, others are appended. */
function mergeByKey<T>(
  base: T[] | undefined,
  custom: T[] | undefined,
  key: (t: T) => string,
): T[] | undefined {
  if (!custom || custom.length === 0) return base;
  const result = [...(base ?? [])];
  const index = new Map<string, number>();
  result.forEach((v, i) => {
    const k = key(v);
    if (k) index.set(k, i);
  });
  const seen = new Set<string>();
  for (const v of custom) {
    const k = key(v);
    if (k) {
      if (seen.has(k)) continue;
      seen.add(k);
      const i = index.get(k);
      if (i !== undefined) {
        result[i] = v;
        continue;
      }
    }
    result.push(v);
  }
  return result;
}

/** options.Merge: targetCustomization options over the bundle's. */
export function mergeOptions(base: DeploymentOptions, custom: DeploymentOptions): DeploymentOptions {
  const r = clone(base);
  if (custom.defaultNamespace) r.defaultNamespace = custom.defaultNamespace;
  if (custom.namespace) r.namespace = custom.namespace;
  if (custom.serviceAccount) r.serviceAccount = custom.serviceAccount;
  if (custom.helm) {
    const h: HelmOptions = (r.helm ??= {});
    const c = custom.helm;
    if ((c.timeoutSeconds ?? 0) > 0) h.timeoutSeconds = c.timeoutSeconds;
    else if ((c.timeoutSeconds ?? 0) < 0) h.timeoutSeconds = 0;
    if (h.values === undefined || h.values === null) h.values = clone(c.values);
    else if (c.values) h.values = mergeMaps(h.values, c.values);
    if (!h.templateValues) h.templateValues = clone(c.templateValues);
    else if (c.templateValues) h.templateValues = { ...h.templateValues, ...c.templateValues };
    if ((c.valuesFrom ?? []).length > 0)
      h.valuesFrom = mergeByKey(h.valuesFrom, c.valuesFrom, (v) => {
        if (v.configMapKeyRef)
          return `configmap|${v.configMapKeyRef.namespace ?? ""}|${v.configMapKeyRef.name ?? ""}|${v.configMapKeyRef.key ?? ""}`;
        if (v.secretKeyRef)
          return `secret|${v.secretKeyRef.namespace ?? ""}|${v.secretKeyRef.name ?? ""}|${v.secretKeyRef.key ?? ""}`;
        return "";
      });
    if (c.repo) h.repo = c.repo;
    if (c.chart) h.chart = c.chart;
    if (c.version) h.version = c.version;
    if (c.releaseName) h.releaseName = c.releaseName;
    for (const k of [
      "force",
      "atomic",
      "takeOwnership",
      "disablePreProcess",
      "waitForJobs",
      "disableDNS",
    ] as const)
      if (h[k] || c[k]) h[k] = true;
  }
  if (custom.kustomize) {
    r.kustomize ??= {};
    if (custom.kustomize.dir) r.kustomize.dir = custom.kustomize.dir;
  }
  if (custom.diff) {
    r.diff ??= {};
    r.diff.comparePatches = mergeByKey(
      r.diff.comparePatches,
      custom.diff.comparePatches,
      (p) => `${p.apiVersion ?? ""}|${p.kind ?? ""}|${p.namespace ?? ""}|${p.name ?? ""}`,
    );
  }
  if (custom.yaml) {
    r.yaml ??= {};
    r.yaml.overlays = [...(r.yaml.overlays ?? []), ...(custom.yaml.overlays ?? [])];
  }
  if ((custom.forceSyncGeneration ?? 0) > 0) r.forceSyncGeneration = custom.forceSyncGeneration;
  if (r.keepResources || custom.keepResources) r.keepResources = true;
  if (custom.correctDrift) r.correctDrift = clone(custom.correctDrift);
  if ((custom.downstreamResources ?? []).length > 0)
    r.downstreamResources = mergeByKey(
      r.downstreamResources,
      custom.downstreamResources,
      (d) => `${(d.kind ?? "").toLowerCase()}|${d.name ?? ""}`,
    );
  return r;
}

/** wrangler yaml.CleanAnnotationsForExport: drops kubectl.kubernetes.io/* and *cattle.io/* keys. */
function cleanForExport(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {}))
    if (!k.startsWith("kubectl.kubernetes.io/") && !k.includes("cattle.io/")) out[k] = v;
  return out;
}

/**
 * The `${ ... }` templating of helm values (target/builder.go processTemplateValues), for
 * the lookups a fleet.yaml commonly uses: .ClusterName, .ClusterNamespace,
 * .ClusterLabels.key, .ClusterAnnotations.key, .ClusterValues.a.b and
 * `index .ClusterLabels "key"`. A missing key is an error (missingkey=error); any other
 * template construct is reported as not simulated.
 */
function renderTemplate(text: string, context: Record<string, unknown>): string {
  return text.replace(/\$\{(.*?)\}/gs, (_m, expr: string) => {
    const e = expr.trim().replace(/^-\s*|\s*-$/g, "");
    let path: string[] | undefined;
    const index = /^index\s+\.(\w+)\s+"([^"]*)"$/.exec(e);
    if (index) path = [index[1] ?? "", index[2] ?? ""];
    else if (/^\.[\w.-]+$/.test(e)) path = e.slice(1).split(".");
    if (!path)
      throw new Error(
        `the Fleet test driver does not simulate the template ${JSON.stringify(`\${${expr}}`)}`,
      );
    let v: unknown = context;
    for (const p of path) {
      if (!isObject(v) || !Object.hasOwn(v, p))
        throw new Error(
          `failed to render helm values template: template: values: map has no entry for key ${JSON.stringify(p)}`,
        );
      v = v[p];
    }
    return typeof v === "string" ? v : goJSON(v);
  });
}

function templateValue(v: unknown, context: Record<string, unknown>): unknown {
  if (typeof v === "string") return v.includes("${") ? renderTemplate(v, context) : v;
  if (Array.isArray(v)) return v.map((x) => templateValue(x, context));
  if (isObject(v))
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [templateValue(k, context) as string, templateValue(x, context)]),
    );
  return v;
}

/** target/builder.go preprocessHelmValues (mutates opts). */
function preprocessHelmValues(opts: DeploymentOptions, cluster: FleetCluster): void {
  const labels = cleanForExport(cluster.metadata.labels);
  for (const [k, v] of Object.entries(cluster.metadata.labels ?? {}))
    if (k.startsWith("fleet.cattle.io/") || k.startsWith("management.cattle.io/")) labels[k] = v;
  if (Object.keys(labels).length === 0) return;
  if (!opts.helm) {
    opts.helm = {};
    return;
  }
  const values: Values = opts.helm.values ?? {};
  opts.helm.values = values;
  if (!opts.helm.templateValues && Object.keys(values).length === 0) return;
  // processLabelValues: "global.fleet.clusterLabels.<label>" strings become the label's value
  // (an absent label: ""), in maps and in maps inside lists, disablePreProcess or not;
  // deeper than maxTemplateRecursionDepth (50, target/target.go) is an error.
  const prefix = "global.fleet.clusterLabels.";
  const walk = (m: Values, depth: number): void => {
    if (depth > 50)
      throw new Error(
        "maximum recursion depth of 50 exceeded for cluster label prefix processing, too many nested values",
      );
    for (const [k, v] of Object.entries(m)) {
      if (typeof v === "string" && v.startsWith(prefix)) m[k] = labels[v.slice(prefix.length)] ?? "";
      if (isObject(v)) walk(v, depth + 1);
      if (Array.isArray(v)) for (const item of v) if (isObject(item)) walk(item, depth + 1);
    }
  };
  walk(values, 0);
  if (opts.helm.disablePreProcess) return;
  const context = {
    ClusterNamespace: cluster.metadata.namespace ?? "",
    ClusterName: cluster.metadata.name ?? "",
    ClusterLabels: labels,
    ClusterAnnotations: cleanForExport(cluster.metadata.annotations),
    ClusterValues: cluster.spec?.templateValues ?? {},
  };
  opts.helm.values = templateValue(values, context) as Values;
  for (const [k, t] of Object.entries(opts.helm.templateValues ?? {})) {
    const rendered = renderTemplate(t, context);
    const parsed = parseYAML(rendered);
    if ("error" in parsed)
      throw new Error(`failed to interpret rendered template as helm values: ${rendered}, ${parsed.error}`);
    opts.helm.values[k] = parsed.value;
  }
}

/** manifest.Manifest JSON ({"resources":[...]}, one line) and its ID (internal/manifest/manifest.go). */
function manifestOf(resources: BundleResourceFile[]): { shasum: string; id: string } {
  const items = resources.map(
    (r) =>
      `{"name":${goJSON(r.name)}${r.content ? `,"content":${goJSON(r.content)}` : ""}${r.encoding ? `,"encoding":${goJSON(r.encoding)}` : ""}}`,
  );
  const json = items.length > 0 ? `{"resources":[${items.join(",")}]}\n` : "{}\n";
  const shasum = sha256hex(json);
  return { shasum, id: toSHA256ID(shasum) };
}

/**
 * options.DeploymentID: "<manifest ID>:<sha256 of the options>", diff and correctDrift left
 * out. Fleet encodes the Go struct (fields in declaration order); the driver hashes the
 * same options with sorted keys, so IDs have Fleet's shape and change when Fleet's would.
 */
function deploymentIDOf(manifestID: string, opts: DeploymentOptions): string {
  const sanitized: DeploymentOptions = { ...opts, diff: undefined, correctDrift: undefined };
  return `${manifestID}:${sha256hex(`${goJSON(omitEmpty(sanitized))}\n`)}`;
}

/** summary.GetDeploymentState (internal/cmd/controller/summary/summary.go) */
export function deploymentState(bd: BundleDeployment): string {
  const st = bd.status ?? {};
  if ((st.appliedDeploymentID ?? "") !== (bd.spec.deploymentID ?? "")) {
    const deployed = st.conditions?.find((c) => c.type === "Deployed");
    return deployed?.status === "False" ? "ErrApplied" : "WaitApplied";
  }
  if (!st.ready) return "NotReady";
  if ((bd.spec.deploymentID ?? "") !== (bd.spec.stagedDeploymentID ?? "")) return "OutOfSync";
  if (!st.nonModified) return "Modified";
  return "Ready";
}

const conditionMessage = (type: string, conds: Condition[] | undefined): string =>
  conds?.find((c) => c.type === type)?.message ?? "";

/** summary.MessageFromDeployment */
function deploymentMessage(bd: BundleDeployment | undefined): string {
  if (!bd) return "";
  const conds = bd.status?.conditions;
  let message = conditionMessage("Deployed", conds);
  if (!message && (bd.status?.appliedDeploymentID ?? "") === (bd.spec.deploymentID ?? ""))
    message = conditionMessage("Installed", conds);
  return message || conditionMessage("Monitored", conds);
}

const emptySummary = (): BundleSummary => ({ ready: 0, desiredReady: 0 });

const summaryCounter: Record<string, keyof BundleSummary> = {
  Modified: "modified",
  Pending: "pending",
  WaitApplied: "waitApplied",
  ErrApplied: "errApplied",
  NotReady: "notReady",
  OutOfSync: "outOfSync",
  Ready: "ready",
};

/** summary.IncrementState (at most 10 non-ready entries) */
function incrementState(
  s: BundleSummary,
  name: string,
  state: string,
  message: string,
  modified: ModifiedStatus[] | undefined,
  nonReady: NonReadyStatus[] | undefined,
): void {
  const key = summaryCounter[state];
  if (key)
    (s as unknown as Record<string, number>)[key] =
      ((s as unknown as Record<string, number | undefined>)[key] ?? 0) + 1;
  if (name && state !== "Ready" && (s.nonReadyResources ?? []).length < 10) {
    (s.nonReadyResources ??= []).push(
      omitEmpty({ name, bundleState: state, message, modifiedStatus: modified, nonReadyStatus: nonReady }),
    );
  }
}

/** bundledeployment_types.go name() */
function objectName(
  apiVersion: string | undefined,
  kind: string | undefined,
  namespace: string | undefined,
  name: string | undefined,
): string {
  const k = (kind ?? "").toLowerCase();
  const n = namespace ? `${namespace}/${name ?? ""}` : (name ?? "");
  return apiVersion ? `${k}.${apiVersion.split("/")[0] ?? ""} ${n}` : `${k} ${n}`;
}

/** NonReadyStatus.String and summary.Summary.String (note Fleet's "error]" without "["). */
function nonReadyString(s: NonReadyStatus): string {
  const sum = s.summary ?? {};
  let text: string;
  if (!sum.transitioning && !sum.error) text = sum.state ?? "";
  else {
    let msg = sum.transitioning ? "[progressing" : "";
    if (sum.error) msg = msg ? `${msg},error]` : "error]";
    else msg += "]";
    text = (sum.message ?? []).length > 0 ? `${msg} ${(sum.message ?? []).join(", ")}` : msg;
  }
  return `${objectName(s.apiVersion, s.kind, s.namespace, s.name)} ${text}`;
}

function modifiedString(m: ModifiedStatus): string {
  const n = objectName(m.apiVersion, m.kind, m.namespace, m.name);
  if (m.missing) return m.exist ? `${n} is not owned by us` : `${n} missing`;
  if (m.delete) return `${n} extra`;
  return `${n} modified ${m.patch ?? ""}`;
}

/** summary.ReadyMessage */
function readyMessage(s: BundleSummary, kind: string): string {
  const messages: string[] = [];
  for (const [state, key] of Object.entries(summaryCounter)) {
    if (state === "Ready") continue;
    const count = (s[key] as number | undefined) ?? 0;
    if (count <= 0) continue;
    const r = (s.nonReadyResources ?? []).find((x) => x.bundleState === state);
    if (!r) continue;
    messages.push(
      r.message
        ? `${state}(${count}) [${kind} ${r.name ?? ""}: ${r.message}]`
        : `${state}(${count}) [${kind} ${r.name ?? ""}]`,
    );
    (r.modifiedStatus ?? []).slice(0, 4).forEach((m) => messages.push(modifiedString(m)));
    (r.nonReadyStatus ?? []).slice(0, 4).forEach((m) => messages.push(nonReadyString(m)));
  }
  return messages.sort().join("; ");
}

/** summary.GetSummaryState: the worst state of the non-ready entries ("" when none). */
function summaryState(s: BundleSummary): string {
  let state = "";
  for (const r of s.nonReadyResources ?? [])
    if ((stateRank[r.bundleState ?? ""] ?? 0) > (stateRank[state] ?? 0)) state = r.bundleState ?? "";
  return state;
}

/** target/status.go limit */
function limit(count: number, ...vals: (number | string | null | undefined)[]): number {
  if (count <= 0) return 1;
  const v = vals.find((x) => x !== undefined && x !== null) ?? "100%";
  if (typeof v === "number") return v > count ? count : v < 0 ? 0 : v;
  if (/^-?\d+$/.test(v)) {
    const i = Number(v);
    if (i > 0) return i;
  }
  if (!v.endsWith("%"))
    throw new Error(`invalid maxUnavailable, must be int or percentage (ending with %): ${v}`);
  const percent = Number.parseFloat(v.slice(0, -1));
  if (Number.isNaN(percent)) throw new Error(`failed to parse ${v}`);
  if (percent <= 0) return 1;
  const i = Math.trunc((count * percent) / 100);
  if (i <= 0) return 1;
  return i > count ? count : i;
}

/** A cluster as the bundle controller sees it. */
interface ClusterView {
  cluster: FleetCluster;
  name: string;
  labels: Record<string, string>;
  groups: GroupLabels;
  /** status.namespace: where its BundleDeployments live. */
  namespace: string;
}

/** target.Target */
interface Target {
  cluster: ClusterView;
  options: DeploymentOptions;
  deploymentID: string;
  /** The BundleDeployment being built (existing one, with its options loaded, or new). */
  deployment?: BundleDeployment;
}

const isPaused = (bundle: Bundle, t: Target): boolean =>
  Boolean(t.cluster.cluster.spec?.paused) || Boolean(bundle.spec.paused);

/** target.go effectiveDeployment, then state() */
function targetState(t: Target): string {
  if (!t.deployment) return "Pending";
  return deploymentState({ ...t.deployment, spec: { ...t.deployment.spec, deploymentID: t.deploymentID } });
}

function targetMessage(t: Target): string {
  if (!t.deployment) return "";
  return deploymentMessage({ ...t.deployment, spec: { ...t.deployment.spec, deploymentID: t.deploymentID } });
}

/** target/status.go Summary */
function targetsSummary(targets: Target[]): BundleSummary {
  const s = emptySummary();
  for (const t of targets) {
    incrementState(
      s,
      `${t.cluster.cluster.metadata.namespace ?? ""}/${t.cluster.name}`,
      targetState(t),
      targetMessage(t),
      t.deployment?.status?.modifiedStatus,
      t.deployment?.status?.nonReadyStatus,
    );
    s.desiredReady++;
  }
  return s;
}

/** target/status.go upToDate */
function upToDate(t: Target): boolean {
  const d = t.deployment;
  if (!d) return false;
  return (
    d.spec.stagedDeploymentID === t.deploymentID &&
    d.spec.deploymentID === t.deploymentID &&
    d.status?.appliedDeploymentID === t.deploymentID
  );
}

/** target/status.go isUnavailable */
const isUnavailable = (bd: BundleDeployment | undefined): boolean =>
  bd !== undefined &&
  ((bd.status?.appliedDeploymentID ?? "") !== (bd.spec.deploymentID ?? "") || !bd.status?.ready);

interface PartitionOf {
  status: PartitionStatus;
  targets: Target[];
}

function appendPartition(
  list: PartitionOf[],
  name: string,
  targets: Target[],
  ...max: (number | string | null | undefined)[]
): void {
  // PartitionStatus: every field but summary is omitempty.
  const status: PartitionStatus = { name };
  const maxUnavailable = limit(targets.length, ...max);
  const unavailable = targets.filter((t) => isUnavailable(t.deployment)).length;
  if (targets.length > 0) status.count = targets.length;
  if (maxUnavailable !== 0) status.maxUnavailable = maxUnavailable;
  if (unavailable > 0) status.unavailable = unavailable;
  status.summary = targetsSummary(targets);
  list.push({ status, targets });
}

/**
 * target/rollout.go partitions. With partitions given, a target no partition selects is
 * in none, so it is never staged (Fleet does that: manualPartition).
 */
function partitionsOf(bundle: Bundle, targets: Target[]): PartitionOf[] {
  const rollout = bundle.spec.rolloutStrategy ?? {};
  const out: PartitionOf[] = [];
  if ((rollout.partitions ?? []).length > 0) {
    for (const def of rollout.partitions ?? []) {
      const m = clusterMatcher(def);
      if (typeof m === "string") throw new Error(m);
      const selected = targets.filter((t) =>
        matchesWithGroups(m, t.cluster.name, t.cluster.groups, t.cluster.labels),
      );
      appendPartition(out, def.name ?? "", selected, def.maxUnavailable, rollout.maxUnavailable);
    }
    return out;
  }
  const size = rollout.autoPartitionSize;
  const threshold = rollout.autoPartitionThreshold ?? 200;
  if ((typeof size === "number" && size <= 0) || threshold <= 0 || targets.length < threshold) {
    appendPartition(out, "All", targets, rollout.maxUnavailable);
    return out;
  }
  const maxSize = limit(targets.length, size, "25%");
  for (let offset = 0; offset < targets.length; offset += maxSize) {
    const part = targets.slice(offset, offset + maxSize);
    appendPartition(out, `Partition ${offset} - ${offset + part.length}`, part, rollout.maxUnavailable);
  }
  return out;
}

/**
 * target/partition.go UpdatePartitions: stages every target, creates BundleDeployments
 * (at most maxNew) and moves staged options to deployed ones where rollout allows — never
 * for paused bundles or clusters.
 */
function updatePartitions(
  bundle: Bundle,
  status: BundleStatus,
  targets: Target[],
  labelsFor: (t: Target) => Record<string, string>,
): void {
  const rollout = bundle.spec.rolloutStrategy ?? {};
  const maxNew = rollout.maxNew ?? 50;
  const parts = partitionsOf(bundle, targets);
  status.unavailablePartitions = 0;
  status.maxUnavailablePartitions = limit(parts.length, rollout.maxUnavailablePartitions, 0);
  let newlyCreated = 0;
  for (const part of parts) {
    // Go ranges over a copy of each partition: the counters below do not reach the status.
    const counters = { ...part.status };
    for (const t of part.targets) {
      if (!t.deployment && newlyCreated < maxNew) {
        newlyCreated++;
        t.deployment = {
          metadata: { name: bundle.metadata.name, namespace: t.cluster.namespace, labels: labelsFor(t) },
          spec: {},
        };
      }
      if (t.deployment) {
        t.deployment.spec.stagedOptions = clone(t.options);
        t.deployment.spec.stagedDeploymentID = t.deploymentID;
      }
    }
    for (const t of part.targets) {
      const d = t.deployment;
      if (!d || isPaused(bundle, t) || !d.spec.stagedDeploymentID) continue;
      if (d.spec.deploymentID === d.spec.stagedDeploymentID) {
        if (!deepEqual(d.spec.options?.diff, d.spec.stagedOptions?.diff))
          (d.spec.options ??= {}).diff = clone(d.spec.stagedOptions?.diff);
        continue;
      }
      const unavailable = isUnavailable(d);
      if (
        ((status.unavailable ?? 0) < (status.maxUnavailable ?? 0) || unavailable) &&
        ((counters.unavailable ?? 0) < (counters.maxUnavailable ?? 0) || unavailable)
      ) {
        if (!unavailable) {
          status.unavailable = (status.unavailable ?? 0) + 1;
          counters.unavailable = (counters.unavailable ?? 0) + 1;
        }
        d.spec.deploymentID = d.spec.stagedDeploymentID;
        d.spec.options = clone(d.spec.stagedOptions);
      }
    }
    // updatePartitionStatus: stricter unavailability (not up to date counts).
    counters.unavailable = part.targets.filter((t) => !upToDate(t) || isUnavailable(t.deployment)).length;
    if (counters.unavailable > (counters.maxUnavailable ?? 0)) status.unavailablePartitions++;
    if (status.unavailablePartitions > status.maxUnavailablePartitions) break;
  }
  if (newlyCreated > 0) status.newlyCreated = newlyCreated;
  else delete status.newlyCreated;
  status.partitions = parts.map((p) => p.status);
}

// ---------------------------------------------------------------------------------------
// Conditions as wrangler's condition package writes them (GenericCondition).

/**
 * Sets a condition: status, message and reason (`null`: keep the reason). lastUpdateTime
 * moves when anything changed, lastTransitionTime when the status changed.
 */
function setCondition(
  conds: Condition[] | undefined,
  type: string,
  status: "True" | "False",
  message: string,
  reason: string | null,
  now: string,
): Condition[] {
  const list = [...(conds ?? [])];
  const i = list.findIndex((c) => c.type === type);
  const old = i >= 0 ? list[i] : undefined;
  const next: Condition = { ...(old ?? { type }), status };
  if (message) next.message = message;
  else delete next.message;
  if (reason !== null) {
    if (reason) next.reason = reason;
    else delete next.reason;
  }
  if (!old || !deepEqual(old, next)) next.lastUpdateTime = now;
  if (old?.status !== status) next.lastTransitionTime = now;
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** condition.Cond(type).SetError(obj, "", err): True without message, or False with reason Error. */
const setErrorCondition = (
  conds: Condition[] | undefined,
  type: string,
  err: string | undefined,
  now: string,
): Condition[] =>
  err
    ? setCondition(conds, type, "False", err, "Error", now)
    : setCondition(conds, type, "True", "", "", now);

/** summary.SetReadyConditions */
function setReadyConditions(
  conds: Condition[] | undefined,
  kind: string,
  s: BundleSummary,
  now: string,
): Condition[] {
  const msg = readyMessage(s, kind);
  return msg
    ? setCondition(conds, "Ready", "False", msg, null, now)
    : setCondition(conds, "Ready", "True", "", "", now);
}

/** wrangler kstatus.SetError / SetActive: the Reconciling and Stalled conditions. */
function kstatusError(conds: Condition[] | undefined, message: string, now: string): Condition[] {
  return setCondition(
    setCondition(conds, "Reconciling", "False", "", "", now),
    "Stalled",
    "True",
    message,
    "Stalled",
    now,
  );
}
function kstatusActive(conds: Condition[] | undefined, now: string): Condition[] {
  return setCondition(
    setCondition(conds, "Reconciling", "False", "", "", now),
    "Stalled",
    "False",
    "",
    "",
    now,
  );
}

/** metav1 LabelSelector as labels.Selector.String() prints it (matchLabels only). */
const selectorString = (labels: Record<string, string>): string =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k] ?? ""}`)
    .join(",");

/** builder.go Targets errors: "targeting error" on the Bundle. */
class TargetingError extends Error {}
/** fleetutil.ErrRetryable: requeue without a status update. */
class RetryableError extends Error {}
/** A non-retryable error of handleDownstreamObjects. */
class DownstreamError extends Error {}

// ---------------------------------------------------------------------------------------
// The driver.

export interface FleetDriverOptions {
  /** The Fleet workspace: the namespace of the GitRepos, Clusters, ClusterGroups and Bundles. */
  namespace: string;
  /**
   * Credentials to clone with when a GitRepo names no clientSecretName and its namespace
   * has no `gitcredential` Secret — a convenience for tests that do not test credentials
   * (Fleet would clone anonymously). A GitRepo's clientSecretName Secret is read as Fleet
   * reads it (kubernetes.io/basic-auth).
   */
  gitAuth?: GitAuth;
  /** Agents of online clusters apply BundleDeployments on every sync (default true); else only applyAll() does. */
  autoAgent?: boolean;
  /** Agents check in (status.agent.lastSeen) at most this often; default 0: on every sync. */
  checkinIntervalMs?: number;
  /** Log lines (errors of the sync loop, retries); default: none. */
  log?: (line: string) => void;
}

interface ClusterControl {
  online: boolean;
  /** failCluster(): the agent reports the deployments not ready with this message. */
  failure?: string;
  /** failInstall(): Helm's install or upgrade fails with this error. */
  installError?: string;
  /** drift(): changes made on the cluster to objects of a bundle's release, by bundle name. */
  drifts?: Map<string, Drift[]>;
  lastCheckin?: number;
}

/**
 * A change made on a downstream cluster to an object a release installed: a field changed
 * (`pointer`, a JSON pointer, with the value the release wants there), or the object
 * deleted (no pointer).
 */
export interface Drift {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  pointer?: string;
  desired?: unknown;
}

/** gobwas/glob as Fleet's normalizers/glob uses it: `*` any run, `?` one character. */
function globMatch(pattern: string, text: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(text);
}

/** schema.ParseGroupVersion: "" | "v1" | "group/version"; more slashes are an error. */
function parseGroupVersion(apiVersion: string): { group: string; version: string } {
  const parts = apiVersion.split("/");
  if (apiVersion === "") return { group: "", version: "" };
  if (parts.length === 1) return { group: "", version: parts[0] ?? "" };
  if (parts.length === 2) return { group: parts[0] ?? "", version: parts[1] ?? "" };
  throw new Error(`unexpected GroupVersion string: ${apiVersion}`);
}

const pointerSegments = (p: string): string[] => p.split("/").slice(1);

/**
 * Whether the agent sees `d` as a modification (agent/deployer/desiredset/diff.go Diff):
 * a missing object is dropped from the plan only by an `op: ignore` patch of exactly its
 * apiVersion and kind, in its namespace, named by it (exactly or by regex) or by none; a
 * changed field is hidden when a patch matching the object (group and kind by glob, name
 * and namespace exact or empty: internal/normalizers/diff_normalizer.go) drops a JSON
 * pointer at or above it from both sides. Other operations are not modelled.
 */
function isModification(d: Drift, patches: ComparePatch[]): boolean {
  const { group } = parseGroupVersion(d.apiVersion);
  for (const p of patches) {
    const gv = parseGroupVersion(p.apiVersion ?? "");
    for (const op of p.operations ?? [])
      if (op.op !== "ignore")
        throw new Error(
          `FleetDriver: comparePatches operation ${JSON.stringify(op.op)} is not modelled (only jsonPointers and op: ignore are)`,
        );
    if (d.pointer === undefined) {
      if (!(p.operations ?? []).some((o) => o.op === "ignore")) continue;
      if ((p.apiVersion ?? "") !== d.apiVersion || (p.kind ?? "") !== d.kind) continue;
      if ((p.namespace ?? "") !== (d.namespace ?? "")) continue;
      const name = p.name ?? "";
      if (name === "" || name === d.name || new RegExp(name).test(d.name)) return false;
      continue;
    }
    if (!globMatch(gv.group, group) || !globMatch(p.kind ?? "", d.kind)) continue;
    if (p.name && p.name !== d.name) continue;
    if (p.namespace && p.namespace !== (d.namespace ?? "")) continue;
    const changed = pointerSegments(d.pointer);
    for (const ptr of p.jsonPointers ?? []) {
      const dropped = pointerSegments(ptr);
      if (dropped.length <= changed.length && dropped.every((seg, i) => seg === changed[i])) return false;
      if (changed.length < dropped.length && changed.every((seg, i) => seg === dropped[i]))
        throw new Error(
          `FleetDriver: drift at ${d.pointer} of ${d.kind} ${d.name} is partly hidden by jsonPointer ${ptr}: not modelled; declare the drift at or below the pointer`,
        );
    }
  }
  return true;
}

/** The merge patch the agent reports for a changed field (desired value at the pointer). */
function driftPatch(d: Drift): string {
  let v: unknown = d.desired ?? null;
  for (const seg of pointerSegments(d.pointer ?? "").reverse())
    v = { [seg.replace(/~1/g, "/").replace(/~0/g, "~")]: v };
  return JSON.stringify(v);
}

/** The outcome of a gitjob. */
interface JobOutcome {
  status: "Current" | "Failed";
  message: string;
}

/** What one pass knows about the workspace. */
interface PassView {
  now: string;
  clusters: FleetCluster[];
  groups: ClusterGroup[];
  gitRepos: GitRepo[];
  /** BundleDeployments of the workspace's bundles, in every cluster namespace. */
  bds: BundleDeployment[];
}

/** A copy of a Secret or ConfigMap the agent made on its (simulated) downstream cluster. */
export interface DownstreamObject {
  kind: "Secret" | "ConfigMap";
  namespace: string;
  name: string;
  /** The source's labels plus fleet.cattle.io/bundledeployment (copySecret/copyConfigMap). */
  labels: Record<string, string>;
  /** Decoded data. */
  data: Record<string, string>;
}

const byName = <T extends KubeObject>(a: T, b: T): number => {
  const x = a.metadata.name ?? "";
  const y = b.metadata.name ?? "";
  return x < y ? -1 : x > y ? 1 : 0;
};
const byUID = <T extends KubeObject>(a: T, b: T): number => {
  const x = a.metadata.uid ?? "";
  const y = b.metadata.uid ?? "";
  return x < y ? -1 : x > y ? 1 : 0;
};

export class FleetDriver {
  readonly namespace: string;
  /** Recent errors of sync passes run by start() (newest last, at most 100). */
  readonly errors: string[] = [];
  /**
   * What Fleet would only log: retries (a downstreamResources source missing, an options
   * Secret not there yet) and failed jobs (newest last, at most 200).
   */
  readonly events: string[] = [];
  private readonly controls = new Map<string, ClusterControl>();
  private readonly trees = new Map<string, RepoTree>();
  private readonly revisions = new Map<string, number>();
  private readonly jobCounts = new Map<string, number>();
  private readonly fetches: ChartFetch[] = [];
  private readonly downstreamStore = new Map<string, Map<string, DownstreamObject>>();
  private readonly autoAgent: boolean;
  private lock: Promise<void> = Promise.resolve();
  private loop: Promise<void> | undefined;
  private stopRequested = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly options: FleetDriverOptions,
  ) {
    this.namespace = options.namespace;
    this.autoAgent = options.autoAgent ?? true;
  }

  private log(line: string): void {
    // A retry repeats every pass: keep one line per distinct message among the recent ones.
    if (this.events.slice(-20).includes(line)) return;
    this.events.push(line);
    if (this.events.length > 200) this.events.shift();
    this.options.log?.(`fleet-driver: ${line}`);
  }

  // ---- test controls --------------------------------------------------------------

  /** The namespace of a cluster's BundleDeployments, named as Fleet names it. */
  clusterNamespace(name: string): string {
    return clusterNamespaceName(this.namespace, name);
  }

  /**
   * Registers a downstream cluster: a Fleet Cluster in the workspace with `labels`, its
   * cluster namespace, and the status Fleet's agent management and (when online) agent
   * write. Returns the Cluster.
   */
  async registerCluster(
    name: string,
    labels: Record<string, string> = {},
    options: { online?: boolean } = {},
  ): Promise<FleetCluster> {
    this.controls.set(name, { online: options.online ?? true });
    const existing = await this.client.get<FleetCluster>(ClusterResource, name, this.namespace);
    if (!existing) {
      await this.client.create<FleetCluster>(ClusterResource, {
        metadata: { name, namespace: this.namespace, labels },
        spec: {},
      });
    } else {
      await this.setLabels(name, labels);
    }
    await this.locked(async () => {
      const view = await this.view();
      await this.manageClusters(view);
      await this.clusterStatuses(view);
    });
    const cluster = await this.client.get<FleetCluster>(ClusterResource, name, this.namespace);
    if (!cluster) throw new Error(`cluster ${name} disappeared`);
    return cluster;
  }

  /** Online clusters check in and apply; offline ones keep their last lastSeen and apply nothing. */
  setOnline(name: string, online: boolean): void {
    const c = this.controls.get(name) ?? { online };
    c.online = online;
    this.controls.set(name, c);
  }

  /** Replaces the Cluster's labels (what targeting reads). */
  async setLabels(name: string, labels: Record<string, string>): Promise<void> {
    const cluster = await this.client.get<FleetCluster>(ClusterResource, name, this.namespace);
    if (!cluster) throw new Error(`no cluster ${name} in ${this.namespace}`);
    const patch: Record<string, string | null> = { ...labels };
    for (const k of Object.keys(cluster.metadata.labels ?? {})) if (!(k in labels)) patch[k] = null;
    await this.client.mergePatch(ClusterResource, name, this.namespace, { metadata: { labels: patch } });
  }

  /** Deletes the Cluster and its namespace (and so its BundleDeployments), as Fleet's cluster controller does. */
  async deleteCluster(name: string): Promise<void> {
    this.controls.delete(name);
    this.downstreamStore.delete(name);
    this.knownNamespaces.delete(this.clusterNamespace(name));
    await this.client.delete(ClusterResource, name, this.namespace);
    // reconciler/cluster_controller.go handleDelete: the cluster namespace goes.
    await this.client.delete(NamespaceResource, this.clusterNamespace(name));
  }

  /** The agent of `name` reports its deployments not ready with `message` (until healCluster). */
  failCluster(name: string, message: string): void {
    const c = this.controls.get(name) ?? { online: true };
    c.failure = message;
    this.controls.set(name, c);
  }

  /**
   * The agent of `name` fails every install or upgrade with Helm's `error` (until
   * healCluster): Deployed=False with that message, appliedDeploymentID unchanged.
   */
  failInstall(name: string, error: string): void {
    const c = this.controls.get(name) ?? { online: true };
    c.installError = error;
    this.controls.set(name, c);
  }

  healCluster(name: string): void {
    const c = this.controls.get(name);
    if (c) {
      c.failure = undefined;
      c.installError = undefined;
    }
  }

  /**
   * Someone changes an object of `bundle`'s release on cluster `name` (kubectl edit, an
   * operator): the agent reports it Modified unless the bundle's comparePatches hide it,
   * until the release is upgraded (correctDrift is not played).
   */
  drift(name: string, bundle: string, change: Drift): void {
    const c = this.controls.get(name) ?? { online: true };
    c.drifts ??= new Map();
    c.drifts.set(bundle, [...(c.drifts.get(bundle) ?? []), clone(change)]);
    this.controls.set(name, c);
  }

  /** Creates (or updates) a ClusterGroup in the workspace. */
  async addClusterGroup(name: string, selector: LabelSelector): Promise<void> {
    const existing = await this.client.get<ClusterGroup>(ClusterGroupResource, name, this.namespace);
    if (existing)
      await this.client.mergePatch(ClusterGroupResource, name, this.namespace, { spec: { selector } });
    else
      await this.client.create<ClusterGroup>(ClusterGroupResource, {
        metadata: { name, namespace: this.namespace },
        spec: { selector },
      });
  }

  /** Objects the agent of `cluster` copied downstream (downstreamResources), by "namespace/kind/name". */
  downstream(cluster: string): DownstreamObject[] {
    return [...(this.downstreamStore.get(cluster)?.values() ?? [])].map((o) => clone(o));
  }

  // ---- inspection -------------------------------------------------------------------

  /** Bundles of the workspace, optionally of one GitRepo. */
  async bundles(gitRepo?: string): Promise<Bundle[]> {
    const list = await this.client.list<Bundle>(BundleResource, {
      namespace: this.namespace,
      ...(gitRepo ? { labelSelector: `${RepoLabel}=${gitRepo}` } : {}),
    });
    return list.items.sort(byName);
  }

  /** BundleDeployments of the workspace's bundles, optionally of one bundle or one cluster. */
  async bundleDeployments(
    filter: { bundle?: string; cluster?: string; gitRepo?: string } = {},
  ): Promise<BundleDeployment[]> {
    const selector = [`${BundleNamespaceLabel}=${this.namespace}`];
    if (filter.bundle) selector.push(`${BundleLabel}=${filter.bundle}`);
    if (filter.cluster) selector.push(`${ClusterLabel}=${filter.cluster}`);
    if (filter.gitRepo) selector.push(`${RepoLabel}=${filter.gitRepo}`);
    const list = await this.client.list<BundleDeployment>(BundleDeploymentResource, {
      labelSelector: selector.join(","),
    });
    return list.items.sort((a, b) =>
      `${a.metadata.namespace ?? ""}/${a.metadata.name ?? ""}`.localeCompare(
        `${b.metadata.namespace ?? ""}/${b.metadata.name ?? ""}`,
      ),
    );
  }

  /** The Helm values a BundleDeployment deploys (its options Secret, helmvalues.SetOptions). */
  async valuesOf(bd: BundleDeployment): Promise<Values> {
    if (!bd.spec.valuesHash) return {};
    const secret = await this.client.get<Secret>(
      SecretResource,
      bd.metadata.name ?? "",
      bd.metadata.namespace,
    );
    const text = unb64(secret?.data?.values);
    return text ? (JSON.parse(text) as Values) : {};
  }

  /** The values of a Bundle as `fleet apply` stored them (its values Secret): "values.yaml" and per customization name. */
  async bundleValues(bundle: Bundle): Promise<Record<string, Values>> {
    if (!bundle.spec.valuesHash) return {};
    const secret = await this.client.get<Secret>(
      SecretResource,
      bundle.metadata.name ?? "",
      bundle.metadata.namespace,
    );
    return Object.fromEntries(
      Object.entries(secret?.data ?? {}).map(([k, v]) => [k, JSON.parse(unb64(v)) as Values]),
    );
  }

  // ---- running ------------------------------------------------------------------------

  /** One full pass of Fleet's controllers and (for online clusters, unless autoAgent is false) agents. */
  sync(): Promise<void> {
    return this.locked(() => this.pass(this.autoAgent));
  }

  /** One pass in which the agents of all online clusters apply, whatever autoAgent says. */
  applyAll(): Promise<void> {
    return this.locked(() => this.pass(true));
  }

  /** Runs sync() every `intervalMs` until stop(); errors are logged and kept in `errors`. */
  start(intervalMs = 200): void {
    if (this.loop) return;
    this.stopRequested = false;
    this.loop = this.run(intervalMs);
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(intervalMs: number): Promise<void> {
    while (!this.stopRequested) {
      try {
        await this.sync();
      } catch (err) {
        const line = `sync failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
        this.errors.push(line);
        if (this.errors.length > 100) this.errors.shift();
        this.log(line);
      }
      if (this.stopping()) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, intervalMs);
      });
      this.wake = undefined;
    }
  }

  private stopping(): boolean {
    return this.stopRequested;
  }

  /** Runs `fn` after every earlier call finished (sync passes never overlap). */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.lock.then(fn);
    this.lock = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private async view(): Promise<PassView> {
    const ns = this.namespace;
    const [clusters, groups, gitRepos, bds] = await Promise.all([
      this.client.list<FleetCluster>(ClusterResource, { namespace: ns }),
      this.client.list<ClusterGroup>(ClusterGroupResource, { namespace: ns }),
      this.client.list<GitRepo>(GitRepoResource, { namespace: ns }),
      this.client.list<BundleDeployment>(BundleDeploymentResource, {
        labelSelector: `${BundleNamespaceLabel}=${ns}`,
      }),
    ]);
    return {
      now: rfc3339(new Date()),
      clusters: clusters.items.sort(byName),
      groups: groups.items.sort(byName),
      gitRepos: gitRepos.items.sort(byName),
      bds: bds.items,
    };
  }

  private async pass(agents: boolean): Promise<void> {
    let view = await this.view();
    await this.manageClusters(view);
    const jobStatus = new Map<string, Partial<GitRepoStatus>>();
    for (const repo of view.gitRepos) await this.gitJob(repo, view, jobStatus);
    await this.pruneOrphanBundles(view);
    view = await this.view();
    await this.bundleController(view);
    if (agents) {
      view = await this.view();
      await this.agents(view);
    }
    view = await this.view();
    await this.bundleController(view);
    view = await this.view();
    await this.bundleDeploymentDisplays(view);
    view = await this.view();
    await this.clusterStatuses(view);
    await this.clusterGroupStatuses(view);
    await this.gitRepoStatuses(view, jobStatus);
  }

  // ---- helpers for writes -------------------------------------------------------------

  /**
   * Writes `status` through the status subresource when it differs from what `obj` holds
   * (a full update, as Fleet's Status().Update: nulls such as agent.lastSeen are kept).
   * On a conflict the status is written over the fresh object: the driver owns it.
   */
  private async writeStatus(
    resource: ResourceType,
    obj: KubeObject & { status?: unknown },
    status: unknown,
  ): Promise<boolean> {
    const desired: unknown = dropUndefined(status);
    if (deepEqual(obj.status ?? {}, desired)) return false;
    const put = (o: KubeObject): Promise<KubeObject> =>
      this.client.replace<KubeObject>(resource, { ...o, status: desired } as KubeObject, "status");
    let updated: KubeObject;
    try {
      updated = await put(obj);
    } catch (err) {
      if (ApiError.isNotFound(err)) return false;
      if (!ApiError.isConflict(err)) throw err;
      const fresh = await this.client.get<KubeObject>(
        resource,
        obj.metadata.name ?? "",
        obj.metadata.namespace,
      );
      if (!fresh) return false;
      updated = await put(fresh);
    }
    obj.metadata.resourceVersion = updated.metadata.resourceVersion;
    obj.status = desired;
    return true;
  }

  /** Creates or updates a Secret or ConfigMap; true when it was created or its content changed. */
  private async upsert(resource: ResourceType, desired: Secret | ConfigMap): Promise<boolean> {
    const current = await this.client.get<Secret | ConfigMap>(
      resource,
      desired.metadata.name ?? "",
      desired.metadata.namespace,
    );
    if (!current) {
      await this.client.create(resource, desired);
      return true;
    }
    const content = (o: Secret | ConfigMap): unknown => ({
      data: o.data ?? {},
      binaryData: "binaryData" in o ? (o.binaryData ?? {}) : {},
      labels: o.metadata.labels ?? {},
      owners: (o.metadata.ownerReferences ?? []).map((r) => r.uid),
    });
    if (deepEqual(content(current), content(desired))) return false;
    if ("type" in desired && (desired.type ?? "Opaque") !== ((current as Secret).type ?? "Opaque")) {
      await this.client.delete(resource, desired.metadata.name ?? "", desired.metadata.namespace);
      await this.client.create(resource, desired);
      return true;
    }
    await this.client.replace(resource, {
      ...desired,
      metadata: {
        ...current.metadata,
        labels: desired.metadata.labels,
        ownerReferences: desired.metadata.ownerReferences,
      },
    });
    const old = content(current) as { data: unknown; binaryData: unknown };
    const now = content(desired) as { data: unknown; binaryData: unknown };
    return !deepEqual(old.data, now.data) || !deepEqual(old.binaryData, now.binaryData);
  }

  private readonly knownNamespaces = new Set<string>();

  /** agentmanagement cluster controller createNamespace */
  private async ensureClusterNamespace(namespace: string, cluster: string): Promise<void> {
    if (this.knownNamespaces.has(namespace)) return;
    const ns = await this.client.get(NamespaceResource, namespace);
    if (!ns) {
      try {
        await this.client.create(NamespaceResource, {
          metadata: {
            name: namespace,
            labels: { [ManagedLabel]: "true" },
            annotations: { [ClusterNamespaceAnnotation]: this.namespace, [ClusterAnnotation]: cluster },
          },
        });
      } catch (err) {
        if (!ApiError.isConflict(err)) throw err;
      }
    } else if (ns.metadata.deletionTimestamp) {
      return;
    }
    this.knownNamespaces.add(namespace);
  }

  // ---- 1. clusters: agent management and check-in ---------------------------------------

  /**
   * agentmanagement/controllers/cluster/controller.go OnClusterChanged: every Cluster gets
   * status.namespace and that namespace. Agents of online clusters check in
   * (internal/cmd/agent/clusterstatus/ticker.go: status.agent {lastSeen, namespace}).
   */
  private async manageClusters(view: PassView): Promise<void> {
    for (const cluster of view.clusters) {
      if (cluster.metadata.deletionTimestamp) continue;
      const name = cluster.metadata.name ?? "";
      const status: ClusterStatus = clone(cluster.status ?? {});
      status.namespace = or(status.namespace, clusterNamespaceName(this.namespace, name));
      await this.ensureClusterNamespace(status.namespace, name);
      const control = this.controls.get(name);
      if (control?.online) {
        const interval = this.options.checkinIntervalMs ?? 0;
        if (control.lastCheckin === undefined || Date.now() - control.lastCheckin >= interval) {
          status.agent = { lastSeen: view.now, namespace: AgentNamespace };
          control.lastCheckin = Date.now();
        }
      }
      // AgentStatus is a struct: a cluster whose agent never checked in shows lastSeen null.
      status.agent ??= { lastSeen: null, namespace: "" };
      await this.writeStatus(ClusterResource, cluster, status);
      cluster.status = status;
    }
  }

  // ---- 2. the gitjob ---------------------------------------------------------------------

  /** pkg/git/fetch.go LatestCommit: the clientSecretName Secret, else `gitcredential` (basic auth only here). */
  private async gitAuthFor(repo: GitRepo): Promise<GitAuth | undefined> {
    const name = or(repo.spec.clientSecretName, DefaultGitCredentialsSecretName);
    const secret = await this.client.get<Secret>(SecretResource, name, repo.metadata.namespace);
    if (secret) {
      // netutils.go GetAuthFromSecret
      if (secret.type !== "kubernetes.io/basic-auth") return undefined;
      const username = unb64(secret.data?.username);
      const password = unb64(secret.data?.password);
      if (!username) return password ? { username: password, password: "" } : undefined;
      return { username, password };
    }
    return repo.spec.clientSecretName ? undefined : this.options.gitAuth;
  }

  private async treeAt(repo: GitRepo, commit: string, auth: GitAuth | undefined): Promise<RepoTree> {
    const key = `${repo.spec.repo ?? ""}#${repo.spec.revision ?? repo.spec.branch ?? ""}#${commit}`;
    const cached = this.trees.get(key);
    if (cached) return cached;
    const tree = await checkout(repo.spec, commit, auth);
    this.trees.set(key, tree);
    if (this.trees.size > 32) {
      const oldest = this.trees.keys().next().value;
      if (oldest !== undefined) this.trees.delete(oldest);
    }
    return tree;
  }

  private async setFinalizers(repo: GitRepo, finalizers: string[]): Promise<void> {
    try {
      await this.client.mergePatch(GitRepoResource, repo.metadata.name ?? "", repo.metadata.namespace, {
        metadata: { finalizers, resourceVersion: repo.metadata.resourceVersion },
      });
    } catch (err) {
      // Someone else changed the GitRepo meanwhile: the next pass sees it.
      if (!ApiError.isConflict(err) && !ApiError.isNotFound(err)) throw err;
    }
  }

  /**
   * gitops/reconciler/gitjob_controller.go Reconcile + polling_job.go + gitjob.go: poll the
   * branch, run `fleet apply` when the commit, the spec (generation) or forceSyncGeneration
   * changed, and record the outcome in the GitRepo status.
   */
  private async gitJob(repo: GitRepo, view: PassView, jobStatus: Map<string, GitRepoStatus>): Promise<void> {
    const name = repo.metadata.name ?? "";
    const now = view.now;
    const finalizers = repo.metadata.finalizers ?? [];
    if (repo.metadata.deletionTimestamp) {
      // handleDelete: bundles go (and with them their BundleDeployments), then the finalizer.
      if (finalizers.includes(GitRepoFinalizer)) {
        for (const b of await this.bundles(name)) await this.deleteBundle(b);
        await this.setFinalizers(
          repo,
          finalizers.filter((f) => f !== GitRepoFinalizer),
        );
      }
      return;
    }
    if (!finalizers.includes(GitRepoFinalizer))
      await this.setFinalizers(repo, [...finalizers, GitRepoFinalizer]);

    const status: GitRepoStatus = clone(repo.status ?? {});
    jobStatus.set(name, status);
    // With Fleet's CRD the API server rejects or prunes what this reports; the stand-in CRDs do not.
    const problems: Problems = { fleet: [], strict: [] };
    checkShape(repo.spec, gitRepoSpecShape, "spec", problems);
    if (!repo.spec.repo) problems.fleet.push("spec.repo: Required value");
    const specProblems = [
      ...problems.fleet,
      ...problems.strict.map((p) =>
        p.replace("Fleet ignores it silently", "the GitRepo CRD prunes it silently"),
      ),
    ];
    if (specProblems.length > 0) {
      // gitjob_controller.go updateErrorStatus: the Accepted condition carries reconcile errors.
      status.conditions = setErrorCondition(
        status.conditions,
        "Accepted",
        `${specProblems.join("; ")}${strictNote}`,
        now,
      );
      return;
    }

    const auth = await this.gitAuthFor(repo);
    let commit: string;
    try {
      commit = await latestCommit(repo.spec, auth);
    } catch (err) {
      // polling_job.go updateErrorStatus: GitPolling=False and kstatus.SetError (Stalled=True);
      // no job runs, existing bundles stay.
      const message = errorText(err);
      status.conditions = kstatusError(
        setErrorCondition(status.conditions, "GitPolling", message, now),
        message,
        now,
      );
      status.conditions = setErrorCondition(status.conditions, "Accepted", undefined, now);
      status.observedGeneration = repo.metadata.generation ?? 0;
      return;
    }
    // Fleet stamps lastPollingTriggered on every poll; the driver only when the commit moves (no churn).
    if (status.pollingCommit !== commit) {
      status.pollingCommit = commit;
      status.lastPollingTriggered = now;
    }
    status.conditions = setErrorCondition(status.conditions, "GitPolling", undefined, now);

    // shouldCreateJob: a new commit, a changed spec or forceSyncGeneration.
    const generation = repo.metadata.generation ?? 0;
    const observed = status.observedGeneration ?? 0;
    const force = repo.spec.forceSyncGeneration ?? 0;
    if (
      commit !== (status.commit ?? "") ||
      (generation !== observed && observed > 0) ||
      force !== (status.updateGeneration ?? 0)
    ) {
      // The commit is recorded when the job starts, whatever its outcome.
      status.commit = commit;
      if (force) status.updateGeneration = force;
      else delete status.updateGeneration;
      // setStatusFromGitjob: gitJobStatus and the job's kstatus. They change only when a job
      // runs: the gitjob controller is not triggered by the poller's status writes
      // (predicate.go), so after a polling error Stalled stays until the next job, as in Fleet.
      const outcome = await this.runJob(repo, commit, auth);
      status.gitJobStatus = outcome.status;
      status.conditions =
        outcome.status === "Current"
          ? kstatusActive(status.conditions, now)
          : kstatusError(status.conditions, outcome.message, now);
    }
    status.observedGeneration = generation;
    status.conditions = setErrorCondition(status.conditions, "Accepted", undefined, now);
  }

  /**
   * Gitjobs started so far, per GitRepo (`<namespace>/<name>`): one each time
   * shouldCreateJob holds (Fleet's gitjobs_created_success_total, per GitRepo).
   */
  jobsStarted(): Map<string, number> {
    return new Map(this.jobCounts);
  }

  /** The job: clone, `fleet apply`, write the Bundles. A failure is the job's termination message. */
  private async runJob(repo: GitRepo, commit: string, auth: GitAuth | undefined): Promise<JobOutcome> {
    const key = `${repo.metadata.namespace ?? ""}/${repo.metadata.name ?? ""}`;
    this.jobCounts.set(key, (this.jobCounts.get(key) ?? 0) + 1);
    try {
      const tree = await this.treeAt(repo, commit, auth);
      const all = await this.bundles();
      const existing = new Map(all.map((b) => [b.metadata.name ?? "", b.metadata.labels?.[RepoLabel] ?? ""]));
      const result = applyRepo({ repo, tree, existing });
      if (!result.ok) {
        if (result.prune) await this.writeBundles(repo, []);
        this.log(`gitjob ${repo.metadata.name ?? ""} failed: ${result.error}`);
        return { status: "Failed", message: result.error };
      }
      const download = await this.downloadCharts(repo, result.bundles);
      if (download) {
        this.log(`gitjob ${repo.metadata.name ?? ""} failed: ${download}`);
        return { status: "Failed", message: download };
      }
      await this.writeBundles(repo, result.bundles);
      return { status: "Current", message: "" };
    } catch (err) {
      if (err instanceof ApiError && err.code >= 500) throw err;
      return { status: "Failed", message: errorText(err) };
    }
  }

  /**
   * Chart downloads so far (fleet-charts.ts): which GitRepo fetched which chart URL, with
   * which username, and the error if it failed.
   */
  chartFetches(): ChartFetch[] {
    return [...this.fetches];
  }

  /**
   * resources.go addRemoteCharts: every remote chart of every bundle is downloaded, with the
   * GitRepo's helm Secret where helmRepoURLRegex allows it (fleet-charts.ts). The job fails
   * on the first error, with Fleet's message; undefined when all were fetched.
   */
  private async downloadCharts(repo: GitRepo, bundles: BuiltBundle[]): Promise<string | undefined> {
    const key = `${repo.metadata.namespace ?? ""}/${repo.metadata.name ?? ""}`;
    if (repo.spec.helmSecretNameForPaths)
      return `spec.helmSecretNameForPaths (credentials per path, apply.go AuthByPath) is not simulated by the Fleet test driver`;
    let auth: HelmAuth = { username: "", password: "", insecureSkipVerify: false, basicHTTP: false };
    if (repo.spec.helmSecretName) {
      const secret = await this.client.get<Secret>(
        SecretResource,
        repo.spec.helmSecretName,
        repo.metadata.namespace,
      );
      if (!secret)
        return `the gitjob's pod cannot start: secret "${repo.spec.helmSecretName}" not found (MountVolume.SetUp failed for volume "helm-secret"); the Fleet test driver reports it as a failed job, Fleet leaves the job pending`;
      auth = helmAuthFromSecret(
        Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, unb64(v)])),
      );
    }
    const regex = repo.spec.helmRepoURLRegex;
    for (const b of bundles) {
      const seen = new Set<string>();
      for (const h of b.remoteCharts) {
        const id = `${h.chart ?? ""}:${h.repo ?? ""}:${h.version ?? ""}`;
        if (seen.has(id)) continue;
        seen.add(id);
        let forward: boolean;
        try {
          forward = shouldAddAuth(regex, h);
        } catch (err) {
          return (err as Error).message;
        }
        const used: HelmAuth = forward ? auth : { ...auth, username: "", password: "" };
        const stripped = !forward && !regex && (auth.username !== "" || auth.password !== "");
        try {
          const { url } = await downloadChart(h, used, stripped);
          this.fetches.push({ gitRepo: key, url, ...(used.username ? { username: used.username } : {}) });
        } catch (err) {
          const message = (err as Error).message;
          this.fetches.push({
            gitRepo: key,
            url: h.repo ?? h.chart ?? "",
            ...(used.username ? { username: used.username } : {}),
            error: message,
          });
          return message;
        }
      }
    }
    return undefined;
  }

  /** apply.go pruneBundlesNotFoundInRepo + writeBundle (Bundle, then its values Secret). */
  private async writeBundles(repo: GitRepo, built: BuiltBundle[]): Promise<void> {
    const keep = new Set(built.map((b) => b.name));
    for (const b of await this.bundles(repo.metadata.name ?? ""))
      if (!keep.has(b.metadata.name ?? "")) await this.deleteBundle(b);
    for (const b of built) {
      const current = await this.client.get<Bundle>(BundleResource, b.name, this.namespace);
      if (current?.metadata.deletionTimestamp)
        throw new Error(
          `the bundle ${JSON.stringify(b.name)} is being deleted, cannot create during a delete operation`,
        );
      let saved: Bundle;
      if (!current) {
        saved = await this.client.create<Bundle>(BundleResource, {
          metadata: { name: b.name, namespace: this.namespace, labels: b.labels },
          spec: b.spec,
        });
      } else if (!deepEqual(current.spec, b.spec) || !deepEqual(current.metadata.labels ?? {}, b.labels)) {
        saved = await this.client.replace<Bundle>(BundleResource, {
          ...current,
          metadata: { ...current.metadata, labels: b.labels },
          spec: b.spec,
        });
      } else saved = current;
      if (Object.keys(b.valuesData).length > 0) {
        await this.upsert(SecretResource, {
          metadata: {
            name: b.name,
            namespace: this.namespace,
            labels: b.labels,
            ownerReferences: [
              {
                apiVersion: "fleet.cattle.io/v1alpha1",
                kind: "Bundle",
                name: b.name,
                uid: saved.metadata.uid ?? "",
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          },
          type: BundleValuesSecretType,
          data: Object.fromEntries(Object.entries(b.valuesData).map(([k, v]) => [k, b64(v)])),
        });
      } else {
        await this.client.delete(SecretResource, b.name, this.namespace);
      }
    }
  }

  /** A Bundle and what hangs on it (reconciler/bundle_controller.go handleDelete). */
  private async deleteBundle(bundle: Bundle): Promise<void> {
    const name = bundle.metadata.name ?? "";
    const bds = await this.client.list<BundleDeployment>(BundleDeploymentResource, {
      labelSelector: `${BundleLabel}=${name},${BundleNamespaceLabel}=${this.namespace}`,
    });
    for (const bd of bds.items) await this.deleteBundleDeployment(bd);
    await this.client.delete(SecretResource, name, this.namespace);
    await this.client.delete(BundleResource, name, this.namespace);
  }

  /** batchDeleteBundleDeployments: the BundleDeployment and its options Secret. */
  private async deleteBundleDeployment(bd: BundleDeployment): Promise<void> {
    await this.client.delete(BundleDeploymentResource, bd.metadata.name ?? "", bd.metadata.namespace);
    await this.client.delete(SecretResource, bd.metadata.name ?? "", bd.metadata.namespace);
  }

  /**
   * Bundles of GitRepos that are gone. Fleet's GitRepo finalizer removes them; a GitRepo
   * created and deleted between two passes never got the driver's finalizer.
   */
  private async pruneOrphanBundles(view: PassView): Promise<void> {
    const repos = new Set(view.gitRepos.map((r) => r.metadata.name ?? ""));
    for (const b of await this.bundles()) {
      const repo = b.metadata.labels?.[RepoLabel];
      if (repo && !repos.has(repo)) await this.deleteBundle(b);
    }
  }

  // ---- 3. the bundle controller ------------------------------------------------------------

  private async bundleController(view: PassView): Promise<void> {
    for (const bundle of await this.bundles()) {
      if (bundle.metadata.deletionTimestamp) continue;
      try {
        await this.reconcileBundle(bundle, view);
      } catch (err) {
        // Another writer raced us: the next pass retries (controller-runtime requeues).
        if (!ApiError.isConflict(err)) throw err;
        this.log(`bundle ${bundle.metadata.name ?? ""}: ${errorText(err)}; retrying next pass`);
      }
    }
  }

  /** target/query.go ClusterGroupsForCluster: groups with a selector matching the cluster's labels. */
  private groupsOf(cluster: FleetCluster, groups: ClusterGroup[]): GroupLabels {
    const out: GroupLabels = new Map();
    for (const g of groups) {
      if (!g.spec?.selector) continue;
      const m = selectorMatcher(g.spec.selector);
      if (typeof m === "string") continue;
      if (m(cluster.metadata.labels)) out.set(g.metadata.name ?? "", g.metadata.labels ?? {});
    }
    return out;
  }

  /**
   * target/builder.go Targets: the clusters of the bundle's namespace its targets select
   * (first match wins; GitRepo targets are also the allow list), with the options of the
   * bundle merged with the matching targetCustomizations, templated, and their deployment ID.
   */
  private targets(bundle: Bundle, values: Map<string, Values>, view: PassView, manifestID: string): Target[] {
    const spec = bundle.spec;
    const targets = spec.targets ?? [];
    const restrictions = spec.targetRestrictions ?? [];
    // matcher/bundlematch.go determineIsCustomization: the first len(targets)-len(restrictions) are customizations.
    const numCustom = restrictions.length > 0 ? targets.length - restrictions.length : 0;
    const toCriteria = (t: GitTarget): Criteria => {
      const m = clusterMatcher(t);
      if (typeof m === "string") throw new TargetingError(m);
      return m;
    };
    const criteria = targets.map(toCriteria);
    const allowed = restrictions.map(toCriteria);
    const bundleOptions = deploymentOptionsOf(spec);
    const top = values.get("values.yaml");
    if (top) (bundleOptions.helm ??= {}).values = clone(top);
    const optionsOf = (t: BundleTarget): DeploymentOptions => {
      const o = deploymentOptionsOf(t);
      const v = values.get(t.name ?? "");
      if (v) (o.helm ??= {}).values = clone(v);
      return o;
    };
    const out: Target[] = [];
    for (const cluster of view.clusters) {
      const name = cluster.metadata.name ?? "";
      const labels = cluster.metadata.labels ?? {};
      const groups = this.groupsOf(cluster, view.groups);
      let match: BundleTarget | undefined;
      for (let i = numCustom; i < targets.length && !match; i++) {
        const c = criteria[i];
        if (!c) continue;
        const crit: Criteria = (n, g, gl, l) =>
          (allowed.length === 0 || allowed.some((a) => a(n, g, gl, l))) && c(n, g, gl, l);
        if (matchesWithGroups(crit, name, groups, labels)) match = targets[i];
      }
      if (!match || match.doNotDeploy) continue;
      let targetOptions = optionsOf(match);
      const custom = targets.slice(0, numCustom).filter((_t, i) => {
        const c = criteria[i];
        return c !== undefined && matchesWithGroups(c, name, groups, labels);
      });
      if (spec.targetCustomizationMode === "AllMatches") {
        if (custom.some((t) => t.doNotDeploy)) continue;
        for (const t of custom) targetOptions = mergeOptions(targetOptions, optionsOf(t));
      } else if (custom[0]) {
        if (custom[0].doNotDeploy) continue;
        targetOptions = optionsOf(custom[0]);
      }
      const opts = mergeOptions(bundleOptions, targetOptions);
      try {
        preprocessHelmValues(opts, cluster);
      } catch (err) {
        throw new TargetingError(
          `cluster ${name} in namespace ${cluster.metadata.namespace ?? ""}: ${errorText(err)}`,
        );
      }
      out.push({
        cluster: { cluster, name, labels, groups, namespace: cluster.status?.namespace ?? "" },
        options: opts,
        deploymentID: deploymentIDOf(manifestID, opts),
      });
    }
    return out.sort((a, b) =>
      a.cluster.name < b.cluster.name ? -1 : a.cluster.name > b.cluster.name ? 1 : 0,
    );
  }

  /** Target.BundleDeploymentLabels (target/target.go) */
  private bundleDeploymentLabels(bundle: Bundle, cluster: FleetCluster): Record<string, string> {
    const labels = cleanForExport(bundle.metadata.labels);
    for (const [k, v] of Object.entries(bundle.metadata.labels ?? {}))
      if (k.startsWith("fleet.cattle.io/")) labels[k] = v;
    labels[BundleLabel] = bundle.metadata.name ?? "";
    labels[BundleNamespaceLabel] = bundle.metadata.namespace ?? "";
    labels[ManagedLabel] = "true";
    labels[ClusterNamespaceLabel] = cluster.metadata.namespace ?? "";
    labels[ClusterLabel] = cluster.metadata.name ?? "";
    return labels;
  }

  /** An existing BundleDeployment with its options loaded from its options Secret (helmvalues.SetOptions). */
  private async loadDeployment(bd: BundleDeployment): Promise<BundleDeployment> {
    const copy = clone(bd);
    if (!bd.spec.valuesHash) return copy;
    const secret = await this.client.get<Secret>(
      SecretResource,
      bd.metadata.name ?? "",
      bd.metadata.namespace,
    );
    const values = unb64(secret?.data?.values);
    const staged = unb64(secret?.data?.stagedValues);
    if (!secret || sha256hex(values + staged) !== bd.spec.valuesHash) {
      // builder.go Targets: the options Secret is missing (or stale): wait for values.
      copy.spec.waitingForValues = true;
      return copy;
    }
    if (values) ((copy.spec.options ??= {}).helm ??= {}).values = JSON.parse(values) as Values;
    if (staged) ((copy.spec.stagedOptions ??= {}).helm ??= {}).values = JSON.parse(staged) as Values;
    return copy;
  }

  /** reconciler/bundle_controller.go Reconcile */
  private async reconcileBundle(bundle: Bundle, view: PassView): Promise<void> {
    const now = view.now;
    const name = bundle.metadata.name ?? "";
    const status: BundleStatus = clone(bundle.status ?? {});
    const fail = async (message: string): Promise<void> => {
      // updateErrorStatus: Ready=False with the error.
      status.conditions = setErrorCondition(status.conditions, "Ready", message, now);
      await this.writeStatus(BundleResource, bundle, status);
    };
    // loadBundleValues: the values Secret `fleet apply` wrote.
    const values = new Map<string, Values>();
    if (bundle.spec.valuesHash) {
      const secret = await this.client.get<Secret>(SecretResource, name, this.namespace);
      if (!secret) {
        this.log(`bundle ${name}: values secret missing, retrying`);
        return;
      }
      for (const [k, v] of Object.entries(secret.data ?? {})) values.set(k, JSON.parse(unb64(v)) as Values);
    }
    const manifest = manifestOf(bundle.spec.resources ?? []);
    status.resourcesSha256Sum = manifest.shasum;
    let targets: Target[];
    try {
      targets = this.targets(bundle, values, view, manifest.id);
    } catch (err) {
      if (err instanceof TargetingError) return fail(`targeting error: ${err.message}`);
      throw err;
    }
    const existing = view.bds.filter(
      (bd) =>
        bd.metadata.labels?.[BundleLabel] === name &&
        bd.metadata.labels[BundleNamespaceLabel] === this.namespace,
    );
    const byNamespace = new Map<string, BundleDeployment>();
    const rawByNamespace = new Map<string, BundleDeployment>();
    for (const bd of existing) {
      rawByNamespace.set(bd.metadata.namespace ?? "", bd);
      byNamespace.set(bd.metadata.namespace ?? "", await this.loadDeployment(bd));
    }
    for (const t of targets) t.deployment = byNamespace.get(t.cluster.namespace);

    // bundle_status.go resetStatus
    status.summary = targetsSummary(targets);
    status.partitions = undefined;
    status.unavailable = targets.filter((t) => isUnavailable(t.deployment)).length;
    try {
      status.maxUnavailable = limit(targets.length, bundle.spec.rolloutStrategy?.maxUnavailable);
    } catch (err) {
      return fail(`failed to reset bundle status from targets: ${errorText(err)}`);
    }
    try {
      updatePartitions(bundle, status, targets, (t) =>
        this.bundleDeploymentLabels(bundle, t.cluster.cluster),
      );
    } catch (err) {
      return fail(`failed to update partitions: ${errorText(err)}`);
    }
    status.conditions = setReadyConditions(status.conditions, "Cluster", status.summary, now);
    status.observedGeneration = bundle.metadata.generation ?? 0;

    const keep = new Set<string>();
    for (const t of targets) {
      if (t.deployment?.metadata.uid) keep.add(t.deployment.metadata.uid);
      try {
        const saved = await this.writeBundleDeployment(bundle, t, manifest.id, rawByNamespace);
        if (saved?.metadata.uid) keep.add(saved.metadata.uid);
      } catch (err) {
        if (err instanceof RetryableError) {
          // computeResult: retryable errors requeue without a status update.
          this.log(`bundle ${name}: ${err.message}; retrying`);
          return;
        }
        if (err instanceof DownstreamError)
          return fail(`failed to clone config maps and secrets downstream: ${err.message}`);
        throw err;
      }
    }
    // cleanupOrphanedBundleDeployments
    for (const bd of existing) {
      if (bd.metadata.uid && keep.has(bd.metadata.uid)) continue;
      if (bd.spec.offSchedule) continue;
      await this.deleteBundleDeployment(bd);
    }
    // bundle_status.go updateDisplay
    const state = summaryState(status.summary);
    status.display = {
      readyClusters: `${status.summary.ready}/${status.summary.desiredReady}`,
      ...(state ? { state } : {}),
    };
    await this.writeStatus(BundleResource, bundle, status);
  }

  /**
   * bundle_controller.go handleMatchedTarget: the BundleDeployment, its options Secret,
   * downstream copies. `existing` holds the BundleDeployments as stored (no values).
   */
  private async writeBundleDeployment(
    bundle: Bundle,
    t: Target,
    manifestID: string,
    existing: Map<string, BundleDeployment>,
  ): Promise<BundleDeployment | undefined> {
    const d = t.deployment;
    // A cluster without status.namespace is skipped until agent management sets it.
    if (!d || !t.cluster.namespace) return undefined;
    const ns = t.cluster.namespace;
    const name = bundle.metadata.name ?? "";
    const current = existing.get(ns);
    const labels = {
      ...this.bundleDeploymentLabels(bundle, t.cluster.cluster),
      [ContentNameLabel]: manifestID,
    };
    const spec: BundleDeploymentSpec = clone(d.spec);
    if (isPaused(bundle, t)) spec.paused = true;
    else delete spec.paused;
    delete spec.offSchedule;
    if ((bundle.spec.dependsOn ?? []).length > 0) spec.dependsOn = clone(bundle.spec.dependsOn);
    else delete spec.dependsOn;
    if (t.options.correctDrift) spec.correctDrift = clone(t.options.correctDrift);
    else delete spec.correctDrift;
    const waiting = spec.waitingForValues === true;
    let optionsSecret: Secret | undefined;
    if (!waiting) {
      delete spec.waitingForValues;
      // manageOptionsSecret / helmvalues.ExtractOptions: values move into a Secret named like the BundleDeployment.
      const json = (v: Values | null | undefined): string => {
        const j = v ? goJSON(v) : "";
        return j === "null" || j === "{}" ? "" : j;
      };
      const options = json(spec.options?.helm?.values);
      const staged = json(spec.stagedOptions?.helm?.values);
      if (options || staged) {
        spec.valuesHash = sha256hex(options + staged);
        optionsSecret = {
          metadata: {
            name,
            namespace: ns,
            ...(current?.metadata.uid ? { ownerReferences: [this.ownerOf(current)] } : {}),
          },
          type: BundleDeploymentOptionsSecretType,
          data: { values: b64(options), stagedValues: b64(staged) },
        };
        await this.upsert(SecretResource, optionsSecret);
      } else {
        delete spec.valuesHash;
        // Fleet deletes it unconditionally; the driver only when there was one (no churn).
        if (current?.spec.valuesHash) await this.client.delete(SecretResource, name, ns);
      }
    }
    // helmvalues.ClearOptions
    if (spec.options?.helm) spec.options.helm = { ...spec.options.helm, values: undefined };
    if (spec.stagedOptions?.helm) spec.stagedOptions.helm = { ...spec.stagedOptions.helm, values: undefined };
    const desired = dropUndefined(spec);
    let saved: BundleDeployment;
    if (!current) {
      saved = await this.client.create<BundleDeployment>(BundleDeploymentResource, {
        metadata: { name, namespace: ns, labels },
        spec: desired,
      });
      // ensureOwnerReferences: the options Secret is owned by the new BundleDeployment.
      if (optionsSecret)
        await this.upsert(SecretResource, {
          ...optionsSecret,
          metadata: { ...optionsSecret.metadata, ownerReferences: [this.ownerOf(saved)] },
        });
    } else if (!deepEqual(current.spec, desired) || !deepEqual(current.metadata.labels ?? {}, labels)) {
      const fresh = await this.client.get<BundleDeployment>(BundleDeploymentResource, name, ns);
      if (!fresh) return undefined;
      saved = await this.client.replace<BundleDeployment>(BundleDeploymentResource, {
        ...fresh,
        metadata: { ...fresh.metadata, labels },
        spec: { ...desired, downstreamResourcesGeneration: fresh.spec.downstreamResourcesGeneration },
      });
    } else saved = current;
    await this.copyDownstreamObjects(bundle, saved);
    return saved;
  }

  private ownerOf(bd: BundleDeployment): {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller: boolean;
    blockOwnerDeletion: boolean;
  } {
    return {
      apiVersion: "fleet.cattle.io/v1alpha1",
      kind: "BundleDeployment",
      name: bd.metadata.name ?? "",
      uid: bd.metadata.uid ?? "",
      controller: true,
      blockOwnerDeletion: true,
    };
  }

  /**
   * bundle_controller.go handleDownstreamObjects: Secrets and ConfigMaps of
   * downstreamResources are copied from the bundle's namespace into the cluster namespace;
   * a change bumps spec.downstreamResourcesGeneration. A missing source is retried
   * silently (ErrRetryable); another kind fails the bundle.
   */
  private async copyDownstreamObjects(bundle: Bundle, bd: BundleDeployment): Promise<void> {
    const from = bundle.metadata.namespace ?? "";
    const to = bd.metadata.namespace ?? "";
    let updated = false;
    for (const dr of bd.spec.options?.downstreamResources ?? []) {
      const name = dr.name ?? "";
      const owner = { ownerReferences: [this.ownerOf(bd)] };
      switch ((dr.kind ?? "").toLowerCase()) {
        case "secret": {
          const src = await this.client.get<Secret>(SecretResource, name, from);
          if (!src)
            throw new RetryableError(
              `failed to copy secret ${from}/${name} to downstream cluster namespace: failed to load source secret, cannot clone into ${JSON.stringify(from)}: secrets ${JSON.stringify(name)} not found`,
            );
          const changed = await this.upsert(SecretResource, {
            metadata: { name, namespace: to, ...owner },
            type: src.type,
            data: src.data ?? {},
          });
          updated ||= changed;
          break;
        }
        case "configmap": {
          const src = await this.client.get<ConfigMap>(ConfigMapResource, name, from);
          if (!src)
            throw new RetryableError(
              `failed to copy config map ${from}/${name} to downstream cluster namespace: failed to load source config map, cannot clone into ${JSON.stringify(from)}: configmaps ${JSON.stringify(name)} not found`,
            );
          const changed = await this.upsert(ConfigMapResource, {
            metadata: { name, namespace: to, ...owner },
            data: src.data ?? {},
            ...(src.binaryData ? { binaryData: src.binaryData } : {}),
          });
          updated ||= changed;
          break;
        }
        default:
          throw new DownstreamError(
            `unsupported kind for object to copy to downstream: ${JSON.stringify(dr.kind ?? "")}`,
          );
      }
    }
    if (updated) {
      await this.client.mergePatch(BundleDeploymentResource, bd.metadata.name ?? "", to, {
        spec: { downstreamResourcesGeneration: (bd.spec.downstreamResourcesGeneration ?? 0) + 1 },
      });
    }
  }

  // ---- 4. the agents ------------------------------------------------------------------------

  /** Agents of online clusters reconcile their BundleDeployments until nothing changes. */
  private async agents(view: PassView): Promise<void> {
    for (const cluster of view.clusters) {
      const control = this.controls.get(cluster.metadata.name ?? "");
      const ns = cluster.status?.namespace;
      if (!control?.online || !ns || cluster.metadata.deletionTimestamp) continue;
      const bds = view.bds.filter((bd) => bd.metadata.namespace === ns).sort(byName);
      for (let round = 0; round <= bds.length; round++) {
        let changed = false;
        for (const bd of bds)
          if (await this.agentReconcile(cluster, control, bd, bds, view.now)) changed = true;
        if (!changed) break;
      }
    }
  }

  /**
   * deployer.go checkDependency: every BundleDeployment a dependsOn entry selects in this
   * cluster namespace must be in an accepted state (Ready by default).
   */
  private dependencyError(bd: BundleDeployment, siblings: BundleDeployment[]): string | undefined {
    const bundleNamespace = bd.metadata.labels?.[BundleNamespaceLabel] ?? "";
    const pending: string[] = [];
    for (const dep of bd.spec.dependsOn ?? []) {
      if (!dep.name && !dep.selector) continue;
      const selector: LabelSelector = clone(dep.selector ?? {});
      if (dep.name)
        selector.matchLabels = {
          ...selector.matchLabels,
          [BundleLabel]: dep.name,
          [BundleNamespaceLabel]: bundleNamespace,
        };
      const m = selectorMatcher(selector);
      if (typeof m === "string") return m;
      const matching = siblings.filter((s) => m(s.metadata.labels));
      if (matching.length === 0)
        return `list bundledeployments: no bundles matching labels ${selectorString(selector.matchLabels ?? {})} in namespace ${bundleNamespace}`;
      const accepted = (dep.acceptedStates ?? []).length > 0 ? (dep.acceptedStates ?? []) : ["Ready"];
      for (const s of matching)
        if (!accepted.includes(deploymentState(s))) pending.push(s.metadata.name ?? "");
    }
    return pending.length > 0 ? `dependent bundle(s) are not ready: [${pending.join(" ")}]` : undefined;
  }

  /** The downstream objects of a cluster, by "namespace/kind/name". */
  private downstreamOf(cluster: string): Map<string, DownstreamObject> {
    let m = this.downstreamStore.get(cluster);
    if (!m) {
      m = new Map();
      this.downstreamStore.set(cluster, m);
    }
    return m;
  }

  /**
   * helmdeployer/install.go getValues: valuesFrom read on the downstream cluster. Here the
   * downstream cluster holds only what downstreamResources copied there.
   */
  private valuesFromProblem(
    cluster: string,
    options: DeploymentOptions,
    namespace: string,
  ): string | undefined {
    const store = this.downstreamOf(cluster);
    const copied = (kind: string, name: string): boolean =>
      (options.downstreamResources ?? []).some(
        (d) => (d.kind ?? "").toLowerCase() === kind.toLowerCase() && d.name === name,
      );
    for (const vf of options.helm?.valuesFrom ?? []) {
      for (const [kind, ref, plural] of [
        ["ConfigMap", vf.configMapKeyRef, "configmaps"],
        ["Secret", vf.secretKeyRef, "secrets"],
      ] as const) {
        if (!ref) continue;
        const name = ref.name ?? "";
        const ns = !ref.namespace || copied(kind, name) ? namespace : ref.namespace;
        const key = or(ref.key, "values.yaml");
        const obj = store.get(`${ns}/${kind}/${name}`);
        if (!obj) return `${plural} ${JSON.stringify(name)} not found`;
        const text = obj.data[key];
        if (text === undefined)
          return `key ${key} is missing from ${kind.toLowerCase()} ${ns}/${name}, can't use it in valuesFrom`;
        const parsed = parseYAML(text);
        if ("error" in parsed) return `error converting YAML to JSON: ${parsed.error}`;
        if (parsed.value !== null && !isObject(parsed.value))
          return `json: cannot unmarshal ${jsonType(parsed.value)} into Go value of type map[string]interface {}`;
      }
    }
    return undefined;
  }

  /** The error rendering raw YAML would give the agent (rawObjects), for bundles without a chart. */
  private async manifestProblem(
    bd: BundleDeployment,
    options: DeploymentOptions,
  ): Promise<string | undefined> {
    const bundle = await this.client.get<Bundle>(
      BundleResource,
      bd.metadata.labels?.[BundleLabel] ?? "",
      this.namespace,
    );
    const resources = bundle?.spec.resources ?? [];
    if (styleOf(resources, options) !== "raw") return undefined;
    return rawObjects(resources).error;
  }

  /**
   * agent/controller/bundledeployment_controller.go Reconcile with deployer.go DeployBundle
   * and monitor/updatestatus.go UpdateStatus: deploy when the deployment ID changed, then
   * report readiness. Nothing is installed: the "release" is a name and a revision.
   * Returns whether the status changed.
   */
  private async agentReconcile(
    cluster: FleetCluster,
    control: ClusterControl,
    bd: BundleDeployment,
    siblings: BundleDeployment[],
    now: string,
  ): Promise<boolean> {
    if (bd.metadata.deletionTimestamp || bd.spec.paused || bd.spec.offSchedule || bd.spec.waitingForValues)
      return false;
    // Staged only (never rolled out): nothing to deploy yet.
    if (!bd.spec.deploymentID) return false;
    const clusterName = cluster.metadata.name ?? "";
    const bdName = bd.metadata.name ?? "";
    const status: BundleDeploymentStatus = clone(bd.status ?? {});
    const options = clone(bd.spec.options ?? {});
    if (bd.spec.valuesHash) {
      const secret = await this.client.get<Secret>(SecretResource, bdName, bd.metadata.namespace);
      const values = unb64(secret?.data?.values);
      const staged = unb64(secret?.data?.stagedValues);
      if (!secret || sha256hex(values + staged) !== bd.spec.valuesHash) {
        this.log(
          `agent ${clusterName}: ${bdName}: retrying, hash mismatch between secret and bundledeployment`,
        );
        return false;
      }
      if (values) (options.helm ??= {}).values = JSON.parse(values) as Values;
    }
    const namespace = or(options.namespace, options.defaultNamespace, AgentDefaultNamespace);

    // copyResourcesFromUpstream: from the cluster namespace to the deployment namespace downstream.
    let force = false;
    if ((options.downstreamResources ?? []).length > 0) {
      const store = this.downstreamOf(clusterName);
      for (const dr of options.downstreamResources ?? []) {
        const name = dr.name ?? "";
        const kind = (dr.kind ?? "").toLowerCase();
        if (kind !== "secret" && kind !== "configmap") {
          this.log(
            `agent ${clusterName}: ${bdName}: unknown resource type for copy to downstream cluster: ${JSON.stringify(dr.kind ?? "")}`,
          );
          return false;
        }
        const src =
          kind === "secret"
            ? await this.client.get<Secret>(SecretResource, name, bd.metadata.namespace)
            : await this.client.get<ConfigMap>(ConfigMapResource, name, bd.metadata.namespace);
        if (!src) {
          // The bundle controller copies these after creating the BundleDeployment: retry.
          this.log(
            `agent ${clusterName}: ${bdName}: could not get ${kind === "secret" ? "secret" : "config map"} ${bd.metadata.namespace ?? ""}/${name} from upstream namespace for copying`,
          );
          return false;
        }
        const data = Object.fromEntries(
          Object.entries(src.data ?? {}).map(([k, v]) => [k, kind === "secret" ? unb64(v) : v]),
        );
        const typed: DownstreamObject = {
          kind: kind === "secret" ? "Secret" : "ConfigMap",
          namespace,
          name,
          labels: { ...(src.metadata.labels ?? {}), [BundleDeploymentOwnershipLabel]: bdName },
          data,
        };
        const key = `${namespace}/${typed.kind}/${name}`;
        const before = store.get(key);
        if (before && !deepEqual(before.data, data)) force = true;
        store.set(key, typed);
      }
      if (bd.spec.downstreamResourcesGeneration)
        status.downstreamResourcesGeneration = bd.spec.downstreamResourcesGeneration;
    }

    // DeployBundle: dependencies first.
    const depError = this.dependencyError(bd, siblings);
    if (depError) {
      status.conditions = setErrorCondition(status.conditions, "Deployed", depError, now);
      return this.writeAgentStatus(bd, status);
    }
    const releaseName = or(options.helm?.releaseName, helmReleaseName(bdName));
    if (force || (bd.spec.deploymentID ?? "") !== (status.appliedDeploymentID ?? "")) {
      const problem = this.valuesFromProblem(clusterName, options, namespace);
      if (problem) {
        // Not one of deployErrPattern's errors: the reconcile fails with Deployed=False.
        status.conditions = setErrorCondition(status.conditions, "Deployed", problem, now);
        return this.writeAgentStatus(bd, status);
      }
      if (control.installError) {
        // What Helm says about a release it cannot install (a resource another release or
        // nobody owns, a template that does not render), which the driver cannot compute
        // without Helm: agent/controller/bundledeployment_controller.go Reconcile sets
        // Deployed=False with DeployBundle's error and keeps appliedDeploymentID.
        status.conditions = setErrorCondition(status.conditions, "Deployed", control.installError, now);
        return this.writeAgentStatus(bd, status);
      }
      const invalid = await this.manifestProblem(bd, options);
      if (invalid && !invalid.startsWith("YAML parse error")) {
        status.conditions = setErrorCondition(status.conditions, "Deployed", invalid, now);
        return this.writeAgentStatus(bd, status);
      }
      if (invalid) {
        // deployer.go deployErrToStatus: "YAML parse error" is recorded in the status.
        status.ready = false;
        status.nonModified = true;
        status.conditions = setErrorCondition(status.conditions, "Ready", `not ready: ${invalid}`, now);
        status.conditions = setErrorCondition(
          status.conditions,
          "Installed",
          `not installed: ${invalid}`,
          now,
        );
        delete status.release;
        status.appliedDeploymentID = bd.spec.deploymentID ?? "";
        status.conditions = setErrorCondition(status.conditions, "Deployed", undefined, now);
        return this.writeAgentStatus(bd, status);
      }
      const key = `${clusterName}/${bd.metadata.namespace ?? ""}/${bdName}`;
      const revision = (this.revisions.get(key) ?? 0) + 1;
      this.revisions.set(key, revision);
      // helmdeployer.ReleaseToResourceID: <namespace>/<release name>:<revision>
      status.release = `${namespace}/${releaseName}:${revision}`;
      status.appliedDeploymentID = bd.spec.deploymentID ?? "";
      // Helm's upgrade puts the release's objects back as the chart has them.
      control.drifts?.delete(bd.metadata.labels?.[BundleLabel] ?? "");
    }
    status.conditions = setErrorCondition(status.conditions, "Installed", undefined, now);
    status.conditions = setErrorCondition(status.conditions, "Deployed", undefined, now);

    // monitor.ShouldUpdateStatus + UpdateStatus
    if ((bd.spec.deploymentID ?? "") === (status.appliedDeploymentID ?? "")) {
      status.syncGeneration = options.forceSyncGeneration ?? 0;
      if (control.failure) {
        const nonReady: NonReadyStatus = {
          kind: "Deployment",
          apiVersion: "apps/v1",
          namespace,
          name: releaseName,
          summary: { state: "error", error: true, message: [control.failure] },
        };
        status.ready = false;
        status.nonModified = true;
        status.nonReadyStatus = [nonReady];
        delete status.modifiedStatus;
        status.conditions = setErrorCondition(status.conditions, "Ready", nonReadyString(nonReady), now);
      } else {
        status.ready = true;
        delete status.nonReadyStatus;
        // updateFromPreviousDeployment: drift the comparePatches do not hide is Modified,
        // and readyError reports the first modified object on Ready.
        const modified = (control.drifts?.get(bd.metadata.labels?.[BundleLabel] ?? "") ?? [])
          .filter((d) => isModification(d, options.diff?.comparePatches ?? []))
          .map((d): ModifiedStatus =>
            omitEmpty({
              kind: d.kind,
              apiVersion: d.apiVersion,
              namespace: d.namespace,
              name: d.name,
              ...(d.pointer === undefined ? { missing: true } : { patch: driftPatch(d) }),
            }),
          );
        status.nonModified = modified.length === 0;
        if (modified.length > 0) status.modifiedStatus = modified;
        else delete status.modifiedStatus;
        const first = modified[0];
        status.conditions = setErrorCondition(
          status.conditions,
          "Ready",
          first ? modifiedString(first) : undefined,
          now,
        );
      }
      status.conditions = setErrorCondition(status.conditions, "Monitored", undefined, now);
    }
    return this.writeAgentStatus(bd, status);
  }

  private async writeAgentStatus(bd: BundleDeployment, status: BundleDeploymentStatus): Promise<boolean> {
    const changed = await this.writeStatus(BundleDeploymentResource, bd, status);
    bd.status = status;
    return changed;
  }

  // ---- 5. status controllers ------------------------------------------------------------------

  /** reconciler/bundledeployment_controller.go: status.display from the conditions and the state. */
  private async bundleDeploymentDisplays(view: PassView): Promise<void> {
    const message = (c: Condition | undefined): string =>
      !c ? "" : c.reason === "Error" ? `Error: ${c.message ?? ""}` : c.status;
    for (const bd of view.bds) {
      const conds = bd.status?.conditions;
      const display = omitEmpty({
        deployed: message(conds?.find((c) => c.type === "Deployed")),
        monitored: message(conds?.find((c) => c.type === "Monitored")),
        state: deploymentState(bd),
      });
      await this.writeStatus(BundleDeploymentResource, bd, { ...(bd.status ?? {}), display });
    }
  }

  /** reconciler/cluster_controller.go Reconcile: summary, display and conditions of each Cluster. */
  private async clusterStatuses(view: PassView): Promise<void> {
    const repos = new Set(view.gitRepos.map((r) => `${r.metadata.namespace ?? ""}/${r.metadata.name ?? ""}`));
    for (const cluster of view.clusters) {
      if (cluster.metadata.deletionTimestamp) continue;
      const status: ClusterStatus = clone(cluster.status ?? {});
      if (!status.namespace) continue;
      const bds = view.bds.filter((bd) => bd.metadata.namespace === status.namespace).sort(byName);
      const summary = emptySummary();
      const gitRepos = new Map<string, boolean>();
      for (const bd of bds) {
        const state = deploymentState(bd);
        incrementState(
          summary,
          bd.metadata.name ?? "",
          state,
          deploymentMessage(bd),
          bd.status?.modifiedStatus,
          bd.status?.nonReadyStatus,
        );
        summary.desiredReady++;
        const ns = bd.metadata.labels?.[BundleNamespaceLabel];
        const repo = bd.metadata.labels?.[RepoLabel];
        if (ns && repo)
          gitRepos.set(`${ns}/${repo}`, state === "Ready" || (gitRepos.get(`${ns}/${repo}`) ?? false));
      }
      status.summary = summary;
      status.desiredReadyGitRepos = 0;
      status.readyGitRepos = 0;
      for (const [key, ready] of gitRepos) {
        if (!repos.has(key)) continue;
        status.desiredReadyGitRepos++;
        if (ready) status.readyGitRepos++;
      }
      status.desiredReadyHelmOps = 0;
      status.readyHelmOps = 0;
      status.conditions = setReadyConditions(status.conditions, "Bundle", summary, view.now);
      const state = summaryState(summary);
      const lastSeen = status.agent?.lastSeen;
      status.display = {
        readyBundles: `${summary.ready}/${summary.desiredReady}`,
        ...(lastSeen ? (state ? { state } : {}) : { state: "WaitCheckIn" }),
      };
      status.conditions = setErrorCondition(status.conditions, "Processed", undefined, view.now);
      await this.writeStatus(ClusterResource, cluster, status);
    }
  }

  /** reconciler/clustergroup_controller.go Reconcile */
  private async clusterGroupStatuses(view: PassView): Promise<void> {
    for (const group of view.groups) {
      const status = clone(group.status ?? {});
      const selector = group.spec?.selector;
      const m = selector ? selectorMatcher(selector) : undefined;
      if (typeof m === "string") {
        status.conditions = setErrorCondition(status.conditions, "Processed", m, view.now);
        await this.writeStatus(ClusterGroupResource, group, status);
        continue;
      }
      const clusters = m ? view.clusters.filter((c) => m(c.metadata.labels)) : [];
      const summary = emptySummary();
      const nonReady: string[] = [];
      let nonReadyCount = 0;
      for (const c of clusters) {
        const s = c.status?.summary ?? emptySummary();
        for (const [, key] of Object.entries(summaryCounter)) {
          const add = (s[key] as number | undefined) ?? 0;
          if (add)
            (summary as unknown as Record<string, number>)[key] =
              ((summary[key] as number | undefined) ?? 0) + add;
        }
        summary.desiredReady += s.desiredReady;
        if ((summary.nonReadyResources ?? []).length < 10 && (s.nonReadyResources ?? []).length > 0)
          summary.nonReadyResources = [...(summary.nonReadyResources ?? []), ...(s.nonReadyResources ?? [])];
        if (s.desiredReady !== s.ready) {
          nonReadyCount++;
          if (nonReady.length < 10) nonReady.push(c.metadata.name ?? "");
        }
      }
      status.summary = summary;
      status.clusterCount = clusters.length;
      status.nonReadyClusterCount = nonReadyCount;
      status.nonReadyClusters = nonReady.length > 0 ? nonReady : undefined;
      status.conditions = setReadyConditions(status.conditions, "Bundle", summary, view.now);
      const state = summaryState(summary);
      status.display = {
        readyBundles: `${summary.ready}/${summary.desiredReady}`,
        readyClusters: `${clusters.length - nonReadyCount}/${clusters.length}${nonReady.length > 0 ? ` (${nonReady.join(",")})` : ""}`,
        ...(state ? { state } : {}),
      };
      status.conditions = setErrorCondition(status.conditions, "Processed", undefined, view.now);
      await this.writeStatus(ClusterGroupResource, group, status);
    }
  }

  /**
   * gitops/reconciler/status_controller.go: the GitRepo's summary from its
   * BundleDeployments (status.SetFields), Ready from that summary — replaced by the Ready
   * condition of a failing Bundle (setReadyStatusFromBundle) — and display; plus what the
   * gitjob recorded this pass.
   */
  private async gitRepoStatuses(view: PassView, jobStatus: Map<string, GitRepoStatus>): Promise<void> {
    const bundles = await this.bundles();
    for (const repo of view.gitRepos) {
      if (repo.metadata.deletionTimestamp) continue;
      const name = repo.metadata.name ?? "";
      const status: GitRepoStatus = clone(jobStatus.get(name) ?? repo.status ?? {});
      const bds = view.bds.filter((bd) => bd.metadata.labels?.[RepoLabel] === name).sort(byUID);
      const summary = emptySummary();
      let maxState = "";
      let message = "";
      const count = new Map<string, number>();
      const ready = new Map<string, number>();
      for (const bd of bds) {
        const state = deploymentState(bd);
        incrementState(
          summary,
          bd.metadata.name ?? "",
          state,
          deploymentMessage(bd),
          bd.status?.modifiedStatus,
          bd.status?.nonReadyStatus,
        );
        summary.desiredReady++;
        if ((stateRank[state] ?? 0) > (stateRank[maxState] ?? 0)) {
          maxState = state;
          message = deploymentMessage(bd);
        }
        const c = bd.metadata.labels?.[ClusterLabel];
        const cns = bd.metadata.labels?.[ClusterNamespaceLabel];
        if (!c || !cns) continue;
        const key = `${cns}/${c}`;
        count.set(key, (count.get(key) ?? 0) + 1);
        if (state === "Ready") ready.set(key, (ready.get(key) ?? 0) + 1);
      }
      if (maxState === "Ready") {
        maxState = "";
        message = "";
      }
      status.summary = summary;
      status.desiredReadyClusters = count.size;
      status.readyClusters = [...ready].filter(([k, n]) => count.get(k) === n).length;
      status.conditions = setReadyConditions(status.conditions, "Bundle", summary, view.now);
      status.display = omitEmpty({
        readyBundleDeployments: `${summary.ready}/${summary.desiredReady}`,
        state: status.gitJobStatus !== "Current" ? "GitUpdating" : maxState,
        message,
        error: message.length > 0,
      });
      const failing = bundles
        .filter((b) => b.metadata.labels?.[RepoLabel] === name)
        .sort(byUID)
        .map((b) => b.status?.conditions?.find((c) => c.type === "Ready" && c.status === "False"))
        .find((c) => c !== undefined);
      if (failing)
        status.conditions = (status.conditions ?? []).map((c) => (c.type === "Ready" ? failing : c));
      status.readyClusters ??= 0;
      status.observedGeneration ??= 0;
      await this.writeStatus(GitRepoResource, repo, status);
    }
  }
}
