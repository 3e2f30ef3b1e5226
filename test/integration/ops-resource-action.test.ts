// ResourceActions end to end: a management API server and three edge API servers
// (store-1, store-2, central) with Outpost's edge RBAC, the Fleet test driver, the deploy
// and ops operators. What Helm installs is played on the edges (Deployments, ReplicaSets
// and Pods with Helm's release annotations); KubeVirt's subresource API is a test server
// behind a real APIService on the edge. Restart of a pod and of a workload, VM start and
// stop, refusals of targets outside the deployment, at-most-once, and the TTL.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ResourceAction } from "../../operators/api/resource-action.generated.ts";
import { AppDeploymentResource, ResourceActionResource } from "../../operators/api/resources.generated.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import { deploymentResources, formatResources } from "../../cli/resources.ts";
import { registerOps } from "../../operators/ops/index.ts";
import { edgeKinds, restartedAtAnnotation } from "../../operators/ops/targets.ts";
import type { KubeClient, KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import { namespacesResource } from "../../operators/runtime/core.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import {
  shopDeployment,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";
import { edgeUser, startEdges, type Edges } from "../support/interconnect.ts";
import { startKubevirt, VirtualMachineResource, type Kubevirt } from "../support/kubevirt.ts";
import { startOperator } from "../support/operator.ts";

// The aggregator routes to the KubeVirt test server's endpoint, not to a ClusterIP
// (nothing implements Services here).
const controlPlane = useControlPlane({ edges: 3, apiServerArgs: ["--enable-aggregator-routing=true"] });
const ns = "retail";
let fx: DeployFixture;
let edges: Edges;
let client: KubeClient;
let kubevirt: Kubevirt;
let operators: Manager[] = [];
/** What before() started, stopped in reverse by after() — also when before() failed midway. */
const started: (() => Promise<void>)[] = [];
let counter = 0;

const helm = (release: string, namespace = "shop"): Record<string, string> => ({
  "meta.helm.sh/release-name": release,
  "meta.helm.sh/release-namespace": namespace,
});

/** What Helm and the controllers would have made on `edge`: Deployment → ReplicaSet → Pod. */
async function workload(
  edge: KubeClient,
  name: string,
  annotations: Record<string, string>,
): Promise<string> {
  const dep = await edge.create<KubeObject>(edgeKinds.Deployment, {
    metadata: { name, namespace: "shop", annotations, labels: { app: name } },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: "nginx" }] } },
    },
  } as KubeObject);
  const owner = (kind: string, o: KubeObject) => [
    {
      apiVersion: kind === "Deployment" ? "apps/v1" : "apps/v1",
      kind,
      name: o.metadata.name ?? "",
      uid: o.metadata.uid ?? "",
      controller: true,
    },
  ];
  const rs = await edge.create<KubeObject>(edgeKinds.ReplicaSet, {
    metadata: {
      name: `${name}-5d4f`,
      namespace: "shop",
      labels: { app: name },
      ownerReferences: owner("Deployment", dep),
    },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: "nginx" }] } },
    },
  } as KubeObject);
  const pod = `${name}-5d4f-x${++counter}`;
  await edge.create(edgeKinds.Pod, {
    metadata: {
      name: pod,
      namespace: "shop",
      labels: { app: name },
      ownerReferences: owner("ReplicaSet", rs),
    },
    spec: { containers: [{ name, image: "nginx" }] },
  } as KubeObject);
  return pod;
}

function action(
  name: string,
  spec: Partial<ResourceAction["spec"]> & Pick<ResourceAction["spec"], "target">,
): ResourceAction {
  return {
    metadata: { name, namespace: ns },
    spec: { deploymentRef: { name: "shop" }, cluster: "store-1", action: "restart", ...spec },
  };
}

function finished(name: string): Promise<ResourceAction> {
  return eventually(
    `ResourceAction ${name} finished`,
    async () => {
      const a = await client.get<ResourceAction>(ResourceActionResource, name, ns);
      return a?.status?.phase === "Succeeded" || a?.status?.phase === "Failed" ? a : undefined;
    },
    30_000,
  );
}

describe("ops: ResourceActions on edge clusters", () => {
  before(async () => {
    const cp = controlPlane();
    fx = await startDeployFixture(cp, ns);
    started.push(() => fx.stop());
    client = fx.client;
    edges = await startEdges(cp, client, ns);
    started.push(() => edges.stop());
    kubevirt = await startKubevirt(edges.clusters["store-1"]);
    started.push(() => kubevirt.stop());
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    operators = [
      await startOperator("outpost-deploy", kubeConfig, (m) => {
        registerDeploy(m);
      }),
      await startOperator("outpost-ops", kubeConfig, (m) => {
        registerOps(m, { deadlineMs: 8_000 });
      }),
    ];
    // web runs on the stores, db on the central site, both in namespace shop.
    await client.create(
      AppDeploymentResource,
      shopDeployment(ns, "shop", {
        applications: [{ name: "db", targets: { clusterSelector: { matchLabels: { tier: "central" } } } }],
      }),
    );
    await waitForDeployment(client, ns, "shop", "delivered", (d) => d.status?.summary?.targets === 3);
    for (const e of ["store-1", "central"] as const) {
      await edges.clients[e].create(namespacesResource, { metadata: { name: "shop" } });
    }
  });

  after(async () => {
    for (const m of operators) await m.stop();
    for (const stop of started.reverse()) await stop();
  });

  it("restarts a pod of the deployment by deleting it, once", async () => {
    const store1 = edges.clients["store-1"];
    const pod = await workload(store1, "web", helm("web"));
    await client.create(
      ResourceActionResource,
      action("restart-pod", { target: { kind: "Pod", namespace: "shop", name: pod } }),
    );
    const a = await finished("restart-pod");
    assert.equal(a.status?.phase, "Succeeded", a.status?.message);
    assert.match(a.status.message ?? "", new RegExp(`restarted Pod shop/${pod} on store-1`));
    assert.equal(getCondition(a.status.conditions, "Ready")?.status, "True");
    assert.ok(a.status.startTime && a.status.completionTime && a.status.targetUID);
    assert.equal(await store1.get(edgeKinds.Pod, pod, "shop"), undefined);

    // A pod of the same name made again is not the target any more: asking again does nothing.
    await store1.create(edgeKinds.Pod, {
      metadata: { name: pod, namespace: "shop", labels: { app: "web" } },
      spec: { containers: [{ name: "web", image: "nginx" }] },
    } as KubeObject);
    await client.mergePatch(ResourceActionResource, "restart-pod", ns, {
      metadata: { annotations: { "outpost.dev/requestedAt": new Date().toISOString() } },
    });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(await store1.get(edgeKinds.Pod, pod, "shop"), "the new pod was left alone");
  });

  it("restarts a workload as kubectl rollout restart does", async () => {
    const store1 = edges.clients["store-1"];
    await client.create(
      ResourceActionResource,
      action("restart-web", { target: { kind: "Deployment", namespace: "shop", name: "web" } }),
    );
    const a = await finished("restart-web");
    assert.equal(a.status?.phase, "Succeeded", a.status?.message);
    const web = await store1.get<
      KubeObject & { spec: { template: { metadata?: { annotations?: Record<string, string> } } } }
    >(edgeKinds.Deployment, "web", "shop");
    assert.equal(web?.spec.template.metadata?.annotations?.[restartedAtAnnotation], a.status.startTime);
  });

  it("refuses targets that are not the deployment's, and touches nothing", async () => {
    const store1 = edges.clients["store-1"];
    const central = edges.clients.central;
    const strangerPod = await workload(store1, "stranger", helm("stranger"));
    await store1.create(edgeKinds.Pod, {
      metadata: { name: "loose", namespace: "shop" },
      spec: { containers: [{ name: "x", image: "busybox" }] },
    } as KubeObject);
    // web is installed on the stores, not on central: a "web" there is someone else's.
    await workload(central, "web", helm("web"));
    const cases: [string, ResourceAction, RegExp][] = [
      [
        "another release",
        action("refuse-release", { target: { kind: "Pod", namespace: "shop", name: strangerPod } }),
        /does not belong to deployment shop: it is not part of its Helm releases \(web\)/,
      ],
      [
        "no owner at all",
        action("refuse-loose", { target: { kind: "Pod", namespace: "shop", name: "loose" } }),
        /Pod shop\/loose on store-1 does not belong to deployment shop/,
      ],
      [
        "a namespace of no application",
        action("refuse-ns", { target: { kind: "Deployment", namespace: "kube-system", name: "coredns" } }),
        /namespace kube-system is not one of deployment shop on store-1 \(its applications run in shop\)/,
      ],
      [
        "a cluster the application does not run on",
        action("refuse-cluster", {
          cluster: "central",
          target: { kind: "Deployment", namespace: "shop", name: "web" },
        }),
        /does not belong to deployment shop: it is not part of its Helm releases \(db\)/,
      ],
      [
        "a deployment that does not exist",
        action("refuse-dep", {
          deploymentRef: { name: "nope" },
          target: { kind: "Pod", namespace: "shop", name: "loose" },
        }),
        /AppDeployment nope does not exist/,
      ],
      [
        "a cluster that does not exist",
        action("refuse-unknown", {
          cluster: "mars",
          target: { kind: "Pod", namespace: "shop", name: "loose" },
        }),
        /cluster mars is not a cluster of namespace retail/,
      ],
    ];
    for (const [, a] of cases) await client.create(ResourceActionResource, a);
    for (const [what, a, message] of cases) {
      const done = await finished(a.metadata.name ?? "");
      assert.equal(done.status?.phase, "Failed", what);
      assert.match(done.status.message ?? "", message, what);
      assert.equal(getCondition(done.status.conditions, "Stalled")?.status, "True", what);
    }
    assert.ok(await store1.get(edgeKinds.Pod, strangerPod, "shop"));
    assert.ok(await store1.get(edgeKinds.Pod, "loose", "shop"));
    const centralWeb = await central.get<
      KubeObject & { spec: { template: { metadata?: { annotations?: object } } } }
    >(edgeKinds.Deployment, "web", "shop");
    assert.equal(centralWeb?.spec.template.metadata?.annotations, undefined);
  });

  it("starts and stops a VirtualMachine through KubeVirt's subresource API", async () => {
    const store1 = edges.clients["store-1"];
    await store1.create(VirtualMachineResource, {
      metadata: { name: "kiosk", namespace: "shop", annotations: helm("web") },
      spec: { runStrategy: "Always" },
    } as KubeObject);
    await client.create(
      ResourceActionResource,
      action("stop-vm", {
        action: "stop",
        target: { kind: "VirtualMachine", namespace: "shop", name: "kiosk" },
      }),
    );
    const stopped = await finished("stop-vm");
    assert.equal(stopped.status?.phase, "Succeeded", stopped.status?.message);
    assert.match(stopped.status.message ?? "", /stopped VirtualMachine shop\/kiosk on store-1/);
    const vm = await store1.get<KubeObject & { spec: { runStrategy: string } }>(
      VirtualMachineResource,
      "kiosk",
      "shop",
    );
    assert.equal(vm?.spec.runStrategy, "Halted");
    // Through the aggregator, as the operator's edge identity.
    assert.deepEqual(
      kubevirt.calls.map((c) => [c.verb, c.name, c.user, c.status]),
      [["stop", "kiosk", edgeUser, 202]],
    );

    // Stopping a stopped VM: KubeVirt says 409, and there is nothing to do.
    await client.create(
      ResourceActionResource,
      action("stop-vm-again", {
        action: "stop",
        target: { kind: "VirtualMachine", namespace: "shop", name: "kiosk" },
      }),
    );
    const again = await finished("stop-vm-again");
    assert.equal(again.status?.phase, "Succeeded");
    assert.match(again.status.message ?? "", /VM is not running \(nothing to do\)/);

    await client.create(
      ResourceActionResource,
      action("start-vm", {
        action: "start",
        target: { kind: "VirtualMachine", namespace: "shop", name: "kiosk" },
      }),
    );
    assert.equal((await finished("start-vm")).status?.phase, "Succeeded");
    const started = await store1.get<KubeObject & { spec: { runStrategy: string } }>(
      VirtualMachineResource,
      "kiosk",
      "shop",
    );
    assert.equal(started?.spec.runStrategy, "Always");
  });

  it("waits for an unreachable cluster, then fails after the deadline", async () => {
    const cp = controlPlane();
    await cp.killApiServer(edges.clusters["store-1"]);
    try {
      await client.create(
        ResourceActionResource,
        action("restart-offline", { target: { kind: "Deployment", namespace: "shop", name: "web" } }),
      );
      const waiting = await eventually("the action waits", async () => {
        const a = await client.get<ResourceAction>(ResourceActionResource, "restart-offline", ns);
        return getCondition(a?.status?.conditions, "Unreachable")?.status === "True" ? a : undefined;
      });
      assert.equal(waiting.status?.phase, "Pending");
      const failed = await finished("restart-offline");
      assert.equal(failed.status?.phase, "Failed");
      assert.match(failed.status.message ?? "", /store-1 is unreachable.*gave up after waiting/);
    } finally {
      await cp.restartApiServer(edges.clusters["store-1"]);
    }
  });

  it("kubectl outpost resources lists what the deployment runs, cluster by cluster", async () => {
    const lines: string[] = [];
    const report = await deploymentResources(client, ns, "shop", { progress: (l) => lines.push(l) });
    assert.deepEqual(report.unreachable, []);
    const seen = report.rows.map((r) => `${r.cluster} ${r.application} ${r.kind} ${r.namespace}/${r.name}`);
    assert.ok(seen.includes("store-1 web Deployment shop/web"), seen.join("\n"));
    assert.ok(seen.includes("store-1 web VirtualMachine shop/kiosk"), seen.join("\n"));
    // Not the deployment's: another release, loose pods, a "web" on a cluster web does not run on.
    for (const r of report.rows) {
      assert.ok(!["stranger", "loose"].includes(r.name) && !r.name.startsWith("stranger-"), r.name);
      assert.ok(!(r.cluster === "central" && r.name === "web"), "central's web is someone else's");
    }
    assert.equal(lines.length, 3, "progress per cluster");
    assert.match(lines.at(-1) ?? "", /\(3\/3\)$/);
    assert.match(
      formatResources(report),
      /^CLUSTER\s+APPLICATION\s+KIND\s+NAMESPACE\s+NAME\s+STATE\s+DETAIL/,
    );
    const vm = report.rows.find((r) => r.kind === "VirtualMachine");
    assert.equal(vm?.state, "Running");
    const one = await deploymentResources(client, ns, "shop", { cluster: "central" });
    assert.ok(one.rows.every((r) => r.cluster === "central"));
    await assert.rejects(
      deploymentResources(client, ns, "shop", { cluster: "mars" }),
      /does not run on cluster mars/,
    );
  });

  it("deletes finished actions after ttlSecondsAfterFinished", async () => {
    await client.create(
      ResourceActionResource,
      action("short-lived", {
        ttlSecondsAfterFinished: 1,
        target: { kind: "Deployment", namespace: "shop", name: "web" },
      }),
    );
    await eventually("deleted after its TTL", async () =>
      (await client.get(ResourceActionResource, "short-lived", ns)) ? undefined : true,
    );
  });
});
