// Status writes against a real API server are conditional on the object read: a status
// computed from a stale copy (a lagging cache, another writer in between) is refused with
// 409 Conflict and overwrites nothing; the controller counts it as a conflict, not an
// error, and reconciles again from the newer object.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ApiError, KubeClient } from "../../operators/runtime/client.ts";
import { Manager } from "../../operators/runtime/manager.ts";
import { patchStatus } from "../../operators/runtime/reconcile.ts";
import type { Reconciler, Request, Result } from "../../operators/runtime/controller.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import { sampleCRD, samples, type Sample } from "../fixtures/sample-operator.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";

const controlPlane = useControlPlane();
const ns = "default";
let client: KubeClient;

type Status = NonNullable<Sample["status"]> & { other?: string; mine?: string };

describe("status writes", () => {
  before(async () => {
    const cp = controlPlane();
    await installCRDs(cp.management, [sampleCRD]);
    client = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
  });
  after(async () => {
    await client.close();
  });

  it("refuse a status computed from a stale copy, and keep the newer one", async () => {
    const stale = await client.create<Sample>(samples, {
      metadata: { name: "stale", namespace: ns },
      spec: {},
    });
    // Another writer's status lands after `stale` was read.
    const fresh = await client.get<Sample>(samples, "stale", ns);
    assert.ok(fresh);
    assert.equal(await patchStatus(client, samples, fresh, { other: "newer" } as Status), true);
    await assert.rejects(
      patchStatus(client, samples, stale, { mine: "from a stale copy" } as Status),
      (err: unknown) => err instanceof ApiError && err.code === 409,
    );
    const kept = await client.get<Sample & { status?: Status }>(samples, "stale", ns);
    assert.deepEqual(kept?.status, { other: "newer" });
    // From the current object, the write goes through.
    assert.ok(kept);
    assert.equal(await patchStatus(client, samples, kept, { other: "newer", mine: "current" }), true);
    const written = await client.get<Sample & { status?: Status }>(samples, "stale", ns);
    assert.deepEqual(written?.status, { other: "newer", mine: "current" });
  });

  it("reconcile again after a conflict, counted as a conflict and not as an error", async () => {
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    const manager = new Manager({ name: "status-test", kubeConfig, port: 0, bindAddress: "127.0.0.1" });
    manager.logger.level = process.env.LOG_LEVEL ?? "silent";
    let raced = false;
    const reconciler: Reconciler = {
      async reconcile(req: Request): Promise<Result | undefined> {
        if (req.name !== "raced") return undefined;
        const obj = await client.get<Sample & { status?: Status }>(samples, req.name, req.namespace);
        if (!obj) return undefined;
        if (!raced) {
          // Another writer between this reconcile's read and its write.
          raced = true;
          const other = await client.get<Sample>(samples, req.name, req.namespace);
          assert.ok(other);
          await patchStatus(client, samples, other, { other: "in between" } as Status);
        }
        await patchStatus(client, samples, obj, { ...(obj.status ?? {}), mine: "reconciled" });
        return undefined;
      },
    };
    manager.controller("status", { workers: 1 }).for(samples).complete(reconciler);
    await manager.start();
    try {
      await client.create<Sample>(samples, { metadata: { name: "raced", namespace: ns }, spec: {} });
      const done = await eventually("the status written after the conflict", async () => {
        const s = await client.get<Sample & { status?: Status }>(samples, "raced", ns);
        return s?.status?.mine ? s : undefined;
      });
      // The other writer's status survived: the second reconcile started from it.
      assert.deepEqual(done.status, { other: "in between", mine: "reconciled" });
      const text = await (await fetch(`http://127.0.0.1:${manager.port ?? 0}/metrics`)).text();
      assert.match(text, /outpost_reconcile_total\{controller="status",result="conflict"\} 1\b/);
      assert.doesNotMatch(text, /outpost_reconcile_errors_total\{controller="status"\} [1-9]/);
    } finally {
      await manager.stop();
    }
  });
});
