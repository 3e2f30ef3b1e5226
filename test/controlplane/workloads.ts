// Edge clusters that run workloads: the pure parts (options and their defaults, the fake
// Node objects, the controllers and kwok flags, the failure rule). controlplane.ts starts
// the processes: the controller manager's workload controllers, kube-scheduler and kwok,
// whose Stages (kwok-stages.yaml) make pods on the fake nodes Running and Ready.
import { fileURLToPath } from "node:url";
import type { V1Node, V1PersistentVolume } from "@kubernetes/client-node";

/** Fake nodes of one edge cluster. Every field is optional; the defaults are given. */
export interface WorkloadOptions {
  /** Number of Nodes, named `<edge>-node-1…N`. Default 2. */
  nodes?: number;
  /** CPU capacity (and allocatable) per node. Default "8". */
  cpu?: string;
  /** Memory per node. Default "32Gi". */
  memory?: string;
  /** Pod capacity per node. Default 110. */
  pods?: number;
  /** `kubernetes.io/arch` and nodeInfo.architecture. Default "amd64". */
  arch?: string;
  /** Extra labels on every node. */
  nodeLabels?: Record<string, string>;
  /** `nvidia.com/gpu` capacity per GPU node. Default none. */
  gpus?: number;
  /** How many of the nodes (the first ones) have the GPUs. Default all. */
  gpuNodes?: number;
  /**
   * PersistentVolumes made ready for claims (StatefulSets' volumeClaimTemplates), of
   * `volumeSize` each, without a StorageClass. Nothing is mounted: kwok pods run no
   * containers. Default 8.
   */
  volumes?: number;
  /** Capacity of each PersistentVolume. Default "100Gi". */
  volumeSize?: string;
}

/** `StartOptions.workloads`: the same for every edge, or chosen per edge (undefined: none). */
export type WorkloadsOption =
  WorkloadOptions | ((edge: string, index: number) => WorkloadOptions | undefined);

export type ResolvedWorkloads = Required<Omit<WorkloadOptions, "gpus">> & { gpus: number };

/** The options of edge `edge` (index 0 is edge-1), with defaults, or undefined for none. */
export function workloadsFor(
  option: WorkloadsOption | undefined,
  edge: string,
  index: number,
): ResolvedWorkloads | undefined {
  const chosen = typeof option === "function" ? option(edge, index) : option;
  if (!chosen) return undefined;
  const nodes = chosen.nodes ?? 2;
  if (!Number.isInteger(nodes) || nodes < 1) throw new Error(`${edge}: workloads.nodes must be ≥ 1`);
  return {
    nodes,
    cpu: chosen.cpu ?? "8",
    memory: chosen.memory ?? "32Gi",
    pods: chosen.pods ?? 110,
    arch: chosen.arch ?? "amd64",
    nodeLabels: chosen.nodeLabels ?? {},
    gpus: chosen.gpus ?? 0,
    gpuNodes: Math.min(chosen.gpuNodes ?? nodes, nodes),
    volumes: chosen.volumes ?? 8,
    volumeSize: chosen.volumeSize ?? "100Gi",
  };
}

/**
 * The PersistentVolumes of one edge: claims without a StorageClass bind to them (the
 * persistentvolume-binder controller), so pods with claims get scheduled. Retained when
 * released: no volume plugin runs to delete or recycle them.
 */
export function fakeVolumes(edge: string, w: ResolvedWorkloads): V1PersistentVolume[] {
  return Array.from({ length: w.volumes }, (_, i) => ({
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name: `${edge}-volume-${i + 1}`, labels: { type: "kwok" } },
    spec: {
      capacity: { storage: w.volumeSize },
      accessModes: ["ReadWriteOnce"],
      persistentVolumeReclaimPolicy: "Retain",
      hostPath: { path: `/var/lib/outpost-kwok/${edge}/volume-${i + 1}` },
    },
  }));
}

/** The annotation kwok selects its nodes by (--manage-nodes-with-annotation-selector). */
export const kwokNodeAnnotation = { key: "kwok.x-k8s.io/node", value: "fake" } as const;
/** The extended resource of NVIDIA's device plugin, and the label its GPU feature discovery sets. */
export const gpuResource = "nvidia.com/gpu";
export const gpuPresentLabel = "nvidia.com/gpu.present";

/**
 * The failure rule of kwok-stages.yaml: a pod with a container whose image ends in
 * ":broken" (tag `broken`: `nginx:broken`, `registry:5000/x/y:broken`) starts, but that
 * container crash-loops (waiting, reason CrashLoopBackOff, restartCount 1) and the pod
 * stays Ready=False and ContainersReady=False. No other pod is affected.
 */
export const brokenImage = {
  tag: "broken",
  /** The jq selector key of the stages (In / NotIn "true"). */
  selector: '.spec.containers.[].image | endswith(":broken")',
  matches: (image: string): boolean => image.endsWith(":broken"),
} as const;

export const kwokStagesFile = fileURLToPath(new URL("./kwok-stages.yaml", import.meta.url));

/** Node names of an edge with `count` fake nodes. */
export function nodeNames(edge: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${edge}-node-${i + 1}`);
}

/**
 * The Node objects the harness creates, status included (the API server keeps a Node's
 * status on create, as for a kubelet registering). kwok's stages add the conditions.
 */
export function fakeNodes(edge: string, w: ResolvedWorkloads): V1Node[] {
  return nodeNames(edge, w.nodes).map((name, i) => {
    const gpu = w.gpus > 0 && i < w.gpuNodes;
    const resources: Record<string, string> = {
      cpu: w.cpu,
      memory: w.memory,
      pods: String(w.pods),
      "ephemeral-storage": "100Gi",
      ...(gpu ? { [gpuResource]: String(w.gpus) } : {}),
    };
    return {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name,
        annotations: { [kwokNodeAnnotation.key]: kwokNodeAnnotation.value },
        labels: {
          ...w.nodeLabels,
          "kubernetes.io/arch": w.arch,
          "kubernetes.io/os": "linux",
          "kubernetes.io/hostname": name,
          type: "kwok",
          ...(gpu ? { [gpuPresentLabel]: "true" } : {}),
        },
      },
      // kwok hands out pod IPs from the node's podCIDR.
      spec: { podCIDR: `10.244.${i + 1}.0/24`, podCIDRs: [`10.244.${i + 1}.0/24`] },
      status: {
        capacity: resources,
        allocatable: resources,
        addresses: [
          { type: "InternalIP", address: `10.240.0.${i + 1}` },
          { type: "Hostname", address: name },
        ],
        nodeInfo: {
          architecture: w.arch,
          operatingSystem: "linux",
          kubeletVersion: "v1.34.4-kwok",
          kubeProxyVersion: "",
          containerRuntimeVersion: "kwok://v0.7.0",
          kernelVersion: "",
          osImage: "kwok",
          machineID: "",
          systemUUID: "",
          bootID: "",
        },
      },
    };
  });
}

/** True when the Node's Ready condition is True. */
export function nodeReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/**
 * Controllers of a cluster's kube-controller-manager. Every cluster collects garbage,
 * deletes namespaces and aggregates ClusterRoles; an edge with workloads also runs what
 * pods of charts need. Left out on purpose: node-lifecycle and taint-eviction (they would
 * taint and evict on a late kwok heartbeat), attaching and expanding volumes (nothing
 * mounts; claims bind to fakeVolumes), serviceaccount-token (tokens are
 * not mounted: the ServiceAccount admission plugin is off, see launchApiServer), HPA
 * (no metrics), and node-ipam (the harness sets each node's podCIDR).
 */
export function controllers(workloads: boolean): string[] {
  const base = ["garbage-collector-controller", "namespace-controller", "clusterrole-aggregation-controller"];
  if (!workloads) return base;
  return [
    ...base,
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    // Creates the `default` ServiceAccount of each namespace, as charts expect.
    "serviceaccount-controller",
    // Without it a namespace with a ResourceQuota admits no pod (quota status unknown).
    "resourcequota-controller",
    // Claims (StatefulSets' volumeClaimTemplates) bind to the edge's fakeVolumes.
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
  ];
}

/** kwok's flags for one edge: its own kubeconfig, stages and loopback server port. */
export function kwokArgs(kubeconfig: string, serverPort: number): string[] {
  return [
    `--kubeconfig=${kubeconfig}`,
    `--manage-nodes-with-annotation-selector=${kwokNodeAnnotation.key}=${kwokNodeAnnotation.value}`,
    // Only our stages: with --config naming Node and Pod stages kwok uses none of its own.
    `--config=${kwokStagesFile}`,
    // kwok serves /healthz (and its debugging API) here; unset, it would serve nothing, but
    // a free loopback port gives a readiness probe and never clashes with another kwok.
    `--server-address=127.0.0.1:${serverPort}`,
  ];
}
