// make demo / make demo-down:
//   node --import tsx scripts/demo/main.ts up     start (or reuse) the local demo fleet,
//                                                 deliver examples/ and summarize
//   node --import tsx scripts/demo/main.ts down   stop every process of the demo fleet
//
// With KUBECONFIG naming a cluster that serves Fleet's GitRepo API, `up` uses that cluster
// instead of a local fleet (OUTPOST_DEMO=local forces the local fleet).
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "../../operators/runtime/client.ts";
import { processesMentioning } from "../../test/support/controlplane.ts";
import { installInto } from "./cluster.ts";
import { deploymentStatus, formatStatus, renderFor } from "../../cli/deploy.ts";
import { gitRepoFor, type GitRepo } from "../../operators/deploy/fleet.ts";
import { kubeConfigFromFile } from "../../test/controlplane/index.ts";
import { deliverExamples, type Delivered } from "./deliver.ts";
import { walkThrough } from "./walk.ts";
import {
  demoClusters,
  demoDir,
  progressPath,
  readState,
  repoRoot,
  supervisorAlive,
  supervisorLog,
  type DemoState,
} from "./layout.ts";

const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
const say = (line: string): void => {
  console.log(`[${elapsed()}] ${line}`);
};
const approver = "store-operations-lead";
const timeoutMs = Number(process.env.OUTPOST_DEMO_TIMEOUT ?? 900) * 1000;

/** Starts the supervisor (scripts/demo/fleet.ts) unless one runs; resolves with its state. */
async function localFleet(dir: string): Promise<DemoState> {
  const running = readState(dir);
  if (running && supervisorAlive(running.pid)) {
    say(`the demo fleet is already running (pid ${running.pid}, since ${running.startedAt}): reusing it`);
    return running;
  }
  const starting = startingPid(dir);
  let pid: number | undefined;
  if (starting && supervisorAlive(starting)) {
    // Another `make demo` is starting the fleet: follow it instead of starting a second one.
    say(`the demo fleet is starting (pid ${starting}): following its progress`);
    pid = starting;
  } else {
    if (existsSync(dir)) {
      // A fleet that crashed or was killed: clear what is left before starting afresh.
      await stopFleet(dir, { quiet: true });
    }
    mkdirSync(dir, { recursive: true });
    const log = openSync(supervisorLog(dir), "a");
    const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "scripts/demo/fleet.ts")], {
      cwd: repoRoot,
      detached: true,
      stdio: ["ignore", log, log],
      env: { ...process.env, OUTPOST_DEMO_DIR: dir },
    });
    closeSync(log);
    child.unref();
    pid = child.pid;
    say(`started the demo fleet's supervisor (pid ${pid ?? "?"}); its log: ${supervisorLog(dir)}`);
  }
  let shown = 0;
  for (;;) {
    const path = progressPath(dir);
    if (existsSync(path)) {
      const text = readFileSync(path, "utf8");
      const lines = text.slice(shown).split("\n");
      const complete = lines.slice(0, -1);
      for (const line of complete) console.log(`        ${line}`);
      shown += complete.reduce((n, l) => n + l.length + 1, 0);
    }
    const state = readState(dir);
    if (state) return state;
    if (pid === undefined || !supervisorAlive(pid)) {
      const tail = existsSync(supervisorLog(dir))
        ? readFileSync(supervisorLog(dir), "utf8").split("\n").slice(-30).join("\n")
        : "";
      throw new Error(`the demo fleet did not start; the end of ${supervisorLog(dir)}:\n${tail}`);
    }
    await sleep(300);
  }
}

/** Stops the supervisor and everything it started; nothing of the demo runs afterwards. */
async function stopFleet(dir: string, { quiet = false } = {}): Promise<void> {
  const state = readState(dir);
  const pid = state?.pid ?? startingPid(dir);
  if (pid && supervisorAlive(pid)) {
    if (!quiet) say(`stopping the demo fleet (pid ${pid})`);
    process.kill(pid, "SIGTERM");
    const deadline = Date.now() + 60_000;
    while (supervisorAlive(pid) && Date.now() < deadline) await sleep(200);
    if (supervisorAlive(pid)) {
      say("the supervisor did not stop within 60s: killing its process group");
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
  // Whatever still runs from the demo's folder (a supervisor killed with SIGKILL leaves
  // its children to their guardian, which needs a moment): SIGTERM, then SIGKILL.
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    const left = processesMentioning(dir);
    if (left.length === 0) break;
    for (const p of left) {
      try {
        process.kill(p, signal);
      } catch {
        // gone meanwhile
      }
    }
    await sleep(signal === "SIGTERM" ? 3000 : 500);
  }
  const left = processesMentioning(dir);
  if (left.length > 0) throw new Error(`processes of the demo still run: ${left.join(", ")}`);
  rmSync(dir, { recursive: true, force: true });
  if (!quiet) say("the demo fleet is stopped; no process of it is left");
}

/** The supervisor's pid from supervisor.pid, for a fleet that never wrote state.json. */
function startingPid(dir: string): number | undefined {
  const path = join(dir, "supervisor.pid");
  return existsSync(path) && statSync(path).size > 0 ? Number(readFileSync(path, "utf8")) : undefined;
}

/** The cluster of $KUBECONFIG when it serves Fleet's GitRepo API; undefined for the local fleet. */
async function realCluster(): Promise<KubeConfig | undefined> {
  if (process.env.OUTPOST_DEMO === "local" || !process.env.KUBECONFIG) return undefined;
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const client = new KubeClient(kc, { requestTimeoutMs: 10_000, connectTimeoutMs: 5_000 });
  const server = kc.getCurrentCluster()?.server ?? "?";
  try {
    await client.request("GET", "/apis/fleet.cattle.io/v1alpha1");
    say(
      `KUBECONFIG's cluster ${server} (context ${kc.getCurrentContext()}) runs Fleet: installing the demo there`,
    );
    return kc;
  } catch (err) {
    say(
      `KUBECONFIG's cluster ${server} does not serve Fleet's API (${err instanceof Error ? err.message : String(err)}): running the local demo fleet instead`,
    );
    return undefined;
  } finally {
    await client.close();
  }
}

interface Bundles {
  files: { path: string; size: number }[];
  /** One application's fleet.yaml, to show what Fleet is given. */
  sample?: { path: string; text: string };
}

/** The rendered bundles of the deployment in the delivered commit, read from the demo's Gitea. */
async function renderedBundles(state: DemoState, d: Delivered): Promise<Bundles> {
  const ns = d.deployment.metadata.namespace ?? "";
  const commit = d.deployment.status?.commit ?? "";
  const folder = `${d.deployment.metadata.name ?? ""}/`;
  const auth = `Basic ${Buffer.from(`${state.gitea.username}:${state.gitea.password}`).toString("base64")}`;
  const repo = `${state.gitea.url}/api/v1/repos/projects/${ns}`;
  const res = await fetch(`${repo}/git/trees/${commit}?recursive=true&per_page=1000`, {
    headers: { authorization: auth },
  });
  if (!res.ok) throw new Error(`reading commit ${commit} from Gitea: HTTP ${res.status}`);
  const tree = (await res.json()) as { tree: { path: string; type: string; size: number }[] };
  const files = tree.tree
    .filter((e) => e.type === "blob" && e.path.startsWith(folder))
    .map((e) => ({ path: e.path, size: e.size }));
  const first = files.find((f) => f.path.endsWith("/fleet.yaml"));
  if (!first) return { files };
  const raw = await fetch(`${repo}/raw/${first.path}?ref=${commit}`, { headers: { authorization: auth } });
  return raw.ok ? { files, sample: { path: first.path, text: await raw.text() } } : { files };
}

/** What a project delivering with Fleet would get for the same deployment: its GitRepos. */
async function fleetGitRepos(client: KubeClient, d: Delivered): Promise<GitRepo[]> {
  const git = { url: "<the project's repository>", branch: "main" };
  const bundles = await renderFor(client, d.deployment, d.deployment.spec);
  return bundles.map((b) => gitRepoFor(d.deployment, b, git, d.deployment.status?.commit ?? ""));
}

const targetText = (targets: GitRepo["spec"]["targets"]): string =>
  targets
    .map(
      (t) =>
        t.clusterName ??
        (t.clusterSelector ? JSON.stringify(t.clusterSelector.matchLabels ?? t.clusterSelector) : "?"),
    )
    .join(", ");

function summary(
  d: Delivered,
  state: DemoState | undefined,
  kubeconfig: string,
  extra: { bundles?: Bundles; walk?: string[]; fleetRepos?: GitRepo[] } = {},
): string {
  const ns = d.deployment.metadata.namespace ?? "";
  const name = d.deployment.metadata.name ?? "";
  const k = `KUBECONFIG=${kubeconfig}`;
  const engine = d.deployment.status?.engine === "argocd" ? "Argo CD" : "Fleet";
  const lines = [
    "",
    "──────────────── the example deployment runs ────────────────",
    "",
    d.statusText,
    "",
    `Delivered by ${engine}:`,
    `  commit   ${d.deployment.status?.commit ?? "-"}`,
    ...(state
      ? [
          `  browse   ${state.gitea.url}/projects/${ns}/src/commit/${d.deployment.status?.commit ?? ""}  (login ${state.gitea.username} / ${state.gitea.password})`,
        ]
      : []),
    ...d.gitRepos.map(
      (r) =>
        `  GitRepo  ${r.metadata.name ?? ""}  paths ${r.spec.paths.join(", ")}  → ${targetText(r.spec.targets)}`,
    ),
    ...d.appSets.map((a) => `  ApplicationSet  ${a.metadata.namespace ?? ""}/${a.metadata.name ?? ""}`),
    ...d.argoApplications.map(
      (a) =>
        `  Application     ${a.metadata.name ?? ""}  → ${a.metadata.labels?.["outpost.dev/cluster"] ?? "?"}: ${a.status?.sync?.status ?? "?"}, ${a.status?.health?.status ?? "?"}`,
    ),
  ];
  if (extra.fleetRepos?.length) {
    lines.push("", "A project delivering with Fleet would get these GitRepos for the same commit:");
    for (const r of extra.fleetRepos)
      lines.push(
        `  GitRepo  ${r.metadata.name ?? ""}  paths ${r.spec.paths.join(", ")}  → ${targetText(r.spec.targets)}`,
      );
  }
  if (extra.bundles) {
    lines.push("", "Rendered bundles in that commit (the same tree for both engines):");
    for (const f of extra.bundles.files) lines.push(`  ${f.path.padEnd(44)} ${f.size} bytes`);
    if (extra.bundles.sample) {
      lines.push(
        "",
        `${extra.bundles.sample.path}:`,
        ...extra.bundles.sample.text
          .trimEnd()
          .split("\n")
          .map((l) => `  ${l}`),
      );
    }
  }
  if (extra.walk?.length) lines.push("", "Walked through:", ...extra.walk.map((l) => `  ${l}`));
  if (d.network?.status?.summary) {
    const s = d.network.status.summary;
    lines.push(
      "",
      `Network ${d.network.metadata.name ?? ""}: ${s.members ?? 0} members, ${s.sitesReady ?? 0} sites ready, ${s.linksConnected ?? 0}/${s.links ?? 0} links connected, ${s.linksPending ?? 0} pending`,
    );
  }
  if (state) {
    lines.push(
      "",
      "What runs here, and what does not:",
      `  Argo CD ${state.argocd.version} (built from its Go module) delivers the project: its ApplicationSets`,
      "  generate one Application per cluster, and Argo CD applies the charts to the edges. Each",
      "  edge has a scheduler and two kwok fake nodes: pods are scheduled and become Ready, but no",
      "  container runs (kwok plays the kubelet). Fleet's and Skupper's controllers do not run",
      "  here, so a Fleet project would stay offline and the network's links stay pending; use",
      "  `make demo KUBECONFIG=<a cluster with Fleet>`, or the kind setup in test/kind/, for them.",
      `  Charts come from the demo's OCI registry (${state.charts}), which holds small`,
      "  stand-ins for the two Bitnami charts the examples name; Registry bitnami points there.",
      state.clamd
        ? `  clamd (${state.clamd}) scans every chart, with a one-signature test database (EICAR).`
        : "  clamd is not installed, so charts are not scanned (--scan-mode=off).",
      `  Fleet CRDs: ${state.fleetCRDs === "upstream" ? "Fleet's own" : "stand-in schemas"}. Skupper CRDs: ${state.skupperCRDs === "upstream" ? "Skupper's own" : "stand-in schemas"}.`,
      "",
      "Try:",
      `  export ${k} PATH=${state.bin}:$PATH`,
      `  kubectl get outpost -n ${ns}`,
      `  kubectl outpost status ${name} -n ${ns} --clusters`,
      `  kubectl outpost resources ${name} -n ${ns}`,
      `  kubectl outpost history ${name} -n ${ns}`,
      `  kubectl get applications -n ${state.argocd.namespace}`,
      `  kubectl --context store-1 get pods -n storefront -o wide`,
      `  kubectl get events -n ${ns} --sort-by=.lastTimestamp`,
      "",
      `Logs: ${state.logDir} (JSON). Metrics: ${state.operatorMetrics}. Service proxy: ${state.proxy}.`,
      "Stop everything: make demo-down",
    );
  } else {
    lines.push(
      "",
      "Try:",
      `  kubectl-outpost status ${name} -n ${ns} --clusters`,
      `  kubectl get gitrepos -n ${ns}`,
    );
  }
  return lines.join("\n");
}

async function up(): Promise<void> {
  const dir = demoDir();
  const kc = await realCluster();
  let state: DemoState | undefined;
  const client = kc
    ? new KubeClient(kc)
    : await (async () => {
        state = await localFleet(dir);
        const local = new KubeConfig();
        local.loadFromFile(state.kubeconfig);
        local.setCurrentContext("management");
        return new KubeClient(local);
      })();
  const kubeconfig = state?.kubeconfig ?? process.env.KUBECONFIG ?? "";
  try {
    if (kc) await installInto(client, say, timeoutMs);
    const local = state;
    const delivered = await deliverExamples({
      client,
      approver,
      chartsUrl: state?.charts,
      register: local
        ? demoClusters.map((c) => ({
            name: c.name,
            labels: { ...c.labels },
            kubeconfigs: {
              engine: readFileSync(local.fleetKubeconfigs[c.name] ?? "", "utf8"),
              outpost: readFileSync(local.edgeKubeconfigs[c.name] ?? "", "utf8"),
            },
          }))
        : undefined,
      defaultEngine: local ? "argocd" : "fleet",
      argocdNamespace: local?.argocd.namespace,
      untilRunning: local !== undefined,
      progress: say,
      timeoutMs,
    });
    const bundles = local ? await renderedBundles(local, delivered) : undefined;
    let walk: string[] | undefined;
    let fleetRepos: GitRepo[] | undefined;
    if (local) {
      const edges = Object.fromEntries(
        demoClusters.map((c) => [
          c.name,
          new KubeClient(kubeConfigFromFile(local.fleetKubeconfigs[c.name] ?? "")),
        ]),
      );
      try {
        walk = await walkThrough({
          client,
          ns: delivered.deployment.metadata.namespace ?? "",
          name: delivered.deployment.metadata.name ?? "",
          approver,
          edges,
          progress: say,
          timeoutMs,
        });
      } finally {
        await Promise.all(Object.values(edges).map((e) => e.close()));
      }
      if (delivered.deployment.status?.engine === "argocd")
        fleetRepos = await fleetGitRepos(client, delivered);
      // The status once the walk-through is done.
      const ns = delivered.deployment.metadata.namespace ?? "";
      const report = await deploymentStatus(client, ns, delivered.deployment.metadata.name ?? "");
      delivered.statusText = formatStatus(report);
    }
    console.log(summary(delivered, state, kubeconfig, { bundles, walk, fleetRepos }));
    say("done");
  } finally {
    await client.close();
  }
}

const command = process.argv[2] ?? "up";
try {
  if (command === "up") await up();
  else if (command === "down") await stopFleet(demoDir());
  else {
    console.error("usage: scripts/demo/main.ts up|down");
    process.exit(2);
  }
} catch (err) {
  console.error(`\nmake demo: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
