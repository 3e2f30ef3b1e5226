// Deployment benchmark, with the catalog and deploy operators running as their own
// process against a real API server, Git server and OCI registry:
// (a) 10,000 Fleet Clusters; one deployment of a 3-application package targeting all of
//     them by label: time from apply to the commit and the GitRepos, and the API writes
//     it took (O(applications), not O(clusters)); then 30,000 BundleDeployments turn
//     ready (status writes as Fleet's agents make them): time until the deployment's
//     status shows every cluster ready, against the time the writes themselves took.
// (b) 1,000 deployments applied at once: time until all are delivered, against creating
//     the same number of GitRepos directly.
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import type { AppDeployment } from "../operators/api/app-deployment.generated.ts";
import { AppDeploymentResource } from "../operators/api/resources.generated.ts";
import { BundleDeploymentResource, GitRepoResource } from "../operators/deploy/fleet.ts";
import { registerCatalog } from "../operators/catalog/index.ts";
import { KubeClient, type KubeObject } from "../operators/runtime/client.ts";
import { installCRDs, kubeConfigFromFile, startControlPlane } from "../test/controlplane/index.ts";
import { freePort } from "../test/controlplane/ports.ts";
import { installFleetCRDs } from "../test/drivers/fleet-crds.ts";
import { crdFiles } from "../test/support/crds.ts";
import { startOperator } from "../test/support/operator.ts";
import { packageResolved } from "../test/support/deploy.ts";
import { startGitServer } from "../test/support/git-server.ts";
import { makeChart, pushChart, startOciRegistry } from "../test/support/services.ts";
import { machine, metric, type BenchmarkResult } from "./report.ts";
import { apiRequests, apiServerAccess, createBenchShop, pool, rssMiB } from "./support.ts";
import { namespacesResource } from "../operators/runtime/core.ts";
import { FleetClusterResource } from "../operators/inventory/registrations.ts";

const clusters = Number(process.env.BENCH_CLUSTERS ?? "10000");
const deployments = Number(process.env.BENCH_DEPLOYMENTS ?? "1000");
const apps = ["web", "api", "db"];
const clusterNamespaces = 100;
const main = fileURLToPath(new URL("../operators/main.ts", import.meta.url));
const writes = ["POST", "PUT", "PATCH", "DELETE"];

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 900_000): Promise<T> {
  const start = performance.now();
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export async function run(): Promise<BenchmarkResult> {
  const cp = await startControlPlane({
    apiServerArgs: [
      "--max-requests-inflight=0",
      "--max-mutating-requests-inflight=0",
      "--enable-priority-and-fairness=false",
    ],
  });
  const [git, oci] = await Promise.all([startGitServer(), startOciRegistry()]);
  try {
    await installCRDs(cp.management, crdFiles());
    const fleetCRDs = await installFleetCRDs(cp.management.kubeconfig);
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    const client = new KubeClient(kubeConfig);
    const access = apiServerAccess(cp.management.kubeconfig, kubeConfig);
    for (const a of apps) await pushChart(oci.url, "charts", await makeChart({ name: a, version: "1.0.0" }));
    const ns = "fleet-bench";
    for (const n of [ns, "baseline", ...Array.from({ length: clusterNamespaces }, (_, i) => `cluster-${i}`)])
      await client.create(namespacesResource, { metadata: { name: n } });
    git.createRepo("bench");
    await createBenchShop(client, ns, {
      gitUrl: `${git.url}/bench.git`,
      ociUrl: oci.url,
      apps,
      dependencies: [
        { application: "web", requires: "api" },
        { application: "api", requires: "db" },
      ],
    });

    console.error(`clusters: ${clusters} Fleet Clusters (16 in flight), agents checked in`);
    const clusterStart = performance.now();
    await pool(clusters, 16, async (i) => {
      const name = `edge-${i}`;
      await client.create(FleetClusterResource, {
        metadata: { name, namespace: ns, labels: { tier: "store", region: `r${i % 10}` } },
        spec: {},
      } as KubeObject);
      await client.mergePatch(
        FleetClusterResource,
        name,
        ns,
        {
          status: {
            namespace: `cluster-${i % clusterNamespaces}`,
            agent: { lastSeen: new Date().toISOString(), namespace: "cattle-fleet-system" },
          },
        },
        { subresource: "status" },
      );
    });
    const clusterWriteRate = (clusters * 2) / ((performance.now() - clusterStart) / 1000);

    const port = await freePort();
    const operator = spawn(
      process.execPath,
      [
        // OUTPOST_BENCH_PROFILE=DIR writes a CPU profile of the operator there.
        ...(process.env.OUTPOST_BENCH_PROFILE
          ? ["--cpu-prof", `--cpu-prof-dir=${process.env.OUTPOST_BENCH_PROFILE}`]
          : []),
        "--import",
        "tsx",
        main,
        "--controllers=deploy",
        `--kubeconfig=${cp.management.kubeconfig}`,
        "--leader-elect=false",
        "--offline-after=1h",
        `--metrics-bind-address=127.0.0.1:${port}`,
        "--log-level=warn",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    // The catalog runs in this process: the operator measured is the deploy operator alone.
    const catalog = await startOperator("outpost-catalog", kubeConfig, (m) => {
      registerCatalog(m, { scanMode: "off" });
    });
    await packageResolved(client, ns, "shop-1.0.0", 900_000);
    await sleep(2_000); // the operator's informers have listed the clusters

    // (a) one deployment to every cluster.
    console.error("(a) one deployment of 3 applications to every cluster");
    const deployment = (name: string): AppDeployment => ({
      metadata: { name, namespace: ns },
      spec: {
        packageRef: { name: "shop", version: "1.0.0" },
        targets: { clusterSelector: { matchLabels: { tier: "store" } } },
      },
    });
    const writesBefore = await apiRequests(access, writes);
    const applyStart = performance.now();
    await client.create(AppDeploymentResource, deployment("everywhere"));
    await until("commit and GitRepos", async () => {
      const d = await client.get<AppDeployment>(AppDeploymentResource, "everywhere", ns);
      if (!d?.status?.commit) return undefined;
      const repos = await client.list(GitRepoResource, { namespace: ns });
      return repos.items.length === apps.length ? true : undefined;
    });
    const deliverSeconds = (performance.now() - applyStart) / 1000;
    await sleep(1_000);
    const deliverWrites = (await apiRequests(access, writes)) - writesBefore;

    // Fleet's BundleDeployments, as its controller would create them (not timed).
    const contentOf = (app: string): string => {
      const fleetYaml = parse(git.show("bench", `everywhere/${app}/fleet.yaml`) ?? "") as {
        labels?: Record<string, string>;
      };
      return fleetYaml.labels?.["outpost.dev/content"] ?? "";
    };
    const content = Object.fromEntries(apps.map((a) => [a, contentOf(a)]));
    const bundleDeployments = clusters * apps.length;
    console.error(`(a) creating ${bundleDeployments} BundleDeployments (not timed)`);
    const bdOf = (i: number): { name: string; namespace: string; app: string; cluster: string } => {
      const app = apps[i % apps.length] ?? "web";
      const c = Math.floor(i / apps.length);
      return {
        name: `everywhere-${app}-edge-${c}`,
        namespace: `cluster-${c % clusterNamespaces}`,
        app,
        cluster: `edge-${c}`,
      };
    };
    await pool(bundleDeployments, 16, async (i) => {
      const bd = bdOf(i);
      await client.create(BundleDeploymentResource, {
        metadata: {
          name: bd.name,
          namespace: bd.namespace,
          labels: {
            "outpost.dev/deployment": "everywhere",
            "outpost.dev/application": bd.app,
            "outpost.dev/content": content[bd.app] ?? "",
            "fleet.cattle.io/bundle-name": `everywhere-${bd.app}`,
            "fleet.cattle.io/bundle-namespace": ns,
            "fleet.cattle.io/cluster": bd.cluster,
            "fleet.cattle.io/cluster-namespace": ns,
            "fleet.cattle.io/managed": "true",
          },
        },
        spec: { deploymentID: `s-${content[bd.app] ?? ""}:1` },
      } as KubeObject);
    });

    console.error(`(a) ${bundleDeployments} BundleDeployments become ready`);
    const readyStart = performance.now();
    await pool(bundleDeployments, 16, async (i) => {
      const bd = bdOf(i);
      await client.mergePatch(
        BundleDeploymentResource,
        bd.name,
        bd.namespace,
        {
          status: {
            appliedDeploymentID: `s-${content[bd.app] ?? ""}:1`,
            ready: true,
            nonModified: true,
            conditions: [{ type: "Ready", status: "True" }],
          },
        },
        { subresource: "status" },
      );
    });
    const statusWritesSeconds = (performance.now() - readyStart) / 1000;
    await until("every cluster ready", async () => {
      const d = await client.get<AppDeployment>(AppDeploymentResource, "everywhere", ns);
      return d?.status?.summary?.ready === clusters ? true : undefined;
    });
    const allReadySeconds = (performance.now() - readyStart) / 1000;
    const rssAfterA = rssMiB(operator.pid ?? 0, "VmHWM");

    // (b) many deployments at once, against creating their GitRepos directly.
    console.error(`(b) baseline: ${deployments * apps.length} GitRepos created directly (16 in flight)`);
    const baseStart = performance.now();
    await pool(deployments * apps.length, 16, (i) =>
      client.create(GitRepoResource, {
        metadata: { name: `repo-${i}`, namespace: "baseline" },
        spec: { repo: `${git.url}/bench.git`, branch: "main", paths: [`x/${i}`], targets: [] },
      } as KubeObject),
    );
    const baselineSeconds = (performance.now() - baseStart) / 1000;

    console.error(`(b) ${deployments} deployments applied at once`);
    const manyStart = performance.now();
    await pool(deployments, 16, (i) => client.create(AppDeploymentResource, deployment(`dep-${i}`)));
    await until(`${deployments} deployments delivered`, async () => {
      const list = await client.list<AppDeployment>(AppDeploymentResource, { namespace: ns });
      const done = list.items.filter((d) => d.status?.commit && d.metadata.name !== "everywhere").length;
      if (done < deployments) {
        process.stderr.write(`\r(b) ${done}/${deployments} delivered`);
        await sleep(1_000);
        return undefined;
      }
      const repos = await client.list(GitRepoResource, { namespace: ns });
      return repos.items.length >= (deployments + 1) * apps.length ? true : undefined;
    });
    process.stderr.write("\n");
    const manySeconds = (performance.now() - manyStart) / 1000;
    const peak = rssMiB(operator.pid ?? 0, "VmHWM");
    const commits = git.log("bench").length;
    const exited = new Promise((resolve) => operator.once("exit", resolve));
    operator.kill("SIGTERM");
    await exited;
    await catalog.stop();
    await client.close();

    return {
      benchmark: "deploy",
      date: new Date().toISOString(),
      machine: machine(),
      metrics: [
        metric(`raw Cluster writes (create + status, 16 in flight)`, clusterWriteRate, "writes/s"),
        metric(
          `(a) apply → commit + ${apps.length} GitRepos, ${clusters} clusters targeted`,
          deliverSeconds,
          "s",
          {
            goal: "≤ 2 s",
          },
        ),
        metric("(a) API writes for that delivery", deliverWrites, "writes", { goal: "O(applications)" }),
        metric(`(a) ${bundleDeployments} BundleDeployment status writes`, statusWritesSeconds, "s"),
        metric("(a) first ready write → status shows every cluster ready", allReadySeconds, "s", {
          goal: "≤ 5 s after the writes",
          baseline: { name: "the status writes themselves", value: statusWritesSeconds },
        }),
        metric("(a) operator peak RSS", rssAfterA, "MiB", { goal: "≤ 500 MB" }),
        metric(`(b) ${deployments} deployments applied at once → all delivered`, manySeconds, "s", {
          goal: "≤ 60 s",
          baseline: {
            name: `creating ${deployments * apps.length} GitRepos directly`,
            value: baselineSeconds,
          },
        }),
        metric("(b) commits in the repository", commits, "commits"),
        metric("operator peak RSS at the end", peak, "MiB"),
      ],
      notes: [
        `Fleet CRDs: ${fleetCRDs}. Fleet's controllers do not run: the benchmark writes BundleDeployments and their status as Fleet's controller and agents do (${clusterNamespaces} cluster namespaces instead of one per cluster).`,
        "Writes are the management API server's apiserver_request_total for POST, PUT, PATCH and DELETE, read before and after.",
        "The deploy operator runs as its own process (--controllers=deploy, 96 workers); the catalog operator runs in the benchmark's process; the Git server is git http-backend on loopback.",
      ],
    };
  } finally {
    await Promise.all([git.stop(), oci.stop()]);
    await cp.stop();
  }
}
