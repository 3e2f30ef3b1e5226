// The outpost-operator process: flags, endpoints, JSON logs and graceful shutdown.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { installCRDs } from "../controlplane/index.ts";
import { freePort } from "../controlplane/ports.ts";
import { installFleetCRDs } from "../drivers/fleet-crds.ts";
import { crdFiles } from "../support/crds.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";

const main = fileURLToPath(new URL("../../operators/main.ts", import.meta.url));
const controlPlane = useControlPlane();

describe("outpost-operator", () => {
  it("rejects bad flags with exit code 2 and names the flag", () => {
    const res = spawnSync(
      process.execPath,
      ["--import", "tsx", main, "--controllers=all", "--lease-duration=soon"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(res.status, 2);
    assert.match(res.stderr, /--lease-duration: "soon" is not a duration/);
  });

  it("serves health and metrics, logs JSON and shuts down gracefully on SIGTERM", async () => {
    await installCRDs(controlPlane().management, crdFiles());
    // The deploy operator watches Fleet's kinds: it is not ready without them.
    await installFleetCRDs(controlPlane().management.kubeconfig);
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        main,
        "--controllers=all",
        "--scan-mode=off",
        `--kubeconfig=${controlPlane().management.kubeconfig}`,
        "--leader-election-namespace=default",
        `--metrics-bind-address=127.0.0.1:${port}`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const logs: { msg?: string; level?: string }[] = [];
    child.stdout.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n").filter(Boolean))
        logs.push(JSON.parse(line) as { msg?: string });
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    await eventually("the operator to start", () =>
      Promise.resolve(logs.some((l) => l.msg === "started") ? true : undefined),
    );
    await eventually("leadership", () =>
      Promise.resolve(logs.some((l) => l.msg === "became leader") ? true : undefined),
    );
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    // Ready once the informers of every controller have listed.
    await eventually("readiness", async () =>
      (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined,
    );
    assert.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), /outpost_leader 1/);
    assert.ok(
      logs.every((l) => typeof l.level === "string"),
      "every line is a JSON log entry",
    );
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(logs.some((l) => l.msg === "stopped"));
  });
});
