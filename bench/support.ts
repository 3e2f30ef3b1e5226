// Shared by the benchmarks: the API server's request counter, a process's memory and CPU
// time, the machine's busy CPU time, and a bounded-concurrency loop.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { httpsGet } from "../test/controlplane/http.ts";
import { mapLimit } from "../operators/runtime/pool.ts";
import {
  ApplicationResource,
  DeploymentPackageResource,
  RegistryResource,
} from "../operators/api/resources.generated.ts";
import { gitSecretName } from "../operators/deploy/app-deployment.ts";
import type { KubeClient, KubeObject } from "../operators/runtime/client.ts";
import { secretsResource } from "../operators/runtime/core.ts";

export interface ApiServerAccess {
  server: string;
  tls: { ca: string; cert: string; key: string };
}

export function apiServerAccess(kubeconfigPath: string, kubeConfig: KubeConfig): ApiServerAccess {
  const user = kubeConfig.getCurrentUser();
  return {
    server: kubeConfig.getCurrentCluster()?.server ?? "",
    tls: {
      ca: readFileSync(join(dirname(kubeconfigPath), "ca.crt"), "utf8"),
      cert: Buffer.from(user?.certData ?? "", "base64").toString(),
      key: Buffer.from(user?.keyData ?? "", "base64").toString(),
    },
  };
}

/** apiserver_request_total summed, optionally over the given verbs, from the API server's metrics. */
export async function apiRequests(access: ApiServerAccess, verbs?: string[]): Promise<number> {
  const res = await httpsGet(`${access.server}/metrics`, access.tls, 30_000);
  let total = 0;
  for (const line of res.body.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? "";
    if (verbs && !verbs.includes(verb)) continue;
    total += Number(line.split(" ").pop());
  }
  return total;
}

export function rssMiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? "0") / 1024;
}

// Clock ticks a second of /proc's CPU times (USER_HZ: 100 on every Linux architecture
// the benchmarks run on; `getconf CLK_TCK`).
const ticksPerSecond = 100;

/** CPU seconds (user + system) `pid` has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Busy and total CPU seconds of the whole machine so far, summed over its CPUs (/proc/stat). */
export function machineCpuSeconds(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal …
  const t = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = t.reduce((a, b) => a + b, 0);
  const idle = (t[3] ?? 0) + (t[4] ?? 0);
  return { busy: (total - idle) / ticksPerSecond, total: total / ticksPerSecond };
}

/**
 * A namespace ready to deploy package shop 1.0.0: Secret outpost-git naming `gitUrl`,
 * Registry charts at `<ociUrl>/charts`, an Application per name in `apps` (chart of the
 * same name, 1.0.0), and the package of them with `dependencies`.
 */
export async function createBenchShop(
  client: KubeClient,
  ns: string,
  options: {
    gitUrl: string;
    ociUrl: string;
    apps: string[];
    dependencies?: { application: string; requires: string }[];
  },
): Promise<void> {
  await client.create(secretsResource, {
    metadata: { name: gitSecretName, namespace: ns },
    stringData: { url: options.gitUrl, branch: "main" },
  } as KubeObject);
  await client.create(RegistryResource, {
    metadata: { name: "charts", namespace: ns },
    spec: { type: "oci", url: `${options.ociUrl}/charts` },
  } as KubeObject);
  for (const a of options.apps) {
    await client.create(ApplicationResource, {
      metadata: { name: `${a}-1.0.0`, namespace: ns },
      spec: {
        name: a,
        version: "1.0.0",
        chart: { registryRef: { name: "charts" }, name: a, version: "1.0.0" },
      },
    } as KubeObject);
  }
  await client.create(DeploymentPackageResource, {
    metadata: { name: "shop-1.0.0", namespace: ns },
    spec: {
      name: "shop",
      version: "1.0.0",
      applications: options.apps.map((name) => ({ name, version: "1.0.0" })),
      ...(options.dependencies ? { dependencies: options.dependencies } : {}),
    },
  } as KubeObject);
}

/** Runs `fn(i)` for i in [0, count) with `inFlight` at a time. */
export async function pool(
  count: number,
  inFlight: number,
  fn: (i: number) => Promise<unknown>,
): Promise<void> {
  await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    inFlight,
    fn,
  );
}
