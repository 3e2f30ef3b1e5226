// Control-plane benchmark: warm start of management + 2 edges against a management-only
// start in the same run, and the idle memory of each process kind.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { startControlPlane, type ControlPlane } from "../test/controlplane/index.ts";
import { machine, median, metric, type BenchmarkResult } from "./report.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? "3");

async function timedStart(edges: number): Promise<{ seconds: number; cp: ControlPlane }> {
  const start = performance.now();
  const cp = await startControlPlane({ edges });
  return { seconds: (performance.now() - start) / 1000, cp };
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? "0");
  return kb / 1024;
}

export async function run(): Promise<BenchmarkResult> {
  const single: number[] = [];
  const fleet: number[] = [];
  for (let i = 0; i < rounds; i++) {
    console.error(`round ${i + 1}/${rounds}: management only`);
    const a = await timedStart(0);
    single.push(a.seconds);
    await a.cp.stop();
    console.error(`round ${i + 1}/${rounds}: management + 2 edges`);
    const b = await timedStart(2);
    fleet.push(b.seconds);
    await b.cp.stop();
  }

  console.error("measuring idle memory (management + 2 edges, 15 s after start)");
  const { cp } = await timedStart(2);
  await sleep(15_000);
  const apiServers = cp.clusters.map((c) => rssMiB(c.apiServer.pid));
  const controllerManagers = cp.clusters.map((c) => rssMiB(c.controllerManager.pid));
  const etcd = rssMiB(cp.etcd.pid);
  await cp.stop();

  const singleStart = median(single);
  return {
    benchmark: "controlplane",
    date: new Date().toISOString(),
    machine: machine(),
    metrics: [
      metric("warm start, management only", singleStart, "s"),
      metric("warm start, management + 2 edges", median(fleet), "s", {
        baseline: { name: "management only", value: singleStart },
        goal: "≤ 15 s",
      }),
      metric("RSS of one idle kube-apiserver", median(apiServers), "MiB"),
      metric("RSS of one idle kube-controller-manager", median(controllerManagers), "MiB"),
      metric("RSS of etcd (3 clusters)", etcd, "MiB"),
    ],
    notes: [
      `Medians of ${rounds} rounds; start = from the call until every API server answers /readyz and every controller manager /healthz.`,
    ],
  };
}
