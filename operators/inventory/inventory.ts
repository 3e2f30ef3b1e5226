// The cluster inventory: which edge clusters a project has, their labels and when they
// were last seen — the one answer placement, deployment status, the safety rail,
// interconnect, ops and the service proxy all read. Clusters are registered where the
// project's delivery engine needs them, and each registration is a source here:
//   - fleet:  Fleet Clusters in the project namespace (labels; lastSeen from the agent);
//   - argocd: Argo CD cluster Secrets in Argo CD's namespace labelled
//             outpost.dev/project=<namespace> (labels of the Secret; no agent, so no
//             lastSeen: Argo CD's Applications tell when a cluster cannot be reached).
// How to reach a cluster (its credentials) is EdgeClusters' (operators/edge/).
//
// Answers are kept until a cluster of the namespace changes (the informers say so) and
// the offline set for a few seconds — at 10,000 clusters and a thousand deployments,
// matching selectors on every reconcile would be most of the operator's work.
import type { KubeObject } from "../runtime/client.ts";
import { secretsResource } from "../runtime/core.ts";
import type { Informer } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  argoSecretTypeLabel,
  clusterLabel,
  FleetClusterResource,
  isRegistrationLabel,
  projectLabel,
} from "./registrations.ts";
import { type ClusterTarget, matches } from "./selector.ts";

export type ClusterSourceName = "fleet" | "argocd";

/** A cluster of a project, in the shape of a Fleet Cluster (what the pure functions read). */
export interface InventoryCluster {
  metadata: { name?: string; namespace?: string; labels?: Record<string, string> };
  status?: { agent?: { lastSeen?: string } };
  /** The registration it comes from. */
  source: ClusterSourceName;
}

/** A registration of clusters: lists a namespace's clusters; tells when they change. */
export interface ClusterSource {
  readonly name: ClusterSourceName;
  /** The informer behind it: controllers watch it to follow clusters. */
  readonly informer: Informer<KubeObject>;
  list(namespace: string): InventoryCluster[];
  /** Whether the source could be read (its API served, its first list done). */
  readonly synced: boolean;
  /** The project namespace an object of the informer belongs to. */
  namespaceOf(obj: KubeObject): string | undefined;
  onChange(handler: (namespace: string) => void): void;
}

/** Rancher's label for a cluster's display name, which Fleet's targets by name also match. */
export const clusterDisplayNameLabel = "management.cattle.io/cluster-display-name";

/**
 * The clusters a target list selects (targets are ORed; a target's criteria ANDed). A
 * target by name matches the cluster's name or its display-name label, as Fleet matches
 * (internal/cmd/controller/target/matcher/clustermatcher.go NewClusterMatcher).
 */
export function targetedClusters<C extends { metadata: { name?: string; labels?: Record<string, string> } }>(
  targets: ClusterTarget[],
  clusters: C[],
): C[] {
  return clusters.filter((c) =>
    targets.some(
      (t) =>
        (t.clusterName === undefined ||
          t.clusterName === c.metadata.name ||
          t.clusterName === c.metadata.labels?.[clusterDisplayNameLabel]) &&
        (t.clusterSelector === undefined || matches(t.clusterSelector, c.metadata.labels)),
    ),
  );
}

/** Names of the clusters whose agent has not been seen for `offlineAfterMs` (agent-based sources). */
export function offlineClusters(
  clusters: InventoryCluster[],
  now: Date,
  offlineAfterMs: number,
): Set<string> {
  return new Set(
    clusters
      .filter((c) => {
        if (c.source !== "fleet") return false;
        const seen = c.status?.agent?.lastSeen;
        return !seen || now.getTime() - Date.parse(seen) > offlineAfterMs;
      })
      .map((c) => c.metadata.name ?? ""),
  );
}

interface FleetClusterObject extends KubeObject {
  status?: { agent?: { lastSeen?: string } };
}

/** A Fleet Cluster as an inventory entry. */
export function fromFleetCluster(c: FleetClusterObject): InventoryCluster {
  return {
    metadata: { name: c.metadata.name, namespace: c.metadata.namespace, labels: c.metadata.labels ?? {} },
    ...(c.status?.agent?.lastSeen ? { status: { agent: { lastSeen: c.status.agent.lastSeen } } } : {}),
    source: "fleet",
  };
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

const nonEmpty = (v: string | undefined): string | undefined => (v === "" ? undefined : v);

const decode = (v: string | undefined): string | undefined =>
  v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");

/**
 * An Argo CD cluster Secret as an inventory entry: the cluster's name in its project is
 * its label outpost.dev/cluster (else its `name` key, else the Secret's name), its other
 * labels the placement labels.
 */
export function fromArgoClusterSecret(s: SecretObject): InventoryCluster {
  const labels = Object.fromEntries(
    Object.entries(s.metadata.labels ?? {}).filter(([k]) => !isRegistrationLabel(k)),
  );
  return {
    metadata: {
      // An empty label or key counts as none, as Argo CD treats an empty name.
      name: nonEmpty(s.metadata.labels?.[clusterLabel]) ?? nonEmpty(decode(s.data?.name)) ?? s.metadata.name,
      namespace: s.metadata.labels?.[projectLabel],
      labels,
    },
    source: "argocd",
  };
}

/**
 * What the inventory keeps of a cluster Secret: never its credentials (`config`), which
 * EdgeClusters reads when it needs to reach the cluster.
 */
export function slimClusterSecret(s: SecretObject): SecretObject {
  const { name, namespace, uid, resourceVersion, labels, annotations } = s.metadata;
  const data = Object.fromEntries(
    Object.entries(s.data ?? {}).filter(([k]) => k === "name" || k === "server" || k === "project"),
  );
  return { metadata: { name, namespace, uid, resourceVersion, labels, annotations }, data };
}

class InformerSource<T extends KubeObject> implements ClusterSource {
  constructor(
    readonly name: ClusterSourceName,
    private readonly typed: Informer<T>,
    private readonly namespaceFor: (o: T) => string | undefined,
    private readonly listIn: (namespace: string) => T[],
    private readonly toCluster: (o: T) => InventoryCluster,
  ) {}

  get informer(): Informer<KubeObject> {
    return this.typed as unknown as Informer<KubeObject>;
  }

  get synced(): boolean {
    return this.typed.hasSynced;
  }

  list(namespace: string): InventoryCluster[] {
    return this.listIn(namespace).map(this.toCluster);
  }

  namespaceOf(obj: KubeObject): string | undefined {
    return this.namespaceFor(obj as T);
  }

  onChange(handler: (namespace: string) => void): void {
    const fire = (o: T): void => {
      const ns = this.namespaceFor(o);
      if (ns) handler(ns);
    };
    this.typed.addHandler({
      add: fire,
      update: (o, old) => {
        fire(o);
        if (this.namespaceFor(old) !== this.namespaceFor(o)) fire(old);
      },
      delete: fire,
    });
  }
}

interface NamespaceView {
  clusters: InventoryCluster[];
  targeted: Map<string, InventoryCluster[]>;
  offline?: { at: number; names: Set<string> };
}

export interface InventoryOptions {
  /** A Fleet cluster whose agent has not checked in for this long is offline. Default 30 min. */
  offlineAfterMs?: number;
  now?: () => Date;
  /** How long an offline set is reused. Default 5 s. */
  offlineTtlMs?: number;
}

export class ClusterInventory {
  private readonly views = new Map<string, NamespaceView>();
  private readonly handlers: ((namespace: string) => void)[] = [];
  readonly offlineAfterMs: number;
  private readonly now: () => Date;
  private readonly offlineTtlMs: number;

  constructor(
    private readonly sources: ClusterSource[],
    options: InventoryOptions = {},
  ) {
    this.offlineAfterMs = options.offlineAfterMs ?? 30 * 60_000;
    this.now = options.now ?? (() => new Date());
    this.offlineTtlMs = options.offlineTtlMs ?? 5_000;
    for (const s of sources) {
      s.onChange((ns) => {
        for (const key of [...this.views.keys()]) if (key.startsWith(`${ns}/`)) this.views.delete(key);
        for (const h of this.handlers) h(ns);
      });
    }
  }

  /** Called with the namespace whenever one of its clusters is added, changed or removed. */
  onChange(handler: (namespace: string) => void): void {
    this.handlers.push(handler);
  }

  source(name: ClusterSourceName): ClusterSource | undefined {
    return this.sources.find((s) => s.name === name);
  }

  /** Every source, for controllers to watch their informers. */
  get all(): readonly ClusterSource[] {
    return this.sources;
  }

  private view(namespace: string, source?: ClusterSourceName): NamespaceView {
    const key = `${namespace}/${source ?? "*"}`;
    let v = this.views.get(key);
    if (!v) {
      const wanted = this.sources.filter((s) => source === undefined || s.name === source);
      const seen = new Set<string>();
      const clusters: InventoryCluster[] = [];
      // A cluster registered with both engines is one cluster (the first source's entry).
      for (const s of wanted) {
        for (const c of s.list(namespace)) {
          const name = c.metadata.name ?? "";
          if (seen.has(name)) continue;
          seen.add(name);
          clusters.push(c);
        }
      }
      v = { clusters, targeted: new Map() };
      this.views.set(key, v);
    }
    return v;
  }

  /** The clusters of `namespace` (of one registration, or all of them). */
  clusters(namespace: string, source?: ClusterSourceName): InventoryCluster[] {
    return this.view(namespace, source).clusters;
  }

  cluster(namespace: string, name: string): InventoryCluster | undefined {
    return this.clusters(namespace).find((c) => c.metadata.name === name);
  }

  targeted(namespace: string, targets: ClusterTarget[], source?: ClusterSourceName): InventoryCluster[] {
    const v = this.view(namespace, source);
    const key = JSON.stringify(targets);
    let found = v.targeted.get(key);
    if (!found) {
      found = targetedClusters(targets, v.clusters);
      v.targeted.set(key, found);
    }
    return found;
  }

  offline(namespace: string, source?: ClusterSourceName): Set<string> {
    const v = this.view(namespace, source);
    const now = this.now();
    if (!v.offline || now.getTime() - v.offline.at > this.offlineTtlMs) {
      v.offline = { at: now.getTime(), names: offlineClusters(v.clusters, now, this.offlineAfterMs) };
    }
    return v.offline.names;
  }
}

export interface InventorySettings {
  /** Argo CD's namespace, where its cluster Secrets are; unset: no Argo CD registrations. */
  argocdNamespace?: string;
  offlineAfterMs?: number;
}

const settings = new WeakMap<Manager, InventorySettings>();
const inventories = new WeakMap<Manager, ClusterInventory>();

/**
 * Sets what the process's inventory reads. Settings given again must agree with the first
 * ones; once the inventory is in use they cannot change.
 */
export function configureInventory(manager: Manager, s: InventorySettings): void {
  const had = settings.get(manager);
  const merged = { ...had, ...Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) };
  if (had && JSON.stringify(merged) !== JSON.stringify(had) && inventories.has(manager)) {
    throw new Error(`the cluster inventory is in use with other settings (${JSON.stringify(had)})`);
  }
  settings.set(manager, merged);
}

/** Argo CD's namespace, when the process delivers with (or reads) Argo CD. */
export function argocdNamespaceOf(manager: Manager): string | undefined {
  return settings.get(manager)?.argocdNamespace;
}

/** The Argo CD cluster Secrets informer (credentials stripped), when Argo CD is configured. */
export function argoClusterSecrets(manager: Manager): Informer<SecretObject> | undefined {
  const ns = settings.get(manager)?.argocdNamespace;
  if (!ns) return undefined;
  return manager.informer<SecretObject>(secretsResource, {
    namespace: ns,
    labelSelector: `${argoSecretTypeLabel}=cluster,${projectLabel}`,
    transform: slimClusterSecret,
    optional: true,
  });
}

/** The inventory of an operator process: one per manager, shared by its controllers. */
export function inventoryOf(manager: Manager): ClusterInventory {
  let inv = inventories.get(manager);
  if (inv) return inv;
  const s = settings.get(manager) ?? {};
  const fleet = manager.informer<FleetClusterObject>(FleetClusterResource, { optional: true });
  const sources: ClusterSource[] = [
    new InformerSource(
      "fleet",
      fleet,
      (c) => c.metadata.namespace,
      (ns) => fleet.cache.byNamespace(ns),
      fromFleetCluster,
    ),
  ];
  const argo = argoClusterSecrets(manager);
  if (argo) {
    sources.push(
      new InformerSource(
        "argocd",
        argo,
        (o) => o.metadata.labels?.[projectLabel],
        (ns) => argo.cache.byLabels({ [projectLabel]: ns }),
        fromArgoClusterSecret,
      ),
    );
  }
  inv = new ClusterInventory(sources, { offlineAfterMs: s.offlineAfterMs });
  inventories.set(manager, inv);
  return inv;
}
