// A project delivering with Argo CD, on real parts: Outpost installed from config/, a real
// Argo CD (test/argocd/) on the management cluster, three edges that run workloads
// (kube-scheduler + kwok) registered as Argo CD clusters of the project — store-1 and
// store-2 (tier=store) and central (tier=central) — a Git server for the project's
// repository, an OCI registry with two charts whose Deployments really run (web: a
// Deployment of `image` with `replicaCount` replicas; db: a Deployment and a Secret with
// the password), the catalog operator and package shop 1.0.0 (web requires db).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import { ProjectResource } from "../../operators/api/resources.generated.ts";
import { registerCatalog } from "../../operators/catalog/index.ts";
import { registrationObjects } from "../../operators/inventory/register.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { podsResource } from "../../operators/runtime/core.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { startArgoCD, type ArgoCD } from "../argocd/argocd.ts";
import { kubeConfigFromFile, kubeconfigFor, type Cluster, type ControlPlane } from "../controlplane/index.ts";
import { eventually } from "./controlplane.ts";
import { createShop, packageResolved } from "./deploy.ts";
import { startGitServer, type GitServer } from "./git-server.ts";
import { configDir, installOutpost } from "./install.ts";
import { edgeUser } from "./interconnect.ts";
import { startOperator } from "./operator.ts";
import { makeChart, pushChart, startOciRegistry, type OciRegistry } from "./services.ts";

export const argoEdges = ["store-1", "store-2", "central"] as const;
export type ArgoEdge = (typeof argoEdges)[number];
export const argoEdgeLabels: Record<ArgoEdge, Record<string, string>> = {
  "store-1": { tier: "store" },
  "store-2": { tier: "store" },
  central: { tier: "central" },
};

/** The values of the workload charts: one pod of an image that runs (kwok runs any). */
export const workloadValues = {
  replicaCount: 1,
  image: "registry.example/web:1.0",
  progressDeadlineSeconds: 15,
};

/** A chart whose Deployment really runs on edges with kwok nodes. */
export function workloadChart(name: string): ReturnType<typeof makeChart> {
  return makeChart({
    name,
    version: "1.0.0",
    values: workloadValues,
    files: { "templates/deployment.yaml": deploymentTemplate },
  });
}

/**
 * Registers an edge with project `ns` for Argo CD: Argo CD deploys with the edge's admin
 * identity; Outpost reaches it as outpost-edge (config/edge/ applied there).
 */
export async function registerArgoEdge(
  cp: ControlPlane,
  client: KubeClient,
  options: {
    ns: string;
    name: string;
    cluster: Cluster;
    labels: Record<string, string>;
    argocdNamespace: string;
  },
): Promise<void> {
  const apply = spawnSync(
    cp.binaries.kubectl,
    ["--kubeconfig", options.cluster.kubeconfig, "apply", "-k", join(configDir, "edge")],
    { encoding: "utf8" },
  );
  assert.equal(apply.status, 0, apply.stderr);
  const objects = registrationObjects({
    namespace: options.ns,
    name: options.name,
    labels: options.labels,
    engine: "argocd",
    engineKubeconfig: readFileSync(options.cluster.kubeconfig, "utf8"),
    outpostKubeconfig: readFileSync(await kubeconfigFor(options.cluster, edgeUser), "utf8"),
    argocdNamespace: options.argocdNamespace,
  });
  for (const { resource, object } of objects) {
    await client.apply(resource, object, { fieldManager: "outpost-test", force: true });
  }
}

export const deploymentsResource: ResourceType = {
  group: "apps",
  version: "v1",
  kind: "Deployment",
  plural: "deployments",
  namespaced: true,
};

export interface ArgoDeployFixture {
  ns: string;
  client: KubeClient;
  argo: ArgoCD;
  git: GitServer;
  repo: string;
  oci: OciRegistry;
  catalog: Manager;
  edges: Record<ArgoEdge, { cluster: Cluster; client: KubeClient }>;
  /** Registers (again) an edge with the project, with these labels. */
  register(edge: ArgoEdge, labels: Record<string, string>): Promise<void>;
  /** Pods of Helm release `release` in `namespace` on an edge: name, uid, image, ready. */
  pods(
    edge: ArgoEdge,
    namespace: string,
    release: string,
  ): Promise<{ name: string; uid: string; image: string; ready: boolean }[]>;
  stop(): Promise<void>;
}

/** A chart's Deployment: `replicaCount` pods of `image`, giving up after `progressDeadlineSeconds`. */
export const deploymentTemplate = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app.kubernetes.io/instance: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicaCount }}
  progressDeadlineSeconds: {{ .Values.progressDeadlineSeconds }}
  selector:
    matchLabels: {app.kubernetes.io/instance: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app.kubernetes.io/instance: {{ .Release.Name }}}
    spec:
      containers:
        - name: web
          image: {{ .Values.image | quote }}
`;
const dbSecret = `apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-auth
stringData:
  password: {{ required "auth.password is required" .Values.auth.password | quote }}
`;

/** An AppDeployment of shop 1.0.0: web to tier=store, db to central, the db password from a Secret. */
export const argoShop = (
  ns: string,
  name: string,
  spec: Partial<AppDeployment["spec"]> = {},
): AppDeployment => ({
  metadata: { name, namespace: ns },
  spec: {
    packageRef: { name: "shop", version: "1.0.0" },
    targets: { clusterSelector: { matchLabels: { tier: "store" } } },
    applications: [{ name: "db", targets: { clusters: ["central"] } }],
    parameters: [
      { application: "db", name: "auth.password", secretKeyRef: { name: "db-password", key: "password" } },
    ],
    ...spec,
  },
});

export async function startArgoDeployFixture(
  cp: ControlPlane,
  options: { ns?: string; reconciliationTimeout?: string } = {},
): Promise<ArgoDeployFixture> {
  const ns = options.ns ?? "retail";
  if (cp.edges.length < 3) throw new Error("the Argo CD fixture needs 3 edges that run workloads");
  installOutpost(cp);
  const client = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
  const [argo, git, oci] = await Promise.all([
    startArgoCD({ cluster: cp.management, reconciliationTimeout: options.reconciliationTimeout ?? "30s" }),
    startGitServer(),
    startOciRegistry(),
  ]);
  const repo = ns;
  git.createRepo(repo);
  const values = workloadValues;
  await pushChart(
    oci.url,
    "charts",
    await makeChart({
      name: "web",
      version: "1.0.0",
      values,
      files: { "templates/deployment.yaml": deploymentTemplate },
    }),
  );
  await pushChart(
    oci.url,
    "charts",
    await makeChart({
      name: "db",
      version: "1.0.0",
      values: { ...values, auth: { password: "" } },
      files: { "templates/deployment.yaml": deploymentTemplate, "templates/secret.yaml": dbSecret },
    }),
  );
  // The project: its namespace, and its choice of engine.
  await client.create(ProjectResource, {
    metadata: { name: ns },
    spec: { delivery: { engine: "argocd" }, harbor: { enabled: false }, git: { enabled: false } },
  } as KubeObject);
  await createShop(client, ns, {
    git: `${git.url}/${repo}.git`,
    registry: `${oci.url}/charts`,
    profileValues: {},
  });

  const edges = Object.fromEntries(
    argoEdges.map((name, i) => {
      const cluster = cp.edges[i];
      if (!cluster) throw new Error(`no edge ${i + 1}`);
      return [name, { cluster, client: new KubeClient(kubeConfigFromFile(cluster.kubeconfig)) }];
    }),
  ) as ArgoDeployFixture["edges"];
  const register = (edge: ArgoEdge, labels: Record<string, string>): Promise<void> =>
    registerArgoEdge(cp, client, {
      ns,
      name: edge,
      cluster: edges[edge].cluster,
      labels,
      argocdNamespace: argo.namespace,
    });
  for (const name of argoEdges) await register(name, argoEdgeLabels[name]);

  const catalog = await startOperator(
    "outpost-catalog",
    kubeConfigFromFile(cp.management.kubeconfig),
    (m) => {
      registerCatalog(m, { scanMode: "off" });
    },
  );
  await packageResolved(client, ns, "shop-1.0.0", 60_000);
  return {
    ns,
    client,
    argo,
    git,
    repo,
    oci,
    catalog,
    edges,
    register,
    async pods(edge, namespace, release) {
      const list = await edges[edge].client.list<
        KubeObject & {
          spec?: { containers?: { image?: string }[] };
          status?: { conditions?: { type: string; status: string }[] };
        }
      >(podsResource, { namespace, labelSelector: `app.kubernetes.io/instance=${release}` });
      return list.items
        .filter((p) => !p.metadata.deletionTimestamp)
        .map((p) => ({
          name: p.metadata.name ?? "",
          uid: p.metadata.uid ?? "",
          image: p.spec?.containers?.[0]?.image ?? "",
          ready: p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
        }));
    },
    async stop() {
      await catalog.stop();
      await argo.stop();
      await Promise.all([git.stop(), oci.stop()]);
      for (const e of Object.values(edges)) await e.client.close();
      await client.close();
    },
  };
}

/** Resolves once `edge` runs `count` Ready pods of `release` (with `image`, if given). */
export function readyPods(
  fx: ArgoDeployFixture,
  edge: ArgoEdge,
  namespace: string,
  release: string,
  count: number,
  image?: string,
  timeoutMs = 120_000,
): Promise<{ name: string; uid: string; image: string; ready: boolean }[]> {
  return eventually(
    `${count} Ready pod(s) of ${release} on ${edge}${image ? ` with ${image}` : ""}`,
    async () => {
      const pods = await fx.pods(edge, namespace, release);
      const ok = pods.filter((p) => p.ready && (!image || p.image === image));
      if (ok.length === count && pods.length === count) return pods;
      throw new Error(`pods: ${JSON.stringify(pods)}`);
    },
    timeoutMs,
    500,
  );
}
