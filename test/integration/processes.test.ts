// The control plane cleans up after itself and explains what went wrong: no orphans when
// its parent dies, clear errors for busy ports, a crashing API server, or a missing Go.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { startControlPlane } from "../controlplane/index.ts";
import { eventually, processesMentioning } from "../support/controlplane.ts";

const buildScript = fileURLToPath(new URL("../controlplane/build.sh", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/start-and-wait.ts", import.meta.url));

describe("control plane processes", () => {
  it("leaves no process running when its parent is killed with SIGKILL", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", fixture], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, EDGES: "1" },
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("\n")) resolve(out.split("\n")[0] ?? "");
      });
      child.once("exit", (code) => {
        reject(new Error(`fixture exited early with ${code}`));
      });
    });
    const { dir, pids } = JSON.parse(line) as { dir: string; pids: number[] };
    // etcd, and an API server and controller manager per cluster.
    assert.equal(pids.length, 5);
    assert.deepEqual(processesMentioning(dir).sort(), [...pids].sort());
    child.kill("SIGKILL");
    await eventually("every control-plane process to exit", () =>
      Promise.resolve(processesMentioning(dir).length === 0 ? true : undefined),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it("names the occupied port and starts nothing", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const address = blocker.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const dir = mkdtempSync(join(tmpdir(), "outpost-busy-"));
    try {
      await assert.rejects(startControlPlane({ basePort: port - 2, dir }), (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`already in use: (.*, )?127\\.0\\.0\\.1:${port} \\(for the management API server\\)`),
        );
        return true;
      });
      assert.deepEqual(processesMentioning(dir), []);
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports an API server that crashes at start and stops the rest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-crash-"));
    try {
      await assert.rejects(startControlPlane({ dir, apiServerArgs: ["--no-such-flag=1"] }), (err: Error) => {
        assert.match(err.message, /kube-apiserver of management exited with code 1 during start/);
        assert.match(err.message, /unknown flag: --no-such-flag/);
        return true;
      });
      assert.deepEqual(processesMentioning(dir), [], "etcd must be stopped too");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("explains what to install when Go is missing", () => {
    const bin = mkdtempSync(join(tmpdir(), "outpost-nogo-"));
    try {
      symlinkSync("/usr/bin/dirname", join(bin, "dirname"));
      const res = spawnSync("/bin/bash", [buildScript], {
        encoding: "utf8",
        env: { PATH: bin, HOME: bin },
      });
      assert.equal(res.status, 127);
      assert.match(res.stderr, /Go is not installed/);
      assert.match(res.stderr, /install Go 1\.24 or newer/);
      assert.equal(res.stdout, "");
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it("reuses the cached build", () => {
    const res = spawnSync("bash", [buildScript], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    assert.doesNotMatch(res.stderr, /building/);
    const dir = res.stdout.trim();
    for (const binary of ["kube-apiserver", "kube-controller-manager", "kubectl", "etcd", "build.json"]) {
      assert.ok(existsSync(join(dir, binary)), `${binary} in ${dir}`);
    }
  });
});
