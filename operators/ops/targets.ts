// Pure helpers of the ops operator: the edge kinds a ResourceAction can act on and the
// owners it walks through, what a deployment has installed on one cluster, and whether an
// object belongs to it (Helm's release annotations, which Fleet's agent sets, on the
// object or on the controller chain above it).
import type { ResourceType } from "../runtime/client.ts";
import type { DeliveredApp } from "../deploy/engines/engine.ts";
import { targetedClusters } from "../inventory/inventory.ts";

const kind = (group: string, version: string, k: string, plural: string): ResourceType => ({
  group,
  version,
  kind: k,
  plural,
  namespaced: true,
});

/** Kinds a target, or an owner above it, can be — by `apiVersion` group and kind. */
export const edgeKinds = {
  Pod: kind("", "v1", "Pod", "pods"),
  ReplicaSet: kind("apps", "v1", "ReplicaSet", "replicasets"),
  Deployment: kind("apps", "v1", "Deployment", "deployments"),
  StatefulSet: kind("apps", "v1", "StatefulSet", "statefulsets"),
  DaemonSet: kind("apps", "v1", "DaemonSet", "daemonsets"),
  Job: kind("batch", "v1", "Job", "jobs"),
  CronJob: kind("batch", "v1", "CronJob", "cronjobs"),
  VirtualMachine: kind("kubevirt.io", "v1", "VirtualMachine", "virtualmachines"),
  VirtualMachineInstance: kind("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"),
} satisfies Record<string, ResourceType>;

export type EdgeKind = keyof typeof edgeKinds;

/** KubeVirt's subresource API: PUT …/virtualmachines/<name>/start|stop|restart. */
export function kubevirtActionPath(
  namespace: string,
  name: string,
  action: "start" | "stop" | "restart",
): string {
  return `/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(namespace)}/virtualmachines/${encodeURIComponent(name)}/${action}`;
}

/** The annotation `kubectl rollout restart` sets on a workload's pod template. */
export const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt";
export const helmReleaseName = "meta.helm.sh/release-name";
export const helmReleaseNamespace = "meta.helm.sh/release-namespace";

/** What a deployment installed on one cluster: Helm releases by namespace. */
export interface Installed {
  releases: { namespace: string; release: string; application: string }[];
}

/** The releases of the deployment's delivered applications whose targets select `cluster`. */
export function installedOn(
  delivered: DeliveredApp[],
  clusters: { metadata: { name?: string; labels?: Record<string, string> } }[],
  cluster: string,
): Installed {
  const target = clusters.filter((c) => c.metadata.name === cluster);
  const releases = delivered
    .filter((d) => targetedClusters(d.targets, target).length > 0)
    .map((d) => ({ namespace: d.namespace, release: d.releaseName, application: d.application }))
    .filter((r) => r.namespace && r.release);
  return { releases };
}

export interface Owned {
  kind: string;
  metadata: {
    name?: string;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; controller?: boolean }[];
  };
}

/**
 * The release of `installed` in `namespace` that one of `chain` (the target, then its
 * controllers upwards) was installed by, if any.
 */
export function owningRelease(
  chain: Owned[],
  namespace: string,
  installed: Installed,
): Installed["releases"][number] | undefined {
  for (const obj of chain) {
    const a = obj.metadata.annotations ?? {};
    const name = a[helmReleaseName];
    if (name === undefined) continue;
    const releaseNs = a[helmReleaseNamespace] ?? namespace;
    return installed.releases.find((r) => r.release === name && r.namespace === releaseNs);
  }
  return undefined;
}

/** The controller of `obj` that the chain walk follows next, if it is a kind we know. */
export function controllerOf(obj: Owned): { kind: EdgeKind; name: string } | undefined {
  const ref = obj.metadata.ownerReferences?.find((o) => o.controller);
  if (!ref || !Object.hasOwn(edgeKinds, ref.kind)) return undefined;
  return { kind: ref.kind as EdgeKind, name: ref.name };
}
