// The Argo CD delivery engine: for each (deployment, application) one ApplicationSet in
// Argo CD's namespace (argocd.ts applicationSetFor), pinned to the delivered commit; per
// project an AppProject that confines its Applications to its own clusters and
// repositories, and repository Secrets (scoped to that AppProject) for its Git
// repository and chart registries. Per-cluster state is read from the Applications the
// ApplicationSets generate (argoStates). ApplicationSets live in Argo CD's namespace, so
// they cannot be owned by the AppDeployment: labels tie them to it and the deployment's
// finalizer removes them.
import { createHash } from "node:crypto";
import type { AppDeployment } from "../../api/app-deployment.generated.ts";
import { fromArgoClusterSecret, type ClusterInventory } from "../../inventory/inventory.ts";
import { ApiError, type KubeObject } from "../../runtime/client.ts";
import { secretsResource } from "../../runtime/core.ts";
import type { Informer } from "../../runtime/informer.ts";
import type { Manager } from "../../runtime/manager.ts";
import {
  applicationSetFor,
  ApplicationSetResource,
  AppProjectResource,
  appProjectFor,
  argoStates,
  ArgoApplicationResource,
  chartSource,
  overrideFiles,
  refreshAnnotation,
  repositorySecretFor,
  targetsAnnotation,
  type ApplicationSet,
  type ArgoApplication,
} from "../argocd.ts";
import { edgeClustersOf } from "../../edge/edge-clusters.ts";
import { outpostApplicationSets } from "../delivered.ts";
import { Reachability } from "./reachability.ts";
import { deploymentLabel } from "../fleet.ts";
import type { RenderedBundle } from "../render.ts";
import type { Delivery, DeliveryEngine, EngineWatch } from "./engine.ts";
import { argoSecretTypeLabel, projectLabel } from "../../inventory/registrations.ts";
import type { ClusterTarget } from "../../inventory/selector.ts";

type SecretObject = KubeObject & { type?: string; data?: Record<string, string> };

const decode = (data: Record<string, string> | undefined, key: string): string | undefined => {
  const v = data?.[key];
  return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
};

const hashOf = (o: unknown): string => createHash("sha256").update(JSON.stringify(o)).digest("hex");

/** What the operator keeps of an Application: identity, labels and the status argoStates reads. */
export function slimApplication(a: ArgoApplication): ArgoApplication {
  const { name, namespace, uid, resourceVersion, labels } = a.metadata;
  const s = a.status;
  const unhealthy = s?.resources?.find((r) => r.health?.status && r.health.status !== "Healthy");
  return {
    metadata: { name, namespace, uid, resourceVersion, labels },
    status: {
      ...(s?.sync
        ? { sync: { status: s.sync.status, revision: s.sync.revision, revisions: s.sync.revisions } }
        : {}),
      ...(s?.health ? { health: s.health } : {}),
      ...(s?.operationState
        ? { operationState: { phase: s.operationState.phase, message: s.operationState.message } }
        : {}),
      ...(s?.conditions?.length ? { conditions: s.conditions.slice(0, 3) } : {}),
      ...(unhealthy ? { resources: [unhealthy] } : {}),
    },
  };
}

export class ArgoCDEngine implements DeliveryEngine {
  readonly name = "argocd" as const;
  readonly clusters = "argocd" as const;
  private readonly appSets: Informer<ApplicationSet>;
  private readonly applications: Informer<ArgoApplication>;
  private readonly namespace: string;
  /**
   * What was last written, by object: skips writes that would change nothing. Entries
   * last 10 minutes (an object changed or deleted behind Outpost's back is written again
   * then); ApplicationSets are also written again as soon as they are gone.
   */
  private readonly written = new Map<string, { digest: string; at: number }>();

  private readonly reach: Reachability;
  /** Told the project namespace when one of its clusters goes offline or comes back. */
  onClustersChanged: (namespace: string) => void = () => undefined;

  constructor(
    private readonly manager: Manager,
    private readonly inventory: ClusterInventory,
    options: { namespace: string; probeIntervalMs?: number },
  ) {
    this.namespace = options.namespace;
    this.reach = new Reachability(edgeClustersOf(manager), { intervalMs: options.probeIntervalMs });
    this.reach.onChange = (ns, cluster, offline) => {
      if (!offline) void this.refreshCluster(ns, cluster);
      this.onClustersChanged(ns);
    };
    manager.onStop(() => this.reach.stop());
    this.appSets = outpostApplicationSets(manager, this.namespace);
    this.applications = manager.informer<ArgoApplication>(ArgoApplicationResource, {
      namespace: this.namespace,
      labelSelector: projectLabel,
      transform: slimApplication,
      optional: true,
    });
  }

  unavailable(): string | undefined {
    for (const i of [this.appSets, this.applications]) {
      if (i.notServed)
        return `Argo CD is not installed on the management cluster: the API server does not serve ${i.resource.plural}.${i.resource.group}/${i.resource.version}; install Argo CD (its CRDs and its application and ApplicationSet controllers), or choose another engine for the project`;
      if (!i.hasSynced) return `waiting for the first list of Argo CD's ${i.resource.plural}`;
    }
    return undefined;
  }

  extraFiles(bundle: RenderedBundle): Record<string, string> {
    return overrideFiles(bundle);
  }

  private owned(dep: AppDeployment): ApplicationSet[] {
    return this.appSets.cache.byLabels({
      [projectLabel]: dep.metadata.namespace ?? "",
      [deploymentLabel]: dep.metadata.name ?? "",
    });
  }

  private async write(
    key: string,
    object: KubeObject,
    kind: "secret" | "appproject" | "appset",
  ): Promise<void> {
    const digest = hashOf(object);
    const last = this.written.get(key);
    const present =
      kind !== "appset" ||
      this.appSets.cache.get(`${this.namespace}/${object.metadata.name ?? ""}`) !== undefined;
    if (last?.digest === digest && Date.now() - last.at < 10 * 60_000 && present) return;
    const r =
      kind === "secret"
        ? secretsResource
        : kind === "appproject"
          ? AppProjectResource
          : ApplicationSetResource;
    await this.manager.client.apply(r, object, { fieldManager: this.manager.fieldManager, force: true });
    this.written.set(key, { digest, at: Date.now() });
  }

  async apply({ deployment: dep, bundles, git, commit, registries, access }: Delivery): Promise<void> {
    const ns = dep.metadata.namespace ?? "";
    const { client } = this.manager;

    // Repository credentials, scoped to the project's AppProject.
    const sourceRepos = [git.url];
    if (git.secretName) {
      const s = await client.get<SecretObject>(secretsResource, git.secretName, ns);
      await this.write(
        `secret/${ns}/git`,
        repositorySecretFor({
          namespace: ns,
          argoNamespace: this.namespace,
          what: "git",
          url: git.url,
          type: "git",
          username: decode(s?.data, "username"),
          password: decode(s?.data, "password"),
        }),
        "secret",
      );
    }
    // Chart registries: their credentials as the reconciler read them (a token-only
    // Registry is refused before delivery).
    for (const name of new Set(bundles.map((b) => b.chart.registry))) {
      const registry = registries.get(name);
      if (!registry) continue;
      const src = chartSource(registry, "");
      sourceRepos.push(src.repoURL);
      const creds = access.get(name);
      await this.write(
        `secret/${ns}/registry/${name}`,
        repositorySecretFor({
          namespace: ns,
          argoNamespace: this.namespace,
          what: `registry-${name}`,
          url: src.repoURL,
          type: "helm",
          oci: src.oci,
          plainHttp: src.plainHttp,
          username: creds?.username,
          password: creds?.password,
        }),
        "secret",
      );
    }
    await this.write(`appproject/${ns}`, appProjectFor(ns, this.namespace, sourceRepos), "appproject");

    // ApplicationSets: one per application with targets; the others go.
    const clusters = new Map<string, { server: string; labels: Record<string, string> }>();
    for (const s of this.inventory.source("argocd")?.informer.cache.byLabels({ [projectLabel]: ns }) ?? []) {
      const c = fromArgoClusterSecret(s);
      const server = decode((s as SecretObject).data, "server");
      if (server) clusters.set(c.metadata.name ?? "", { server, labels: c.metadata.labels ?? {} });
    }
    const keep = new Set<string>();
    for (const b of bundles) {
      const registry = registries.get(b.chart.registry);
      if (!registry || b.targets.length === 0) continue;
      const appSet = applicationSetFor({
        deployment: dep,
        bundle: b,
        git,
        commit,
        registry,
        namespace: this.namespace,
        clusters,
        paused: false,
      });
      if ((appSet.spec.generators as unknown[]).length === 0) continue;
      keep.add(appSet.metadata.name ?? "");
      await this.write(`appset/${appSet.metadata.name ?? ""}`, appSet, "appset");
    }
    for (const a of this.owned(dep)) {
      const name = a.metadata.name ?? "";
      if (keep.has(name) || a.metadata.deletionTimestamp) continue;
      await this.deleteAppSet(name);
    }
  }

  private async deleteAppSet(name: string): Promise<void> {
    this.written.delete(`appset/${name}`);
    try {
      await this.manager.client.delete(ApplicationSetResource, name, this.namespace);
    } catch (err) {
      if (!ApiError.isNotFound(err)) throw err;
    }
  }

  /** Automated sync off (no sync, no self-heal) or back on; the template keeps its commit. */
  async pause(dep: AppDeployment, paused: boolean): Promise<void> {
    for (const a of this.owned(dep)) {
      const template = a.spec.template as { spec?: { syncPolicy?: { automated?: { enabled?: boolean } } } };
      if ((template.spec?.syncPolicy?.automated?.enabled ?? true) === !paused) continue;
      this.written.delete(`appset/${a.metadata.name ?? ""}`);
      await this.manager.client.mergePatch(ApplicationSetResource, a.metadata.name ?? "", this.namespace, {
        spec: { template: { spec: { syncPolicy: { automated: { enabled: !paused } } } } },
      });
    }
  }

  states(dep: AppDeployment, commit: string | undefined): ReturnType<DeliveryEngine["states"]> {
    const ns = dep.metadata.namespace ?? "";
    const fromArgo = argoStates(
      this.applications.cache.byLabels({ [projectLabel]: ns, [deploymentLabel]: dep.metadata.name ?? "" }),
      commit,
    );
    return (app, cluster) => {
      // Argo CD keeps the last state of a cluster it cannot reach: ask the cluster.
      const offline = this.reach.offline(ns, cluster);
      if (offline)
        return { state: "Offline", message: `${offline}; Argo CD catches it up when it answers again` };
      return fromArgo(app, cluster);
    };
  }

  /**
   * A cluster answers again: ask Argo CD to look at it afresh (a new value of the refresh
   * annotation on its cluster Secret invalidates Argo CD's cache of that cluster).
   */
  private async refreshCluster(ns: string, cluster: string): Promise<void> {
    const secret = this.inventory
      .source("argocd")
      ?.informer.cache.byLabels({ [projectLabel]: ns })
      .find((s) => fromArgoClusterSecret(s).metadata.name === cluster);
    if (!secret) return;
    try {
      await this.manager.client.mergePatch(secretsResource, secret.metadata.name ?? "", this.namespace, {
        metadata: { annotations: { [refreshAnnotation]: new Date().toISOString() } },
      });
    } catch (err) {
      this.manager.logger.warn(
        { err, cluster: `${ns}/${cluster}` },
        "could not ask Argo CD to refresh a cluster",
      );
    }
  }

  problems(dep: AppDeployment): Map<string, string> {
    const out = new Map<string, string>();
    // The ApplicationSet controller's own errors (a template it cannot render, a
    // generator it cannot list) name the application.
    for (const a of this.owned(dep)) {
      const failed = a.status?.conditions?.find(
        (c) =>
          (c.type === "ErrorOccurred" && c.status === "True") ||
          (c.type === "ParametersGenerated" && c.status === "False"),
      );
      const app = a.metadata.labels?.["outpost.dev/application"];
      if (failed && app)
        out.set(app, `Argo CD: ${failed.message ?? failed.reason ?? "ApplicationSet failed"}`);
    }
    return out;
  }

  deliveredTargets(dep: AppDeployment): Map<string, ClusterTarget[]> {
    const out = new Map<string, ClusterTarget[]>();
    for (const a of this.owned(dep)) {
      const bundle = `${dep.metadata.name ?? ""}-${a.metadata.labels?.["outpost.dev/application"] ?? ""}`;
      try {
        out.set(bundle, JSON.parse(a.metadata.annotations?.[targetsAnnotation] ?? "[]") as ClusterTarget[]);
      } catch {
        // an annotation not ours: no held targets for it
      }
    }
    return out;
  }

  /** Argo CD passes values to Helm as written (valuesObject and value files). */
  refusals(): string[] {
    return [];
  }

  limits(dep: AppDeployment): string[] {
    return dep.spec.rollout?.waves?.length
      ? [
          "spec.rollout.waves: the Argo CD engine does not stage waves yet; each revision goes to every targeted cluster at once",
        ]
      : [];
  }

  holds(dep: AppDeployment): boolean {
    return this.owned(dep).length > 0;
  }

  /**
   * ApplicationSets first: their Applications carry Argo CD's resources finalizer, so
   * Argo CD deletes what they deployed. Read from the API, not the cache. The project's
   * AppProject and repository Secrets go with its last deployment.
   */
  async remove(dep: AppDeployment): Promise<number> {
    const { client } = this.manager;
    const ns = dep.metadata.namespace ?? "";
    if (this.appSets.notServed) return 0;
    const list = await client.list<ApplicationSet>(ApplicationSetResource, {
      namespace: this.namespace,
      labelSelector: `${projectLabel}=${ns},${deploymentLabel}=${dep.metadata.name ?? ""}`,
    });
    for (const a of list.items)
      if (!a.metadata.deletionTimestamp) await this.deleteAppSet(a.metadata.name ?? "");
    const apps = await client.list<ArgoApplication>(ArgoApplicationResource, {
      namespace: this.namespace,
      labelSelector: `${projectLabel}=${ns},${deploymentLabel}=${dep.metadata.name ?? ""}`,
    });
    const going = list.items.length + apps.items.length;
    if (going > 0) return going;
    const others = (
      await client.list<ApplicationSet>(ApplicationSetResource, {
        namespace: this.namespace,
        labelSelector: `${projectLabel}=${ns}`,
      })
    ).items;
    if (others.length === 0) await this.removeProject(ns);
    return 0;
  }

  private async removeProject(ns: string): Promise<void> {
    const { client } = this.manager;
    const secrets = await client.list<SecretObject>(secretsResource, {
      namespace: this.namespace,
      labelSelector: `${argoSecretTypeLabel}=repository,${projectLabel}=${ns},app.kubernetes.io/managed-by=outpost`,
    });
    for (const s of secrets.items)
      await client.delete(secretsResource, s.metadata.name ?? "", this.namespace);
    const projects = await client.list(AppProjectResource, {
      namespace: this.namespace,
      labelSelector: `${projectLabel}=${ns},app.kubernetes.io/managed-by=outpost`,
    });
    for (const p of projects.items)
      await client.delete(AppProjectResource, p.metadata.name ?? "", this.namespace);
    for (const key of [...this.written.keys()]) {
      if (key.startsWith(`secret/${ns}/`) || key === `appproject/${ns}`) this.written.delete(key);
    }
  }

  watches(): EngineWatch[] {
    const byLabels = (o: KubeObject): string[] => {
      const l = o.metadata.labels ?? {};
      const ns = l[projectLabel];
      const dep = l[deploymentLabel];
      return ns && dep ? [`${ns}/${dep}`] : [];
    };
    return [
      { informer: this.appSets as unknown as Informer<KubeObject>, map: byLabels },
      { informer: this.applications, map: byLabels },
    ];
  }
}
