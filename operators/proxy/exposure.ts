// Which AppDeployment exposes a route's service (pure): one whose package has an
// application listing the service and port in `serviceExports`, installed in the route's
// namespace on the route's cluster (by the targets and namespace its engine delivers it
// with).
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { DeliveredApp } from "../deploy/delivered.ts";
import { targetedClusters } from "../inventory/inventory.ts";
import type { Route } from "./route.ts";

export interface ProjectObjects {
  deployments: AppDeployment[];
  packages: DeploymentPackage[];
  applications: Application[];
  /** What the project's deployments deliver (deliveredFromGitRepo, deliveredFromApplicationSet). */
  delivered: DeliveredApp[];
  clusters: { metadata: { name?: string; labels?: Record<string, string> } }[];
}

export interface Exposure {
  deployment: string;
  application: string;
}

export function exposingDeployment(route: Route, objects: ProjectObjects): Exposure | undefined {
  const cluster = objects.clusters.filter((c) => c.metadata.name === route.cluster);
  if (cluster.length === 0) return undefined;
  for (const dep of objects.deployments) {
    if (dep.metadata.deletionTimestamp) continue;
    const pkg = objects.packages.find(
      (p) => p.spec.name === dep.spec.packageRef.name && p.spec.version === dep.spec.packageRef.version,
    );
    for (const ref of pkg?.spec.applications ?? []) {
      const app = objects.applications.find(
        (a) => a.spec.name === ref.name && a.spec.version === ref.version,
      );
      const exported = app?.spec.serviceExports?.some(
        (e) => e.service === route.service && e.port === route.port,
      );
      if (!exported) continue;
      const delivered = objects.delivered.find(
        (d) => d.deployment === dep.metadata.name && d.application === ref.name,
      );
      if (delivered?.namespace !== route.namespace) continue;
      if (targetedClusters(delivered.targets, cluster).length === 0) continue;
      return { deployment: dep.metadata.name ?? "", application: ref.name };
    }
  }
  return undefined;
}
