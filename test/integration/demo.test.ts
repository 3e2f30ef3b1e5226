// `make demo` and `make demo-down` as a user runs them (scripts/demo/main.ts up|down), in a
// folder of their own: the local fleet starts, Argo CD delivers the example deployment
// from a real Git host to edges whose pods run (kwok), the walk-through changes, rolls
// back and restarts it, a second run reuses everything, and down leaves no process.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { podsResource } from "../../operators/runtime/core.ts";
import { readState, type DemoState } from "../../scripts/demo/layout.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
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

/** Ready pods of Helm release `release` in `namespace` on a demo edge (its admin kubeconfig). */
async function readyPods(
  state: DemoState,
  edge: string,
  namespace: string,
  release: string,
): Promise<string[]> {
  const client = new KubeClient(kubeConfigFromFile(state.fleetKubeconfigs[edge] ?? ""));
  try {
    const pods = await client.list<
      KubeObject & { status?: { conditions?: { type: string; status: string }[] } }
    >(podsResource, { namespace, labelSelector: `app.kubernetes.io/instance=${release}` });
    return pods.items
      .filter((p) => !p.metadata.deletionTimestamp)
      .filter((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
      .map((p) => p.metadata.name ?? "");
  } finally {
    await client.close();
  }
}

/** The files of a commit in the demo's Gitea: path → blob SHA. */
async function treeOf(state: DemoState, commit: string): Promise<Record<string, string>> {
  const auth = `Basic ${Buffer.from(`${state.gitea.username}:${state.gitea.password}`).toString("base64")}`;
  const res = await fetch(
    `${state.gitea.url}/api/v1/repos/projects/retail/git/trees/${commit}?recursive=true&per_page=1000`,
    { headers: { authorization: auth } },
  );
  assert.equal(res.status, 200, await res.clone().text());
  const tree = (await res.json()) as { tree: { path: string; type: string; sha: string }[] };
  return Object.fromEntries(tree.tree.filter((e) => e.type === "blob").map((e) => [e.path, e.sha]));
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

  it("starts the local fleet, delivers the example with Argo CD and runs its pods, then walks a change, a rollback and a restart", async () => {
    const up = await demo("up");
    assert.equal(up.code, 0, up.output);
    state = readState(dir);
    assert.ok(state, "state.json written");
    assert.match(up.output, /the example deployment runs/);
    assert.match(up.output, /approving as store-operations-lead/);
    assert.match(up.output, /running revision 1 \(commit ([0-9a-f]{12})\), delivered by Argo CD/);
    first = /running revision 1 \(commit ([0-9a-f]{12})\)/.exec(up.output)?.[1] ?? "";
    assert.ok(
      (await commits(state)).some((c) => c.startsWith(first)),
      "the delivered commit is in Gitea",
    );
    assert.match(up.output, /Engine:\s+Argo CD/);
    assert.match(up.output, /Phase:\s+Running — revision \d+: 3\/3 clusters ready/);
    assert.match(
      up.output,
      /Application\s+retail-storefront-storefront-web-store-1\s+→ store-1: Synced, Healthy/,
    );
    assert.match(
      up.output,
      /Application\s+retail-storefront-storefront-db-central\s+→ central: Synced, Healthy/,
    );
    // What a Fleet project would get, and the tree both engines read.
    assert.match(up.output, /GitRepo\s+storefront-storefront-web\s+paths storefront\/storefront-web/);
    assert.match(up.output, /storefront\/storefront-web\/fleet\.yaml\s+\d+ bytes/);
    assert.match(up.output, /valuesFrom:/);
    assert.doesNotMatch(up.output, /change-me-before-use/);
    // The walk-through, each step read back from store-1.
    assert.match(up.output, /walk-through 1\/3 — a change: store-1 runs 3 web pods/);
    assert.match(up.output, /AwaitingApproval; approving as store-operations-lead/);
    assert.match(
      up.output,
      /revision 2 \(commit [0-9a-f]{12}\) runs: store-1 has (\S+ \(uid \w+\)(, )?){2}$/m,
    );
    assert.match(
      up.output,
      /walk-through 2\/3 — rollback to the spec of revision 1: revision 3 runs, store-1 has 3 web pods again/,
    );
    assert.match(
      up.output,
      /walk-through 3\/3 — ResourceAction restart-web-\S+ restarted Deployment storefront-web-nginx at store-1: new pods/,
    );
    // The pods really run on the edges, where the placement and the override put them.
    assert.equal((await readyPods(state, "store-1", "storefront", "storefront-web")).length, 3);
    assert.equal(
      (await readyPods(state, "store-2", "storefront", "storefront-web")).length,
      4,
      "store-size=large override",
    );
    assert.equal((await readyPods(state, "central", "storefront-data", "storefront-db")).length, 1);
    assert.equal((await readyPods(state, "central", "storefront", "storefront-web")).length, 0);
    // It says plainly what does not run here.
    assert.match(up.output, /Fleet's and Skupper's controllers do not run\s+here/);
  });

  it("runs again on the same fleet: the walk-through's two commits, and the rollback's tree is the delivered one", async () => {
    assert.ok(state);
    const before = await commits(state);
    const up = await demo("up");
    assert.equal(up.code, 0, up.output);
    assert.match(up.output, new RegExp(`already running \\(pid ${state.pid}`));
    assert.match(up.output, /Phase:\s+Running — revision \d+: 3\/3 clusters ready/);
    const after = await commits(state);
    assert.deepEqual(after.slice(2), before, "the change and the rollback: one commit each");
    const rolledBack = await treeOf(state, after[0] ?? "");
    assert.ok(Object.keys(rolledBack).length > 0);
    assert.deepEqual(rolledBack, await treeOf(state, before[0] ?? ""));
    assert.notDeepEqual(await treeOf(state, after[1] ?? ""), rolledBack, "the change had another tree");
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
