// Fleet's objects as the deployment operator uses them (fleet.cattle.io/v1alpha1, Fleet ≥
// 0.16), and the GitRepo of one rendered bundle — a pure function. Fleet's API: see
// docs/architecture.md ("Delivery to Fleet").
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import { plainHttp, type RegistryAccess } from "../catalog/registry-client.ts";
import type { KubeObject, ResourceType } from "../runtime/client.ts";
import { parse } from "yaml";
import { type RenderedBundle } from "./render.ts";
import { isMap } from "./values.ts";
import { dnsName } from "../runtime/names.ts";
import type { ClusterTarget } from "../inventory/selector.ts";

const fleet = (kind: string, plural: string): ResourceType => ({
  group: "fleet.cattle.io",
  version: "v1alpha1",
  kind,
  plural,
  namespaced: true,
});

export const GitRepoResource = fleet("GitRepo", "gitrepos");
export const BundleDeploymentResource = fleet("BundleDeployment", "bundledeployments");

export const ControllerRevisionResource: ResourceType = {
  group: "apps",
  version: "v1",
  kind: "ControllerRevision",
  plural: "controllerrevisions",
  namespaced: true,
};

/** Labels on everything the deployment operator creates, and on Fleet's Bundles (fleet.yaml labels). */
export const deploymentLabel = "outpost.dev/deployment";
export const applicationLabel = "outpost.dev/application";
/** On a GitRepo: the namespace its application is installed in on the clusters. */
export const namespaceAnnotation = "outpost.dev/namespace";
/** On a GitRepo: the Helm release name its application is installed as. */
export const releaseAnnotation = "outpost.dev/release";
/** Fleet's labels on BundleDeployments (internal/cmd/controller/target/target.go). */
export const bundleNamespaceLabel = "fleet.cattle.io/bundle-namespace";
export const bundleNameLabel = "fleet.cattle.io/bundle-name";
export const clusterLabel = "fleet.cattle.io/cluster";
export const commitLabel = "fleet.cattle.io/commit";

export interface GitRepo extends KubeObject {
  spec: {
    repo: string;
    branch?: string;
    revision?: string;
    paths: string[];
    targets: ClusterTarget[];
    paused: boolean;
    clientSecretName?: string;
    helmSecretName?: string;
    helmRepoURLRegex?: string;
    forceSyncGeneration?: number;
    pollingInterval?: string;
  };
  status?: {
    commit?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/**
 * summary.ReadyMessage's entries: per-cluster states, not errors — the GitRepo's own
 * ("NotReady(2) [Bundle shop-web: …]") or a Bundle's copied over it ("ErrApplied(1)
 * [Cluster fleet-default/store-1: …]").
 */
const readySummaryEntry =
  /(ErrApplied|WaitApplied|Modified|OutOfSync|Pending|NotReady)\(\d+\) \[(Bundle|Cluster) /;

/**
 * Fleet's own error for a GitRepo, if it has one: a job that failed or a clone that did
 * not (Stalled=True), or a Bundle error — targeting, values, a downstream copy — which
 * Fleet's status controller copies from the Bundle's Ready=False over the GitRepo's Ready
 * (gitops/reconciler/status_controller.go setReadyStatusFromBundle). A Ready=False that
 * only summarizes BundleDeployment states (summary.ReadyMessage) is per-cluster state,
 * reported per cluster instead.
 */
export function gitRepoError(repo: GitRepo): string | undefined {
  const conditions = repo.status?.conditions ?? [];
  const stalled = conditions.find((c) => c.type === "Stalled" && c.status === "True");
  if (stalled) return stalled.message ?? stalled.reason ?? "GitRepo failed";
  const ready = conditions.find((c) => c.type === "Ready" && c.status === "False");
  if (ready?.message && !readySummaryEntry.test(ready.message)) return ready.message;
  return undefined;
}

/** Where a namespace's deployments are committed (Secret outpost-git of the namespace). */
export interface GitTargetRepo {
  url: string;
  branch: string;
  /** The Secret Fleet clones with (kubernetes.io/basic-auth), if the repository needs credentials. */
  secretName?: string;
}

/**
 * How Fleet's gitjob is to fetch a bundle's chart: the helm Secret the GitRepo names
 * (`spec.helmSecretName`, keys as gitops/reconciler/gitjob.go volumesFromSecret and
 * argsAndEnvs read them: username, password, cacerts, basicHTTP) and the URL prefix the
 * credentials may be sent to. Fleet forwards them only to charts whose URL matches
 * `spec.helmRepoURLRegex` — none when it is empty (bundlereader/resources.go
 * shouldAddAuthToRequest) — so the prefix is the Registry's own URL. Undefined when an
 * anonymous HTTPS registry needs nothing.
 */
export interface HelmAccess {
  secretName: string;
  urlRegex: string;
  data: Record<string, string>;
}

/** The helm Secret of a Registry, next to it (owned by it). */
export const helmSecretName = (registry: string): string => dnsName(`outpost-helm-${registry}`, 253);

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function helmAccessFor(
  registry: Registry,
  access: RegistryAccess | undefined,
): HelmAccess | undefined {
  const data: Record<string, string> = {};
  if (access?.username !== undefined) {
    data.username = access.username;
    data.password = access.password ?? "";
  }
  if (access?.caPem) data.cacerts = access.caPem;
  // Helm's registry client speaks HTTPS to oci:// unless told otherwise (loaddirectory.go
  // downloadOCIChart: ClientOptPlainHTTP only with basicHTTP).
  if (registry.spec.type !== "helm" && plainHttp(registry.spec.url)) data.basicHTTP = "true";
  if (Object.keys(data).length === 0) return undefined;
  const url = registry.spec.url.replace(/\/+$/, "");
  // What Fleet matches the regex against: helm.repo for a Helm repository, else the chart
  // reference (oci://host/path/chart, see render.ts chartRef).
  const prefix = registry.spec.type === "helm" ? url : `${url.replace(/^(https?|oci):\/\//, "oci://")}/`;
  return {
    // One per Registry, shared by the GitRepos of every deployment that uses it.
    secretName: helmSecretName(registry.metadata.name ?? ""),
    urlRegex: `${escapeRegex(prefix)}${registry.spec.type === "helm" ? "(?:/|$)" : ""}`,
    data,
  };
}

export interface GitRepoOptions {
  paused?: boolean;
  /** Default: the bundle's own targets. */
  targets?: ClusterTarget[];
  /** The helm Secret its chart is fetched with. */
  helm?: HelmAccess;
  /**
   * How many times the bundle's secret values changed (0: never). It becomes the GitRepo's
   * forceSyncGeneration, which Fleet copies into every BundleDeployment's options: a new
   * deployment ID, so agents upgrade the release and a failure stays reported (Fleet's
   * own redeploy on a copied Secret, DownstreamResourcesGeneration, keeps the deployment
   * ID: a failed upgrade is retried as "already installed" and reported deployed).
   */
  valuesGeneration?: number;
}

/**
 * The GitRepo delivering one bundle at `commit`, owned by its AppDeployment. Pinned by
 * `revision`, with no `branch`: Fleet starts a job for a GitRepo whenever its commit
 * moves (gitops/reconciler/gitjob_controller.go shouldCreateJob), so a GitRepo following
 * the branch would re-run for every other deployment's commit; and its clone takes the
 * branch over the revision when both are set (gitops/reconciler/gitjob.go, the gitcloner's
 * arguments), so the branch must be absent for the pin to hold.
 */
export function gitRepoFor(
  dep: AppDeployment,
  bundle: RenderedBundle,
  git: GitTargetRepo,
  commit: string,
  options: GitRepoOptions = {},
): GitRepo {
  const { paused = false, targets = bundle.targets, helm, valuesGeneration = 0 } = options;
  const name = dep.metadata.name ?? "";
  return {
    apiVersion: "fleet.cattle.io/v1alpha1",
    kind: "GitRepo",
    metadata: {
      name: bundle.bundleName,
      namespace: dep.metadata.namespace,
      labels: {
        [deploymentLabel]: name,
        [applicationLabel]: bundle.application,
        "app.kubernetes.io/managed-by": "outpost",
      },
      annotations: { [namespaceAnnotation]: bundle.namespace, [releaseAnnotation]: bundle.releaseName },
      ownerReferences: [
        {
          apiVersion: "deploy.outpost.dev/v1alpha1",
          kind: "AppDeployment",
          name,
          uid: dep.metadata.uid ?? "",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      repo: git.url,
      revision: commit,
      paths: [bundle.path],
      targets,
      paused,
      ...(git.secretName ? { clientSecretName: git.secretName } : {}),
      ...(helm ? { helmSecretName: helm.secretName, helmRepoURLRegex: helm.urlRegex } : {}),
      ...(valuesGeneration > 0 ? { forceSyncGeneration: valuesGeneration } : {}),
    },
  };
}

// Fleet's target builder (internal/cmd/controller/target/target.go).
const clusterLabelPrefix = "global.fleet.clusterLabels.";
const maxTemplateRecursionDepth = 50;

/**
 * What of a bundle's values Fleet would not pass to Helm as written. Fleet's controller
 * replaces every string value that begins with `global.fleet.clusterLabels.` by that
 * cluster label's value ("" when the cluster lacks it) — in maps and in maps inside lists,
 * whether or not helm.disablePreProcess is set — and refuses values nested deeper than 50
 * maps (target/builder.go processLabelValues), for the bundle's values and the per-cluster
 * overrides merged into them. Secret values arrive through valuesFrom, after that step.
 */
export function fleetValueProblems(bundle: RenderedBundle): string[] {
  const problems: string[] = [];
  const walk = (where: string, m: Record<string, unknown>, path: string, depth: number): boolean => {
    if (depth > maxTemplateRecursionDepth) {
      problems.push(
        `${where}: values nested deeper than ${maxTemplateRecursionDepth + 1} levels (at ${path}), which Fleet refuses to deliver; flatten them`,
      );
      return false;
    }
    for (const [k, v] of Object.entries(m)) {
      const at = path ? `${path}.${k}` : k;
      if (typeof v === "string" && v.startsWith(clusterLabelPrefix))
        problems.push(
          `${where}: ${at} is "${v}", which Fleet replaces by the cluster's label ${v.slice(clusterLabelPrefix.length)} instead of passing it to Helm; Outpost passes values as written, so change the value (a per-cluster value: spec.overrides with a clusterSelector)`,
        );
      const maps = isMap(v) ? [v] : Array.isArray(v) ? v.filter(isMap) : [];
      for (const item of maps) if (!walk(where, item, at, depth + 1)) return false;
    }
    return true;
  };
  const values: unknown = parse(bundle.files["values.yaml"] ?? "{}");
  if (isMap(values)) walk(`values of application ${bundle.application}`, values, "", 0);
  for (const o of bundle.overrides) walk(`spec.overrides[${o.index}].values`, o.values, "", 0);
  return problems;
}
