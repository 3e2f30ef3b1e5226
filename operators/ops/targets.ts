// Pure helpers of the ops operator: the edge kinds a ResourceAction can act on and the
// owners it walks through, what a deployment has installed on one cluster, and whether an
// object belongs to it (Helm's release annotations, which Fleet's agent sets, on the
// object or on the controller chain above it).
import type { ResourceType } from "../runtime/client.ts";
import { engineApplicationOn, type DeliveredApp } from "../deploy/delivered.ts";
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
/** Argo CD's tracking annotation on what it applies: `<application>:<group>/<kind>:<namespace>/<name>`. */
export const argoTrackingAnnotation = "argocd.argoproj.io/tracking-id";

export interface Release {
  namespace: string;
  release: string;
  application: string;
  /** Delivered by Argo CD: the Application that applied it on this cluster. */
  argoApplication?: string;
}

/** What a deployment installed on one cluster: Helm releases by namespace. */
export interface Installed {
  releases: Release[];
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
    .map((d) => {
      const argoApplication = engineApplicationOn(d, cluster);
      return {
        namespace: d.namespace,
        release: d.releaseName,
        application: d.application,
        ...(argoApplication === undefined ? {} : { argoApplication }),
      };
    })
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
 * Whether `obj` says who installed it — Helm's release annotations (Helm installs: Fleet's
 * agent) or Argo CD's tracking annotation — and if so the release of `installed` that did,
 * or null when that is none of them.
 */
export function releaseOf(
  obj: { metadata: { annotations?: Record<string, string> } },
  namespace: string,
  installed: Installed,
): Release | null | undefined {
  const a = obj.metadata.annotations ?? {};
  const name = a[helmReleaseName];
  if (name !== undefined) {
    const releaseNs = a[helmReleaseNamespace] ?? namespace;
    return installed.releases.find((r) => r.release === name && r.namespace === releaseNs) ?? null;
  }
  const tracking = a[argoTrackingAnnotation];
  if (tracking !== undefined) {
    const [app, , where] = tracking.split(":");
    const given = where?.split("/")[0];
    const objectNs = given === undefined || given === "" ? namespace : given;
    return (
      installed.releases.find(
        (r) => r.argoApplication !== undefined && r.argoApplication === app && r.namespace === objectNs,
      ) ?? null
    );
  }
  return undefined;
}

/**
 * The release of `installed` in `namespace` that one of `chain` (the target, then its
 * controllers upwards) was installed by, if any.
 */
export function owningRelease(chain: Owned[], namespace: string, installed: Installed): Release | undefined {
  for (const obj of chain) {
    const release = releaseOf(obj, namespace, installed);
    if (release !== undefined) return release ?? undefined;
  }
  return undefined;
}

/** The controller of `obj` that the chain walk follows next, if it is a kind we know. */
export function controllerOf(obj: Owned): { kind: EdgeKind; name: string } | undefined {
  const ref = obj.metadata.ownerReferences?.find((o) => o.controller);
  if (!ref || !Object.hasOwn(edgeKinds, ref.kind)) return undefined;
  return { kind: ref.kind as EdgeKind, name: ref.name };
}
