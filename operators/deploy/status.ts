// Deployment status, as pure functions: which clusters each application targets, and per
// (application, cluster) whether the current revision runs there and is ready — as the
// delivery engine reports it (fleetStates for Fleet's BundleDeployments, argoStates in
// argocd.ts for Argo CD's Applications). Offline clusters are offline, not failed. The
// result stays small at any number of clusters: counts, and the first few clusters that
// are not ready.
import { offlineClusters, targetedClusters, type InventoryCluster } from "../inventory/inventory.ts";
import { contentLabel } from "./render.ts";
import type { ClusterTarget } from "../inventory/selector.ts";

/** The parts of a Fleet Cluster this needs. */
export interface FleetCluster {
  metadata: { name?: string; labels?: Record<string, string> };
  status?: { agent?: { lastSeen?: string } };
}

/** The parts of a Fleet BundleDeployment this needs. */
export interface FleetBundleDeployment {
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  spec?: {
    deploymentID?: string;
    stagedDeploymentID?: string;
    options?: { forceSyncGeneration?: number } & Record<string, unknown>;
    downstreamResourcesGeneration?: number;
  };
  status?: {
    ready?: boolean;
    nonModified?: boolean;
    modifiedStatus?: {
      kind?: string;
      name?: string;
      namespace?: string;
      missing?: boolean;
      delete?: boolean;
    }[];
    appliedDeploymentID?: string;
    downstreamResourcesGeneration?: number;
    display?: { state?: string };
    conditions?: { type: string; status: string; message?: string }[];
    nonReadyStatus?: { kind?: string; name?: string; summary?: { message?: string[] } }[];
  };
}

/**
 * What the deployment operator keeps of a BundleDeployment: identity, labels and the
 * status fields status.ts reads (at 30,000 of them, the rest is hundreds of megabytes).
 */
export function slimBundleDeployment(bd: FleetBundleDeployment): FleetBundleDeployment {
  const { name, namespace, uid, resourceVersion, labels } = bd.metadata;
  const s = bd.status;
  // Deployed=False (the agent could not apply) and the first other failing condition.
  const deployed = s?.conditions?.find((c) => c.type === "Deployed" && c.status === "False");
  const other = s?.conditions?.find((c) => c.type !== "Deployed" && c.status === "False" && c.message);
  const conditions = [deployed, other].filter((c) => c !== undefined);
  const resource = s?.nonReadyStatus?.[0];
  const modified = s?.modifiedStatus?.[0];
  const spec = bd.spec;
  return {
    metadata: { name, namespace, uid, resourceVersion, labels },
    spec: {
      ...(spec?.deploymentID !== undefined ? { deploymentID: spec.deploymentID } : {}),
      ...(spec?.stagedDeploymentID !== undefined ? { stagedDeploymentID: spec.stagedDeploymentID } : {}),
      ...(spec?.options?.forceSyncGeneration
        ? { options: { forceSyncGeneration: spec.options.forceSyncGeneration } }
        : {}),
      ...(spec?.downstreamResourcesGeneration
        ? { downstreamResourcesGeneration: spec.downstreamResourcesGeneration }
        : {}),
    },
    status: {
      ...(s?.ready !== undefined ? { ready: s.ready } : {}),
      ...(s?.nonModified !== undefined ? { nonModified: s.nonModified } : {}),
      ...(modified ? { modifiedStatus: [modified] } : {}),
      ...(s?.appliedDeploymentID !== undefined ? { appliedDeploymentID: s.appliedDeploymentID } : {}),
      ...(s?.downstreamResourcesGeneration
        ? { downstreamResourcesGeneration: s.downstreamResourcesGeneration }
        : {}),
      ...(s?.display?.state !== undefined ? { display: { state: s.display.state } } : {}),
      ...(conditions.length > 0 ? { conditions } : {}),
      ...(resource ? { nonReadyStatus: [resource] } : {}),
    },
  };
}

/**
 * Failed: the engine could not apply the current revision there (Fleet's ErrApplied, an
 * Argo CD sync that failed); it counts as not ready.
 */
export type ClusterState = "Ready" | "NotReady" | "Failed" | "Pending" | "Offline";

/** One application on one cluster, as its delivery engine reports it. */
export interface ClusterAppState {
  state: ClusterState;
  message: string;
}

export interface AppTargets {
  application: string;
  /** The bundle of the current revision. */
  bundleName: string;
  /** Label outpost.dev/content of the current content: other BundleDeployments are outdated. */
  contentHash?: string;
  targets: ClusterTarget[];
}

/**
 * The engine's state of an application on a cluster (clusters offline in the inventory
 * aside). `absent`, when the engine gives it, names the clusters on which the engine holds
 * something of the application; on every other cluster the application's state is the one
 * it returns. Status then looks at those clusters only, not at every (application,
 * cluster) pair: a new deployment to ten thousand clusters has nothing on any yet.
 */
export interface EngineStates {
  (app: AppTargets, cluster: string): ClusterAppState;
  absent?: (app: AppTargets) => { present: { has(cluster: string): boolean }; state: ClusterAppState };
}

export interface StatusInput {
  apps: AppTargets[];
  clusters: InventoryCluster[] | FleetCluster[];
  stateOf: EngineStates;
  /** Names of the offline clusters (default: computed from `now` and `offlineAfterMs`). */
  offline?: ReadonlySet<string>;
  now?: Date;
  /** An agent silent for longer is offline. */
  offlineAfterMs?: number;
  /** At most this many non-ready clusters are listed. */
  maxListed?: number;
  /** The clusters a target list selects, when the caller memoizes it (default: computed here). */
  targeted?: (targets: ClusterTarget[]) => { metadata: { name?: string } }[];
}

export interface DeploymentStatusSummary {
  summary: { targets: number; ready: number; notReady: number; offline: number; pending: number };
  applications: { name: string; targets: number; ready: number; message?: string }[];
  clusters: { name: string; state: ClusterState; message: string }[];
}

const offlineMessage = "the cluster's agent has not reported recently; it catches up when it is back";

const rank: Record<ClusterState, number> = { Ready: 0, Pending: 1, NotReady: 2, Failed: 3, Offline: 4 };

/** Fleet's agent message for a bundle held back by its dependsOn. */
const waitsOnDependency = (message: string): boolean => message.includes("dependent bundle(s) are not ready");

function notReadyMessage(bd: FleetBundleDeployment): string {
  const cond = bd.status?.conditions?.find((c) => c.status === "False" && c.message);
  const res = bd.status?.nonReadyStatus?.[0];
  const resMsg = res
    ? `${res.kind ?? ""} ${res.name ?? ""}: ${(res.summary?.message ?? []).join(", ")}`.trim()
    : undefined;
  return cond?.message ?? resMsg ?? bd.status?.display?.state ?? "not ready";
}

/**
 * Fleet's per-cluster state, from the BundleDeployments of the current bundles, in the
 * order of Fleet's summary.GetDeploymentState (internal/cmd/controller/summary/summary.go):
 * - the BundleDeployment must carry the current content (label outpost.dev/content), and
 *   its deploymentID must be the staged one: Fleet copies the Bundle's labels onto a
 *   BundleDeployment it holds back (a partition not reached, maxUnavailable, a paused
 *   cluster) and stages the new ID in `stagedDeploymentID` without deploying it, so the
 *   label alone does not mean the revision is there;
 * - appliedDeploymentID ≠ deploymentID: with Deployed=False the agent failed to apply it
 *   (ErrApplied: a template error, an ownership conflict, a missing valuesFrom Secret):
 *   Failed, with the agent's message — except while it waits for a dependency, which is
 *   Pending; otherwise it is on its way (WaitApplied): Pending;
 * - its options must carry the bundle's current `forceSyncGeneration` (`valuesGenerations`,
 *   by bundle name: how many times the secret values changed), and the agent must have
 *   copied the Secrets it names (spec.downstreamResourcesGeneration reached in status):
 *   until then the changed secret values are on their way, Pending;
 * - applied but not ready: NotReady; applied and ready but the cluster's resources differ
 *   from it (Modified, drift): NotReady, saying which resource.
 * States keep Fleet's names in their messages (OutOfSync, Modified).
 */
export function fleetStates(
  bundleDeployments: FleetBundleDeployment[],
  valuesGenerations = new Map<string, number>(),
): EngineStates {
  // By bundle, by cluster.
  const byBundle = new Map<string, Map<string, FleetBundleDeployment>>();
  for (const bd of bundleDeployments) {
    const l = bd.metadata.labels ?? {};
    const bundle = l["fleet.cattle.io/bundle-name"] ?? "";
    let clusters = byBundle.get(bundle);
    if (!clusters) byBundle.set(bundle, (clusters = new Map<string, FleetBundleDeployment>()));
    clusters.set(l["fleet.cattle.io/cluster"] ?? "", bd);
  }
  const notApplied: ClusterAppState = {
    state: "Pending",
    message: "the current revision is not applied yet",
  };
  const none: ReadonlyMap<string, FleetBundleDeployment> = new Map();
  const states: EngineStates = (app, cluster) => {
    const bd = byBundle.get(app.bundleName)?.get(cluster);
    const id = bd?.spec?.deploymentID;
    if (
      id === undefined ||
      (app.contentHash !== undefined && bd?.metadata.labels?.[contentLabel] !== app.contentHash)
    )
      return notApplied;
    const staged = bd?.spec?.stagedDeploymentID;
    if (staged !== undefined && staged !== "" && staged !== id)
      return {
        state: "Pending",
        message:
          "OutOfSync: Fleet holds the current revision back (staged, not deployed: its rollout partition is not reached, maxUnavailable is used up, or the cluster is paused)",
      };
    if ((bd?.spec?.options?.forceSyncGeneration ?? 0) !== (valuesGenerations.get(app.bundleName) ?? 0))
      return { state: "Pending", message: "Fleet has not rolled out the changed secret values yet" };
    if (id !== bd?.status?.appliedDeploymentID) {
      const deployed = bd?.status?.conditions?.find((c) => c.type === "Deployed" && c.status === "False");
      if (deployed?.message && !waitsOnDependency(deployed.message))
        return {
          state: "Failed",
          message: `Fleet could not apply the current revision: ${deployed.message}`,
        };
      if (deployed?.message) return { state: "Pending", message: deployed.message };
      return { state: "Pending", message: "the current revision is not applied yet" };
    }
    if ((bd.spec?.downstreamResourcesGeneration ?? 0) > (bd.status.downstreamResourcesGeneration ?? 0))
      return {
        state: "Pending",
        message: "Fleet's agent has not copied the changed secret values to the cluster yet",
      };
    if (!bd.status.ready) return { state: "NotReady", message: notReadyMessage(bd) };
    if (bd.status.nonModified === false) {
      const m = bd.status.modifiedStatus?.[0];
      const what = m
        ? `${m.kind ?? ""} ${m.namespace ? `${m.namespace}/` : ""}${m.name ?? ""} ${m.missing ? "is missing" : m.delete ? "is extra" : "was changed"}`
        : "its resources were changed";
      return {
        state: "NotReady",
        message: `Modified: on the cluster, ${what.trim()} (drift from the revision)`,
      };
    }
    return { state: "Ready", message: "" };
  };
  // Without a BundleDeployment, Fleet has not deployed anything of the bundle there.
  states.absent = (app) => ({ present: byBundle.get(app.bundleName) ?? none, state: notApplied });
  return states;
}

export function aggregate(input: StatusInput): DeploymentStatusSummary {
  const offline =
    input.offline ??
    offlineClusters(
      // Clusters without a source are Fleet's (agent-based): only those go offline by silence.
      input.clusters.map((c) => ({ source: "fleet" as const, ...c })),
      input.now ?? new Date(),
      input.offlineAfterMs ?? 30 * 60_000,
    );
  const { apps, stateOf } = input;
  // Applications usually share their targets: match each distinct target list once.
  const matched = new Map<string, { metadata: { name?: string } }[]>();
  const lists = apps.map((app) => {
    const key = JSON.stringify(app.targets);
    let targeted = matched.get(key);
    if (!targeted) {
      targeted = input.targeted ? input.targeted(app.targets) : targetedClusters(app.targets, input.clusters);
      matched.set(key, targeted);
    }
    return targeted;
  });
  const absent = apps.map((app) => stateOf.absent?.(app));
  const ready = apps.map(() => 0);
  const firstProblem: (string | undefined)[] = apps.map(() => undefined);
  const offlineState: ClusterAppState = { state: "Offline", message: offlineMessage };
  /** Application i on a cluster, counted for the application. */
  const stateAt = (i: number, app: AppTargets, name: string): ClusterAppState => {
    if (offline.has(name)) return offlineState;
    const a = absent[i];
    const s = a && !a.present.has(name) ? a.state : stateOf(app, name);
    if (s.state === "Ready") ready[i] = (ready[i] ?? 0) + 1;
    else if (s.state === "NotReady" || s.state === "Failed") firstProblem[i] ??= `${name}: ${s.message}`;
    return s;
  };
  // Worst state first; among not-ready applications, the cause rather than a dependent
  // waiting for it (Fleet's "dependent bundle(s) are not ready").
  const worse = (s: ClusterAppState, than: ClusterAppState): boolean =>
    rank[s.state] > rank[than.state] ||
    (s.state === than.state && waitsOnDependency(than.message) && !waitsOnDependency(s.message));

  const counts = { targets: 0, ready: 0, notReady: 0, offline: 0, pending: 0 };
  // The worst non-ready clusters, by name among equals: a bounded sorted list, not a sort
  // of every cluster (tens of thousands on every status update).
  const maxListed = input.maxListed ?? 20;
  const listed: [string, ClusterAppState, string][] = [];
  const before = (a: string, x: ClusterState, b: string, y: ClusterState): boolean =>
    rank[x] !== rank[y] ? rank[x] > rank[y] : a < b;
  /** A cluster's worst state, counted once. */
  const count = (name: string, s: ClusterAppState, application: string): void => {
    counts.targets++;
    const { state } = s;
    if (state === "Ready") counts.ready++;
    else if (state === "NotReady" || state === "Failed") counts.notReady++;
    else if (state === "Offline") counts.offline++;
    else counts.pending++;
    if (state === "Ready" || maxListed <= 0) return;
    const last = listed[listed.length - 1];
    if (listed.length === maxListed && last && !before(name, state, last[0], last[1].state)) return;
    let i = listed.length;
    while (i > 0) {
      const p = listed[i - 1];
      if (!p || !before(name, state, p[0], p[1].state)) break;
      i--;
    }
    listed.splice(i, 0, [name, s, application]);
    if (listed.length > maxListed) listed.pop();
  };

  const first = lists[0];
  if (first && lists.every((l) => l === first)) {
    // One target list: cluster by cluster, no map of every cluster.
    for (const c of first) {
      const name = c.metadata.name ?? "";
      let worst: ClusterAppState | undefined;
      let application = "";
      for (const [i, app] of apps.entries()) {
        const s = stateAt(i, app, name);
        if (!worst || worse(s, worst)) {
          worst = s;
          application = app.application;
        }
      }
      if (worst) count(name, worst, application);
    }
  } else {
    const perCluster = new Map<string, { s: ClusterAppState; application: string }>();
    apps.forEach((app, i) => {
      for (const c of lists[i] ?? []) {
        const name = c.metadata.name ?? "";
        const s = stateAt(i, app, name);
        const prev = perCluster.get(name);
        if (!prev || worse(s, prev.s)) perCluster.set(name, { s, application: app.application });
      }
    });
    for (const [name, { s, application }] of perCluster) count(name, s, application);
  }

  const applications = apps.map((app, i) => {
    const problem = firstProblem[i];
    return {
      name: app.application,
      targets: lists[i]?.length ?? 0,
      ready: ready[i] ?? 0,
      ...(problem ? { message: problem } : {}),
    };
  });
  const clusters = listed.map(([name, { state, message }, application]) => ({
    name,
    state,
    message: state === "Offline" ? message : `${application}: ${message}`,
  }));
  return { summary: counts, applications, clusters };
}

/** The deployment's phase from the counts (spec-level phases such as Suspended come first). */
export function phaseOf(
  s: DeploymentStatusSummary["summary"],
  firstRevision: boolean,
): "NoTargetClusters" | "Running" | "Down" | "Degraded" | "Deploying" | "Updating" {
  if (s.targets === 0) return "NoTargetClusters";
  // Nothing reports: offline is no failure, but nothing is known to run either.
  if (s.offline === s.targets) return "Down";
  if (s.notReady > 0) return s.notReady + s.offline === s.targets ? "Down" : "Degraded";
  if (s.pending > 0) return firstRevision ? "Deploying" : "Updating";
  return "Running";
}
