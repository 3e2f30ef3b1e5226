// The ops operator: ResourceActions on edge workloads and virtual machines.
import { ResourceActionResource } from "../api/resources.generated.ts";
import { deliveriesOf } from "../deploy/delivered.ts";
import { edgeClustersOf, type EdgeClusters } from "../edge/edge-clusters.ts";
import { inventoryOf } from "../inventory/inventory.ts";
import type { Manager } from "../runtime/manager.ts";
import { ResourceActionReconciler } from "./resource-action.ts";

export interface OpsOptions {
  /** How long an action waits for an unreachable cluster before it fails. Default 10m. */
  deadlineMs?: number;
}

export function registerOps(manager: Manager, options: OpsOptions = {}): EdgeClusters {
  const edges = edgeClustersOf(manager);
  const controller = manager.controller("resourceaction", { workers: 8 }).for(ResourceActionResource);
  // The caches the checks read (clusters, what deployments deliver); their changes do not
  // concern actions already decided.
  for (const s of [...inventoryOf(manager).all, ...deliveriesOf(manager).sources]) {
    controller.watches(
      s.informer,
      () => [],
      () => false,
    );
  }
  controller.complete(new ResourceActionReconciler(manager, edges, options));
  return edges;
}
