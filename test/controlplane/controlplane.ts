// A real local control plane for tests and the demo: one etcd, one management API server
// and N edge API servers (separate --etcd-prefix each), each with a controller manager for
// garbage collection and namespace deletion. Edges asked to run workloads also get the
// workload controllers, a kube-scheduler and kwok with fake nodes (workloads.ts).
// Binaries come from ./build.sh and ../kwok/build.sh.
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api } from "@kubernetes/client-node";
import { ensureBinaries, ensureKwok, type Binaries } from "./binaries.ts";
import {
  createCertificateAuthority,
  createSigningKey,
  type CertificateAuthority,
  type KeyPair,
} from "./pki.ts";
import { ProcessGroup, type ManagedProcess } from "./processes.ts";
import { freePort, assertPortsFree } from "./ports.ts";
import { httpsGet, httpGet, httpPost } from "./http.ts";
import { kubeconfigYaml } from "./kubeconfig.ts";
import { kubeConfigFromFile } from "./crds.ts";
import {
  controllers,
  fakeNodes,
  fakeVolumes,
  kwokArgs,
  nodeReady,
  workloadsFor,
  type ResolvedWorkloads,
  type WorkloadsOption,
} from "./workloads.ts";

export interface StartOptions {
  /** Number of edge API servers besides the management one. Default 0. */
  edges?: number;
  /** Folder for certificates, kubeconfigs and logs; a new temp folder by default. */
  dir?: string;
  /**
   * Fixed ports: etcd client on basePort, etcd peer on basePort+1, API servers on
   * basePort+2… (management first). Free loopback ports are chosen when unset.
   */
  basePort?: number;
  /** Extra kube-apiserver flags for every cluster (e.g. benchmark tuning). */
  apiServerArgs?: string[];
  /**
   * Edges that run workloads (never the management cluster): the workload controllers,
   * a kube-scheduler and kwok with fake Ready nodes, on which pods become Running and
   * Ready (or crash-loop: see `brokenImage`). The same options for every edge, or a
   * function choosing per edge (undefined: no workloads). Default: none.
   */
  workloads?: WorkloadsOption;
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

export interface Cluster {
  /** "management" or "edge-1", "edge-2", … */
  readonly name: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Path of an admin kubeconfig (group system:masters). */
  readonly kubeconfig: string;
  readonly ca: CertificateAuthority;
  readonly apiServer: ManagedProcess;
  readonly controllerManager: ManagedProcess;
  /** Names of the cluster's fake nodes; empty unless it runs workloads. */
  readonly nodes: string[];
  /** kube-scheduler and kwok, on an edge that runs workloads. */
  readonly scheduler?: ManagedProcess;
  readonly kwok?: ManagedProcess;
}

export interface ControlPlane {
  readonly dir: string;
  readonly logDir: string;
  readonly management: Cluster;
  readonly edges: Cluster[];
  readonly clusters: Cluster[];
  /** A kubeconfig with one context per cluster, the management one current. */
  readonly kubeconfig: string;
  readonly etcd: ManagedProcess;
  readonly binaries: Binaries;
  /** Every process of the control plane. */
  processes(): ManagedProcess[];
  /** Kills a cluster's API server (SIGKILL) and waits for it to exit. */
  killApiServer(cluster: Cluster): Promise<void>;
  /** Starts a cluster's API server again on the same port and waits until it is ready. */
  restartApiServer(cluster: Cluster): Promise<void>;
  /**
   * Compacts etcd's history up to now, so that watches from older resourceVersions
   * (where the API server does not serve them from its watch cache) get 410 Gone.
   * Returns the revision compacted to.
   */
  compactEtcd(): Promise<number>;
  /** Log tails of every process, for a failed test's output. */
  logs(lines?: number): string;
  /** Stops every process; the folder is removed unless `keep` is set. */
  stop(options?: { keep?: boolean }): Promise<void>;
}

export class ControlPlaneError extends Error {
  override name = "ControlPlaneError";
}

const readyTimeoutMs = 90_000;

interface ClusterState extends Cluster {
  apiServer: ManagedProcess;
  controllerManager: ManagedProcess;
  nodes: string[];
  scheduler?: ManagedProcess;
  kwok?: ManagedProcess;
  server: string;
  port: number;
  certDir: string;
  admin: KeyPair;
}

/** Starts etcd, the management API server and `edges` edge API servers, all ready. */
export async function startControlPlane(options: StartOptions = {}): Promise<ControlPlane> {
  const edges = options.edges ?? 0;
  const progress = options.progress ?? (() => undefined);
  const binaries = ensureBinaries(progress);
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "outpost-cp-"));
  const logDir = join(dir, "logs");
  mkdirSync(logDir, { recursive: true });
  const group = new ProcessGroup(logDir);
  const names = ["management", ...Array.from({ length: edges }, (_, i) => `edge-${i + 1}`)];
  const workloads = names.map((name, i) =>
    i === 0 ? undefined : workloadsFor(options.workloads, name, i - 1),
  );
  // Only a control plane with workloads needs kwok (and its build).
  const kwok = workloads.some(Boolean) ? ensureKwok(progress) : undefined;

  const ports = options.basePort
    ? Array.from({ length: names.length + 2 }, (_, i) => (options.basePort ?? 0) + i)
    : undefined;
  if (ports) {
    await assertPortsFree(ports, (p) =>
      p === ports[0]
        ? "etcd"
        : p === ports[1]
          ? "etcd peer"
          : `the ${names[p - (ports[0] ?? 0) - 2]} API server`,
    );
  }

  const clusters: ClusterState[] = [];
  let etcd: ManagedProcess | undefined;
  try {
    progress("starting etcd");
    etcd = await startEtcd(group, binaries, dir, ports?.[0], ports?.[1]);
    const etcdUrl = etcdClientUrl(etcd);
    progress(`starting ${names.length} API server(s): ${names.join(", ")}`);
    const started = await Promise.all(
      names.map((name, i) =>
        startCluster(group, binaries, dir, name, etcdUrl, ports?.[i + 2], options.apiServerArgs ?? [], {
          workloads: workloads[i],
          kwok,
        }),
      ),
    );
    clusters.push(...started);
    progress("control plane ready");
  } catch (err) {
    await group.stopAll();
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const combined = join(dir, "kubeconfig");
  writeFileSync(
    combined,
    kubeconfigYaml(
      clusters.map((c) => ({ name: c.name, server: c.server, caPem: c.ca.certPem, user: adminUser(c) })),
    ),
    { mode: 0o600 },
  );

  const etcdProcess = etcd;
  const [management, ...edgeClusters] = clusters;
  if (!management) throw new ControlPlaneError("no management cluster started");
  return {
    dir,
    logDir,
    management,
    edges: edgeClusters,
    clusters,
    kubeconfig: combined,
    etcd: etcdProcess,
    binaries,
    processes: () => group.all,
    async killApiServer(cluster) {
      const state = clusters.find((c) => c.name === cluster.name);
      if (!state) throw new ControlPlaneError(`unknown cluster ${cluster.name}`);
      process.kill(-state.apiServer.pid, "SIGKILL");
      await state.apiServer.exited;
    },
    async restartApiServer(cluster) {
      const state = clusters.find((c) => c.name === cluster.name);
      if (!state) throw new ControlPlaneError(`unknown cluster ${cluster.name}`);
      if (state.apiServer.running) await group.stop(state.apiServer);
      state.apiServer = await launchApiServer(group, binaries, state, etcdClientUrl(etcdProcess), options);
    },
    async compactEtcd() {
      const url = etcdClientUrl(etcdProcess);
      const key = Buffer.from("/").toString("base64");
      const range = await httpPost(`${url}/v3/kv/range`, { key, limit: 1 });
      const revision = Number((JSON.parse(range.body) as { header: { revision: string } }).header.revision);
      const res = await httpPost(`${url}/v3/kv/compaction`, { revision: String(revision), physical: true });
      if (res.status !== 200) throw new ControlPlaneError(`etcd compaction failed: ${res.body}`);
      return revision;
    },
    logs(lines = 30) {
      return group.all.map((p) => `----- ${p.name} (${p.logPath}) -----\n${p.logTail(lines)}`).join("\n");
    },
    async stop({ keep } = {}) {
      await group.stopAll([
        clusters.flatMap((c) => [c.kwok, c.scheduler, c.controllerManager].filter((p) => p !== undefined)),
        clusters.map((c) => c.apiServer),
        [etcdProcess],
      ]);
      if (ownDir && !keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------- etcd ----------

const etcdUrls = new WeakMap<ManagedProcess, string>();
function etcdClientUrl(p: ManagedProcess): string {
  const url = etcdUrls.get(p);
  if (!url) throw new ControlPlaneError("etcd has no client URL");
  return url;
}

async function startEtcd(
  group: ProcessGroup,
  binaries: Binaries,
  dir: string,
  fixedClient?: number,
  fixedPeer?: number,
): Promise<ManagedProcess> {
  return withPortRetry(fixedClient !== undefined, async () => {
    const client = fixedClient ?? (await freePort());
    const peer = fixedPeer ?? (await freePort());
    const dataDir = join(dir, "etcd");
    rmSync(dataDir, { recursive: true, force: true });
    const p = group.start("etcd", binaries.etcd, [
      "--name=default",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${client}`,
      `--advertise-client-urls=http://127.0.0.1:${client}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=default=http://127.0.0.1:${peer}`,
      "--unsafe-no-fsync=true",
      "--quota-backend-bytes=8589934592",
      "--log-level=warn",
    ]);
    etcdUrls.set(p, `http://127.0.0.1:${client}`);
    await waitReady(p, "etcd", async () => {
      const res = await httpGet(`http://127.0.0.1:${client}/health`);
      return res.status === 200 && res.body.includes('"health":"true"');
    });
    return p;
  });
}

// ---------- API server + controller manager ----------

function adminUser(state: ClusterState): KeyPair & { name: string } {
  return { name: "outpost-admin", ...state.admin };
}

async function startCluster(
  group: ProcessGroup,
  binaries: Binaries,
  dir: string,
  name: string,
  etcdUrl: string,
  fixedPort: number | undefined,
  apiServerArgs: string[],
  run: { workloads: ResolvedWorkloads | undefined; kwok: string | undefined },
): Promise<ClusterState> {
  const certDir = join(dir, name);
  mkdirSync(certDir, { recursive: true });
  const ca = await createCertificateAuthority(`outpost-${name}-ca`);
  const admin = await ca.issue({
    commonName: "outpost-admin",
    organizations: ["system:masters"],
    usage: "client",
  });
  const saKey = await createSigningKey();
  writeFileSync(join(certDir, "ca.crt"), ca.certPem);
  writeFileSync(join(certDir, "sa.key"), saKey.privatePem, { mode: 0o600 });
  writeFileSync(join(certDir, "sa.pub"), saKey.publicPem);

  const state = {
    name,
    ca,
    admin,
    certDir,
    port: fixedPort ?? 0,
    server: "",
    kubeconfig: join(certDir, "kubeconfig"),
    nodes: [] as string[],
  } as ClusterState;
  state.apiServer = await withPortRetry(fixedPort !== undefined, async () => {
    if (fixedPort === undefined) state.port = await freePort();
    state.server = `https://127.0.0.1:${state.port}`;
    const serving = await ca.issue({
      commonName: "kube-apiserver",
      hosts: ["127.0.0.1", "localhost", "::1", "kubernetes", "kubernetes.default"],
      usage: "server",
    });
    writeFileSync(join(certDir, "apiserver.crt"), serving.certPem);
    writeFileSync(join(certDir, "apiserver.key"), serving.keyPem, { mode: 0o600 });
    return launchApiServer(group, binaries, state, etcdUrl, { apiServerArgs });
  });
  writeFileSync(
    state.kubeconfig,
    kubeconfigYaml([{ name, server: state.server, caPem: ca.certPem, user: adminUser(state) }]),
    { mode: 0o600 },
  );
  state.controllerManager = await startControllerManager(group, binaries, state, run.workloads !== undefined);
  if (run.workloads && run.kwok) {
    [state.scheduler, state.kwok] = await Promise.all([
      startScheduler(group, binaries, state),
      startKwok(group, run.kwok, state, run.workloads),
    ]);
  }
  return state;
}

async function launchApiServer(
  group: ProcessGroup,
  binaries: Binaries,
  state: ClusterState,
  etcdUrl: string,
  options: { apiServerArgs?: string[] },
): Promise<ManagedProcess> {
  const d = state.certDir;
  const p = group.start(`${state.name}-apiserver`, binaries.kubeApiServer, [
    `--etcd-servers=${etcdUrl}`,
    `--etcd-prefix=/outpost/${state.name}/registry`,
    `--cert-dir=${d}`,
    `--tls-cert-file=${join(d, "apiserver.crt")}`,
    `--tls-private-key-file=${join(d, "apiserver.key")}`,
    `--client-ca-file=${join(d, "ca.crt")}`,
    `--secure-port=${state.port}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    "--service-cluster-ip-range=10.0.0.0/24",
    "--allow-privileged=true",
    "--authorization-mode=RBAC",
    // No ServiceAccount admission, also on edges with workloads: it would mount a token
    // volume into every pod, which kwok's pods never read, and reject pods created before
    // the serviceaccount controller made their namespace's `default` account.
    // No TaintNodesByCondition: it taints every new Node not-ready, and only the
    // node-lifecycle controller, which the harness does not run, would remove the taint.
    "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
    "--endpoint-reconciler-type=none",
    `--service-account-issuer=https://127.0.0.1:${state.port}`,
    `--service-account-key-file=${join(d, "sa.pub")}`,
    `--service-account-signing-key-file=${join(d, "sa.key")}`,
    `--api-audiences=https://127.0.0.1:${state.port}`,
    ...(options.apiServerArgs ?? []),
  ]);
  await waitReady(p, `kube-apiserver of ${state.name}`, async () => {
    const res = await httpsGet(`https://127.0.0.1:${state.port}/readyz`, {
      ca: state.ca.certPem,
      cert: state.admin.certPem,
      key: state.admin.keyPem,
    });
    return res.status === 200;
  });
  return p;
}

async function startControllerManager(
  group: ProcessGroup,
  binaries: Binaries,
  state: ClusterState,
  workloads: boolean,
): Promise<ManagedProcess> {
  return withPortRetry(false, async () => {
    const port = await freePort();
    const p = group.start(`${state.name}-controller-manager`, binaries.kubeControllerManager, [
      `--kubeconfig=${state.kubeconfig}`,
      `--authentication-kubeconfig=${state.kubeconfig}`,
      `--authorization-kubeconfig=${state.kubeconfig}`,
      `--controllers=${controllers(workloads).join(",")}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${port}`,
      `--cert-dir=${join(state.certDir, "controller-manager")}`,
      "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
      "--authentication-skip-lookup=true",
    ]);
    await waitReady(p, `kube-controller-manager of ${state.name}`, async () => {
      const res = await httpsGet(`https://127.0.0.1:${port}/healthz`, { insecure: true });
      return res.status === 200;
    });
    return p;
  });
}

// ---------- workloads: kube-scheduler, kwok and its fake nodes ----------

async function startScheduler(
  group: ProcessGroup,
  binaries: Binaries,
  state: ClusterState,
): Promise<ManagedProcess> {
  return withPortRetry(false, async () => {
    const port = await freePort();
    const p = group.start(`${state.name}-scheduler`, binaries.kubeScheduler, [
      `--kubeconfig=${state.kubeconfig}`,
      `--authentication-kubeconfig=${state.kubeconfig}`,
      `--authorization-kubeconfig=${state.kubeconfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${port}`,
      `--cert-dir=${join(state.certDir, "scheduler")}`,
      "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
      "--authentication-skip-lookup=true",
    ]);
    await waitReady(p, `kube-scheduler of ${state.name}`, async () => {
      const res = await httpsGet(`https://127.0.0.1:${port}/healthz`, { insecure: true });
      return res.status === 200;
    });
    return p;
  });
}

/** Creates the edge's fake Nodes, starts kwok for them and waits until every one is Ready. */
async function startKwok(
  group: ProcessGroup,
  kwok: string,
  state: ClusterState,
  workloads: ResolvedWorkloads,
): Promise<ManagedProcess> {
  const api = kubeConfigFromFile(state.kubeconfig).makeApiClient(CoreV1Api);
  const nodes = fakeNodes(state.name, workloads);
  for (const body of nodes) await api.createNode({ body });
  for (const body of fakeVolumes(state.name, workloads)) await api.createPersistentVolume({ body });
  state.nodes = nodes.map((n) => n.metadata?.name ?? "");
  const workDir = join(state.certDir, "kwok");
  mkdirSync(workDir, { recursive: true });
  return withPortRetry(false, async () => {
    const port = await freePort();
    // KWOK_WORKDIR keeps kwok from reading a ~/.kwok/kwok.yaml of whoever runs the tests.
    const p = group.start(`${state.name}-kwok`, kwok, kwokArgs(state.kubeconfig, port), {
      ...process.env,
      KWOK_WORKDIR: workDir,
    });
    await waitReady(p, `kwok of ${state.name}`, async () => {
      const res = await httpGet(`http://127.0.0.1:${port}/healthz`);
      return res.status === 200;
    });
    await waitReady(p, `the nodes of ${state.name} (kwok)`, async () => {
      const list = await api.listNode();
      return state.nodes.every((name) => list.items.some((n) => n.metadata?.name === name && nodeReady(n)));
    });
    return p;
  });
}

// ---------- waiting and errors ----------

const portInUse = /address already in use|bind: address|listen tcp .*: bind/i;

/** Retries `start` with new ports when the process lost a race for its free port. */
async function withPortRetry<T>(fixed: boolean, start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (fixed || attempt >= 3 || !(err instanceof PortInUseError)) throw err;
    }
  }
}

class PortInUseError extends ControlPlaneError {}

/** Polls `probe` until it succeeds; fails with the cause and log tail if the process exits. */
async function waitReady(p: ManagedProcess, what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (!p.running) {
      const tail = p.logTail(15);
      const how = p.exitSignal ? `was killed by ${p.exitSignal}` : `exited with code ${p.exitCode}`;
      const cause = portInUse.test(tail)
        ? ": its port is already in use"
        : p.exitCode === 127
          ? ": the binary could not be started"
          : "";
      const Err = portInUse.test(tail) ? PortInUseError : ControlPlaneError;
      throw new Err(`${what} ${how} during start${cause}.\nLast lines of ${p.logPath}:\n${tail}`);
    }
    try {
      if (await probe()) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new ControlPlaneError(
    `${what} was not ready after ${readyTimeoutMs / 1000}s.\nLast lines of ${p.logPath}:\n${p.logTail(15)}`,
  );
}
