// `make demo` and `make demo-down` as a user runs them (scripts/demo/main.ts up|down), in a
// folder of their own: the local fleet starts, the example deployment is delivered to a real
// Git host, a second run reuses everything and changes nothing, and down leaves no process.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { readState, type DemoState } from "../../scripts/demo/layout.ts";
import { installFleetCRDs } from "../drivers/fleet-crds.ts";
import { processesMentioning, useControlPlane } from "../support/controlplane.ts";
import { kubectl } from "../support/install.ts";

const main = fileURLToPath(new URL("../../scripts/demo/main.ts", import.meta.url));
const dir = join(mkdtempSync(join(tmpdir(), "outpost-demo-test-")), "demo");

function demo(
  command: "up" | "down",
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, OUTPOST_DEMO_DIR: dir, OUTPOST_DEMO_TIMEOUT: "300" };
  delete env.KUBECONFIG;
  Object.assign(env, extraEnv);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", main, command], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("close", (code) => {
      resolve({ code, output });
    });
  });
}

/** The commits on the project's branch in the demo's Gitea. */
async function commits(state: DemoState): Promise<string[]> {
  const auth = `Basic ${Buffer.from(`${state.gitea.username}:${state.gitea.password}`).toString("base64")}`;
  const res = await fetch(`${state.gitea.url}/api/v1/repos/projects/retail/commits?sha=main&limit=50`, {
    headers: { authorization: auth },
  });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { sha: string }[]).map((c) => c.sha);
}

describe("make demo", () => {
  after(async () => {
    if (existsSync(dir)) await demo("down");
  });

  let first = "";
  let state: DemoState | undefined;

  it("starts the local fleet and delivers the example deployment", async () => {
    const up = await demo("up");
    assert.equal(up.code, 0, up.output);
    state = readState(dir);
    assert.ok(state, "state.json written");
    assert.match(up.output, /the example deployment is delivered/);
    assert.match(up.output, /approving as store-operations-lead/);
    assert.match(up.output, /Revision:\s+1 \(hash [0-9a-f]+, commit ([0-9a-f]{12})\)/);
    first = /commit\s+([0-9a-f]{40})/.exec(up.output)?.[1] ?? "";
    assert.ok(first, up.output);
    // The commit is real: it is on the project's branch in Gitea.
    assert.ok((await commits(state)).includes(first), "the delivered commit is in Gitea");
    assert.match(up.output, /GitRepo\s+storefront-storefront-web\s+paths storefront\/storefront-web/);
    assert.match(up.output, /GitRepo\s+storefront-storefront-db\s+paths storefront\/storefront-db/);
    // What was rendered, read back from the commit; the secret parameter is not in it.
    assert.match(up.output, /storefront\/storefront-web\/fleet\.yaml\s+\d+ bytes/);
    assert.match(up.output, /storefront\/storefront-db\/values\.yaml\s+\d+ bytes/);
    assert.match(up.output, /valuesFrom:/);
    assert.doesNotMatch(up.output, /change-me-before-use/);
    // It says plainly what does not run here.
    assert.match(up.output, /Fleet's and Skupper's controllers do not run in this local demo/);
  });

  it("runs again without starting anything or changing the delivery", async () => {
    assert.ok(state);
    const before = await commits(state);
    const up = await demo("up");
    assert.equal(up.code, 0, up.output);
    assert.match(up.output, new RegExp(`already running \\(pid ${state.pid}`));
    assert.match(up.output, new RegExp(`commit\\s+${first}`));
    assert.deepEqual(await commits(state), before, "no new commit");
    assert.equal(readState(dir)?.pid, state.pid);
  });

  it("stops with no process left behind", async () => {
    assert.ok(processesMentioning(dir).length > 3, "the fleet's processes run from its folder");
    const down = await demo("down");
    assert.equal(down.code, 0, down.output);
    assert.match(down.output, /no process of it is left/);
    assert.deepEqual(processesMentioning(dir), []);
    assert.equal(existsSync(dir), false);
  });
});

describe("make demo KUBECONFIG=<a cluster that runs Fleet>", () => {
  const controlPlane = useControlPlane();

  it("installs Outpost there instead of starting a local fleet, and says why its operators do not run", async () => {
    const cp = controlPlane();
    await installFleetCRDs(cp.management.kubeconfig);
    // This API server has no nodes: the operators' pods cannot run, as with an image the
    // cluster cannot pull. The demo must say so, not carry on.
    const up = await demo("up", {
      KUBECONFIG: cp.management.kubeconfig,
      OUTPOST_DEMO_TIMEOUT: "15",
      PATH: `${dirname(cp.binaries.kubectl)}:${process.env.PATH ?? ""}`,
    });
    assert.equal(up.code, 1, up.output);
    assert.match(up.output, /runs Fleet: installing the demo there/);
    assert.match(up.output, /Outpost's operators did not become available in outpost-system/);
    assert.match(up.output, /docker build -t ghcr\.io\/outpost-dev\/outpost:0\.1\.0/);
    assert.equal(existsSync(dir), false, "no local fleet was started");
    const crd = kubectl(cp, "get", "crd", "appdeployments.deploy.outpost.dev");
    assert.equal(crd.status, 0, crd.stderr);
    const deployments = kubectl(cp, "get", "deployments", "-n", "outpost-system", "-o", "name");
    assert.match(deployments.stdout, /deployment\.apps\/outpost-deploy/);
  });
});
