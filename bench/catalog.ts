// Catalog benchmark: import 1,000 packages with 5,000 applications (generated catalog
// files, the Edge Orchestrator format) and reconcile them to Ready with the catalog
// operator running as its own process against a real OCI registry and clamd.
// Baseline in the same run: creating the same number of objects with a tight loop.
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { importCatalog } from "../cli/catalog.ts";
import { DeploymentPackageResource, ApplicationResource } from "../operators/api/resources.generated.ts";
import type { CatalogFile } from "../operators/catalog/format.ts";
import { ClamdScanner } from "../operators/catalog/scanner.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../operators/runtime/client.ts";
import { kstatus, type ConditionedStatus } from "../operators/runtime/conditions.ts";
import { installCRDs, kubeConfigFromFile, startControlPlane } from "../test/controlplane/index.ts";
import { freePort } from "../test/controlplane/ports.ts";
import { crdFiles } from "../test/support/crds.ts";
import { makeChart, pushChart, startClamd, startOciRegistry } from "../test/support/services.ts";
import { machine, metric, type BenchmarkResult } from "./report.ts";
import { apiRequests, apiServerAccess, rssMiB } from "./support.ts";

const packages = Number(process.env.BENCH_PACKAGES ?? "1000");
const appsPerPackage = 5;
const charts = 50;
const main = fileURLToPath(new URL("../operators/main.ts", import.meta.url));
const namespaces: ResourceType = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};

function catalogFiles(registryUrl: string): CatalogFile[] {
  const files: CatalogFile[] = [];
  const add = (path: string, doc: object): void => {
    files.push({ path, content: Buffer.from(stringify(doc)) });
  };
  add("registry.yaml", {
    specSchema: "Registry",
    schemaVersion: "0.1",
    name: "charts",
    rootUrl: registryUrl,
    type: "HELM",
  });
  for (let p = 0; p < packages; p++) {
    const apps = Array.from({ length: appsPerPackage }, (_, i) => ({
      name: `app-${p}-${i}`,
      version: "1.0.0",
    }));
    for (const [i, a] of apps.entries()) {
      add(`apps/${a.name}.yaml`, {
        specSchema: "Application",
        schemaVersion: "0.1",
        name: a.name,
        version: a.version,
        helmRegistry: "charts",
        chartName: `chart-${(p * appsPerPackage + i) % charts}`,
        chartVersion: "1.0.0",
        defaultProfile: "default",
        profiles: [
          { name: "default", parameterTemplates: [{ name: "replicaCount", type: "number", default: "1" }] },
        ],
      });
    }
    add(`packages/pkg-${p}.yaml`, {
      specSchema: "DeploymentPackage",
      schemaVersion: "0.1",
      name: `pkg-${p}`,
      version: "1.0.0",
      applications: apps,
      applicationDependencies: apps.slice(1).map((a) => ({ name: a.name, requires: apps[0]?.name ?? "" })),
    });
  }
  return files;
}

export async function run(): Promise<BenchmarkResult> {
  const cp = await startControlPlane({
    apiServerArgs: [
      "--max-requests-inflight=0",
      "--max-mutating-requests-inflight=0",
      "--enable-priority-and-fairness=false",
    ],
  });
  const [oci, clamd] = await Promise.all([startOciRegistry(), startClamd()]);
  try {
    await installCRDs(cp.management, crdFiles());
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    const client = new KubeClient(kubeConfig);
    const access = apiServerAccess(cp.management.kubeconfig, kubeConfig);
    for (let i = 0; i < charts; i++)
      await pushChart(oci.url, "charts", await makeChart({ name: `chart-${i}`, version: "1.0.0" }));
    for (const ns of ["baseline", "catalog"]) await client.create(namespaces, { metadata: { name: ns } });

    // oci:// to a loopback host is plain HTTP, as Docker and Helm treat local registries.
    const files = catalogFiles(`oci://${oci.host}:${oci.port}/charts`);
    const objects = packages * (appsPerPackage + 1) + 1;

    console.error(`baseline: create ${objects} ConfigMaps with a tight loop (16 in flight)`);
    const cms: ResourceType = {
      group: "",
      version: "v1",
      kind: "ConfigMap",
      plural: "configmaps",
      namespaced: true,
    };
    let next = 0;
    const baseStart = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < objects) {
          const i = next++;
          await client.create(cms, {
            metadata: { name: `cm-${i}`, namespace: "baseline" },
            data: { a: "b" },
          } as KubeObject);
        }
      }),
    );
    const baseRate = objects / ((performance.now() - baseStart) / 1000);

    console.error(`import: ${packages} packages, ${packages * appsPerPackage} applications`);
    const scanner = new ClamdScanner({ host: clamd.host, port: clamd.port });
    const before = await apiRequests(access);
    const importStart = performance.now();
    await importCatalog(client, files, "catalog", { scanner });
    const importSeconds = (performance.now() - importStart) / 1000;
    const afterImport = await apiRequests(access);

    console.error("reconcile: the catalog operator until every package is Ready");
    const port = await freePort();
    const operator = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        main,
        "--controllers=catalog",
        `--kubeconfig=${cp.management.kubeconfig}`,
        "--leader-elect=false",
        `--clamd-address=${clamd.host}:${clamd.port}`,
        `--metrics-bind-address=127.0.0.1:${port}`,
        "--log-level=warn",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const reconcileStart = performance.now();
    let ready = 0;
    for (;;) {
      await sleep(1000);
      const list = await client.list<KubeObject & { status?: ConditionedStatus }>(DeploymentPackageResource, {
        namespace: "catalog",
      });
      ready = list.items.filter((p) => kstatus(p as never) === "Current").length;
      if (ready === packages) break;
      if (performance.now() - reconcileStart > 600_000)
        throw new Error(`only ${ready} of ${packages} packages Ready after 10 minutes`);
    }
    const reconcileSeconds = (performance.now() - reconcileStart) / 1000;
    const afterReconcile = await apiRequests(access);
    const apps = await client.list<KubeObject & { status?: ConditionedStatus }>(ApplicationResource, {
      namespace: "catalog",
    });
    const appsReady = apps.items.filter((a) => kstatus(a as never) === "Current").length;
    const peak = rssMiB(operator.pid ?? 0, "VmHWM");
    const rss = rssMiB(operator.pid ?? 0, "VmRSS");
    operator.kill("SIGTERM");
    await client.close();

    const importRate = objects / importSeconds;
    return {
      benchmark: "catalog",
      date: new Date().toISOString(),
      machine: machine(),
      metrics: [
        metric(`raw creates of ${objects} objects (16 in flight)`, baseRate, "objects/s"),
        metric(`import of ${objects} objects (validate, scan, dry run, apply)`, importRate, "objects/s", {
          baseline: { name: "raw creates", value: baseRate },
        }),
        metric("import wall time", importSeconds, "s"),
        metric("reconcile to Ready wall time (operator start → every package Ready)", reconcileSeconds, "s"),
        metric("import + reconcile wall time", importSeconds + reconcileSeconds, "s", { goal: "≤ 60 s" }),
        metric("API requests during import", afterImport - before, "requests"),
        metric("API requests during reconcile", afterReconcile - afterImport, "requests"),
        metric("applications Ready", appsReady, "of " + String(packages * appsPerPackage)),
        metric("operator peak RSS", peak, "MiB"),
        metric("operator RSS at the end", rss, "MiB"),
      ],
      notes: [
        `${packages} packages × ${appsPerPackage} applications over ${charts} distinct charts in a local OCI registry; chart archives scanned by a local clamd (verdicts cached by digest).`,
        "API requests are the management API server's apiserver_request_total, read before and after each phase.",
      ],
    };
  } finally {
    await Promise.all([oci.stop(), clamd.stop()]);
    await cp.stop();
  }
}
