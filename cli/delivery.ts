// What the CLI reads of a deployment's delivery, whichever engine delivers it (the
// deployment's status.engine): the project's clusters, the per-cluster state of its
// applications, and what it delivers where — with plain API reads (the operators use
// informers for the same answers, in operators/inventory and operators/deploy).
import type { AppDeployment } from "../operators/api/app-deployment.generated.ts";
import {
  ArgoApplicationResource,
  ApplicationSetResource,
  argoStates,
  deliveredFromApplicationSet,
  type ApplicationSet,
  type ArgoApplication,
} from "../operators/deploy/argocd.ts";
import { deliveredFromGitRepo } from "../operators/deploy/delivered.ts";
import type { DeliveredApp } from "../operators/deploy/delivered.ts";
import {
  BundleDeploymentResource,
  deploymentLabel,
  GitRepoResource,
  type GitRepo,
} from "../operators/deploy/fleet.ts";
import {
  fleetStates,
  type AppTargets,
  type ClusterAppState,
  type FleetBundleDeployment,
} from "../operators/deploy/status.ts";
import type { EdgeClustersOptions } from "../operators/edge/edge-clusters.ts";
import {
  fromArgoClusterSecret,
  fromFleetCluster,
  type InventoryCluster,
} from "../operators/inventory/inventory.ts";
import { ApiError, type KubeClient, type KubeObject } from "../operators/runtime/client.ts";
import { secretsResource } from "../operators/runtime/core.ts";
import { CatalogError } from "../operators/catalog/format.ts";
import {
  argoSecretTypeLabel,
  FleetClusterResource,
  projectLabel,
} from "../operators/inventory/registrations.ts";

export type Progress = (line: string) => void;

export async function listAll<T extends KubeObject>(
  client: KubeClient,
  r: Parameters<KubeClient["list"]>[0],
  options: { namespace?: string; labelSelector?: string },
  progress?: Progress,
): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const page = await client.list<T>(r, { ...options, limit: 1000, ...(token ? { continue: token } : {}) });
    items.push(...page.items);
    token = page.metadata.continue === "" ? undefined : page.metadata.continue;
    if (token) progress?.(`read ${items.length} ${r.plural}…`);
  } while (token);
  return items;
}

/** Argo CD's objects are an administrator's to read: say so instead of a bare 403. */
async function argoRead<T>(what: string, ns: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof ApiError && err.code === 403) {
      throw new CatalogError(
        `reading ${what} needs read access to Argo CD's namespace ${ns}, which project roles do not give (${err.message}); ask an administrator, or use the deployment's status (kubectl outpost status)`,
      );
    }
    throw err;
  }
}

export interface DeliveryView {
  engine: "fleet" | "argocd";
  clusters: InventoryCluster[];
  /** Raw Argo CD cluster Secrets (credentials included), to reach clusters; Fleet: none. */
  edgeOptions: Pick<EdgeClustersOptions, "argoCluster">;
}

/** The project's clusters, as the deployment's engine registers them. */
export async function deliveryView(
  client: KubeClient,
  dep: AppDeployment,
  argocdNamespace: string,
  progress?: Progress,
): Promise<DeliveryView> {
  const ns = dep.metadata.namespace ?? "";
  if (dep.status?.engine === "argocd") {
    const secrets = await argoRead("the project's Argo CD clusters", argocdNamespace, () =>
      listAll<KubeObject & { data?: Record<string, string> }>(
        client,
        secretsResource,
        { namespace: argocdNamespace, labelSelector: `${argoSecretTypeLabel}=cluster,${projectLabel}=${ns}` },
        progress,
      ),
    );
    return {
      engine: "argocd",
      clusters: secrets.map(fromArgoClusterSecret),
      edgeOptions: {
        argoCluster: (_namespace, name) => {
          const s = secrets.find((x) => fromArgoClusterSecret(x).metadata.name === name);
          return s ? { name: s.metadata.name ?? "", namespace: argocdNamespace } : undefined;
        },
      },
    };
  }
  const fleet = await listAll<KubeObject>(client, FleetClusterResource, { namespace: ns }, progress);
  return {
    engine: "fleet",
    clusters: fleet.map(fromFleetCluster),
    edgeOptions: {},
  };
}

/** The per-cluster state of the deployment's applications, from its engine's objects. */
export async function deliveryStates(
  client: KubeClient,
  dep: AppDeployment,
  argocdNamespace: string,
  progress?: Progress,
): Promise<(app: AppTargets, cluster: string) => ClusterAppState> {
  const ns = dep.metadata.namespace ?? "";
  const name = dep.metadata.name ?? "";
  if (dep.status?.engine === "argocd") {
    const apps = await argoRead("the deployment's Argo CD Applications", argocdNamespace, () =>
      listAll<ArgoApplication>(
        client,
        ArgoApplicationResource,
        { namespace: argocdNamespace, labelSelector: `${projectLabel}=${ns},${deploymentLabel}=${name}` },
        progress,
      ),
    );
    return argoStates(apps, dep.status.commit);
  }
  const bds = await listAll<FleetBundleDeployment & KubeObject>(
    client,
    BundleDeploymentResource,
    { labelSelector: `${deploymentLabel}=${name},fleet.cattle.io/bundle-namespace=${ns}` },
    progress,
  );
  return fleetStates(bds);
}

/** What the deployment delivers, and where, from its engine's objects. */
export async function deliveredApps(
  client: KubeClient,
  dep: AppDeployment,
  argocdNamespace: string,
): Promise<DeliveredApp[]> {
  const ns = dep.metadata.namespace ?? "";
  const name = dep.metadata.name ?? "";
  if (dep.status?.engine === "argocd") {
    const sets = await argoRead("the deployment's Argo CD ApplicationSets", argocdNamespace, () =>
      listAll<ApplicationSet>(client, ApplicationSetResource, {
        namespace: argocdNamespace,
        labelSelector: `${projectLabel}=${ns},${deploymentLabel}=${name}`,
      }),
    );
    return sets.map(deliveredFromApplicationSet).filter((d) => d !== undefined);
  }
  const repos = await listAll<GitRepo>(client, GitRepoResource, {
    namespace: ns,
    labelSelector: `${deploymentLabel}=${name}`,
  });
  return repos.map(deliveredFromGitRepo).filter((d) => d !== undefined);
}
