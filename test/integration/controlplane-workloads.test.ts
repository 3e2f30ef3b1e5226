// Edge clusters that run workloads: Deployments, StatefulSets, DaemonSets and Jobs get pods
// from the real controller manager, placed by the real kube-scheduler on kwok's fake nodes,
// which make them Running and Ready — or crash-looping for a ":broken" image.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { namespacesResource, podsResource, servicesResource } from "../../operators/runtime/core.ts";
import { kubeConfigFromFile, startControlPlane, type Cluster } from "../controlplane/index.ts";
import { brokenImage, gpuPresentLabel, gpuResource } from "../controlplane/workloads.ts";
import { eventually, processesMentioning, useControlPlane } from "../support/controlplane.ts";

const edge1Workloads = {
  nodes: 3,
  cpu: "4",
  memory: "16Gi",
  pods: 50,
  arch: "arm64",
  nodeLabels: { "topology.kubernetes.io/zone": "edge-a" },
  gpus: 2,
  gpuNodes: 1,
};
const controlPlane = useControlPlane({
  edges: 2,
  workloads: (_edge, index) => (index === 0 ? edge1Workloads : undefined),
});

const kind = (
  group: string,
  version: string,
  k: string,
  plural: string,
  namespaced = true,
): ResourceType => ({
  group,
  version,
  kind: k,
  plural,
  namespaced,
});
const nodesResource = kind("", "v1", "Node", "nodes", false);
const deployments = kind("apps", "v1", "Deployment", "deployments");
const replicaSets = kind("apps", "v1", "ReplicaSet", "replicasets");
const statefulSets = kind("apps", "v1", "StatefulSet", "statefulsets");
const daemonSets = kind("apps", "v1", "DaemonSet", "daemonsets");
const jobs = kind("batch", "v1", "Job", "jobs");

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  state?: { running?: object; waiting?: { reason?: string; message?: string } };
}
interface Pod extends KubeObject {
  spec: { nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    startTime?: string;
    conditions?: Condition[];
    containerStatuses?: ContainerStatus[];
  };
}
interface Node extends KubeObject {
  status?: {
    capacity?: Record<string, string>;
    allocatable?: Record<string, string>;
    conditions?: Condition[];
  };
}
interface WorkloadStatus extends KubeObject {
  status?: {
    readyReplicas?: number;
    availableReplicas?: number;
    numberReady?: number;
    desiredNumberScheduled?: number;
    conditions?: Condition[];
  };
}

const condition = (conditions: Condition[] | undefined, type: string): Condition | undefined =>
  conditions?.find((c) => c.type === type);
const isTrue = (conditions: Condition[] | undefined, type: string): boolean =>
  condition(conditions, type)?.status === "True";
const podReady = (p: Pod): boolean => p.status?.phase === "Running" && isTrue(p.status.conditions, "Ready");

const timeoutMs = 60_000;
let client: KubeClient;
let edge1: Cluster;
let namespaces = 0;

/** A fresh namespace for one test. */
async function namespace(): Promise<string> {
  const name = `workloads-${++namespaces}`;
  await client.create(namespacesResource, { metadata: { name } });
  return name;
}

function podTemplate(app: string, image: string, resources?: object): object {
  return {
    metadata: { labels: { app } },
    spec: { containers: [{ name: app, image, ...(resources ? { resources } : {}) }] },
  };
}

function deployment(
  ns: string,
  name: string,
  replicas: number,
  image = "nginx:1.27",
  extra = {},
): KubeObject {
  return {
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: podTemplate(name, image),
      ...extra,
    },
  } as KubeObject;
}

/** Waits until exactly `count` pods match `app` and all are Running and Ready on fake nodes. */
async function readyPods(c: KubeClient, ns: string, app: string, count: number): Promise<Pod[]> {
  return eventually(
    `${count} Ready pod(s) of ${ns}/${app}`,
    async () => {
      const pods = (await c.list<Pod>(podsResource, { namespace: ns, labelSelector: `app=${app}` })).items;
      return pods.length === count && pods.every(podReady) ? pods : undefined;
    },
    timeoutMs,
  );
}

function assertOnFakeNodes(pods: Pod[]): void {
  for (const pod of pods) {
    assert.ok(
      edge1.nodes.includes(pod.spec.nodeName ?? ""),
      `${pod.metadata.name} is on ${pod.spec.nodeName}`,
    );
    assert.ok(pod.status?.podIP, `${pod.metadata.name} has a pod IP`);
    assert.ok(pod.status.startTime, `${pod.metadata.name} has a start time`);
    assert.ok(isTrue(pod.status.conditions, "ContainersReady"));
    assert.ok(pod.status.containerStatuses?.every((s) => s.ready && s.state?.running));
  }
}

describe("edge clusters that run workloads", () => {
  before(() => {
    const [first] = controlPlane().edges;
    assert.ok(first);
    edge1 = first;
    client = new KubeClient(kubeConfigFromFile(edge1.kubeconfig));
  });
  after(async () => {
    await client.close();
  });

  it("has Ready fake nodes with the labels and capacity asked for, only where asked", async () => {
    const [, edge2] = controlPlane().edges;
    assert.ok(edge2);
    assert.deepEqual(edge1.nodes, ["edge-1-node-1", "edge-1-node-2", "edge-1-node-3"]);
    const nodes = (await client.list<Node>(nodesResource)).items.sort((a, b) =>
      (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""),
    );
    assert.deepEqual(
      nodes.map((n) => n.metadata.name),
      edge1.nodes,
    );
    for (const [i, node] of nodes.entries()) {
      assert.ok(isTrue(node.status?.conditions, "Ready"), `${node.metadata.name} is Ready`);
      assert.equal(node.metadata.annotations?.["kwok.x-k8s.io/node"], "fake");
      const labels = node.metadata.labels ?? {};
      assert.equal(labels["kubernetes.io/arch"], "arm64");
      assert.equal(labels["kubernetes.io/os"], "linux");
      assert.equal(labels["kubernetes.io/hostname"], node.metadata.name);
      assert.equal(labels.type, "kwok");
      assert.equal(labels["topology.kubernetes.io/zone"], "edge-a");
      const gpu = i === 0;
      assert.equal(labels[gpuPresentLabel], gpu ? "true" : undefined);
      for (const resources of [node.status?.capacity ?? {}, node.status?.allocatable ?? {}]) {
        assert.equal(resources.cpu, "4");
        assert.equal(resources.memory, "16Gi");
        assert.equal(resources.pods, "50");
        assert.ok(resources["ephemeral-storage"]);
        assert.equal(resources[gpuResource], gpu ? "2" : undefined);
      }
    }
    assert.ok(edge1.scheduler?.running && edge1.kwok?.running);

    // The edge without workloads: no nodes, no scheduler, no kwok.
    assert.deepEqual(edge2.nodes, []);
    assert.equal(edge2.scheduler, undefined);
    assert.equal(edge2.kwok, undefined);
    const other = new KubeClient(kubeConfigFromFile(edge2.kubeconfig));
    try {
      assert.deepEqual((await other.list<Node>(nodesResource)).items, []);
    } finally {
      await other.close();
    }
    const names = controlPlane()
      .processes()
      .map((p) => p.name);
    assert.ok(names.includes("edge-1-scheduler") && names.includes("edge-1-kwok"));
    assert.ok(!names.some((n) => n.startsWith("edge-2-") && /scheduler|kwok/.test(n)), names.join(", "));
    assert.ok(!names.some((n) => n.startsWith("management-") && /scheduler|kwok/.test(n)), names.join(", "));
  });

  it("runs a Deployment's pods on the fake nodes until the Deployment is Available", async () => {
    const ns = await namespace();
    await client.create(deployments, deployment(ns, "web", 2));
    const pods = await readyPods(client, ns, "web", 2);
    assertOnFakeNodes(pods);
    const web = await eventually(
      "web to be Available with 2 ready replicas",
      async () => {
        const d = await client.get<WorkloadStatus>(deployments, "web", ns);
        return d?.status?.readyReplicas === 2 && isTrue(d.status.conditions, "Available") ? d : undefined;
      },
      timeoutMs,
    );
    assert.equal(web.status?.availableReplicas, 2);
  });

  it("runs a StatefulSet (with a volume claim) behind a headless Service, and a DaemonSet on every node", async () => {
    const ns = await namespace();
    await client.create(servicesResource, {
      metadata: { name: "db", namespace: ns },
      spec: { clusterIP: "None", selector: { app: "db" }, ports: [{ port: 5432 }] },
    } as KubeObject);
    await client.create(statefulSets, {
      metadata: { name: "db", namespace: ns },
      spec: {
        replicas: 1,
        serviceName: "db",
        selector: { matchLabels: { app: "db" } },
        template: podTemplate("db", "postgres:16"),
        volumeClaimTemplates: [
          {
            metadata: { name: "data" },
            spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "20Gi" } } },
          },
        ],
      },
    } as KubeObject);
    await client.create(daemonSets, {
      metadata: { name: "agent", namespace: ns },
      spec: { selector: { matchLabels: { app: "agent" } }, template: podTemplate("agent", "busybox:1.36") },
    } as KubeObject);

    const [db] = await readyPods(client, ns, "db", 1);
    assert.ok(db);
    assert.equal(db.metadata.name, "db-0");
    assertOnFakeNodes([db]);
    const claim = await client.get<KubeObject & { status?: { phase?: string } }>(
      {
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        namespaced: true,
      },
      "data-db-0",
      ns,
    );
    assert.equal(claim?.status?.phase, "Bound", "its claim bound to one of the edge's volumes");
    const agents = await readyPods(client, ns, "agent", edge1.nodes.length);
    assertOnFakeNodes(agents);
    assert.deepEqual(agents.map((p) => p.spec.nodeName).sort(), [...edge1.nodes].sort());
    await eventually(
      "the DaemonSet to count every pod ready",
      async () => {
        const ds = await client.get<WorkloadStatus>(daemonSets, "agent", ns);
        return ds?.status?.numberReady === edge1.nodes.length ? true : undefined;
      },
      timeoutMs,
    );
  });

  it("completes a Job", async () => {
    const ns = await namespace();
    await client.create(jobs, {
      metadata: { name: "migrate", namespace: ns },
      spec: {
        template: { spec: { restartPolicy: "Never", containers: [{ name: "m", image: "busybox:1.36" }] } },
      },
    } as KubeObject);
    await eventually(
      "the Job to be Complete",
      async () => {
        const job = await client.get<WorkloadStatus>(jobs, "migrate", ns);
        return isTrue(job?.status?.conditions, "Complete") ? true : undefined;
      },
      timeoutMs,
    );
    const pods = (await client.list<Pod>(podsResource, { namespace: ns, labelSelector: "job-name=migrate" }))
      .items;
    assert.deepEqual(
      pods.map((p) => p.status?.phase),
      ["Succeeded"],
    );
  });

  it(`never readies a pod with a ${brokenImage.tag} image, while a normal one becomes Available`, async () => {
    const ns = await namespace();
    await Promise.all([
      client.create(
        deployments,
        deployment(ns, "bad", 1, "registry.example:5000/team/app:broken", { progressDeadlineSeconds: 5 }),
      ),
      client.create(
        deployments,
        deployment(ns, "good", 1, "registry.example:5000/team/app:1.0", { progressDeadlineSeconds: 5 }),
      ),
    ]);
    // The positive witness: the Deployment controller gives up on "bad" after 5 s.
    const bad = await eventually(
      "bad's Progressing condition to be ProgressDeadlineExceeded",
      async () => {
        const d = await client.get<WorkloadStatus>(deployments, "bad", ns);
        const progressing = condition(d?.status?.conditions, "Progressing");
        return progressing?.status === "False" && progressing.reason === "ProgressDeadlineExceeded"
          ? d
          : undefined;
      },
      timeoutMs,
    );
    assert.equal(bad.status?.readyReplicas, undefined);
    assert.ok(!isTrue(bad.status?.conditions, "Available"));

    const [pod, ...more] = (await client.list<Pod>(podsResource, { namespace: ns, labelSelector: "app=bad" }))
      .items;
    assert.ok(pod);
    assert.equal(more.length, 0);
    assert.equal(pod.status?.phase, "Running");
    assert.equal(condition(pod.status.conditions, "Ready")?.status, "False");
    assert.equal(condition(pod.status.conditions, "ContainersReady")?.status, "False");
    const [status] = pod.status.containerStatuses ?? [];
    assert.equal(status?.ready, false);
    assert.equal(status.state?.waiting?.reason, "CrashLoopBackOff");
    assert.match(status.state.waiting.message ?? "", /back-off .* restarting failed container=bad/);
    assert.ok(status.restartCount > 0);

    await eventually(
      "good, created with it, to be Available",
      async () => {
        const d = await client.get<WorkloadStatus>(deployments, "good", ns);
        return d?.status?.readyReplicas === 1 && isTrue(d.status.conditions, "Available") ? true : undefined;
      },
      timeoutMs,
    );
  });

  it("places pods that request a GPU only on the GPU node, as far as its GPUs go", async () => {
    const ns = await namespace();
    const gpuPod = (name: string): KubeObject =>
      ({
        metadata: { name, namespace: ns, labels: { app: "train" } },
        spec: {
          containers: [
            {
              name: "train",
              image: "cuda:12",
              resources: { limits: { [gpuResource]: "1" }, requests: { [gpuResource]: "1" } },
            },
          ],
        },
      }) as KubeObject;
    for (const name of ["train-1", "train-2", "train-3"]) await client.create(podsResource, gpuPod(name));
    // The GPU node has 2 GPUs: two pods run there, the third cannot be placed anywhere.
    const unschedulable = await eventually(
      "train-3 to be unschedulable for lack of GPUs",
      async () => {
        const pods = (await client.list<Pod>(podsResource, { namespace: ns, labelSelector: "app=train" }))
          .items;
        const pending = pods.filter((p) => !p.spec.nodeName);
        const scheduled = condition(pending[0]?.status?.conditions, "PodScheduled");
        return pods.filter(podReady).length === 2 &&
          pending.length === 1 &&
          scheduled?.reason === "Unschedulable"
          ? { pods, scheduled }
          : undefined;
      },
      timeoutMs,
    );
    assert.match(
      unschedulable.scheduled.message ?? "",
      new RegExp(`Insufficient ${gpuResource.replace(".", "\\.")}`),
    );
    for (const pod of unschedulable.pods.filter(podReady)) assert.equal(pod.spec.nodeName, "edge-1-node-1");
  });

  it("removes a Deployment's pods when it is deleted", async () => {
    const ns = await namespace();
    await client.create(deployments, deployment(ns, "gone", 2));
    await readyPods(client, ns, "gone", 2);
    assert.ok(await client.delete(deployments, "gone", ns));
    await eventually(
      "the ReplicaSet and pods of the deleted Deployment to be gone",
      async () => {
        const sets = await client.list(replicaSets, { namespace: ns, labelSelector: "app=gone" });
        const pods = await client.list(podsResource, { namespace: ns, labelSelector: "app=gone" });
        return sets.items.length === 0 && pods.items.length === 0 ? true : undefined;
      },
      timeoutMs,
    );
  });

  it("still schedules and readies pods after the edge's API server restarts", async () => {
    const cp = controlPlane();
    await cp.killApiServer(edge1);
    await cp.restartApiServer(edge1);
    // A new client: the old one's pooled connections died with the server.
    const fresh = new KubeClient(kubeConfigFromFile(edge1.kubeconfig));
    try {
      const ns = `workloads-${++namespaces}`;
      await fresh.create(namespacesResource, { metadata: { name: ns } });
      await fresh.create(deployments, deployment(ns, "after-restart", 2));
      assertOnFakeNodes(await readyPods(fresh, ns, "after-restart", 2));
      assert.ok(edge1.scheduler?.running && edge1.kwok?.running && edge1.controllerManager.running);
    } finally {
      await fresh.close();
    }
  });
});

describe("stopping a control plane with workloads", () => {
  it("leaves no scheduler, kwok or controller manager running", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-workloads-"));
    try {
      const cp = await startControlPlane({ dir, edges: 1, workloads: { nodes: 1 } });
      const [edge] = cp.edges;
      assert.ok(edge?.scheduler && edge.kwok);
      const started = [edge.scheduler.pid, edge.kwok.pid, edge.controllerManager.pid];
      const running = processesMentioning(dir);
      for (const pid of started) assert.ok(running.includes(pid), `pid ${pid} runs before stop`);
      await cp.stop({ keep: true });
      assert.deepEqual(processesMentioning(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
