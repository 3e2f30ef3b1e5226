// Demo benchmark: wall time of `make demo`'s work (scripts/demo/main.ts up) from a stopped
// fleet with the binaries cached, of a second run while the fleet runs, and of
// `make demo-down`; against a bare start of the same control plane (management + 3 edges)
// in the same run. BENCH_DEMO_COLD=1 adds a cold run: empty Outpost and Go build caches
// (the binaries are rebuilt; Go modules stay downloaded), which takes several minutes.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "../test/controlplane/index.ts";
import { machine, median, metric, type BenchmarkResult, type Metric } from "./report.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? "2");
const main = fileURLToPath(new URL("../scripts/demo/main.ts", import.meta.url));
const makefileDir = fileURLToPath(new URL("..", import.meta.url));

function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "ignore", "pipe"], cwd: makefileDir });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on("close", (code) => {
      if (code === 0) resolve((performance.now() - start) / 1000);
      else reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${err}`));
    });
  });
}

function demoEnv(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OUTPOST_DEMO_DIR: dir, ...extra };
  delete env.KUBECONFIG;
  return env;
}

export async function run(): Promise<BenchmarkResult> {
  const bare: number[] = [];
  const up: number[] = [];
  const again: number[] = [];
  const down: number[] = [];
  for (let i = 0; i < rounds; i++) {
    console.error(`round ${i + 1}/${rounds}: control plane alone (management + 3 edges)`);
    const t = performance.now();
    const cp = await startControlPlane({ edges: 3 });
    bare.push((performance.now() - t) / 1000);
    await cp.stop();

    const dir = join(mkdtempSync(join(tmpdir(), "outpost-bench-demo-")), "demo");
    const env = demoEnv(dir);
    const node = [process.execPath, "--import", "tsx", main];
    console.error(`round ${i + 1}/${rounds}: make demo (stopped fleet), again, demo-down`);
    up.push(await timed(node[0] ?? "node", [...node.slice(1), "up"], env));
    again.push(await timed(node[0] ?? "node", [...node.slice(1), "up"], env));
    down.push(await timed(node[0] ?? "node", [...node.slice(1), "down"], env));
  }
  const baseline = { name: "control plane alone", value: median(bare) };
  const metrics: Metric[] = [
    metric("control plane alone: management + 3 edges ready", median(bare), "s"),
    metric("make demo, warm (fleet stopped, binaries cached) to its summary", median(up), "s", { baseline }),
    metric("make demo again (fleet running)", median(again), "s"),
    metric("make demo-down", median(down), "s"),
  ];
  if (process.env.BENCH_DEMO_COLD === "1") {
    const cache = mkdtempSync(join(tmpdir(), "outpost-bench-cold-"));
    const dir = join(cache, "demo");
    console.error("cold make demo: building the control plane and Gitea from empty caches (several minutes)");
    const env = demoEnv(dir, { OUTPOST_CACHE_DIR: join(cache, "outpost"), GOCACHE: join(cache, "go-build") });
    const cold = await timed("make", ["--no-print-directory", "demo"], env);
    await timed(process.execPath, ["--import", "tsx", main, "down"], env);
    rmSync(cache, { recursive: true, force: true });
    metrics.push(metric("make demo, cold (empty Outpost and Go build caches)", cold, "s", { baseline }));
  }
  return {
    benchmark: "demo",
    date: new Date().toISOString(),
    machine: machine(),
    metrics,
    notes: [
      `Medians of ${rounds} rounds. "make demo" here is scripts/demo/main.ts up: start the fleet, install Outpost, deliver examples/, print the summary.`,
      "The cold run (BENCH_DEMO_COLD=1) runs `make demo` itself, so it includes building the control plane and Gitea; Go modules stay downloaded.",
    ],
  };
}
