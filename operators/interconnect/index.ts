// The interconnect operator: Networks and NetworkServices → Skupper v2 on the edges,
// and the NetworkServices of AppDeployments that name a Network.
import { isDeepStrictEqual } from "node:util";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { NetworkService } from "../api/network-service.generated.ts";
import type { Network } from "../api/network.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
  NetworkResource,
  NetworkServiceResource,
} from "../api/resources.generated.ts";
import { deliveriesOf } from "../deploy/delivered.ts";
import { edgeClustersOf, type EdgeClusters } from "../edge/edge-clusters.ts";
import { generationOrRequestChanged, type Controller, type UpdatePredicate } from "../runtime/controller.ts";
import type { KubeObject } from "../runtime/client.ts";
import type { Manager } from "../runtime/manager.ts";
import { exportedByLabel, ExportsReconciler } from "./exports.ts";
import { NetworkServiceReconciler } from "./network-service.ts";
import { NetworkReconciler, type InterconnectOptions } from "./network.ts";
import { inventoryOf } from "../inventory/inventory.ts";

export type { InterconnectOptions };

/** A cluster's labels changed, or it came or went (not its status). */
const labelsChanged: UpdatePredicate<KubeObject> = (c, old) =>
  c === old || !isDeepStrictEqual(c.metadata.labels, old.metadata.labels);

export function registerInterconnect(manager: Manager, options: InterconnectOptions = {}): EdgeClusters {
  const edges = edgeClustersOf(manager);
  const networksIn = (ns: string): string[] =>
    manager
      .informer<Network>(NetworkResource)
      .cache.byNamespace(ns)
      .map((n) => `${ns}/${n.metadata.name ?? ""}`);
  const servicesIn = (ns: string, test: (s: NetworkService) => boolean = () => true): string[] =>
    manager
      .informer<NetworkService>(NetworkServiceResource)
      .cache.byNamespace(ns)
      .filter(test)
      .map((s) => `${ns}/${s.metadata.name ?? ""}`);
  const depsWithNetwork = (ns: string): string[] =>
    manager
      .informer<AppDeployment>(AppDeploymentResource)
      .cache.byNamespace(ns)
      .filter((d) => d.spec.networkRef)
      .map((d) => `${ns}/${d.metadata.name ?? ""}`);

  // Clusters of every registration (Fleet Clusters, Argo CD cluster Secrets) and what
  // every engine delivers: members and bound services follow them.
  const inventory = inventoryOf(manager);
  const deliveries = deliveriesOf(manager);

  /** Requeues `keysIn(namespace)` when a cluster of any registration comes, goes or is relabelled. */
  const followClusters = (controller: Controller, keysIn: (ns: string) => string[]): void => {
    for (const source of inventory.all) {
      controller.watches(
        source.informer,
        (c) => {
          const ns = source.namespaceOf(c);
          return ns ? keysIn(ns) : [];
        },
        labelsChanged,
      );
    }
  };

  const networks = manager.controller("network", { workers: 8, maxDelayMs: 60_000 }).for(NetworkResource);
  followClusters(networks, (ns) => networksIn(ns));
  networks.complete(new NetworkReconciler(manager, edges, options));

  const services = manager
    .controller("networkservice", { workers: 8, maxDelayMs: 60_000 })
    .for(NetworkServiceResource)
    .watches(
      NetworkResource,
      (n) => servicesIn(n.metadata.namespace ?? "", (s) => s.spec.networkRef.name === n.metadata.name),
      // New members or a new site namespace somewhere: bind there.
      (n, old) =>
        generationOrRequestChanged(n, old) ||
        !isDeepStrictEqual((n as Network).status?.provisioned, (old as Network).status?.provisioned) ||
        (n as Network).status?.summary?.sitesReady !== (old as Network).status?.summary?.sitesReady,
    );
  for (const source of deliveries.sources) {
    services.watches(
      source.informer,
      (r) => {
        const ns = source.namespaceOf(r);
        const dep = source.deploymentOf(r);
        return ns && dep ? servicesIn(ns, (x) => x.spec.deploymentRef.name === dep) : [];
      },
      generationOrRequestChanged,
    );
  }
  followClusters(services, (ns) => servicesIn(ns));
  services.complete(new NetworkServiceReconciler(manager, edges, options));

  manager
    .controller("network-exports", { workers: 4 })
    .for(AppDeploymentResource)
    .watches(
      NetworkServiceResource,
      (s) => {
        const owner = s.metadata.ownerReferences?.find((o) => o.kind === "AppDeployment" && o.controller);
        return s.metadata.labels?.[exportedByLabel] && owner
          ? [`${s.metadata.namespace ?? ""}/${owner.name}`]
          : [];
      },
      generationOrRequestChanged,
    )
    .watches(
      DeploymentPackageResource,
      (p) => depsWithNetwork((p as DeploymentPackage).metadata.namespace ?? ""),
      generationOrRequestChanged,
    )
    .watches(
      ApplicationResource,
      (a) => depsWithNetwork((a as Application).metadata.namespace ?? ""),
      generationOrRequestChanged,
    )
    .complete(new ExportsReconciler(manager));

  return edges;
}
