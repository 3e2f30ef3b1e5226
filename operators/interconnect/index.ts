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
import { deploymentLabel, FleetClusterResource, GitRepoResource } from "../deploy/fleet.ts";
import { edgeClustersOf, type EdgeClusters } from "../edge/edge-clusters.ts";
import { generationOrRequestChanged, type UpdatePredicate } from "../runtime/controller.ts";
import type { KubeObject } from "../runtime/client.ts";
import type { Manager } from "../runtime/manager.ts";
import { exportedByLabel, ExportsReconciler } from "./exports.ts";
import { NetworkServiceReconciler } from "./network-service.ts";
import { NetworkReconciler, type InterconnectOptions } from "./network.ts";

export type { InterconnectOptions };

/** A Fleet Cluster's labels changed, or it came or went (not its status). */
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

  manager
    .controller("network", { workers: 8, maxDelayMs: 60_000 })
    .for(NetworkResource)
    .watches(FleetClusterResource, (c) => networksIn(c.metadata.namespace ?? ""), labelsChanged)
    .complete(new NetworkReconciler(manager, edges, options));

  manager
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
    )
    .watches(
      GitRepoResource,
      (r) => {
        const dep = r.metadata.labels?.[deploymentLabel];
        return dep ? servicesIn(r.metadata.namespace ?? "", (s) => s.spec.deploymentRef.name === dep) : [];
      },
      generationOrRequestChanged,
    )
    .watches(FleetClusterResource, (c) => servicesIn(c.metadata.namespace ?? ""), labelsChanged)
    .complete(new NetworkServiceReconciler(manager, edges, options));

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
