// A real Argo CD for tests and the demo, run as local processes against the management
// cluster: redis, argocd-repo-server, argocd-application-controller and
// argocd-applicationset-controller (no API server, UI, Dex, notifications or commit
// server). The one `argocd` binary and `helm` come from ./build.sh (built once, cached);
// the CRDs are read from the pinned Argo CD Go module (manifests/crds/).
//
// How the processes run follows Argo CD's Procfile for running out of a cluster
// (ARGOCD_FAKE_IN_CLUSTER, KUBECONFIG, ARGOCD_BINARY_NAME) and the environment its
// install manifests (manifests/install.yaml) give each Deployment. Every port is a free
// loopback port and every path (TLS/SSH/GPG data, the askpass socket, the repo-server's
// checkouts, HOME, TMPDIR) lies under the harness folder, so several harnesses can run at
// once and nothing is written to the user's home.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "yaml";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import type { Cluster } from "../controlplane/controlplane.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/crds.ts";
import { freePort } from "../controlplane/ports.ts";
import { ProcessGroup, type ManagedProcess } from "../controlplane/processes.ts";

// ---------- Argo CD's kinds and names ----------

// Argo CD's kinds and labels are the operator's own definitions (operators/deploy/argocd.ts,
// operators/inventory/registrations.ts).
export {
  ArgoApplicationResource as ApplicationResource,
  ApplicationSetResource,
  AppProjectResource,
  refreshAnnotation,
  resourcesFinalizer,
} from "../../operators/deploy/argocd.ts";
export { argoSecretTypeLabel as secretTypeLabel } from "../../operators/inventory/registrations.ts";

import {
  configMapsResource as ConfigMapResource,
  namespacesResource as NamespaceResource,
  secretsResource as SecretResource,
} from "../../operators/runtime/core.ts";
import { argoSecretTypeLabel as secretTypeLabel } from "../../operators/inventory/registrations.ts";

/** The label Argo CD's settings informer selects its ConfigMaps and Secrets by (util/settings). */
export const partOfLabel = "app.kubernetes.io/part-of";
/** The parts of an Application's status the tests read (types.go, ApplicationStatus). */
export interface ArgoApplication extends KubeObject {
  spec?: Record<string, unknown>;
  status?: {
    sync?: { status?: string; revision?: string; revisions?: string[] };
    health?: { status?: string; message?: string; lastTransitionTime?: string };
    conditions?: { type: string; message?: string; lastTransitionTime?: string }[];
    reconciledAt?: string;
    operationState?: {
      phase?: string;
      message?: string;
      retryCount?: number;
      syncResult?: { revision?: string; revisions?: string[] };
      startedAt?: string;
      finishedAt?: string;
    };
    resources?: {
      group?: string;
      kind?: string;
      namespace?: string;
      name?: string;
      status?: string;
      health?: { status?: string; message?: string };
    }[];
  };
}

// ---------- binaries and the module ----------

const here = fileURLToPath(new URL(".", import.meta.url));
const buildScript = join(here, "build.sh");
const goModuleDir = join(here, "go");
const argoModule = "github.com/argoproj/argo-cd/v3";
/** Argo CD 3.6 declares go 1.27; `go mod download` of it runs with this toolchain, as build.sh does. */
const toolchain = process.env.OUTPOST_ARGOCD_TOOLCHAIN ?? "go1.27.3";

/** The Argo CD version test/argocd/go/go.mod pins, e.g. "v3.6.1". */
export function argoCDVersion(): string {
  const gomod = readFileSync(join(goModuleDir, "go.mod"), "utf8");
  const version = new RegExp(`^require ${argoModule.replace(/\//g, "\\/")} (\\S+)`, "m").exec(gomod)?.[1];
  if (!version) throw new Error(`${goModuleDir}/go.mod does not require ${argoModule}`);
  return version;
}

export interface ArgoCDBinaries {
  /** The folder holding `argocd` and `helm`. */
  dir: string;
  argocd: string;
  helm: string;
  version: string;
}

let binaries: Promise<ArgoCDBinaries> | undefined;

/**
 * Runs build.sh once per process (a no-op when its cache is warm; about 15 minutes on 2
 * cores when cold) and returns the binaries. stderr lines go to `progress`.
 */
export function ensureArgoCDBinaries(
  progress: (line: string) => void = () => undefined,
): Promise<ArgoCDBinaries> {
  binaries ??= new Promise<ArgoCDBinaries>((resolve, reject) => {
    const child = spawn("bash", [buildScript], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      const lines = (partial + d).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line) progress(line);
    });
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (code !== 0) {
        reject(
          new Error(
            `building Argo CD failed (${buildScript} exited ${code ?? signal}):\n${stderr.trim().split("\n").slice(-30).join("\n")}`,
          ),
        );
        return;
      }
      const dir = stdout.trim().split("\n").pop() ?? "";
      resolve({ dir, argocd: join(dir, "argocd"), helm: join(dir, "helm"), version: argoCDVersion() });
    });
  });
  // A failed build may be retried by a later call.
  binaries.catch(() => (binaries = undefined));
  return binaries;
}

let moduleDir: string | undefined;

/** The pinned Argo CD module's folder in the Go module cache (`go mod download`), cached per process. */
export function argoCDModuleDir(): string {
  if (moduleDir) return moduleDir;
  const version = argoCDVersion();
  const res = spawnSync("go", ["mod", "download", "-json", `${argoModule}@${version}`], {
    cwd: goModuleDir,
    encoding: "utf8",
    env: { ...process.env, GOTOOLCHAIN: toolchain, GOFLAGS: "-mod=mod" },
  });
  let parsed: { Dir?: string; Error?: string } = {};
  try {
    parsed = JSON.parse(res.stdout) as { Dir?: string; Error?: string };
  } catch {
    // reported below
  }
  if (res.status !== 0 || !parsed.Dir) {
    throw new Error(
      `cannot find ${argoModule}@${version} with \`go mod download\` (GOTOOLCHAIN=${toolchain}): ${parsed.Error ?? res.error?.message ?? res.stderr.trim()}`,
    );
  }
  moduleDir = parsed.Dir;
  return moduleDir;
}

/** The CRD files of the pinned module: Application, ApplicationSet, AppProject. */
export function argoCDCRDFiles(): string[] {
  const dir = join(argoCDModuleDir(), "manifests", "crds");
  return readdirSync(dir)
    .filter((f) => f.endsWith("-crd.yaml"))
    .sort()
    .map((f) => join(dir, f));
}

// ---------- registrations: cluster and repository Secrets ----------

interface KubeconfigFile {
  clusters?: { cluster?: { server?: string; "certificate-authority-data"?: string } }[];
  users?: { user?: { "client-certificate-data"?: string; "client-key-data"?: string } }[];
}

/**
 * An Argo CD cluster Secret for one of our clusters (util/db/cluster.go, SecretToCluster):
 * `name`, `server` and `config` (ClusterConfig JSON whose tlsClientConfig holds the base64
 * PEMs of the cluster's admin kubeconfig), optionally `project` (a project-scoped cluster)
 * and `namespaces`. Labels other than the secret-type one become the cluster's labels,
 * which the ApplicationSet cluster generator selects on.
 */
export function clusterSecret(
  cluster: Pick<Cluster, "name" | "server" | "kubeconfig">,
  options: {
    namespace: string;
    secretName?: string;
    project?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    namespaces?: string[];
  },
): KubeObject & { type: string; stringData: Record<string, string> } {
  const kubeconfig = parse(readFileSync(cluster.kubeconfig, "utf8")) as KubeconfigFile;
  const ca = kubeconfig.clusters?.[0]?.cluster?.["certificate-authority-data"];
  const user = kubeconfig.users?.[0]?.user;
  if (!ca || !user?.["client-certificate-data"] || !user["client-key-data"])
    throw new Error(`${cluster.kubeconfig} has no CA and client certificate data`);
  const stringData: Record<string, string> = {
    name: cluster.name,
    server: cluster.server,
    config: JSON.stringify({
      tlsClientConfig: {
        insecure: false,
        caData: ca,
        certData: user["client-certificate-data"],
        keyData: user["client-key-data"],
      },
    }),
  };
  if (options.project) stringData.project = options.project;
  if (options.namespaces) stringData.namespaces = options.namespaces.join(",");
  return {
    metadata: {
      name: options.secretName ?? `cluster-${cluster.name}`,
      namespace: options.namespace,
      labels: { ...options.labels, [secretTypeLabel]: "cluster" },
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    type: "Opaque",
    stringData,
  };
}

/**
 * A repository Secret for a Helm chart repository in an OCI registry served over plain
 * HTTP (util/db/repository_secrets.go, secretToRepository): `type: helm`, `enableOCI`,
 * `insecureOCIForceHttp` (helm --plain-http, reposerver/repository/repository.go
 * newHelmClientResolveRevision) and `url` without a scheme, `<host:port>/<path>`
 * (util/helm/client.go IsHelmOciRepo). Applications name the same URL as `repoURL`.
 */
export function ociHelmRepositorySecret(options: {
  namespace: string;
  name: string;
  /** `127.0.0.1:5000/charts`: host, port and repository path, no scheme. */
  url: string;
  project?: string;
  plainHttp?: boolean;
}): KubeObject & { type: string; stringData: Record<string, string> } {
  if (options.url.includes("://"))
    throw new Error(`an OCI Helm repository URL has no scheme: ${options.url}`);
  return {
    metadata: {
      name: options.name,
      namespace: options.namespace,
      labels: { [secretTypeLabel]: "repository" },
    },
    type: "Opaque",
    stringData: {
      name: options.name,
      type: "helm",
      url: options.url,
      enableOCI: "true",
      ...(options.plainHttp === false ? {} : { insecureOCIForceHttp: "true" }),
      ...(options.project ? { project: options.project } : {}),
    },
  };
}

// ---------- the harness ----------

export interface StartArgoCDOptions {
  /** The management cluster (from startControlPlane); Argo CD's objects live there. */
  cluster: Cluster;
  /** Argo CD's namespace. Default "argocd". */
  namespace?: string;
  /** Folder for logs, redis and the repo-server's data; a new temp folder by default. */
  dir?: string;
  /**
   * argocd-cm `timeout.reconciliation`: how often the application controller compares
   * every Application with Git/Helm again (its `--app-resync`, which the install manifests
   * feed from this key as ARGOCD_RECONCILIATION_TIMEOUT; the repo-server's revision cache
   * expiry too). Default "120s", Argo CD's own default. Tests use e.g. "10s", or "1h" to
   * show that a change did not come from polling.
   */
  reconciliationTimeout?: string;
  /**
   * argocd-cm `timeout.reconciliation.jitter`: a random delay up to this added to each
   * periodic refresh. Default "0s" (Argo CD's default is 60s), so tests see the timeout.
   */
  reconciliationJitter?: string;
  /**
   * The application controller's `--repo-error-grace-period-seconds`: for how long a
   * failing comparison (Git, Helm, or the destination cluster's version, which manifest
   * generation needs) is ignored before it shows as a ComparisonError condition, unless a
   * refresh was requested. Default: Argo CD's, 180 s (controller/state.go CompareAppState).
   */
  repoErrorGracePeriodSeconds?: number;
  /** The application controller's status and operation processors. Defaults 20 and 10, Argo CD's. */
  statusProcessors?: number;
  operationProcessors?: number;
  /** Log level of the Argo CD processes. Default "info". */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

export interface ArgoCDPorts {
  redis: number;
  repoServer: number;
  repoServerMetrics: number;
  controllerMetrics: number;
  applicationSetMetrics: number;
  applicationSetProbe: number;
  applicationSetWebhook: number;
}

export interface ArgoCD {
  readonly namespace: string;
  /** The Argo CD version, e.g. "v3.6.1". */
  readonly version: string;
  /** The folder holding `argocd` and `helm`. */
  readonly binDir: string;
  readonly dir: string;
  readonly ports: ArgoCDPorts;
  /** The ApplicationSet controller's webhook endpoint (Git push events). */
  readonly webhookUrl: string;
  readonly redis: ManagedProcess;
  readonly repoServer: ManagedProcess;
  readonly applicationController: ManagedProcess;
  readonly applicationSetController: ManagedProcess;
  processes(): ManagedProcess[];
  /** Log tails of every process, for a failed test's output. */
  logs(lines?: number): string;
  /** Stops the controllers, then the repo-server, then redis; removes the folder unless `keep`. */
  stop(options?: { keep?: boolean }): Promise<void>;
}

export class ArgoCDError extends Error {
  override name = "ArgoCDError";
}

const readyTimeoutMs = 120_000;
const portInUse = /address already in use|bind: address|Address already in use/i;

class PortInUseError extends ArgoCDError {}

/** Starts Argo CD's controllers against `options.cluster` and waits until each is healthy. */
export async function startArgoCD(options: StartArgoCDOptions): Promise<ArgoCD> {
  const namespace = options.namespace ?? "argocd";
  const progress = options.progress ?? (() => undefined);
  const reconciliationTimeout = options.reconciliationTimeout ?? "120s";
  const reconciliationJitter = options.reconciliationJitter ?? "0s";
  const logLevel = options.logLevel ?? "info";
  const redisServer = which("redis-server");
  if (!redisServer) {
    throw new ArgoCDError(
      "redis-server is not installed; Argo CD's controllers need it (scripts/ensure-packages.sh redis-server:redis-server)",
    );
  }
  const bins = await ensureArgoCDBinaries(progress);

  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "outpost-argocd-"));
  const paths = {
    logs: join(dir, "logs"),
    home: join(dir, "home"),
    tmp: join(dir, "tmp"),
    config: join(dir, "config"),
    redis: join(dir, "redis"),
    tls: join(dir, "repo-server", "tls"),
    ssh: join(dir, "repo-server", "ssh"),
    gpgKeys: join(dir, "repo-server", "gpg", "keys"),
    gpgSource: join(dir, "repo-server", "gpg", "source"),
    plugins: join(dir, "repo-server", "plugins"),
  };
  for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });
  // A Unix socket path has at most 107 bytes.
  let socketDir = dir;
  if (join(dir, "askpass.sock").length > 100) socketDir = mkdtempSync(join(tmpdir(), "oa-"));
  const askpassSocket = join(socketDir, "askpass.sock");
  const group = new ProcessGroup(paths.logs);

  const cleanupDirs = (): void => {
    if (socketDir !== dir) rmSync(socketDir, { recursive: true, force: true });
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };

  // What every Argo CD process sees: a clean environment (no REDIS_*, ARGOCD_* or
  // KUBECONFIG of whoever runs the tests), HOME and TMPDIR in the harness folder.
  const env = (binaryName: string): NodeJS.ProcessEnv => ({
    PATH: `${bins.dir}:${process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"}`,
    HOME: paths.home,
    TMPDIR: paths.tmp,
    LANG: "C.UTF-8",
    KUBECONFIG: options.cluster.kubeconfig,
    ARGOCD_BINARY_NAME: binaryName,
    ARGOCD_FAKE_IN_CLUSTER: "true",
    ARGOCD_APP_CONF_PATH: paths.config,
    ARGOCD_TLS_DATA_PATH: paths.tls,
    ARGOCD_SSH_DATA_PATH: paths.ssh,
    ARGOCD_GPG_ENABLED: "false",
    ARGOCD_GNUPGHOME: paths.gpgKeys,
    ARGOCD_GPG_DATA_PATH: paths.gpgSource,
    ARGOCD_PLUGINSOCKFILEPATH: paths.plugins,
    ARGOCD_ASK_PASS_SOCK: askpassSocket,
    ARGOCD_RECONCILIATION_TIMEOUT: reconciliationTimeout,
    ARGOCD_RECONCILIATION_JITTER: reconciliationJitter,
    ARGOCD_CONTROLLER_REPLICAS: "1",
    ARGOCD_ENABLE_PROFILER_FILE_PATH: join(paths.config, "profiler.enabled"),
    GIT_CONFIG_NOSYSTEM: "1",
  });
  const common = ["--loglevel", logLevel, "--logformat", "text"];

  let redis: ManagedProcess | undefined;
  let repoServer: ManagedProcess | undefined;
  let applicationController: ManagedProcess | undefined;
  let applicationSetController: ManagedProcess | undefined;
  const ports = {} as ArgoCDPorts;
  try {
    progress(`Argo CD ${bins.version}: CRDs and settings in namespace ${namespace}`);
    await installCRDs(options.cluster, argoCDCRDFiles(), 60_000);
    await applySettings(options.cluster, namespace, reconciliationTimeout, reconciliationJitter);

    progress("starting redis");
    redis = await withPortRetry(async () => {
      ports.redis = await freePort();
      const p = group.start(
        "redis",
        redisServer,
        [
          "--port",
          String(ports.redis),
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          "no",
          "--dir",
          paths.redis,
          "--daemonize",
          "no",
          "--logfile",
          "",
        ],
        { PATH: process.env.PATH, HOME: paths.home },
      );
      await waitReady(p, "redis", () => redisPing(ports.redis));
      return p;
    });
    const redisAddress = `127.0.0.1:${ports.redis}`;

    progress("starting argocd-repo-server");
    repoServer = await withPortRetry(async () => {
      ports.repoServer = await freePort();
      ports.repoServerMetrics = await freePort();
      const p = group.start(
        "argocd-repo-server",
        bins.argocd,
        [
          ...common,
          "--address",
          "127.0.0.1",
          "--port",
          String(ports.repoServer),
          "--metrics-address",
          "127.0.0.1",
          "--metrics-port",
          String(ports.repoServerMetrics),
          "--redis",
          redisAddress,
          // Plain gRPC; the client CA path must then be empty (its default is a mounted Secret).
          "--disable-tls",
          "--client-ca-path=",
        ],
        env("argocd-repo-server"),
      );
      // ?full=true also checks that the gRPC server answers its health service.
      await waitReady(p, "argocd-repo-server", () =>
        httpOk(`http://127.0.0.1:${ports.repoServerMetrics}/healthz?full=true`),
      );
      return p;
    });
    const repoServerAddress = `127.0.0.1:${ports.repoServer}`;

    progress("starting argocd-application-controller and argocd-applicationset-controller");
    [applicationController, applicationSetController] = await Promise.all([
      withPortRetry(async () => {
        ports.controllerMetrics = await freePort();
        const p = group.start(
          "argocd-application-controller",
          bins.argocd,
          [
            ...common,
            "--namespace",
            namespace,
            "--redis",
            redisAddress,
            "--repo-server",
            repoServerAddress,
            "--repo-server-plaintext",
            // Listens on 0.0.0.0 (controller/appcontroller.go): the port is free, but not loopback only.
            "--metrics-port",
            String(ports.controllerMetrics),
            "--hydrator-enabled=false",
            ...(options.repoErrorGracePeriodSeconds === undefined
              ? []
              : ["--repo-error-grace-period-seconds", String(options.repoErrorGracePeriodSeconds)]),
            // Argo CD's own defaults (cmd/argocd-application-controller).
            "--status-processors",
            String(options.statusProcessors ?? 20),
            "--operation-processors",
            String(options.operationProcessors ?? 10),
          ],
          env("argocd-application-controller"),
        );
        // /healthz is served once the informers have synced (ApplicationController.Run).
        await waitReady(p, "argocd-application-controller", () =>
          httpOk(`http://127.0.0.1:${ports.controllerMetrics}/healthz`),
        );
        return p;
      }),
      withPortRetry(async () => {
        ports.applicationSetMetrics = await freePort();
        ports.applicationSetProbe = await freePort();
        ports.applicationSetWebhook = await freePort();
        const p = group.start(
          "argocd-applicationset-controller",
          bins.argocd,
          [
            ...common,
            "--namespace",
            namespace,
            "--argocd-repo-server",
            repoServerAddress,
            "--repo-server-plaintext",
            "--metrics-addr",
            `127.0.0.1:${ports.applicationSetMetrics}`,
            "--probe-addr",
            `127.0.0.1:${ports.applicationSetProbe}`,
            "--webhook-addr",
            `127.0.0.1:${ports.applicationSetWebhook}`,
            "--policy",
            "sync",
            "--enable-policy-override",
            "--enable-progressive-syncs",
          ],
          env("argocd-applicationset-controller"),
        );
        // No health checks are registered on its probe server (it answers 404), so readiness
        // is the manager's metrics server listing the ApplicationSet controller, which
        // happens once the cluster informer has synced and the manager started.
        await waitReady(p, "argocd-applicationset-controller", async () => {
          const res = await fetch(`http://127.0.0.1:${ports.applicationSetMetrics}/metrics`, {
            signal: AbortSignal.timeout(3000),
          });
          return (
            res.status === 200 &&
            (await res.text()).includes('controller_runtime_active_workers{controller="applicationset"}')
          );
        });
        return p;
      }),
    ]);
    progress(`Argo CD ready in namespace ${namespace}`);
  } catch (err) {
    const tails = group.all.map((p) => `----- ${p.name} -----\n${p.logTail(20)}`).join("\n");
    await group.stopAll();
    cleanupDirs();
    if (err instanceof ArgoCDError) throw err;
    throw new ArgoCDError(
      `Argo CD did not start: ${err instanceof Error ? err.message : String(err)}${tails ? `\n${tails}` : ""}`,
      { cause: err },
    );
  }

  // Narrowed by the try block above, which assigned each one or threw.
  const started = { redis, repoServer, applicationController, applicationSetController };
  const controllers = [started.applicationController, started.applicationSetController];
  return {
    namespace,
    version: bins.version,
    binDir: bins.dir,
    dir,
    ports,
    webhookUrl: `http://127.0.0.1:${ports.applicationSetWebhook}/api/webhook`,
    ...started,
    processes: () => group.all,
    logs(lines = 30) {
      return Object.values(started)
        .map((p) => `----- ${p.name} (${p.logPath}) -----\n${p.logTail(lines)}`)
        .join("\n");
    },
    async stop({ keep } = {}) {
      await group.stopAll([controllers, [started.repoServer], [started.redis]]);
      if (!keep) cleanupDirs();
    },
  };
}

/**
 * argocd-cm, argocd-secret and the empty ConfigMaps the repo-server and the controllers
 * look up (util/settings/settings.go: the settings informer selects
 * app.kubernetes.io/part-of=argocd; GetSettings fails without argocd-secret's
 * server.secretkey, which only the API server would generate). Not created:
 * argocd-rbac-cm (read by the API server only), argocd-cmd-params-cm (its keys reach the
 * Deployments as environment variables; here they are flags), and AppProjects: only the
 * API server creates `default` (server/server.go), and nothing here needs it unless an
 * Application names it (or no project).
 */
async function applySettings(
  cluster: Cluster,
  namespace: string,
  reconciliationTimeout: string,
  reconciliationJitter: string,
): Promise<void> {
  const client = new KubeClient(kubeConfigFromFile(cluster.kubeconfig), {
    userAgent: "outpost-argocd-harness",
  });
  const fieldManager = "outpost-argocd-harness";
  const labels = (name: string): Record<string, string> => ({
    "app.kubernetes.io/name": name,
    [partOfLabel]: "argocd",
  });
  try {
    await client.apply(NamespaceResource, { metadata: { name: namespace } }, { fieldManager });
    await client.apply(
      ConfigMapResource,
      {
        metadata: { name: "argocd-cm", namespace, labels: labels("argocd-cm") },
        data: {
          "timeout.reconciliation": reconciliationTimeout,
          "timeout.reconciliation.jitter": reconciliationJitter,
        },
      } as KubeObject,
      { fieldManager },
    );
    for (const name of ["argocd-ssh-known-hosts-cm", "argocd-tls-certs-cm", "argocd-gpg-keys-cm"]) {
      await client.apply(
        ConfigMapResource,
        { metadata: { name, namespace, labels: labels(name) } },
        { fieldManager },
      );
    }
    await client.apply(
      SecretResource,
      {
        metadata: { name: "argocd-secret", namespace, labels: labels("argocd-secret") },
        type: "Opaque",
        // 32 random bytes, like the API server generates (util/settings InitializeSettings).
        data: { "server.secretkey": randomBytes(32).toString("base64") },
      } as KubeObject,
      { fieldManager },
    );
  } finally {
    await client.close();
  }
}

// ---------- waiting ----------

function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/bin"])) {
    if (!dir) continue;
    const path = join(dir, command);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  await res.arrayBuffer();
  return res.status === 200;
}

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
    socket.setTimeout(2000, () => socket.destroy());
    socket.on("data", (d: Buffer) => {
      resolve(d.toString().startsWith("+PONG"));
      socket.destroy();
    });
    socket.on("close", () => {
      resolve(false);
    });
    socket.on("error", () => {
      resolve(false);
    });
  });
}

/** Retries `start` with new ports when the process lost the race for a free port. */
async function withPortRetry<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= 3 || !(err instanceof PortInUseError)) throw err;
    }
  }
}

/** Polls `probe` until it succeeds; fails with the log tail if the process exits or time runs out. */
async function waitReady(p: ManagedProcess, what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (!p.running) {
      const tail = p.logTail(20);
      const how = p.exitSignal ? `was killed by ${p.exitSignal}` : `exited with code ${p.exitCode}`;
      const Err = portInUse.test(tail) ? PortInUseError : ArgoCDError;
      throw new Err(`${what} ${how} during start.\nLast lines of ${p.logPath}:\n${tail}`);
    }
    if (await probe().catch(() => false)) return;
    await sleep(250);
  }
  throw new ArgoCDError(
    `${what} was not healthy after ${readyTimeoutMs / 1000}s.\nLast lines of ${p.logPath}:\n${p.logTail(20)}`,
  );
}
