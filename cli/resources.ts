// kubectl outpost resources DEPLOYMENT: the pods, workloads, virtual machines and
// services a deployment runs, read from each of its edge clusters (with the clusters'
// kubeconfig Secrets, as the operators reach them), with their state.
import type { AppDeployment } from "../operators/api/app-deployment.generated.ts";
import { AppDeploymentResource } from "../operators/api/resources.generated.ts";
import {
  edgeCredentialsNamespace,
  EdgeClusters,
  edgeSecretName,
  EdgeUnreachableError,
} from "../operators/edge/edge-clusters.ts";
import { edgeKinds, installedOn, releaseOf, type Release } from "../operators/ops/targets.ts";
import {
  ApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from "../operators/runtime/client.ts";
import { servicesResource } from "../operators/runtime/core.ts";
import { mapLimit } from "../operators/runtime/pool.ts";
import { CatalogError } from "../operators/catalog/format.ts";
import { table } from "./deploy.ts";
import { deliveredApps, deliveryView, type Progress } from "./delivery.ts";

export interface ResourceRow {
  cluster: string;
  application: string;
  kind: string;
  namespace: string;
  name: string;
  /** Running, Ready 2/3, Stopped… */
  state: string;
  detail?: string;
}

export interface ResourcesReport {
  deployment: string;
  rows: ResourceRow[];
  /** Clusters that could not be read, and why. */
  unreachable: { cluster: string; message: string }[];
}

interface Obj extends KubeObject {
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const n = (v: unknown): number => (typeof v === "number" ? v : 0);
const str = (v: unknown, fallback: string): string => (typeof v === "string" && v ? v : fallback);

function stateOf(kind: string, o: Obj): { state: string; detail?: string } {
  const s = o.status ?? {};
  const spec = o.spec ?? {};
  switch (kind) {
    case "Pod": {
      const cs = (s.containerStatuses as { ready?: boolean; restartCount?: number }[] | undefined) ?? [];
      const ready = cs.filter((c) => c.ready).length;
      const restarts = cs.reduce((t, c) => t + (c.restartCount ?? 0), 0);
      return {
        state: str(s.phase, "Pending"),
        detail: `${ready}/${cs.length || ((spec.containers as unknown[] | undefined)?.length ?? 0)} ready${restarts ? `, ${restarts} restarts` : ""}`,
      };
    }
    case "Deployment":
    case "StatefulSet": {
      const want = n(spec.replicas ?? 1);
      const ready = n(s.readyReplicas);
      return { state: ready >= want ? "Ready" : "Progressing", detail: `${ready}/${want} ready` };
    }
    case "DaemonSet": {
      const want = n(s.desiredNumberScheduled);
      const ready = n(s.numberReady);
      return { state: ready >= want ? "Ready" : "Progressing", detail: `${ready}/${want} ready` };
    }
    case "VirtualMachine":
      return { state: str(s.printableStatus, spec.runStrategy === "Halted" ? "Stopped" : "Unknown") };
    case "Service": {
      const ports = ((spec.ports as { port: number; protocol?: string }[] | undefined) ?? []).map(
        (p) => `${p.port}/${p.protocol ?? "TCP"}`,
      );
      return { state: str(spec.type, "ClusterIP"), detail: ports.join(",") };
    }
    default:
      return { state: "" };
  }
}

async function listOrNone(client: KubeClient, r: ResourceType, namespace: string): Promise<Obj[]> {
  try {
    return (await client.list<Obj>(r, { namespace })).items;
  } catch (err) {
    // KubeVirt not installed there: no virtual machines.
    if (ApiError.isNotFound(err)) return [];
    throw err;
  }
}

/** What one cluster runs of the deployment's releases. */
async function clusterRows(client: KubeClient, cluster: string, releases: Release[]): Promise<ResourceRow[]> {
  const rows: ResourceRow[] = [];
  for (const namespace of [...new Set(releases.map((r) => r.namespace))]) {
    const installed = { releases };
    const appOf = (o: Obj): string | undefined => releaseOf(o, namespace, installed)?.application;
    const [deployments, statefulsets, daemonsets, replicasets, pods, services, vms, vmis] = await Promise.all(
      [
        listOrNone(client, edgeKinds.Deployment, namespace),
        listOrNone(client, edgeKinds.StatefulSet, namespace),
        listOrNone(client, edgeKinds.DaemonSet, namespace),
        listOrNone(client, edgeKinds.ReplicaSet, namespace),
        listOrNone(client, edgeKinds.Pod, namespace),
        listOrNone(client, servicesResource, namespace),
        listOrNone(client, edgeKinds.VirtualMachine, namespace),
        listOrNone(client, edgeKinds.VirtualMachineInstance, namespace),
      ],
    );
    // Owners by kind/name → application, for pods (Pod → ReplicaSet → Deployment, Pod →
    // StatefulSet/DaemonSet, Pod → VirtualMachineInstance → VirtualMachine).
    const owner = new Map<string, string>();
    const add = (kind: string, list: Obj[]): void => {
      for (const o of list) {
        const app = appOf(o);
        if (app) owner.set(`${kind}/${o.metadata.name ?? ""}`, app);
      }
    };
    add("Deployment", deployments);
    add("StatefulSet", statefulsets);
    add("DaemonSet", daemonsets);
    add("VirtualMachine", vms);
    const controller = (o: Obj): string | undefined => {
      const ref = o.metadata.ownerReferences?.find((r) => r.controller);
      return ref ? `${ref.kind}/${ref.name}` : undefined;
    };
    for (const [kind, list] of [
      ["ReplicaSet", replicasets],
      ["VirtualMachineInstance", vmis],
    ] as const) {
      for (const o of list) {
        const c = controller(o);
        const app = c ? owner.get(c) : undefined;
        if (app) owner.set(`${kind}/${o.metadata.name ?? ""}`, app);
      }
    }
    const push = (kind: string, o: Obj, application: string): void => {
      rows.push({ cluster, application, kind, namespace, name: o.metadata.name ?? "", ...stateOf(kind, o) });
    };
    for (const [kind, list] of [
      ["Deployment", deployments],
      ["StatefulSet", statefulsets],
      ["DaemonSet", daemonsets],
      ["VirtualMachine", vms],
      ["Service", services],
    ] as const) {
      for (const o of list) {
        const app = appOf(o);
        if (app) push(kind, o, app);
      }
    }
    for (const p of pods) {
      const c = controller(p);
      const app = (c ? owner.get(c) : undefined) ?? appOf(p);
      if (app) push("Pod", p, app);
    }
  }
  return rows;
}

export async function deploymentResources(
  client: KubeClient,
  ns: string,
  name: string,
  options: { cluster?: string; progress?: Progress; argocdNamespace?: string } = {},
): Promise<ResourcesReport> {
  const dep = await client.get<AppDeployment>(AppDeploymentResource, name, ns);
  if (!dep) throw new CatalogError(`AppDeployment ${name} does not exist in namespace ${ns}`);
  const argo = options.argocdNamespace ?? "argocd";
  const [repos, view] = await Promise.all([
    deliveredApps(client, dep, argo),
    deliveryView(client, dep, argo, options.progress),
  ]);
  const clusters = view.clusters;
  let names = clusters
    .map((c) => c.metadata.name ?? "")
    .filter((c) => installedOn(repos, clusters, c).releases.length > 0)
    .sort();
  if (options.cluster) {
    if (!names.includes(options.cluster)) {
      throw new CatalogError(
        `deployment ${name} does not run on cluster ${options.cluster} (it runs on ${names.join(", ") || "no cluster"})`,
      );
    }
    names = [options.cluster];
  }
  const edges = new EdgeClusters({ management: client, ...view.edgeOptions, userAgent: "kubectl-outpost" });
  const unreachable: ResourcesReport["unreachable"] = [];
  let done = 0;
  try {
    const perCluster = await mapLimit(names, 8, async (cluster) => {
      try {
        return await edges.call(ns, cluster, (edge) =>
          clusterRows(edge, cluster, installedOn(repos, clusters, cluster).releases),
        );
      } catch (err) {
        if (err instanceof ApiError && err.code === 403 && err.message.includes("secrets")) {
          throw new CatalogError(
            `reading cluster ${cluster} needs its kubeconfig Secret ${edgeCredentialsNamespace}/${edgeSecretName(ns, cluster)}, which only platform administrators may get (${err.message})`,
          );
        }
        if (err instanceof EdgeUnreachableError || err instanceof ApiError) {
          unreachable.push({ cluster, message: err.message });
          return [];
        }
        throw err;
      } finally {
        done++;
        if (names.length > 1) options.progress?.(`read ${cluster} (${done}/${names.length})`);
      }
    });
    return {
      deployment: name,
      rows: perCluster.flat(),
      unreachable: unreachable.sort((a, b) => a.cluster.localeCompare(b.cluster)),
    };
  } finally {
    await edges.close();
  }
}

export function formatResources(report: ResourcesReport): string {
  const lines: string[] = [];
  if (report.rows.length === 0) lines.push(`deployment ${report.deployment}: nothing found on its clusters`);
  else {
    lines.push(
      table(
        ["CLUSTER", "APPLICATION", "KIND", "NAMESPACE", "NAME", "STATE", "DETAIL"],
        report.rows.map((r) => [
          r.cluster,
          r.application,
          r.kind,
          r.namespace,
          r.name,
          r.state,
          r.detail ?? "",
        ]),
      ),
    );
  }
  for (const u of report.unreachable) lines.push(`could not read ${u.cluster}: ${u.message}`);
  return lines.join("\n");
}
