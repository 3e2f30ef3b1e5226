// A full reconcile loop on the runtime against a real API server: create → finalizer →
// Ready (kstatus Current) → manual trigger → error path → delete → gone; status-only
// writes do not trigger reconciles; events, metrics and health endpoints.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition, kstatus } from "../../operators/runtime/conditions.ts";
import { requestedAtAnnotation } from "../../operators/runtime/controller.ts";
import { eventsResource } from "../../operators/runtime/events.ts";
import { Manager } from "../../operators/runtime/manager.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import {
  configMaps,
  registerSample,
  sampleCRD,
  samples,
  type Sample,
  type SampleReconciler,
} from "../fixtures/sample-operator.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";

const controlPlane = useControlPlane();
let manager: Manager;
let reconciler: SampleReconciler;
let client: KubeClient;

const ns = "default";
const getSample = (name: string): Promise<Sample | undefined> => client.get<Sample>(samples, name, ns);

describe("runtime reconcile loop", () => {
  before(async () => {
    const cp = controlPlane();
    await installCRDs(cp.management, [sampleCRD]);
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    client = new KubeClient(kubeConfig);
    manager = new Manager({ name: "sample-operator", kubeConfig, port: 0, bindAddress: "127.0.0.1" });
    manager.logger.level = process.env.LOG_LEVEL ?? "silent";
    reconciler = registerSample(manager);
    await manager.start();
  });

  after(async () => {
    await manager.stop();
    await client.close();
  });

  it("creates, adds the finalizer and becomes Ready (kstatus Current)", async () => {
    await client.create<Sample>(samples, {
      metadata: { name: "s1", namespace: ns },
      spec: { data: { a: "1" } },
    });
    const ready = await eventually("s1 to be Current", async () => {
      const s = await getSample("s1");
      return s && kstatus(s) === "Current" ? s : undefined;
    });
    assert.deepEqual(ready.metadata.finalizers, ["test.outpost.dev/cleanup"]);
    assert.equal(ready.status?.observedGeneration, ready.metadata.generation);
    assert.equal(getCondition(ready.status?.conditions, "Ready")?.status, "True");
    const cm = await client.get<KubeObject & { data?: Record<string, string> }>(configMaps, "s1-data", ns);
    assert.deepEqual(cm?.data, { a: "1" });
    assert.equal(cm.metadata.ownerReferences?.[0]?.uid, ready.metadata.uid);
  });

  it("does not reconcile again for its own status writes", async () => {
    await eventually("s1 to be Current", async () => {
      const s = await getSample("s1");
      return s && kstatus(s) === "Current" ? s : undefined;
    });
    const before = reconciler.keys.length;
    // The witness: another object created after s1's status writes, reconciled to Current.
    // The informer delivers events in order, so a reconcile of s1 for its own status
    // writes would have begun before this one ended.
    await client.create<Sample>(samples, { metadata: { name: "witness", namespace: ns }, spec: {} });
    await eventually("the witness to be Current", async () => {
      const s = await getSample("witness");
      return s && kstatus(s) === "Current" ? s : undefined;
    });
    const since = reconciler.keys.slice(before);
    assert.ok(since.includes(`${ns}/witness`));
    assert.ok(!since.includes(`${ns}/s1`), `s1 was reconciled again: ${since.join(", ")}`);
    await client.delete(samples, "witness", ns);
  });

  it("reconciles on spec changes and on a requestedAt annotation", async () => {
    await client.mergePatch(samples, "s1", ns, { spec: { data: { a: "2" } } });
    await eventually("the ConfigMap to follow the spec", async () => {
      const cm = await client.get<KubeObject & { data?: Record<string, string> }>(configMaps, "s1-data", ns);
      return cm?.data?.a === "2" ? true : undefined;
    });
    const stamp = new Date().toISOString();
    await client.mergePatch(samples, "s1", ns, {
      metadata: { annotations: { [requestedAtAnnotation]: stamp } },
    });
    const s = await eventually("the manual trigger to be handled", async () => {
      const obj = await getSample("s1");
      return obj?.status?.lastHandledReconcileAt === stamp ? obj : undefined;
    });
    assert.equal(kstatus(s), "Current");
  });

  it("re-creates an owned child that was deleted", async () => {
    await client.delete(configMaps, "s1-data", ns);
    await eventually("the ConfigMap to come back", () => client.get(configMaps, "s1-data", ns));
  });

  it("writes status on the error path and records a Warning event", async () => {
    await client.create<Sample>(samples, {
      metadata: { name: "s2", namespace: ns },
      spec: { fail: "registry unreachable" },
    });
    const failed = await eventually("s2 to report the failure", async () => {
      const s = await getSample("s2");
      const ready = getCondition(s?.status?.conditions, "Ready");
      return ready?.status === "False" ? s : undefined;
    });
    assert.equal(getCondition(failed.status?.conditions, "Ready")?.message, "registry unreachable");
    assert.equal(getCondition(failed.status?.conditions, "Reconciling")?.status, "True");
    assert.equal(kstatus(failed), "InProgress");
    const events = await eventually("a Warning event", async () => {
      const list = await client.list<
        KubeObject & {
          reason?: string;
          note?: string;
          type?: string;
          series?: { count: number };
          regarding?: { name?: string };
        }
      >(eventsResource, { namespace: ns });
      const mine = list.items.filter((e) => e.regarding?.name === "s2");
      return mine.length > 0 && mine.some((e) => (e.series?.count ?? 1) > 1) ? mine : undefined;
    });
    assert.equal(events.length, 1, "repeated failures are one Event with a series");
    assert.equal(events[0]?.type, "Warning");
    assert.equal(events[0].note, "registry unreachable");

    await client.mergePatch(samples, "s2", ns, {
      spec: { fail: null, invalid: "spec.data must name a key" },
    });
    const stalled = await eventually("s2 to stall", async () => {
      const s = await getSample("s2");
      return s && kstatus(s) === "Failed" ? s : undefined;
    });
    assert.equal(getCondition(stalled.status?.conditions, "Stalled")?.reason, "InvalidSpec");
  });

  it("deletes: finalizer cleanup, then the object is gone", async () => {
    await client.delete(samples, "s1", ns);
    await eventually("s1 to be gone", async () => ((await getSample("s1")) ? undefined : true));
    assert.equal(await client.get(configMaps, "s1-data", ns), undefined);
  });

  it("serves metrics and health", async () => {
    const base = `http://127.0.0.1:${manager.port ?? 0}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /outpost_reconcile_total\{controller="sample",result="success"\} [1-9]/);
    assert.match(text, /outpost_reconcile_total\{controller="sample",result="error"\} [1-9]/);
    assert.match(text, /outpost_reconcile_duration_seconds_bucket/);
    assert.match(text, /outpost_workqueue_depth\{controller="sample"\}/);
    assert.match(text, /process_resident_memory_bytes/);
  });
});
