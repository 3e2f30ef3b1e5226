// The Argo CD harness (test/argocd/argocd.ts) against real components: Argo CD's own
// controllers and repo-server on the management API server, an edge API server as the
// destination, a Git smart-HTTP server for values and an OCI registry for the Helm chart.
// Each step names the Argo CD v3.6.1 code whose behaviour it shows.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import {
  AppProjectResource,
  ApplicationResource,
  ApplicationSetResource,
  clusterSecret,
  ociHelmRepositorySecret,
  refreshAnnotation,
  resourcesFinalizer,
  startArgoCD,
  type ArgoApplication,
  type ArgoCD,
} from "../argocd/index.ts";
import { groupAlive, kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, processesMentioning, useControlPlane } from "../support/controlplane.ts";
import { startGitServer, type GitServer } from "../support/git-server.ts";
import { makeChart, pushChart, startOciRegistry, type OciRegistry } from "../support/services.ts";

import {
  configMapsResource as ConfigMapResource,
  secretsResource as SecretResource,
} from "../../operators/runtime/core.ts";

const execFileAsync = promisify(execFile);
const fieldManager = "outpost-argocd-test";
const project = "outpost-test";
const chartVersion = "0.1.0";

/** A local clone that commits and pushes to the test Git server. */
class WorkTree {
  readonly dir = mkdtempSync(join(tmpdir(), "outpost-argocd-values-"));
  constructor(readonly url: string) {}
  async init(): Promise<this> {
    await this.git("init", "--quiet", "--initial-branch=main");
    await this.git("remote", "add", "origin", this.url);
    return this;
  }
  // Asynchronous: the Git server answers the push from this very process.
  private async git(...args: string[]): Promise<string> {
    const { stdout } = await execFileAsync(
      "git",
      ["-c", "user.name=Outpost Test", "-c", "user.email=test@outpost.invalid", ...args],
      { cwd: this.dir, encoding: "utf8" },
    );
    return stdout.trim();
  }
  async commit(files: Record<string, string>, message: string): Promise<string> {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(this.dir, path)), { recursive: true });
      writeFileSync(join(this.dir, path), content);
    }
    await this.git("add", "--all");
    await this.git("commit", "--quiet", "-m", message);
    await this.git("push", "--quiet", "origin", "main");
    return this.git("rev-parse", "HEAD");
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Delivery {
  argo: ArgoCD;
  /** Generated Applications are named `<prefix>-<cluster>`; the Helm release and edge namespace too. */
  prefix: string;
}

/** What a test reads of an Application, as one comparable value. */
function summary(app: ArgoApplication | undefined): {
  sync?: string;
  health?: string;
  healthMessage?: string;
  revisions?: string[];
  phase?: string;
  operationMessage?: string;
  conditions: string[];
} {
  const s = app?.status;
  return {
    sync: s?.sync?.status,
    health: s?.health?.status,
    healthMessage: s?.health?.message,
    revisions: s?.sync?.revisions,
    phase: s?.operationState?.phase,
    operationMessage: s?.operationState?.message,
    conditions: (s?.conditions ?? []).map((c) => `${c.type}: ${c.message ?? ""}`),
  };
}

describe("Argo CD harness", () => {
  const controlPlane = useControlPlane({ edges: 1 });
  let git: GitServer;
  let registry: OciRegistry;
  let values: WorkTree;
  let gitUrl: string;
  let ociRepo: string;
  let management: KubeClient;
  let edge: KubeClient;
  let first: ArgoCD | undefined;
  let second: ArgoCD | undefined;
  const commits: string[] = [];

  before(async () => {
    git = await startGitServer();
    registry = await startOciRegistry();
    await pushChart(
      registry.url,
      "charts",
      await makeChart({ name: "store", version: chartVersion, values: { replicaCount: 1 } }),
    );
    // repoURL of an OCI Helm repository: host:port/path, no scheme (util/helm/client.go IsHelmOciRepo).
    ociRepo = `127.0.0.1:${registry.port}/charts`;
    gitUrl = git.createRepo("fleet");
    values = await new WorkTree(gitUrl).init();
    commits.push(await values.commit({ "envs/store/values.yaml": "replicaCount: 3\n" }, "store: 3 replicas"));
    management = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
    const [edgeCluster] = controlPlane().edges;
    assert.ok(edgeCluster);
    edge = new KubeClient(kubeConfigFromFile(edgeCluster.kubeconfig));
    // A long reconciliation timeout: what changes in the steps below cannot come from polling.
    first = await startArgoCD({
      cluster: controlPlane().management,
      reconciliationTimeout: "1h",
    });
  });
  afterEach((t) => {
    if ((t as { passed?: boolean }).passed !== false) return;
    // Now: a later step may stop the harness and remove its logs.
    for (const argo of [first, second])
      if (argo) console.error(`Argo CD logs (${argo.namespace}, "${t.name}" failed):\n${argo.logs(80)}`);
  });
  after(async () => {
    for (const argo of [first, second]) {
      if (!argo) continue;
      await argo.stop();
    }
    // Whatever `before` got to start (it may have failed half-way).
    const optional = <T>(v: T): T | undefined => v;
    await Promise.all([optional(management)?.close(), optional(edge)?.close()]);
    optional(values)?.remove();
    await Promise.all([optional(git)?.stop(), optional(registry)?.stop()]);
  });

  const edgeCluster = () => {
    const [cluster] = controlPlane().edges;
    assert.ok(cluster);
    return cluster;
  };

  /** Registers the edge, the OCI repository and the project in `argo`'s namespace. */
  async function register(argo: ArgoCD): Promise<void> {
    const namespace = argo.namespace;
    await management.apply(
      AppProjectResource,
      {
        metadata: { name: project, namespace },
        spec: {
          description: "Outpost harness test",
          sourceRepos: [gitUrl, ociRepo],
          destinations: [{ server: "*", namespace: "*" }],
          // CreateNamespace=true makes Argo CD create a Namespace, a cluster-scoped kind.
          clusterResourceWhitelist: [{ group: "", kind: "Namespace" }],
          // Only clusters whose Secret names this project (`project` key) are destinations.
          permitOnlyProjectScopedClusters: true,
        },
      } as KubeObject,
      { fieldManager },
    );
    await management.apply(
      SecretResource,
      ociHelmRepositorySecret({ namespace, name: "charts", url: ociRepo, project }),
      { fieldManager },
    );
    await management.apply(
      SecretResource,
      clusterSecret(edgeCluster(), { namespace, project, labels: { tier: "store", region: "eu" } }),
      { fieldManager },
    );
  }

  /** The ApplicationSet: one Application per store cluster, chart from OCI, values from Git at `revision`. */
  async function applyApplicationSet(d: Delivery, revision: string): Promise<void> {
    await management.apply(
      ApplicationSetResource,
      {
        metadata: { name: d.prefix, namespace: d.argo.namespace },
        spec: {
          goTemplate: true,
          goTemplateOptions: ["missingkey=error"],
          generators: [{ clusters: { selector: { matchLabels: { tier: "store" } } } }],
          template: {
            metadata: {
              name: `${d.prefix}-{{.name}}`,
              labels: { "outpost.dev/cluster": "{{.name}}", region: '{{index .metadata.labels "region"}}' },
            },
            spec: {
              project,
              sources: [
                {
                  repoURL: ociRepo,
                  chart: "store",
                  targetRevision: chartVersion,
                  helm: { releaseName: d.prefix, valueFiles: ["$values/envs/store/values.yaml"] },
                },
                { repoURL: gitUrl, targetRevision: revision, ref: "values" },
              ],
              destination: { server: "{{.server}}", namespace: d.prefix },
              syncPolicy: {
                automated: { prune: true, selfHeal: true },
                syncOptions: ["CreateNamespace=true"],
              },
            },
          },
        },
      } as KubeObject,
      { fieldManager },
    );
  }

  const appName = (d: Delivery): string => `${d.prefix}-${edgeCluster().name}`;
  const getApp = (d: Delivery) =>
    management.get<ArgoApplication>(ApplicationResource, appName(d), d.argo.namespace);
  const edgeReplicas = async (d: Delivery): Promise<string | undefined> =>
    (await edge.get<KubeObject & { data?: Record<string, string> }>(ConfigMapResource, d.prefix, d.prefix))
      ?.data?.replicas;

  /**
   * Waits until the Application is Synced and Healthy at `revision`, its sync operation
   * has finished (Argo CD reports Healthy before it marks the operation Succeeded), and the
   * edge has `replicas`.
   */
  async function delivered(d: Delivery, revision: string, replicas: string, timeoutMs = 180_000) {
    const app = await eventually(
      `${appName(d)} Synced and Healthy at ${revision.slice(0, 8)}`,
      async () => {
        const app = await getApp(d);
        const s = summary(app);
        if (s.sync !== "Synced" || s.health !== "Healthy" || s.revisions?.[1] !== revision) return undefined;
        if (s.phase === "Running") return undefined;
        return app;
      },
      timeoutMs,
      500,
    );
    await eventually(
      `the edge ConfigMap ${d.prefix}/${d.prefix} with replicas ${replicas}`,
      async () => ((await edgeReplicas(d)) === replicas ? true : undefined),
      timeoutMs,
      500,
    );
    return app;
  }

  it("generates a project-scoped Application for the labelled edge: Synced and Healthy at the pinned commit", async () => {
    assert.ok(first);
    const d = { argo: first, prefix: "store" };
    await register(first);
    const [sha1] = commits;
    assert.ok(sha1);
    await applyApplicationSet(d, sha1);
    const app = await delivered(d, sha1, "3");
    const s = summary(app);
    // Multi-source: one revision per source, in order (the chart's version, then the commit).
    assert.deepEqual(s.revisions, [chartVersion, sha1]);
    assert.equal(s.phase, "Succeeded");
    assert.deepEqual(s.conditions, []);
    // applicationset/utils/utils.go RenderTemplateParams adds the resources finalizer.
    assert.ok(
      app.metadata.finalizers?.includes(resourcesFinalizer),
      "generated Applications carry the finalizer",
    );
    assert.equal(app.metadata.labels?.region, "eu", "cluster labels reach the template");
    const resources = app.status?.resources ?? [];
    assert.ok(
      resources.some((r) => r.kind === "ConfigMap" && r.name === "store" && r.status === "Synced"),
      JSON.stringify(resources),
    );
  });

  it("follows a new commit pinned in the ApplicationSet without polling (timeout.reconciliation 1h)", async () => {
    assert.ok(first);
    const d = { argo: first, prefix: "store" };
    const sha2 = await values.commit({ "envs/store/values.yaml": "replicaCount: 5\n" }, "store: 5 replicas");
    commits.push(sha2);
    // The ApplicationSet controller updates the Application's spec.sources; the application
    // controller's informer requests a refresh on the update (controller/appcontroller.go
    // applicationEventHandlerFuncs UpdateFunc), and needRefreshAppStatus compares at once
    // because "at least one of the spec.sources differs" (currentSourceEqualsSyncedSource).
    const started = Date.now();
    await applyApplicationSet(d, sha2);
    const app = await delivered(d, sha2, "5", 120_000);
    assert.deepEqual(summary(app).revisions, [chartVersion, sha2]);
    console.log(`# new commit delivered to the edge in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  });

  it("deletes the Application and its resources on the edge when the cluster loses its label", async () => {
    assert.ok(first);
    const d = { argo: first, prefix: "store" };
    // The Secret change requeues the ApplicationSet (clustereventhandler.go), which deletes
    // the Application it no longer generates (applicationset_controller.go deleteInCluster;
    // policy sync). The resources finalizer makes the application controller delete the
    // edge's resources first (controller/appcontroller.go finalizeApplicationDeletion). A
    // deleted cluster Secret instead makes the ApplicationSet drop that finalizer (invalid
    // destination), leaving the resources on the edge.
    await management.mergePatch(SecretResource, `cluster-${edgeCluster().name}`, first.namespace, {
      metadata: { labels: { tier: null } },
    });
    await eventually(
      "the Application deleted",
      async () => ((await getApp(d)) ? undefined : true),
      120_000,
      500,
    );
    await eventually(
      "the edge ConfigMap pruned",
      async () => ((await edge.get(ConfigMapResource, d.prefix, d.prefix)) ? undefined : true),
      120_000,
      500,
    );
  });

  it("runs a second harness beside the first, then stops the first: none of its processes is left", async () => {
    assert.ok(first);
    second = await startArgoCD({
      cluster: controlPlane().management,
      namespace: "argocd-b",
      reconciliationTimeout: "10s",
    });
    assert.notEqual(second.ports.repoServer, first.ports.repoServer);
    const d = { argo: second, prefix: "store-b" };
    await register(second);
    const sha = commits.at(-1);
    assert.ok(sha);
    await applyApplicationSet(d, sha);
    await delivered(d, sha, "5");

    const stopped = first;
    const processes = stopped.processes();
    assert.equal(processes.length, 4);
    await stopped.stop();
    first = undefined;
    for (const p of processes) assert.equal(groupAlive(p.pid), false, `${p.name} is still running`);
    assert.deepEqual(processesMentioning(stopped.dir), []);
    assert.deepEqual(processesMentioning(`127.0.0.1:${stopped.ports.repoServer}`), []);
    assert.ok(second.processes().every((p) => p.running));
  });

  it("an unreachable edge: unnoticed until the cluster cache and the Application are refreshed; converges when it is back", async () => {
    assert.ok(second);
    const d = { argo: second, prefix: "store-b" };
    const secretName = `cluster-${edgeCluster().name}`;
    const transitions: { at: number; status: ReturnType<typeof summary> }[] = [];
    const killedAt = Date.now();
    const elapsed = (): string => `${((Date.now() - killedAt) / 1000).toFixed(1)}s`;
    const observe = async (): Promise<{ status: ReturnType<typeof summary>; reconciledAt: number }> => {
      const app = await getApp(d);
      const status = summary(app);
      if (JSON.stringify(transitions.at(-1)?.status) !== JSON.stringify(status))
        transitions.push({ at: (Date.now() - killedAt) / 1000, status });
      return { status, reconciledAt: Date.parse(app?.status?.reconciledAt ?? "") || 0 };
    };
    const clean = (s: ReturnType<typeof summary>): boolean =>
      s.sync === "Synced" && s.health === "Healthy" && s.conditions.length === 0;
    assert.ok(clean((await observe()).status));

    await controlPlane().killApiServer(edgeCluster());
    // 1. The application controller keeps comparing (reconciledAt moves on every 10 s) against
    // its cluster cache, which stays "synced" while its watches retry in the background
    // (gitops-engine pkg/cache/cluster.go: clusterCacheSync.synced, watchEvents with
    // RetryUntilSucceed): nothing in the status shows the outage.
    const unnoticed = await eventually(
      "two periodic comparisons after the edge went down",
      async () => {
        const { status, reconciledAt } = await observe();
        return reconciledAt > killedAt + 10_000 ? status : undefined;
      },
      120_000,
      1000,
    );
    assert.ok(clean(unnoticed), `the outage shows before a cache refresh: ${JSON.stringify(unnoticed)}`);
    console.log(`# edge down ${elapsed()}: two comparisons later still ${JSON.stringify(unnoticed)}`);

    // 2. A refresh of the cluster (the refresh annotation on its Secret: util/db/cluster.go
    // SecretToCluster RefreshRequestedAt) invalidates the cluster cache
    // (controller/cache/cache.go updateCluster, forceInvalidate), whose resync then fails.
    // Periodic comparisons hide that failure for the repo error grace period, 180 s
    // (controller/state.go CompareAppState, repoErrorCache; the error comes from
    // GetRepoObjs, which needs the cluster's version); a refresh of the Application
    // (CompareWithLatestForceResolve, so noRevisionCache) reports it at once. The
    // Application is annotated again while the controller consumes the annotation before
    // the cluster cache is invalidated.
    await management.mergePatch(SecretResource, secretName, d.argo.namespace, {
      metadata: { annotations: { [refreshAnnotation]: new Date().toISOString() } },
    });
    const refreshedAt = Date.now();
    const down = await eventually(
      "the outage in the Application's status",
      async () => {
        const app = await getApp(d);
        const { status } = await observe();
        if (!clean(status)) return status;
        if (!app?.metadata.annotations?.[refreshAnnotation])
          await management.mergePatch(ApplicationResource, appName(d), d.argo.namespace, {
            metadata: { annotations: { [refreshAnnotation]: "normal" } },
          });
        return undefined;
      },
      120_000,
      2000,
    );
    console.log(
      `# cluster and Application refreshed: outage shown ${((Date.now() - refreshedAt) / 1000).toFixed(1)}s later`,
    );
    console.log(`#   ${JSON.stringify(down)}`);
    // What Argo CD v3.6.1 shows: sync Unknown, health still Healthy (the last assessment),
    // no revisions, the last operation still Succeeded, and the cause in the conditions.
    assert.equal(down.sync, "Unknown");
    assert.equal(down.health, "Healthy");
    assert.equal(down.phase, "Succeeded");
    const server = edgeCluster().server;
    assert.ok(
      down.conditions.some(
        (c) =>
          c.startsWith("ComparisonError: Failed to load live state: ") &&
          c.includes(server) &&
          c.includes("connection refused"),
      ),
      JSON.stringify(down.conditions),
    );

    const restartedAt = Date.now();
    await controlPlane().restartApiServer(edgeCluster());
    transitions.push({
      at: (restartedAt - killedAt) / 1000,
      status: { conditions: ["(edge API server restarted)"] },
    });
    await eventually(
      "Synced, Healthy and no condition again",
      async () => {
        const { status } = await observe();
        return clean(status) ? status : undefined;
      },
      180_000,
      1000,
    );
    console.log(
      `# edge back: converged ${((Date.now() - restartedAt) / 1000).toFixed(1)}s after the restart`,
    );
    for (const t of transitions) console.log(`#   +${t.at.toFixed(1)}s ${JSON.stringify(t.status)}`);
    assert.equal(await edgeReplicas(d), "5");
  });

  it("stops: no Argo CD or redis process is left", async () => {
    assert.ok(second);
    const argo = second;
    const processes = argo.processes();
    await argo.stop();
    second = undefined;
    for (const p of processes) assert.equal(groupAlive(p.pid), false, `${p.name} is still running`);
    assert.deepEqual(processesMentioning(argo.dir), []);
    assert.deepEqual(processesMentioning(`127.0.0.1:${argo.ports.repoServer}`), []);
    assert.deepEqual(processesMentioning(`127.0.0.1:${argo.ports.redis}`), []);
  });
});
