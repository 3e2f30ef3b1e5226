// The ops operator: ResourceActions on edge workloads and virtual machines.
import { ResourceActionResource } from "../api/resources.generated.ts";
import { FleetClusterResource, GitRepoResource } from "../deploy/fleet.ts";
import { edgeClustersOf, type EdgeClusters } from "../edge/edge-clusters.ts";
import type { Manager } from "../runtime/manager.ts";
import { ResourceActionReconciler } from "./resource-action.ts";

export interface OpsOptions {
  /** How long an action waits for an unreachable cluster before it fails. Default 10m. */
  deadlineMs?: number;
}

export function registerOps(manager: Manager, options: OpsOptions = {}): EdgeClusters {
  manager.informer(GitRepoResource);
  const edges = edgeClustersOf(manager);
  manager
    .controller("resourceaction", { workers: 8 })
    .for(ResourceActionResource)
    // The caches the checks read; their changes do not concern actions already decided.
    .watches(
      FleetClusterResource,
      () => [],
      () => false,
    )
    .watches(
      GitRepoResource,
      () => [],
      () => false,
    )
    .complete(new ResourceActionReconciler(manager, edges, options));
  return edges;
}
