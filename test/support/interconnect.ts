// Edge clusters for the interconnect operator: the deploy fixture's Fleet clusters
// store-1, store-2 and central backed by the control plane's edge API servers (edge-1,
// edge-2, edge-3), each with Skupper's CRDs, Outpost's edge RBAC (config/edge/) and a
// kubeconfig Secret `<project>.<cluster>` (key `value`) in outpost-edges whose identity
// is the ServiceAccount that RBAC binds — so the operators work with exactly the rights
// config/edge/ grants — and the Skupper test driver playing Skupper's controller.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";
import { edgeCredentialsNamespace, edgeSecretName } from "../../operators/edge/edge-clusters.ts";
import { kubeConfigFromFile, kubeconfigFor, type Cluster, type ControlPlane } from "../controlplane/index.ts";
import { SkupperDriver } from "../drivers/skupper.ts";
import { installSkupperCRDs } from "../drivers/skupper-crds.ts";
import { configDir } from "./install.ts";

/** The user the edge kubeconfigs authenticate as: ServiceAccount kube-system/outpost-edge. */
export const edgeUser = "system:serviceaccount:kube-system:outpost-edge";

/** Fleet cluster name → the edge API server that plays it. */
export const edgeNames = ["store-1", "store-2", "central"] as const;
export type EdgeName = (typeof edgeNames)[number];

export interface Edges {
  /** An admin client per edge cluster, by Fleet cluster name. */
  clients: Record<EdgeName, KubeClient>;
  clusters: Record<EdgeName, Cluster>;
  skupper: SkupperDriver;
  skupperCRDs: "upstream" | "stand-in";
  stop(): Promise<void>;
}

/**
 * Writes the kubeconfig Outpost reaches cluster `cluster` of project `project` with, where
 * a platform administrator registers it (Secret `<project>.<cluster>` in outpost-edges).
 */
export async function putEdgeCredentials(
  management: KubeClient,
  project: string,
  cluster: string,
  kubeconfig: string,
): Promise<void> {
  if (!(await management.get(namespacesResource, edgeCredentialsNamespace)))
    await management
      .create(namespacesResource, { metadata: { name: edgeCredentialsNamespace } })
      .catch((err: unknown) => {
        if ((err as { code?: number }).code !== 409) throw err;
      });
  await management.apply(
    secretsResource,
    {
      metadata: { name: edgeSecretName(project, cluster), namespace: edgeCredentialsNamespace },
      type: "Opaque",
      stringData: { value: kubeconfig },
    } as KubeObject,
    { fieldManager: "test", force: true },
  );
}

/**
 * Backs the Fleet clusters of `ns` with the control plane's three edges (which it needs):
 * Skupper CRDs, kubeconfig Secrets on the management cluster, and a running Skupper driver.
 */
export async function startEdges(cp: ControlPlane, management: KubeClient, ns: string): Promise<Edges> {
  if (cp.edges.length < 3) throw new Error("the interconnect tests need a control plane with 3 edges");
  const clusters = Object.fromEntries(edgeNames.map((n, i) => [n, cp.edges[i]])) as Record<EdgeName, Cluster>;
  const kinds = await Promise.all(edgeNames.map((n) => installSkupperCRDs(clusters[n].kubeconfig)));
  const clients = Object.fromEntries(
    edgeNames.map((n) => [n, new KubeClient(kubeConfigFromFile(clusters[n].kubeconfig))]),
  ) as Record<EdgeName, KubeClient>;
  for (const n of edgeNames) {
    const apply = spawnSync(
      cp.binaries.kubectl,
      ["--kubeconfig", clusters[n].kubeconfig, "apply", "-k", join(configDir, "edge")],
      { encoding: "utf8" },
    );
    assert.equal(apply.status, 0, apply.stderr);
    const kubeconfig = await kubeconfigFor(clusters[n], edgeUser);
    await putEdgeCredentials(management, ns, n, readFileSync(kubeconfig, "utf8"));
  }
  const skupper = new SkupperDriver({
    clusters: edgeNames.map((name) => ({ name, client: clients[name] })),
  });
  skupper.start(150);
  return {
    clients,
    clusters,
    skupper,
    skupperCRDs: kinds.every((k) => k === "upstream") ? "upstream" : "stand-in",
    async stop() {
      await skupper.stop();
      await Promise.all(edgeNames.map((n) => clients[n].close()));
    },
  };
}
