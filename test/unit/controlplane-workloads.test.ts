// The pure parts of edges that run workloads: option defaults, the fake Node objects, the
// controller list, kwok's flags and the Stages file (selectors keep the failure rule apart).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  brokenImage,
  controllers,
  fakeNodes,
  gpuPresentLabel,
  gpuResource,
  kwokArgs,
  kwokStagesFile,
  workloadsFor,
} from "../controlplane/workloads.ts";

interface Expression {
  key: string;
  operator: string;
  values?: string[];
}
interface Stage {
  metadata: { name: string };
  spec: {
    resourceRef: { apiGroup: string; kind: string };
    selector: { matchExpressions: Expression[] };
    weight?: number;
    next: { patches?: { template: string }[]; delete?: boolean };
  };
}

const stages = parseAllDocuments(readFileSync(kwokStagesFile, "utf8"))
  .map((d) => d.toJSON() as Stage | null)
  .filter((s): s is Stage => s !== null);
const stage = (name: string): Stage => {
  const found = stages.find((s) => s.metadata.name === name);
  assert.ok(found, `stage ${name}`);
  return found;
};
const has = (s: Stage, key: string, operator: string, values?: string[]): boolean =>
  s.spec.selector.matchExpressions.some(
    (e) => e.key === key && e.operator === operator && JSON.stringify(e.values) === JSON.stringify(values),
  );

describe("workload options", () => {
  it("fills in defaults, per edge or for all, and none when undefined", () => {
    assert.deepEqual(workloadsFor({}, "edge-1", 0), {
      nodes: 2,
      cpu: "8",
      memory: "32Gi",
      pods: 110,
      arch: "amd64",
      nodeLabels: {},
      gpus: 0,
      gpuNodes: 2,
      volumes: 8,
      volumeSize: "100Gi",
    });
    assert.equal(workloadsFor(undefined, "edge-1", 0), undefined);
    const perEdge = (_edge: string, i: number) => (i === 1 ? { nodes: 3, gpus: 1, gpuNodes: 9 } : undefined);
    assert.equal(workloadsFor(perEdge, "edge-1", 0), undefined);
    assert.equal(workloadsFor(perEdge, "edge-2", 1)?.gpuNodes, 3, "at most every node");
    assert.throws(() => workloadsFor({ nodes: 0 }, "edge-1", 0), /edge-1: workloads.nodes must be ≥ 1/);
  });

  it("renders kwok's Nodes with labels, capacity and GPUs on the first gpuNodes", () => {
    const w = workloadsFor(
      { nodes: 3, cpu: "4", arch: "arm64", nodeLabels: { zone: "a" }, gpus: 2, gpuNodes: 1 },
      "edge-1",
      0,
    );
    assert.ok(w);
    const nodes = fakeNodes("edge-1", w);
    assert.deepEqual(
      nodes.map((n) => n.metadata?.name),
      ["edge-1-node-1", "edge-1-node-2", "edge-1-node-3"],
    );
    const [gpu, plain] = nodes.map((n) => ({
      labels: n.metadata?.labels ?? {},
      annotations: n.metadata?.annotations ?? {},
      capacity: n.status?.capacity ?? {},
      allocatable: n.status?.allocatable ?? {},
      arch: n.status?.nodeInfo?.architecture,
      podCIDR: n.spec?.podCIDR,
    }));
    assert.ok(gpu && plain);
    assert.deepEqual(gpu.annotations, { "kwok.x-k8s.io/node": "fake" });
    assert.deepEqual(gpu.labels, {
      zone: "a",
      "kubernetes.io/arch": "arm64",
      "kubernetes.io/os": "linux",
      "kubernetes.io/hostname": "edge-1-node-1",
      type: "kwok",
      [gpuPresentLabel]: "true",
    });
    assert.equal(gpu.capacity[gpuResource], "2");
    assert.deepEqual(gpu.allocatable, gpu.capacity);
    assert.equal(plain.labels[gpuPresentLabel], undefined);
    assert.deepEqual(plain.capacity, { cpu: "4", memory: "32Gi", pods: "110", "ephemeral-storage": "100Gi" });
    assert.equal(plain.arch, "arm64");
    assert.notEqual(gpu.podCIDR, plain.podCIDR, "each node has its own pod IPs");
  });

  it("runs the workload controllers only where asked, and never node-lifecycle", () => {
    const base = controllers(false);
    assert.deepEqual(base, [
      "garbage-collector-controller",
      "namespace-controller",
      "clusterrole-aggregation-controller",
    ]);
    const all = controllers(true);
    for (const c of [
      ...base,
      "deployment-controller",
      "replicaset-controller",
      "statefulset-controller",
      "daemonset-controller",
      "job-controller",
    ]) {
      assert.ok(all.includes(c), c);
    }
    assert.ok(!all.includes("node-lifecycle-controller"));
    assert.ok(!all.includes("serviceaccount-token-controller"));
  });

  it("gives kwok its kubeconfig, node selector, stages and a loopback server port", () => {
    assert.deepEqual(kwokArgs("/d/kubeconfig", 4321), [
      "--kubeconfig=/d/kubeconfig",
      "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
      `--config=${kwokStagesFile}`,
      "--server-address=127.0.0.1:4321",
    ]);
  });
});

describe("kwok stages", () => {
  it("has uniquely named Node and Pod stages and no weights", () => {
    const names = stages.map((s) => s.metadata.name);
    assert.equal(new Set(names).size, names.length);
    for (const s of stages) {
      assert.equal(s.spec.resourceRef.apiGroup, "v1");
      assert.ok(["Node", "Pod"].includes(s.spec.resourceRef.kind), s.metadata.name);
      assert.equal(s.spec.weight, undefined, `${s.metadata.name}: selectors, not weights, choose`);
    }
  });

  it("keeps broken pods away from the Ready and Complete stages and sends them to the crash loop", () => {
    const selector = brokenImage.selector;
    for (const name of ["outpost-pod-ready", "outpost-pod-complete"]) {
      assert.ok(has(stage(name), selector, "NotIn", ["true"]), name);
    }
    const crash = stage("outpost-pod-crashloop");
    assert.ok(has(crash, selector, "In", ["true"]));
    const template = crash.spec.next.patches?.[0]?.template ?? "";
    assert.match(template, /reason: CrashLoopBackOff/);
    assert.match(template, /hasSuffix ":broken" \.image/);
    assert.match(template, /type: Ready, status: "False"/);
    // The two start stages see the same pods otherwise, so exactly one of them applies.
    for (const s of [stage("outpost-pod-ready"), crash]) {
      assert.ok(has(s, ".metadata.deletionTimestamp", "DoesNotExist"));
      assert.ok(has(s, ".status.podIP", "DoesNotExist"));
    }
    assert.doesNotMatch(template, /type: (Ready|ContainersReady), status: "True"/);
  });

  it("deletes pods that are being deleted", () => {
    const del = stage("outpost-pod-delete");
    assert.ok(has(del, ".metadata.deletionTimestamp", "Exists"));
    assert.equal(del.spec.next.delete, true);
  });

  it("names the failure rule: the image tag is broken", () => {
    for (const image of ["nginx:broken", "registry.example:5000/team/app:broken"])
      assert.ok(brokenImage.matches(image), image);
    for (const image of ["nginx", "nginx:1.27", "broken/app:1.0", "registry:5000/broken", "nginx:broken-1"]) {
      assert.ok(!brokenImage.matches(image), image);
    }
    assert.equal(brokenImage.tag, "broken");
  });
});
