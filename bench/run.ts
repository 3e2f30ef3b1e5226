// `make bench`: runs every benchmark (or those named in BENCH) and publishes the results.
import { publish, type BenchmarkResult } from "./report.ts";

const benchmarks: Record<string, () => Promise<{ run(): Promise<BenchmarkResult> }>> = {
  controlplane: () => import("./controlplane.ts"),
  runtime: () => import("./runtime.ts"),
  catalog: () => import("./catalog.ts"),
  deploy: () => import("./deploy.ts"),
  engine: () => import("./engine.ts"),
  proxy: () => import("./proxy.ts"),
  demo: () => import("./demo.ts"),
};

const selected = process.env.BENCH ? process.env.BENCH.split(",") : Object.keys(benchmarks);
for (const name of selected) {
  const load = benchmarks[name];
  if (!load) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(benchmarks).join(", ")}`);
  console.error(`== ${name}`);
  publish(await (await load()).run());
}
