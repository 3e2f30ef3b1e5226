// Runtime benchmark.
// 1. Reconcile throughput: 10,000 small custom objects, each reconciled once with one
//    status patch, by a controller with 4 workers — against the raw rate of the same
//    status patches sent by a tight loop with 4 concurrent requests, in the same run.
// 2. Memory: RSS of a process whose informer caches 100,000 objects.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { KubeClient, type KubeObject, type ResourceType } from "../operators/runtime/client.ts";
import { summarize } from "../operators/runtime/conditions.ts";
import type { Request } from "../operators/runtime/controller.ts";
import { Manager } from "../operators/runtime/manager.ts";
import { installCRDs, kubeConfigFromFile, startControlPlane } from "../test/controlplane/index.ts";
import { sampleCRD, samples } from "../test/fixtures/sample-operator.ts";
import { machine, metric, type BenchmarkResult } from "./report.ts";
import { mapLimit } from "../operators/runtime/pool.ts";

const objects = Number(process.env.BENCH_OBJECTS ?? "10000");
const cachedObjects = Number(process.env.BENCH_CACHED_OBJECTS ?? "100000");
const workers = 4;
const cacheProbe = fileURLToPath(new URL("./runtime-cache-probe.ts", import.meta.url));

/** Runs `task` over `items` with `concurrency` requests in flight. */

const statusFor = (generation: number): object =>
  summarize({}, generation, { kind: "ready", message: "benchmark" }, new Date("2026-01-01T00:00:00Z"));

async function createSamples(
  client: KubeClient,
  namespace: string,
  count: number,
  label: string,
): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `${label}-${i}`);
  await mapLimit(names, 16, (name) =>
    client.create(samples, {
      metadata: { name, namespace, labels: { bench: label } },
      spec: { data: { v: "x" } },
    } as KubeObject),
  );
  return names;
}

export async function run(): Promise<BenchmarkResult> {
  const cp = await startControlPlane({
    apiServerArgs: [
      "--max-requests-inflight=0",
      "--max-mutating-requests-inflight=0",
      "--enable-priority-and-fairness=false",
    ],
  });
  try {
    await installCRDs(cp.management, [sampleCRD]);
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    const client = new KubeClient(kubeConfig);
    const namespaces: ResourceType = {
      group: "",
      version: "v1",
      kind: "Namespace",
      plural: "namespaces",
      namespaced: false,
    };
    for (const ns of ["raw", "runtime", "cache"]) await client.create(namespaces, { metadata: { name: ns } });

    console.error(`creating 2 × ${objects} objects`);
    const rawNames = await createSamples(client, "raw", objects, "raw");
    await createSamples(client, "runtime", objects, "rt");

    // Baseline: the same status patch per object, from a tight loop with `workers` in flight.
    console.error("baseline: raw status patches");
    const rawStart = performance.now();
    await mapLimit(rawNames, workers, (name) =>
      client.jsonPatch(samples, name, "raw", [{ op: "add", path: "/status", value: statusFor(1) }], {
        subresource: "status",
      }),
    );
    const rawRate = objects / ((performance.now() - rawStart) / 1000);

    console.error("runtime: controller with 4 workers");
    const manager = new Manager({ name: "bench", kubeConfig, namespace: "runtime" });
    manager.logger.level = "warn";
    let done = 0;
    let finished: () => void = () => undefined;
    const allDone = new Promise<void>((resolve) => (finished = resolve));
    manager
      .controller("bench", { workers })
      .for(samples)
      .complete({
        async reconcile(req: Request) {
          const obj = manager.informer<KubeObject & { status?: object }>(samples).cache.get(req.key);
          if (!obj || obj.status) return undefined;
          await manager.client.jsonPatch(
            samples,
            req.name,
            req.namespace,
            [{ op: "add", path: "/status", value: statusFor(obj.metadata.generation ?? 1) }],
            { subresource: "status" },
          );
          if (++done === objects) finished();
          return undefined;
        },
      });
    const rtStart = performance.now();
    await manager.start();
    await allDone;
    const rtRate = objects / ((performance.now() - rtStart) / 1000);
    await manager.stop();

    console.error(`memory: an informer caching ${cachedObjects} objects`);
    await createSamples(client, "cache", cachedObjects - 2 * objects, "cache");
    const [rssMiB, emptyMiB] = await new Promise<number[]>((resolve, reject) => {
      const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", cacheProbe], {
        env: { ...process.env, KUBECONFIG: cp.management.kubeconfig, EXPECTED: String(cachedObjects) },
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.once("exit", (code) => {
        if (code === 0) resolve(out.trim().split(" ").map(Number));
        else reject(new Error(`cache probe exited ${code}`));
      });
    });
    await client.close();

    return {
      benchmark: "runtime",
      date: new Date().toISOString(),
      machine: machine(),
      metrics: [
        metric("raw status patches (tight loop, 4 in flight)", rawRate, "objects/s"),
        metric(`reconciles with one status patch (${workers} workers)`, rtRate, "objects/s", {
          baseline: { name: "raw status patches", value: rawRate },
          goal: "ratio ≥ 0.67",
        }),
        metric(`RSS with ${cachedObjects.toLocaleString("en")} cached objects`, rssMiB ?? 0, "MiB", {
          baseline: { name: "same process before the list", value: emptyMiB ?? 0 },
          goal: "≤ 400 MiB",
        }),
      ],
      notes: [
        `${objects.toLocaleString("en")} Sample objects per phase on one local API server (priority and fairness off, no in-flight limits); the reconcile rate runs from manager start (list + watch) until every object has its status.`,
        "RSS is measured in a separate process holding one informer over all Samples, after its first list, managedFields dropped.",
      ],
    };
  } finally {
    await cp.stop();
  }
}
