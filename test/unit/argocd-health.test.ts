// The Argo CD health check (integrations/argocd/health.lua), run in a real Lua VM.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { LuaFactory, type LuaEngine } from "wasmoon";

const script = readFileSync(
  fileURLToPath(new URL("../../integrations/argocd/health.lua", import.meta.url)),
  "utf8",
);
let lua: LuaEngine;

async function health(obj: object): Promise<{ status: string; message?: string }> {
  lua.global.set("obj", obj);
  return (await lua.doString(`return (function() ${script} end)()`)) as { status: string; message?: string };
}

const cond = (type: string, status: string, message = `${type} ${status}`): object => ({
  type,
  status,
  message,
});
const obj = (status: object | undefined, generation = 2): object => ({ metadata: { generation }, status });

describe("Argo CD health check", () => {
  before(async () => {
    lua = await new LuaFactory().createEngine();
  });
  after(() => {
    lua.global.close();
  });

  it("maps kstatus conditions to Argo CD health", async () => {
    assert.equal((await health(obj(undefined))).status, "Progressing");
    assert.deepEqual(await health(obj({ observedGeneration: 1, conditions: [cond("Ready", "True")] })), {
      status: "Progressing",
      message: "Waiting for the operator to process generation 2",
    });
    assert.deepEqual(
      await health(obj({ observedGeneration: 2, conditions: [cond("Ready", "True", "all good")] })),
      {
        status: "Healthy",
        message: "all good",
      },
    );
    assert.equal(
      (
        await health(
          obj({ observedGeneration: 2, conditions: [cond("Ready", "False"), cond("Reconciling", "True")] }),
        )
      ).status,
      "Progressing",
    );
    assert.deepEqual(
      await health(
        obj({
          observedGeneration: 2,
          conditions: [cond("Ready", "False"), cond("Stalled", "True", "fix spec.x")],
        }),
      ),
      { status: "Degraded", message: "fix spec.x" },
    );
    assert.equal(
      (await health(obj({ observedGeneration: 2, conditions: [cond("Ready", "False")] }))).status,
      "Degraded",
    );
    assert.equal(
      (await health(obj({ observedGeneration: 2, conditions: [cond("Ready", "Unknown")] }))).status,
      "Progressing",
    );
    assert.equal(
      (await health(obj({ observedGeneration: 2, phase: "AwaitingApproval", conditions: [] }))).status,
      "Suspended",
    );
    assert.equal((await health(obj({ observedGeneration: 2 }))).status, "Progressing");
  });
});
