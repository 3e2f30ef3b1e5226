// How edge clusters are registered with each delivery engine, as the inventory, the edge
// connections and the engines all read them: Fleet Clusters in the project namespace,
// Argo CD cluster Secrets in Argo CD's namespace, and the Argo CD AppProject of a project.
import type { ResourceType } from "../runtime/client.ts";

/** Fleet's Cluster (fleet.cattle.io/v1alpha1), one per edge cluster in its workspace. */
export const FleetClusterResource: ResourceType = {
  group: "fleet.cattle.io",
  version: "v1alpha1",
  kind: "Cluster",
  plural: "clusters",
  namespaced: true,
};

/** The label Argo CD finds its cluster and repository Secrets by (common/common.go). */
export const argoSecretTypeLabel = "argocd.argoproj.io/secret-type";
/** On an Outpost-registered Argo CD cluster Secret: the project namespace it belongs to. */
export const projectLabel = "outpost.dev/project";
/**
 * The cluster's name in Outpost, on its Argo CD cluster Secret and on every Application
 * Outpost's ApplicationSets generate for it. The Secret's `name` key must be unique in
 * the whole Argo CD instance (the cluster generator keys clusters by it), so it is
 * `<project>.<cluster>`; this label keeps the name a project knows.
 */
export const clusterLabel = "outpost.dev/cluster";
/** Labels of a cluster Secret that are Argo CD's or Outpost's, not placement labels. */
export function isRegistrationLabel(key: string): boolean {
  return (
    key === argoSecretTypeLabel ||
    key === projectLabel ||
    key === clusterLabel ||
    key.startsWith("app.kubernetes.io/")
  );
}

/** The AppProject that confines an Outpost project's Applications. */
export const appProjectName = (namespace: string): string => `outpost-${namespace}`;
