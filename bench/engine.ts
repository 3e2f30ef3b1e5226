// Delivery-engine benchmark on real parts: Argo CD delivering to edges that run workloads
// (kube-scheduler + kwok fake nodes), Outpost's catalog and deploy operators as their own
// process.
// (a) One 3-application package to every edge: time from `kubectl apply` of the
//     AppDeployment until every pod is Ready on every edge — against the baseline, measured
//     in the same run, of `helm template` of the same charts and values plus server-side
//     apply straight to each edge, until the same pods are Ready.
// (b) Many deployments at once (each of the package to one edge, round robin): time until
//     all run, and the peak memory of Argo CD's processes and of the operator.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { AppDeployment } from "../operators/api/app-deployment.generated.ts";
import { AppDeploymentResource, ProjectResource } from "../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject } from "../operators/runtime/client.ts";
import { namespacesResource, podsResource } from "../operators/runtime/core.ts";
import {
  ApplicationSetResource,
  ArgoApplicationResource,
  type ArgoApplication,
} from "../operators/deploy/argocd.ts";
import { ensureArgoCDBinaries, startArgoCD } from "../test/argocd/argocd.ts";
import { kubeConfigFromFile, startControlPlane } from "../test/controlplane/index.ts";
import { freePort } from "../test/controlplane/ports.ts";
import { registerArgoEdge, workloadChart, workloadValues } from "../test/support/argocd-deploy.ts";
import { packageResolved } from "../test/support/deploy.ts";
import { startGitServer } from "../test/support/git-server.ts";
import { installOutpost } from "../test/support/install.ts";
import { pushChart, startOciRegistry, type Chart } from "../test/support/services.ts";
import { machine, metric, type BenchmarkResult } from "./report.ts";
import { cpuSeconds, createBenchShop, machineCpuSeconds, pool, rssMiB } from "./support.ts";

const edgeCount = Number(process.env.BENCH_ENGINE_EDGES ?? "8");
const deployments = Number(process.env.BENCH_ENGINE_DEPLOYMENTS ?? "100");
const apps = ["web", "api", "db"];
const ns = "bench";
const main = fileURLToPath(new URL("../operators/main.ts", import.meta.url));

async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 1_800_000,
): Promise<T> {
  const start = performance.now();
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

type Pod = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };
const ready = (p: Pod): boolean =>
  !p.metadata.deletionTimestamp &&
  (p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false);

/** Ready pods in `namespace` on every edge, summed. */
async function readyPods(edges: KubeClient[], namespace: string | undefined): Promise<number> {
  const counts = await Promise.all(
    edges.map(
      async (e) =>
        (await e.list<Pod>(podsResource, namespace ? { namespace } : {})).items.filter(ready).length,
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

export async function run(): Promise<BenchmarkResult> {
  const cp = await startControlPlane({ edges: edgeCount, workloads: { nodes: 2 } });
  const [git, oci] = await Promise.all([startGitServer(), startOciRegistry()]);
  const dir = mkdtempSync(join(tmpdir(), "outpost-bench-engine-"));
  const argo = await startArgoCD({ cluster: cp.management, reconciliationTimeout: "180s" });
  const client = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
  const edges = cp.edges.map((e) => new KubeClient(kubeConfigFromFile(e.kubeconfig)));
  try {
    installOutpost(cp);
    const charts: Chart[] = [];
    for (const a of apps) {
      const chart = await workloadChart(a);
      charts.push(chart);
      await pushChart(oci.url, "charts", chart);
    }
    git.createRepo(ns);
    await client.create(ProjectResource, {
      metadata: { name: ns },
      spec: { delivery: { engine: "argocd" }, harbor: { enabled: false }, git: { enabled: false } },
    } as KubeObject);
    await client.create(namespacesResource, { metadata: { name: ns } });
    await createBenchShop(client, ns, { gitUrl: `${git.url}/${ns}.git`, ociUrl: oci.url, apps });
    for (const [i, cluster] of cp.edges.entries()) {
      await registerArgoEdge(cp, client, {
        ns,
        name: `store-${i + 1}`,
        cluster,
        labels: { tier: "store" },
        argocdNamespace: argo.namespace,
      });
    }

    // (a, baseline) helm template + server-side apply straight to each edge.
    console.error(`(a) baseline: helm template + kubectl apply --server-side to ${edgeCount} edges`);
    const { helm } = await ensureArgoCDBinaries();
    const valuesFile = join(dir, "values.yaml");
    writeFileSync(valuesFile, JSON.stringify(workloadValues));
    const manifests = charts
      .map((c) => {
        const archive = join(dir, `${c.name}.tgz`);
        writeFileSync(archive, c.archive);
        const out = spawnSync(
          helm,
          ["template", c.name, archive, "-f", valuesFile, "--namespace", "baseline"],
          {
            encoding: "utf8",
          },
        );
        if (out.status !== 0) throw new Error(`helm template ${c.name}: ${out.stderr}`);
        return out.stdout;
      })
      .join("\n---\n");
    const manifestFile = join(dir, "baseline.yaml");
    writeFileSync(manifestFile, manifests);
    const baselineStart = performance.now();
    await Promise.all(
      cp.edges.map(async (e) => {
        const kubectl = (...args: string[]): Promise<void> =>
          new Promise((resolve, reject) => {
            const p = spawn(cp.binaries.kubectl, ["--kubeconfig", e.kubeconfig, ...args], {
              stdio: "ignore",
            });
            p.on("exit", (code) => {
              if (code === 0) resolve();
              else reject(new Error(`kubectl ${args.join(" ")} exited ${String(code)}`));
            });
          });
        await kubectl("create", "namespace", "baseline");
        await kubectl("apply", "--server-side", "-n", "baseline", "-f", manifestFile);
      }),
    );
    const want = edgeCount * apps.length * workloadValues.replicaCount;
    await until("baseline pods Ready", async () =>
      (await readyPods(edges, "baseline")) === want ? true : undefined,
    );
    const baselineSeconds = (performance.now() - baselineStart) / 1000;

    // The operators, as one process of their own.
    const port = await freePort();
    const operator = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        main,
        "--controllers=catalog,deploy",
        "--scan-mode=off",
        `--kubeconfig=${cp.management.kubeconfig}`,
        "--leader-elect=false",
        "--engines=argocd,fleet",
        "--default-engine=argocd",
        `--argocd-namespace=${argo.namespace}`,
        `--metrics-bind-address=127.0.0.1:${port}`,
        "--log-level=warn",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    try {
      await packageResolved(client, ns, "shop-1.0.0", 300_000);

      // (a) one deployment to every edge: the first after the clusters were registered
      // (Argo CD builds its cache of each cluster then), and a second one.
      const deployment = (
        name: string,
        targets: AppDeployment["spec"]["targets"],
        namespace: string,
      ): AppDeployment => ({
        metadata: { name, namespace: ns },
        spec: {
          packageRef: { name: "shop", version: "1.0.0" },
          targets,
          applications: apps.map((a) => ({ name: a, namespace })),
        },
      });
      const everyEdge = { clusterSelector: { matchLabels: { tier: "store" } } };
      // CPU seconds used so far by Argo CD's processes, by the operator, and by the machine.
      const cpu = (): { argo: number; operator: number; busy: number; total: number } => ({
        argo: argo.processes().reduce((sum, p) => sum + cpuSeconds(p.pid), 0),
        operator: operator.pid ? cpuSeconds(operator.pid) : 0,
        ...machineCpuSeconds(),
      });
      const timeline = async (name: string): Promise<Record<string, number>> => {
        const cpuBefore = cpu();
        const start = performance.now();
        await client.create(AppDeploymentResource, deployment(name, everyEdge, name));
        const at: Record<string, number> = {};
        const mark = (k: string): void => {
          at[k] ??= (performance.now() - start) / 1000;
        };
        const inArgo = {
          namespace: argo.namespace,
          labelSelector: `outpost.dev/project=${ns},outpost.dev/deployment=${name}`,
        };
        await until(`${name}: every pod Ready and Running`, async () => {
          const d = await client.get<AppDeployment>(AppDeploymentResource, name, ns);
          if (d?.status?.commit) mark("committed");
          if ((await client.list(ApplicationSetResource, inArgo)).items.length === apps.length)
            mark("applicationSets");
          const generated = (await client.list<ArgoApplication>(ArgoApplicationResource, inArgo)).items;
          if (generated.length === want) mark("applications");
          if (generated.length === want && generated.every((a) => a.status?.sync?.status === "Synced"))
            mark("synced");
          if ((await readyPods(edges, name)) === want) mark("podsReady");
          if (d?.status?.phase === "Running") mark("running");
          return at.podsReady !== undefined && at.running !== undefined ? at : undefined;
        });
        const cpuAfter = cpu();
        at.cpuArgo = cpuAfter.argo - cpuBefore.argo;
        at.cpuOperator = cpuAfter.operator - cpuBefore.operator;
        at.cpuBusy = (cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total);
        return at;
      };
      console.error(
        `(a) one deployment of ${apps.length} applications to ${edgeCount} edges: first, second, third (namespace present)`,
      );
      const first = await timeline("first");
      const second = await timeline("second");
      // A third into a namespace that already exists on every edge: Argo CD's
      // CreateNamespace adds a PreSync step for a namespace it has to create, which makes
      // the sync multi-step (see docs/engines.md); here it has none.
      await Promise.all(edges.map((e) => e.create(namespacesResource, { metadata: { name: "third" } })));
      const third = await timeline("third");
      const runs: [string, Record<string, number>][] = [
        ["first deployment after registration", first],
        ["second deployment", second],
        ["third deployment, into a namespace that exists on the edges", third],
      ];
      const steps = (t: Record<string, number>): string =>
        ["committed", "applicationSets", "applications", "synced", "podsReady", "running"]
          .map((k) => `${k} ${(t[k] ?? 0).toFixed(1)} s`)
          .join(", ") +
        `; CPU: Argo CD ${(t.cpuArgo ?? 0).toFixed(1)} s, the operator ${(t.cpuOperator ?? 0).toFixed(1)} s, the machine ${((t.cpuBusy ?? 0) * 100).toFixed(0)} % busy`;

      // (b) many deployments at once, each to one edge.
      console.error(`(b) ${deployments} deployments at once, each to one of ${edgeCount} edges`);
      const manyStart = performance.now();
      await pool(deployments, 16, (i) =>
        client.create(
          AppDeploymentResource,
          deployment(`shop-${i}`, { clusters: [`store-${(i % edgeCount) + 1}`] }, `shop-${i}`),
        ),
      );
      await until(`${deployments} deployments Running`, async () => {
        const list = await client.list<AppDeployment>(AppDeploymentResource, { namespace: ns });
        return list.items.filter((d) => d.metadata.name?.startsWith("shop-") && d.status?.phase === "Running")
          .length === deployments
          ? true
          : undefined;
      });
      const manySeconds = (performance.now() - manyStart) / 1000;
      const manyPods = await readyPods(edges, undefined);
      const argoRss = argo.processes().map((p) => ({ name: p.name, mib: rssMiB(p.pid, "VmHWM") }));
      const operatorRss = operator.pid ? rssMiB(operator.pid, "VmHWM") : 0;
      return {
        benchmark: "engine",
        date: new Date().toISOString(),
        machine: machine(),
        metrics: [
          metric(
            `(a) baseline: helm template + server-side apply to ${edgeCount} edges, until ${want} pods Ready`,
            baselineSeconds,
            "s",
          ),
          ...runs.map(([what, t]) =>
            metric(
              `(a) Outpost + Argo CD, ${what}: applied until its ${want} pods are Ready`,
              t.podsReady ?? 0,
              "s",
              {
                baseline: { name: "helm template + server-side apply", value: baselineSeconds },
                goal: "ratio ≤ 1.5",
              },
            ),
          ),
          metric("(a) second deployment: until it reports Running", second.running ?? 0, "s"),
          ...runs.map(([what, t]) =>
            metric(`(a) ${what}: CPU time of Argo CD's processes`, t.cpuArgo ?? 0, "s"),
          ),
          ...runs.map(([what, t]) =>
            metric(`(a) ${what}: the machine's CPUs busy`, Math.round((t.cpuBusy ?? 0) * 100), "%"),
          ),
          metric(
            `(b) ${deployments} deployments at once (${deployments * apps.length} Applications) until all Running`,
            manySeconds,
            "s",
          ),
          metric("(b) pods Ready on the edges afterwards", manyPods, "pods"),
          ...argoRss.map((r) => metric(`(b) peak RSS of ${r.name}`, r.mib, "MiB")),
          metric("(b) peak RSS of outpost-operator (catalog, deploy)", operatorRss, "MiB"),
        ],
        notes: [
          `(a) first deployment, from its apply: ${steps(first)}.`,
          `(a) second deployment, from its apply: ${steps(second)}.`,
          `(a) third deployment (namespace already on the edges), from its apply: ${steps(third)}.`,
          `${edgeCount} edge API servers with 2 kwok nodes each, a management API server and Argo CD ${argo.version} on one machine (${machine().cpus} cores): every component shares the same CPUs.`,
          "The baseline applies rendered manifests directly (no Git, no Argo CD): the ratio is the cost of delivering through Git and Argo CD with per-cluster status.",
          "In (b) each deployment targets one edge (round robin), 3 applications each.",
        ],
      };
    } finally {
      operator.kill("SIGTERM");
      await new Promise((r) => operator.once("exit", r));
    }
  } finally {
    await Promise.all(edges.map((e) => e.close()));
    await client.close();
    await argo.stop({ keep: process.env.BENCH_KEEP === "1" });
    if (process.env.BENCH_KEEP === "1") console.error(`Argo CD logs kept in ${argo.dir}`);
    await Promise.all([git.stop(), oci.stop()]);
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
