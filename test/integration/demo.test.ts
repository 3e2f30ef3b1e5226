// `make demo` and `make demo-down` as a user runs them (scripts/demo/main.ts up|down), in a
// folder of their own: the local fleet starts, Argo CD delivers the example deployment
// from a real Git host to edges whose pods run (kwok), the walk-through changes, rolls
// back and restarts it, a second run reuses everything, no secret value shows up in the
// operators' logs, Events, statuses, Git history or metrics, and down leaves no process.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
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

/**
 * The secret values a Secret's key holds: whole values of secret-looking keys, and the
 * credentials inside kubeconfigs, registry auths and Helm values (not certificates and
 * other public parts). Short values (under 8 characters) are left out: they would match
 * by chance.
 */
function secretValuesOf(key: string, value: string): string[] {
  const out: string[] = [];
  const leaves = (v: unknown): void => {
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach(leaves);
    else if (v && typeof v === "object") Object.values(v).forEach(leaves);
  };
  const publicKey =
    /(ca|crt|cert|url|server|user|username|branch|name|namespace|project|organization|provider)$/i;
  if (/kubeconfig|^value$/i.test(key) && /kind:\s*Config/.test(value)) {
    const kc = parseYaml(value) as { users?: { user?: Record<string, string> }[] };
    for (const u of kc.users ?? []) out.push(u.user?.token ?? "", u.user?.["client-key-data"] ?? "");
  } else if (key === ".dockerconfigjson") {
    const auths = (JSON.parse(value) as { auths?: Record<string, { password?: string; auth?: string }> })
      .auths;
    for (const a of Object.values(auths ?? {})) out.push(a.password ?? "", a.auth ?? "");
  } else if (key.endsWith(".yaml")) {
    leaves(parseYaml(value));
  } else if (
    !publicKey.test(key) &&
    !value.startsWith("-----BEGIN CERTIFICATE") &&
    !/^https?:\/\//.test(value)
  ) {
    out.push(value);
  }
  return out.filter((v) => v.length >= 8);
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

  it("leaks no secret into the operators' logs, Events, any object's status, the Git history or /metrics", async () => {
    assert.ok(state);
    const kubectlJson = (...args: string[]): { items?: Record<string, unknown>[] } => {
      const r = spawnSync(
        join(state?.bin ?? "", "kubectl"),
        ["--kubeconfig", state?.kubeconfig ?? "", ...args],
        {
          encoding: "utf8",
          maxBuffer: 512 * 1024 * 1024,
        },
      );
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { items?: Record<string, unknown>[] };
    };
    // Every secret value on the management cluster: passwords, tokens, keys, the edges'
    // credentials, registry auths and secret Helm values.
    const values = new Set<string>();
    for (const secret of kubectlJson("get", "secrets", "-A", "-o", "json").items ?? []) {
      if (secret.type === "kubernetes.io/service-account-token") continue;
      for (const [key, encoded] of Object.entries((secret.data ?? {}) as Record<string, string>))
        for (const v of secretValuesOf(key, Buffer.from(encoded, "base64").toString("utf8"))) values.add(v);
    }
    values.add(state.gitea.password);
    assert.ok(values.has("change-me-before-use"), "the example's database password is among them");

    const places: [string, string][] = [];
    for (const file of ["outpost-operator.log", "outpost-service-proxy.log"])
      places.push([`log ${file}`, readFileSync(join(state.logDir, file), "utf8")]);
    places.push(["/metrics", await (await fetch(state.operatorMetrics)).text()]);
    const resources = spawnSync(
      join(state.bin, "kubectl"),
      ["--kubeconfig", state.kubeconfig, "api-resources", "--verbs=list", "-o", "name"],
      { encoding: "utf8" },
    )
      .stdout.split("\n")
      .filter((r) => r !== "" && r !== "secrets");
    for (const r of resources) {
      for (const item of kubectlJson("get", r, "-A", "-o", "json").items ?? []) {
        const meta = item.metadata as { namespace?: string; name?: string } | undefined;
        const where = `${r} ${meta?.namespace ?? ""}/${meta?.name ?? ""}`;
        // Events are searched whole, everything else by its status — except Argo CD's
        // Applications, whose status repeats their source, secret parameters included
        // (helm.valuesObject: the known exposure of the Argo CD engine, inside Argo CD's
        // namespace; docs/security.md "With Argo CD").
        if (r.startsWith("events")) places.push([where, JSON.stringify(item)]);
        else if (r === "applications.argoproj.io") continue;
        else if (item.status !== undefined) places.push([`${where} status`, JSON.stringify(item.status)]);
      }
    }
    // The project's Git history, every commit and file.
    const clone = mkdtempSync(join(tmpdir(), "outpost-demo-git-"));
    const url = new URL(`${state.gitea.url}/projects/retail.git`);
    url.username = state.gitea.username;
    url.password = state.gitea.password;
    const cloned = spawnSync("git", ["clone", "-q", "--mirror", url.toString(), clone], { encoding: "utf8" });
    assert.equal(cloned.status, 0, cloned.stderr);
    const history = spawnSync("git", ["-C", clone, "log", "-p", "--all"], {
      encoding: "utf8",
      maxBuffer: 512 * 1024 * 1024,
    }).stdout;
    assert.match(history, /storefront/, "the history was read");
    places.push(["Git history", history]);

    const found: string[] = [];
    for (const v of values) {
      const forms = [v, Buffer.from(v).toString("base64")];
      for (const [where, text] of places)
        if (forms.some((f) => text.includes(f)))
          found.push(`${where} holds a secret value (${v.length} chars)`);
    }
    assert.deepEqual(found, [], "no secret value anywhere");
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
