// kubectl outpost register-cluster NAME: registers an edge cluster with a project where
// the project's delivery engine needs it (operators/inventory/register.ts), with
// server-side apply. Registering is a platform administrator's task: it writes edge
// credentials into outpost-edges and Fleet's or Argo CD's namespace, and Fleet Clusters,
// none of which project roles may.
import type { Project } from "../operators/api/project.generated.ts";
import { ProjectResource } from "../operators/api/resources.generated.ts";
import { CatalogError } from "../operators/catalog/format.ts";
import {
  registrationObjects,
  RegistrationError,
  type Registration,
} from "../operators/inventory/register.ts";
import { ApiError, type KubeClient } from "../operators/runtime/client.ts";
import { namespacesResource } from "../operators/runtime/core.ts";
import { edgeCredentialsNamespace } from "../operators/edge/edge-clusters.ts";

/** The engine a project delivers with: its spec.delivery.engine, else `fallback`. */
export async function projectEngine(
  client: KubeClient,
  namespace: string,
  fallback: "fleet" | "argocd",
): Promise<"fleet" | "argocd"> {
  const project = await client.get<Project>(ProjectResource, namespace);
  return project?.spec.delivery?.engine ?? fallback;
}

export async function registerCluster(
  client: KubeClient,
  r: Omit<Registration, "engine"> & { engine?: "fleet" | "argocd" },
): Promise<{ engine: "fleet" | "argocd"; applied: string[] }> {
  const engine = r.engine ?? (await projectEngine(client, r.namespace, "fleet"));
  let objects;
  try {
    objects = registrationObjects({ ...r, engine });
  } catch (err) {
    if (err instanceof RegistrationError) throw new CatalogError(`cluster ${r.name}: ${err.message}`);
    throw err;
  }
  const applied: string[] = [];
  for (const { resource, object } of objects) {
    try {
      await client.apply(resource, object, { fieldManager: "kubectl-outpost", force: true });
    } catch (err) {
      const where = object.metadata.namespace ?? "";
      if (
        err instanceof ApiError &&
        err.code === 404 &&
        (await client.get(namespacesResource, where)) === undefined
      )
        throw new CatalogError(
          `cluster ${r.name}: namespace ${where} does not exist; ${where === edgeCredentialsNamespace ? "install Outpost (kubectl apply -k config/)" : `install ${engine === "fleet" ? "Fleet" : "Argo CD"}`} first`,
        );
      throw err;
    }
    applied.push(`${resource.kind} ${object.metadata.namespace ?? ""}/${object.metadata.name ?? ""}`);
  }
  return { engine, applied };
}
