// The Fleet clusters of each namespace as the deploy operator asks about them over and
// over: which ones a target list selects, and which are offline. Answers are kept until
// a cluster of the namespace changes (the informer says so), and the offline set for a
// few seconds — at 10,000 clusters and a thousand deployments, matching selectors on
// every reconcile would be most of the operator's work.
import type { GitTarget } from "./render.ts";
import { offlineClusters, targetedClusters, type FleetCluster } from "./status.ts";

interface NamespaceView {
  clusters: FleetCluster[];
  targeted: Map<string, FleetCluster[]>;
  offline?: { at: number; names: Set<string> };
}

export class ClusterView {
  private readonly namespaces = new Map<string, NamespaceView>();

  constructor(
    private readonly list: (namespace: string) => FleetCluster[],
    private readonly offlineAfterMs: number,
    private readonly now: () => Date = () => new Date(),
    /** How long an offline set is reused. */
    private readonly offlineTtlMs = 5_000,
  ) {}

  /** A cluster of `namespace` was added, changed or removed. */
  invalidate(namespace: string): void {
    this.namespaces.delete(namespace);
  }

  private view(namespace: string): NamespaceView {
    let v = this.namespaces.get(namespace);
    if (!v) {
      v = { clusters: this.list(namespace), targeted: new Map() };
      this.namespaces.set(namespace, v);
    }
    return v;
  }

  clusters(namespace: string): FleetCluster[] {
    return this.view(namespace).clusters;
  }

  targeted(namespace: string, targets: GitTarget[]): FleetCluster[] {
    const v = this.view(namespace);
    const key = JSON.stringify(targets);
    let found = v.targeted.get(key);
    if (!found) {
      found = targetedClusters(targets, v.clusters);
      v.targeted.set(key, found);
    }
    return found;
  }

  offline(namespace: string): Set<string> {
    const v = this.view(namespace);
    const now = this.now();
    if (!v.offline || now.getTime() - v.offline.at > this.offlineTtlMs) {
      v.offline = { at: now.getTime(), names: offlineClusters(v.clusters, now, this.offlineAfterMs) };
    }
    return v.offline.names;
  }
}
