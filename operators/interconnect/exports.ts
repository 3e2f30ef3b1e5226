// AppDeployments that name a Network (spec.networkRef) get one NetworkService per
// service their applications export (Application spec.serviceExports), owned by the
// deployment: exposed on the members that run the application, consumed on the others.
// Removing networkRef, an export, or the deployment removes them.
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { NetworkService } from "../api/network-service.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
  NetworkServiceResource,
} from "../api/resources.generated.ts";
import type { Request, Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { dnsName } from "../runtime/names.ts";

/** On a generated NetworkService: the AppDeployment it exports services of. */
export const exportedByLabel = "interconnect.outpost.dev/exported-by";

/** The NetworkServices `dep` asks for (pure: the package and applications are given). */
export function exportedServices(
  dep: AppDeployment,
  pkg: DeploymentPackage | undefined,
  applications: Application[],
): NetworkService[] {
  const network = dep.spec.networkRef?.name;
  const depName = dep.metadata.name ?? "";
  if (!network || !pkg || dep.metadata.deletionTimestamp) return [];
  const out: NetworkService[] = [];
  for (const ref of pkg.spec.applications) {
    const app = applications.find((a) => a.spec.name === ref.name && a.spec.version === ref.version);
    for (const e of app?.spec.serviceExports ?? []) {
      out.push({
        apiVersion: "interconnect.outpost.dev/v1alpha1",
        kind: "NetworkService",
        metadata: {
          name: dnsName(`${depName}-${ref.name}-${e.service}-${e.port}`, 253),
          namespace: dep.metadata.namespace,
          labels: { [exportedByLabel]: dnsName(depName, 63), "app.kubernetes.io/managed-by": "outpost" },
          ownerReferences: [
            {
              apiVersion: "deploy.outpost.dev/v1alpha1",
              kind: "AppDeployment",
              name: depName,
              uid: dep.metadata.uid ?? "",
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: {
          networkRef: { name: network },
          deploymentRef: { name: depName },
          application: ref.name,
          service: e.service,
          port: e.port,
        },
      });
    }
  }
  return out;
}

export class ExportsReconciler {
  constructor(private readonly manager: Manager) {}

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const ns = req.namespace ?? "";
    const dep = await client.get<AppDeployment>(AppDeploymentResource, req.name, ns);
    const existing = this.manager
      .informer<NetworkService>(NetworkServiceResource)
      .cache.byLabels({ [exportedByLabel]: dnsName(req.name, 63) })
      .filter(
        (s) => s.metadata.namespace === ns && s.metadata.ownerReferences?.some((o) => o.name === req.name),
      );
    let wanted: NetworkService[] = [];
    if (dep) {
      const pkg = this.manager
        .informer<DeploymentPackage>(DeploymentPackageResource)
        .cache.byNamespace(ns)
        .find(
          (p) => p.spec.name === dep.spec.packageRef.name && p.spec.version === dep.spec.packageRef.version,
        );
      const apps = this.manager.informer<Application>(ApplicationResource).cache.byNamespace(ns);
      wanted = exportedServices(dep, pkg, apps);
    }
    for (const svc of wanted) {
      const have = existing.find((e) => e.metadata.name === svc.metadata.name);
      if (have && JSON.stringify(have.spec) === JSON.stringify({ ...have.spec, ...svc.spec })) continue;
      await client.apply(NetworkServiceResource, svc, { fieldManager });
    }
    const names = new Set(wanted.map((w) => w.metadata.name));
    for (const e of existing) {
      if (!names.has(e.metadata.name)) await client.delete(NetworkServiceResource, e.metadata.name ?? "", ns);
    }
    return undefined;
  }
}
