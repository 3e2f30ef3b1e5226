// Service proxy benchmark: outpost-service-proxy as its own process in front of a real
// edge API server's service proxy and a small web application on this machine.
// (a) throughput and latency with 50 connections, small responses: through the proxy,
//     against calling the edge API server's service proxy directly (the baseline, same
//     run, same client), and the proxy process's CPU time (user + system) per request;
//     and both again paced at a fixed rate, for the added p99;
// (b) 1,000 WebSockets held open through the proxy: the proxy's RSS.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import WebSocket from "ws";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
} from "../operators/api/resources.generated.ts";
import { GitRepoResource } from "../operators/deploy/fleet.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../operators/runtime/client.ts";
import { namespacesResource } from "../operators/runtime/core.ts";
import { kubeConfigFromFile, startControlPlane } from "../test/controlplane/index.ts";
import { freePort } from "../test/controlplane/ports.ts";
import { installFleetCRDs } from "../test/drivers/fleet-crds.ts";
import { startEdgeBackend } from "../test/support/edge-backend.ts";
import { installOutpost } from "../test/support/install.ts";
import { putEdgeCredentials } from "../test/support/interconnect.ts";
import { machine, metric, type BenchmarkResult } from "./report.ts";
import { cpuSeconds, rssMiB } from "./support.ts";
import { routeLabel } from "../operators/proxy/origin.ts";
import { parseRoute } from "../operators/proxy/route.ts";
import { FleetClusterResource } from "../operators/inventory/registrations.ts";

const seconds = Number(process.env.BENCH_PROXY_SECONDS ?? "10");
const connections = 50;
/** The goal's rate; on a machine where even the direct path cannot carry it, see below. */
const goalRate = 2000;
const websockets = Number(process.env.BENCH_PROXY_WEBSOCKETS ?? "1000");
const main = fileURLToPath(new URL("../operators/proxy/main.ts", import.meta.url));
const ns = "bench";

interface Load {
  requests: number;
  errors: number;
  rate: number;
  p50: number;
  p99: number;
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

/**
 * `connections` workers call `send` (which answers the HTTP status) for `seconds`; with
 * `rate`, calls start on a fixed schedule and latency counts from the scheduled start,
 * so queueing shows.
 */
async function load(send: () => Promise<number>, rate?: number): Promise<Load> {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      for (;;) {
        let t0 = performance.now();
        if (rate) {
          const slot = start + (next++ * 1000) / rate;
          if (slot >= end) return;
          if (slot > t0) await sleep(slot - t0);
          t0 = slot;
        } else if (t0 >= end) return;
        try {
          if ((await send()) !== 200) errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const took = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    rate: latencies.length / took,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

export async function run(): Promise<BenchmarkResult> {
  const cp = await startControlPlane({ edges: 1 });
  const backend = await startEdgeBackend();
  const notes: string[] = [];
  let proxy: ReturnType<typeof spawn> | undefined;
  try {
    installOutpost(cp);
    notes.push(`Fleet CRDs: ${await installFleetCRDs(cp.management.kubeconfig)}`);
    const client = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
    const edgeCluster = cp.edges[0];
    if (!edgeCluster) throw new Error("no edge");
    const edge = new KubeClient(kubeConfigFromFile(edgeCluster.kubeconfig));
    await edge.create(namespacesResource, { metadata: { name: "shop" } });
    await backend.publish(edge, "shop", "web-ui", 80);

    // What the catalog and deploy operators would have left: an application exporting
    // web-ui:80, its package and deployment, the GitRepo delivering it to cluster edge-1.
    await client.create(namespacesResource, { metadata: { name: ns } });
    await putEdgeCredentials(client, ns, "edge-1", readFileSync(edgeCluster.kubeconfig, "utf8"));
    await client.create(FleetClusterResource, {
      metadata: { name: "edge-1", namespace: ns },
      spec: {},
    } as KubeObject);
    await client.create(ApplicationResource, {
      metadata: { name: "web-1.0.0", namespace: ns },
      spec: {
        name: "web",
        version: "1.0.0",
        chart: { registryRef: { name: "charts" }, name: "web", version: "1.0.0" },
        defaultProfile: "default",
        profiles: [{ name: "default" }],
        serviceExports: [{ service: "web-ui", port: 80 }],
      },
    } as KubeObject);
    await client.create(DeploymentPackageResource, {
      metadata: { name: "shop-1.0.0", namespace: ns },
      spec: { name: "shop", version: "1.0.0", applications: [{ name: "web", version: "1.0.0" }] },
    } as KubeObject);
    await client.create(AppDeploymentResource, {
      metadata: { name: "shop", namespace: ns },
      spec: { packageRef: { name: "shop", version: "1.0.0" }, targets: { clusters: ["edge-1"] } },
    } as KubeObject);
    await client.create(GitRepoResource, {
      metadata: {
        name: "shop-web",
        namespace: ns,
        labels: { "outpost.dev/deployment": "shop", "outpost.dev/application": "web" },
        annotations: { "outpost.dev/namespace": "shop", "outpost.dev/release": "web" },
      },
      spec: {
        repo: "https://git.invalid/x",
        branch: "main",
        paths: ["shop/web"],
        targets: [{ name: "e", clusterName: "edge-1" }],
      },
    } as KubeObject);
    const sa: ResourceType = {
      group: "",
      version: "v1",
      kind: "ServiceAccount",
      plural: "serviceaccounts",
      namespaced: true,
    };
    await client.create(sa, { metadata: { name: "bench", namespace: ns } });
    await client.create(
      {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
      },
      {
        metadata: { name: "bench", namespace: ns },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: "outpost:project-deployer",
        },
        subjects: [{ kind: "ServiceAccount", name: "bench", namespace: ns }],
      } as KubeObject,
    );
    const token = (
      await client.request<{ status: { token: string } }>(
        "POST",
        `/api/v1/namespaces/${ns}/serviceaccounts/bench/token`,
        {
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: { expirationSeconds: 3600 },
          },
        },
      )
    ).status.token;

    const port = await freePort();
    proxy = spawn(
      process.execPath,
      [
        // As config/ runs it (see proxyNodeFlags in cdk8s/main.ts); BENCH_PROXY_NODE_FLAGS
        // replaces them, for experiments.
        ...(process.env.BENCH_PROXY_NODE_FLAGS ?? "--max-semi-space-size=2").split(" ").filter(Boolean),
        "--import",
        "tsx",
        main,
        `--kubeconfig=${cp.management.kubeconfig}`,
        `--bind-address=127.0.0.1:${port}`,
        "--base-domain=proxy.bench",
        "--rate=1000000",
        "--burst=1000000",
        "--insecure-cookie",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const proxyPool = new Pool(`http://127.0.0.1:${port}`, { connections });
    const route = `/${ns}/edge-1/shop/web-ui:80/`;
    // Each route on its own host; the client connects to 127.0.0.1 and names it.
    const host = `${routeLabel(parseRoute(route))}.proxy.bench:${port}`;
    const auth = { authorization: `Bearer ${token}`, host };
    for (let i = 0; ; i++) {
      const ok = await proxyPool
        .request({ path: route, method: "GET", headers: auth })
        .then(async (r) => (await r.body.text(), r.statusCode === 200))
        .catch(() => false);
      if (ok) break;
      if (i > 300) throw new Error("the proxy did not serve the route");
      await sleep(100);
    }

    // The baseline: the edge API server's service proxy, straight, as the admin.
    const edgeTransport = await edge.transport();
    const directPath = "/api/v1/namespaces/shop/services/web-ui:80/proxy/";
    const sendDirect = async (): Promise<number> => {
      const res = await edgeTransport.dispatcher.request({
        origin: edgeTransport.origin,
        path: directPath,
        method: "GET",
        headers: edgeTransport.headers,
      });
      await res.body.text();
      return res.statusCode;
    };
    const sendProxy = async (): Promise<number> => {
      const res = await proxyPool.request({ path: route, method: "GET", headers: auth });
      await res.body.text();
      return res.statusCode;
    };

    console.error(`proxy bench: ${seconds} s per run, ${connections} connections`);
    const rssStart = rssMiB(proxy.pid ?? 0, "VmRSS");
    const directMax = await load(sendDirect);
    const cpuBefore = cpuSeconds(proxy.pid ?? 0);
    const proxyMax = await load(sendProxy);
    const cpuPerRequest = ((cpuSeconds(proxy.pid ?? 0) - cpuBefore) / Math.max(1, proxyMax.requests)) * 1e6;
    // Added latency is compared at a rate both paths carry without queueing: the goal's
    // 2,000 req/s where the machine allows it, else half of what the proxy path reached.
    const pacedRate = Number(
      process.env.BENCH_PROXY_RATE ??
        Math.min(goalRate, Math.floor(Math.min(directMax.rate, proxyMax.rate) / 2)),
    );
    const directPaced = await load(sendDirect, pacedRate);
    const cpuPacedBefore = cpuSeconds(proxy.pid ?? 0);
    const proxyPaced = await load(sendProxy, pacedRate);
    const cpuPerPacedRequest =
      ((cpuSeconds(proxy.pid ?? 0) - cpuPacedBefore) / Math.max(1, proxyPaced.requests)) * 1e6;
    const rssAfterLoad = rssMiB(proxy.pid ?? 0, "VmRSS");
    for (const [what, l] of [
      ["direct", directMax],
      ["proxy", proxyMax],
      ["direct paced", directPaced],
      ["proxy paced", proxyPaced],
    ] as const)
      console.error(
        `${what}: ${l.rate.toFixed(0)} req/s, p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, ${l.errors} errors`,
      );
    console.error(
      `proxy CPU per request: ${cpuPerRequest.toFixed(0)} µs (50 connections), ${cpuPerPacedRequest.toFixed(0)} µs (paced)`,
    );

    // (b) WebSockets held open through the proxy.
    const rssBefore = rssMiB(proxy.pid ?? 0, "VmRSS");
    const sockets: WebSocket[] = [];
    let opened = 0;
    let failed = 0;
    for (let i = 0; i < websockets; i += 50) {
      await Promise.all(
        Array.from(
          { length: Math.min(50, websockets - i) },
          () =>
            new Promise<void>((resolve) => {
              const ws = new WebSocket(`ws://127.0.0.1:${port}${route}ws`, { headers: auth });
              sockets.push(ws);
              ws.on("open", () => {
                opened++;
                resolve();
              });
              ws.on("error", () => {
                failed++;
                resolve();
              });
            }),
        ),
      );
    }
    // Every socket still answers.
    let echoed = 0;
    await Promise.all(
      sockets
        .filter((s) => s.readyState === WebSocket.OPEN)
        .map(
          (s) =>
            new Promise<void>((resolve) => {
              s.once("message", () => {
                echoed++;
                resolve();
              });
              s.send("x");
              setTimeout(resolve, 10_000);
            }),
        ),
    );
    const rssWebsockets = rssMiB(proxy.pid ?? 0, "VmRSS");
    for (const s of sockets) s.terminate();
    await proxyPool.close();
    console.error(
      `websockets: ${opened} open, ${failed} failed, ${echoed} echoed; proxy RSS ${rssBefore.toFixed(0)} → ${rssWebsockets.toFixed(0)} MiB`,
    );
    notes.push(`${seconds} s per load run, ${connections} connections, responses of 5 bytes`);
    if (pacedRate < goalRate) {
      notes.push(
        `the direct path alone reached ${directMax.rate.toFixed(0)} req/s on this machine (API server, proxy, backend and load generator share its CPUs), so latencies are compared at ${pacedRate} req/s`,
      );
    }
    notes.push(
      `errors: direct ${directMax.errors + directPaced.errors}, proxy ${proxyMax.errors + proxyPaced.errors}`,
    );

    return {
      benchmark: "proxy",
      date: new Date().toISOString(),
      machine: machine(),
      metrics: [
        metric("edge API server's service proxy, direct (50 connections)", directMax.rate, "req/s"),
        metric("through outpost-service-proxy (50 connections)", proxyMax.rate, "req/s", {
          baseline: { name: "direct", value: directMax.rate },
          goal: "≥ 0.8 × direct",
        }),
        metric("proxy CPU per proxied request, user + system (50 connections)", cpuPerRequest, "µs", {
          goal: "≤ 150 µs",
        }),
        metric(
          `proxy CPU per proxied request, user + system (${pacedRate} req/s offered)`,
          cpuPerPacedRequest,
          "µs",
        ),
        metric(`direct p99 at ${pacedRate} req/s offered`, directPaced.p99, "ms"),
        metric(`proxy p99 at ${pacedRate} req/s offered`, proxyPaced.p99, "ms", {
          baseline: { name: "direct", value: directPaced.p99 },
        }),
        metric(`added p99 at ${pacedRate} req/s offered`, proxyPaced.p99 - directPaced.p99, "ms"),
        metric(`proxy throughput reached at ${pacedRate} req/s offered`, proxyPaced.rate, "req/s"),
        metric("proxy RSS after start", rssStart, "MiB"),
        metric("proxy RSS after the load runs", rssAfterLoad, "MiB"),
        metric(`WebSockets held open through the proxy`, echoed, "sockets", { goal: `${websockets}` }),
        metric(`proxy RSS with ${echoed} WebSockets open`, rssWebsockets, "MiB"),
        metric("proxy RSS per WebSocket", ((rssWebsockets - rssBefore) / Math.max(1, echoed)) * 1024, "KiB"),
      ],
      notes,
    };
  } finally {
    proxy?.kill("SIGTERM");
    await backend.stop();
    await cp.stop();
  }
}
