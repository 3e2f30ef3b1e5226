// The demo fleet's supervisor: a background process (started by `make demo`, stopped by
// `make demo-down`) that runs everything the local demo needs and keeps it running:
//
//   - the control plane: a management API server and three edge API servers (store-1,
//     store-2, central), built from the Kubernetes sources, each edge with a scheduler
//     and kwok fake nodes, so the applications' pods are scheduled and become Ready;
//   - Argo CD (application controller, repo-server, ApplicationSet controller, Redis),
//     built from its Go module: the engine that delivers the demo project's deployments;
//   - Gitea (the Git host projects get repositories in), an OCI registry holding the
//     example charts, and clamd (when installed) for malware scanning;
//   - Outpost installed from config/ (CRDs, namespace, RBAC) on the management cluster and
//     config/edge on the edges, Fleet's CRDs on the management cluster and Skupper's on
//     the edges;
//   - outpost-operator (every controller, both engines; projects default to Argo CD here)
//     and outpost-service-proxy as local processes.
//
// It writes progress lines to <dir>/progress.log and, once all runs, <dir>/state.json.
// SIGTERM or SIGINT stops everything it started and removes the folder's state.
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parse, stringify } from "yaml";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { secretsResource } from "../../operators/runtime/core.ts";
import {
  kubeConfigFromFile,
  kubeconfigFor,
  startControlPlane,
  type ControlPlane,
} from "../../test/controlplane/index.ts";
import { freePort } from "../../test/controlplane/ports.ts";
import { ProcessGroup } from "../../test/controlplane/processes.ts";
import { installFleetCRDs } from "../../test/drivers/fleet-crds.ts";
import { installSkupperCRDs } from "../../test/drivers/skupper-crds.ts";
import { startArgoCD, type ArgoCD } from "../../test/argocd/argocd.ts";
import { giteaSettings, startGitea, type Gitea } from "../../test/support/gitea.ts";
import {
  pushChart,
  startClamd,
  startOciRegistry,
  type OciRegistry,
  type Service,
} from "../../test/support/services.ts";
import { demoChart } from "./charts.ts";
import {
  demoClusters,
  demoDir,
  progressPath,
  repoRoot,
  statePath,
  writeState,
  type DemoState,
} from "./layout.ts";

const dir = demoDir();
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "supervisor.pid"), String(process.pid));
const started = Date.now();
const progress = (line: string): void => {
  const text = `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}\n`;
  appendFileSync(progressPath(dir), text);
  process.stdout.write(text);
};

const execFileAsync = promisify(execFile);
const stops: (() => Promise<void>)[] = [];
let stopping = false;
async function stopAll(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => undefined);
  stopping = true;
  rmSync(statePath(dir), { force: true });
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  process.exit(code);
}
process.on("SIGTERM", () => void stopAll(0));
process.on("SIGINT", () => void stopAll(0));

async function kubectl(cp: ControlPlane, kubeconfig: string, ...args: string[]): Promise<void> {
  try {
    await execFileAsync(cp.binaries.kubectl, ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8" });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw new Error(`kubectl ${args.join(" ")}: ${stderr.trim()}`, { cause: err });
  }
}

async function waitHttp(what: string, url: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(url).catch(() => undefined))?.ok) return;
    await sleep(250);
  }
  throw new Error(
    `${what} did not become ready within ${timeoutMs / 1000}s (${url}); see ${join(dir, "logs")}`,
  );
}

const clamdInstalled = (): boolean =>
  existsSync("/usr/sbin/clamd") || spawnSync("sh", ["-c", "command -v clamd"]).status === 0;

async function main(): Promise<void> {
  progress(
    "starting the control plane: management + 3 edge API servers with 2 fake nodes each (the first run builds them)",
  );
  const cp = await startControlPlane({
    edges: 3,
    workloads: { nodes: 2 },
    dir: join(dir, "controlplane"),
    progress,
  });
  stops.push(() => cp.stop({ keep: true }));

  // Argo CD, the services, and Outpost's install on the clusters start side by side.
  const mgmt = cp.management.kubeconfig;
  const startArgo = async (): Promise<ArgoCD> => {
    progress("starting Argo CD on the management cluster (the first run builds it)");
    const argo = await startArgoCD({
      cluster: cp.management,
      dir: join(dir, "argocd"),
      reconciliationTimeout: "60s",
      progress,
    });
    stops.push(() => argo.stop({ keep: true }));
    progress(`Argo CD ${argo.version} running (namespace ${argo.namespace})`);
    return argo;
  };
  const startServices = async (): Promise<[Gitea, OciRegistry, Service | undefined]> => {
    progress("starting Gitea, the OCI registry and clamd");
    const withClamd = clamdInstalled();
    const [gitea, oci, clamd] = await Promise.all([
      startGitea({ dir: join(dir, "gitea") }),
      startOciRegistry({ dir: join(dir, "registry") }),
      withClamd ? startClamd({ dir: join(dir, "clamd") }) : Promise.resolve(undefined),
    ]);
    stops.push(
      () => gitea.stop(),
      () => oci.stop(),
    );
    if (clamd) stops.push(() => clamd.stop());
    else progress("clamd is not installed (Debian: clamav-daemon): charts are not scanned in this demo");
    for (const chart of ["nginx", "postgresql"]) {
      const packed = await demoChart(chart);
      await pushChart(oci.url, "bitnamicharts", packed);
      progress(`pushed chart ${packed.name} ${packed.version} to ${oci.url}/bitnamicharts`);
    }
    return [gitea, oci, clamd];
  };
  const edges = demoClusters.map((c) => {
    const edge = cp.edges.find((e) => e.name === c.edge);
    if (!edge) throw new Error(`no edge API server ${c.edge}`);
    return { ...c, cluster: edge };
  });
  const edgeKubeconfigs: Record<string, string> = {};
  const fleetKubeconfigs: Record<string, string> = {};
  const install = async (): Promise<{
    fleetCRDs: "upstream" | "stand-in";
    skupper: ("upstream" | "stand-in")[];
  }> => {
    const management = async (): Promise<"upstream" | "stand-in"> => {
      progress("installing Outpost (CRDs, namespace, RBAC) on the management cluster");
      for (const file of ["crds", "namespace", "rbac"]) {
        await kubectl(cp, mgmt, "apply", "--server-side", "-f", join(repoRoot, `config/base/${file}.yaml`));
      }
      // Outpost's CRDs only: Argo CD's are being created meanwhile.
      await kubectl(
        cp,
        mgmt,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        join(repoRoot, "config/base/crds.yaml"),
      );
      const fleetCRDs = await installFleetCRDs(mgmt);
      progress(`Fleet CRDs installed (${fleetCRDs === "upstream" ? "Fleet's own" : "stand-in schemas"})`);
      return fleetCRDs;
    };
    const edge = async (e: (typeof edges)[number]): Promise<"upstream" | "stand-in"> => {
      const skupper = await installSkupperCRDs(e.cluster.kubeconfig);
      await kubectl(cp, e.cluster.kubeconfig, "apply", "-k", join(repoRoot, "config/edge"));
      fleetKubeconfigs[e.name] = e.cluster.kubeconfig;
      edgeKubeconfigs[e.name] = await kubeconfigFor(
        e.cluster,
        "system:serviceaccount:kube-system:outpost-edge",
      );
      return skupper;
    };
    const [fleetCRDs, ...skupper] = await Promise.all([management(), ...edges.map(edge)]);
    progress("edges ready: Skupper CRDs and Outpost's edge role (config/edge) on store-1, store-2, central");
    return { fleetCRDs, skupper };
  };
  const [argo, [gitea, oci, clamd], { fleetCRDs, skupper }] = await Promise.all([
    startArgo(),
    startServices(),
    install(),
  ]);

  await configureTenancy(mgmt, gitea);

  const logDir = join(dir, "logs");
  mkdirSync(logDir, { recursive: true });
  const group = new ProcessGroup(logDir);
  stops.push(() => group.stopAll());
  const metricsPort = await freePort();
  let proxyPort = await freePort();
  while (proxyPort === metricsPort) proxyPort = await freePort();
  const node = [process.execPath, "--import", "tsx"];
  group.start("outpost-operator", node[0] ?? "node", [
    ...node.slice(1),
    join(repoRoot, "operators/main.ts"),
    "--controllers=all",
    `--kubeconfig=${mgmt}`,
    `--metrics-bind-address=127.0.0.1:${metricsPort}`,
    ...(clamd ? [`--clamd-address=${clamd.host}:${clamd.port}`] : ["--scan-mode=off"]),
    "--edge-poll=2s",
    // Both engines; the demo's projects deliver with Argo CD, which runs here.
    "--engines=fleet,argocd",
    "--default-engine=argocd",
    `--argocd-namespace=${argo.namespace}`,
  ]);
  group.start("outpost-service-proxy", node[0] ?? "node", [
    ...node.slice(1),
    join(repoRoot, "operators/proxy/main.ts"),
    `--kubeconfig=${mgmt}`,
    `--bind-address=127.0.0.1:${proxyPort}`,
    // Browsers and curl resolve localhost and *.localhost to this machine: a route's own
    // host is <label>.localhost, which a GET on localhost redirects to.
    "--base-domain=localhost",
    "--insecure-cookie",
    `--argocd-namespace=${argo.namespace}`,
  ]);
  await waitHttp("outpost-operator", `http://127.0.0.1:${metricsPort}/readyz`);
  await waitHttp("outpost-service-proxy", `http://127.0.0.1:${proxyPort}/healthz`);
  progress("outpost-operator (all controllers) and outpost-service-proxy running");

  // bin/: kubectl and the kubectl-outpost plugin, for PATH. kubectl gets a discovery cache
  // of its own: the demo's API servers reuse ports that earlier servers' caches describe.
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, "kubectl"),
    `#!/bin/sh\nKUBECACHEDIR="${join(dir, "kube-cache")}" exec "${cp.binaries.kubectl}" "$@"\n`,
    { mode: 0o755 },
  );
  writeFileSync(
    join(bin, "kubectl-outpost"),
    `#!/bin/sh\nexec "${process.execPath}" "${join(repoRoot, "cli/kubectl-outpost.js")}" "$@"\n`,
    { mode: 0o755 },
  );

  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, renameContexts(readFileSync(cp.kubeconfig, "utf8")), { mode: 0o600 });
  const state: DemoState = {
    pid: process.pid,
    startedAt: new Date(started).toISOString(),
    kubeconfig,
    bin,
    edgeKubeconfigs,
    fleetKubeconfigs,
    gitea: { url: gitea.url, username: gitea.username, password: gitea.password },
    charts: `${oci.url}/bitnamicharts`,
    clamd: clamd ? `${clamd.host}:${clamd.port}` : undefined,
    fleetCRDs,
    argocd: { namespace: argo.namespace, version: argo.version },
    skupperCRDs: skupper.every((k) => k === "upstream") ? "upstream" : "stand-in",
    operatorMetrics: `http://127.0.0.1:${metricsPort}/metrics`,
    proxy: `http://localhost:${proxyPort}`,
    logDir,
  };
  writeState(dir, state);
  progress("demo fleet ready");
}

/** Secret outpost-system/outpost-tenancy: projects get repositories in Gitea's "projects" org. */
async function configureTenancy(kubeconfig: string, gitea: Gitea): Promise<void> {
  const client = new KubeClient(kubeConfigFromFile(kubeconfig));
  try {
    await client.apply(
      secretsResource,
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "outpost-tenancy", namespace: "outpost-system" },
        type: "Opaque",
        stringData: giteaSettings(gitea, "projects"),
      } as KubeObject,
      { fieldManager: "outpost-demo", force: true },
    );
  } finally {
    await client.close();
  }
}

/** The control plane's kubeconfig with the edges' contexts named after their Fleet clusters. */
function renameContexts(text: string): string {
  const config = parse(text) as { contexts: { name: string }[]; clusters: { name: string }[] };
  const rename = (n: string): string => demoClusters.find((c) => c.edge === n)?.name ?? n;
  for (const c of config.contexts) c.name = rename(c.name);
  return stringify(config);
}

main().catch(async (err: unknown) => {
  progress(`failed: ${err instanceof Error ? err.message : String(err)}`);
  await stopAll(1);
});

// Stays up until stopped.
setInterval(() => undefined, 1 << 30);
