// AppDeployment reconciler: renders the deployment (render.ts), commits the bundles to
// the namespace's Git repository in one commit when the tree changed (gitstore.ts),
// keeps one Fleet GitRepo per application, records each delivered spec as a
// ControllerRevision, and reports status from Fleet's Clusters and BundleDeployments
// (status.ts). Approval, suspend and the safety rail against mass target removal decide
// what is delivered (lifecycle.ts). Deletion removes the GitRepos, then the deployment's
// folder in Git (one commit), then releases the object.
import { isDeepStrictEqual } from "node:util";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { Approval } from "../api/approval.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  ApprovalResource,
  DeploymentPackageResource,
  RegistryResource,
} from "../api/resources.generated.ts";
import { ApiError, type KubeObject } from "../runtime/client.ts";
import { getCondition, removeCondition, setCondition, summarize } from "../runtime/conditions.ts";
import {
  generationOrRequestChanged,
  requestedAtAnnotation,
  type Request,
  type Result,
} from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { addFinalizer, ReconcileError, removeFinalizer, withStatus } from "../runtime/reconcile.ts";
import {
  applicationLabel,
  BundleDeploymentResource,
  ControllerRevisionResource,
  deploymentLabel,
  FleetClusterResource,
  gitRepoFor,
  GitRepoResource,
  type GitRepo,
  type GitTargetRepo,
} from "./fleet.ts";
import { ClusterView } from "./clusters.ts";
import { GitStoreError, HttpGitStore, type GitStore } from "./gitstore.ts";
import { guardDrop, revisionHash } from "./lifecycle.ts";
import {
  commitAnnotation,
  packageDigestAnnotation,
  planRevision,
  type ControllerRevision,
} from "./revisions.ts";
import { render, RenderError, treeDigest, treeOf, type GitTarget, type RenderedBundle } from "./render.ts";
import {
  aggregate,
  phaseOf,
  slimBundleDeployment,
  type FleetBundleDeployment,
  type FleetCluster,
} from "./status.ts";
import { secretsResource } from "../runtime/core.ts";

type Status = NonNullable<AppDeployment["status"]>;

export const deployFinalizer = "deploy.outpost.dev/cleanup";
/** The Secret in a deployment's namespace naming its Git repository (and Fleet's credentials). */
export const gitSecretName = "outpost-git";

export interface GitCredentials {
  username?: string;
  password?: string;
}

export interface DeployOptions {
  /** A cluster whose Fleet agent has not checked in for this long is offline. Default 30 min. */
  offlineAfterMs?: number;
  /** How long a drop of more than half the matched clusters must persist. Default 5 min. */
  dropHoldMs?: number;
  /** The Git client for a repository's credentials (default: smart HTTP). */
  gitStore?: (credentials: GitCredentials) => GitStore;
  now?: () => Date;
}

interface GitConfig {
  repo: GitTargetRepo;
  credentials: GitCredentials;
}

const decode = (data: Record<string, string> | undefined, key: string): string | undefined => {
  const v = data?.[key];
  return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
};

type SecretObject = KubeObject & { type?: string; data?: Record<string, string> };

export class AppDeploymentReconciler {
  /** Per deployment: the tree last synced to Git and its commit (skips needless clones). */
  private readonly synced = new Map<string, { digest: string; commit: string; repo: string }>();
  private readonly offlineAfterMs: number;
  private readonly dropHoldMs: number;
  private readonly now: () => Date;
  private readonly gitStore: (c: GitCredentials) => GitStore;
  private readonly clusters: ClusterView;

  constructor(
    private readonly manager: Manager,
    options: DeployOptions = {},
  ) {
    this.offlineAfterMs = options.offlineAfterMs ?? 30 * 60_000;
    this.dropHoldMs = options.dropHoldMs ?? 5 * 60_000;
    this.now = options.now ?? (() => new Date());
    const clusterInformer = manager.informer<FleetCluster & KubeObject>(FleetClusterResource);
    this.clusters = new ClusterView(
      (ns) => clusterInformer.cache.byNamespace(ns),
      this.offlineAfterMs,
      this.now,
    );
    const invalidate = (c: KubeObject): void => {
      this.clusters.invalidate(c.metadata.namespace ?? "");
    };
    clusterInformer.addHandler({ add: invalidate, update: invalidate, delete: invalidate });
    const make = options.gitStore ?? ((c: GitCredentials) => new HttpGitStore(c));
    // One store per set of credentials, so that concurrent changes share fetches and pushes.
    const stores = new Map<string, GitStore>();
    this.gitStore = (c) => {
      const id = JSON.stringify([c.username, c.password]);
      let store = stores.get(id);
      if (!store) {
        store = make(c);
        stores.set(id, store);
      }
      return store;
    };
  }

  private cache<T extends KubeObject>(r: Parameters<Manager["informer"]>[0]) {
    return this.manager.informer<T>(r).cache;
  }

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const cached = this.cache<AppDeployment>(AppDeploymentResource).get(req.key);
    if (!cached) {
      this.synced.delete(req.key);
      return undefined;
    }
    if (cached.metadata.deletionTimestamp) return this.finalize(cached);
    const dep = await addFinalizer(client, AppDeploymentResource, cached, deployFinalizer);
    return withStatus(client, AppDeploymentResource, dep, fieldManager, (status: Status) =>
      this.deliver(dep, status),
    );
  }

  /** The namespace's Git repository, from Secret outpost-git. */
  private async gitConfig(namespace: string): Promise<GitConfig> {
    const secret = await this.manager.client.get<SecretObject>(secretsResource, gitSecretName, namespace);
    const url = decode(secret?.data, "url");
    if (!secret || !url) {
      throw new ReconcileError(
        "GitNotConfigured",
        `namespace ${namespace} has no Git repository for deployments: create Secret ${gitSecretName} there with keys url, branch (default main), username and password (a Project does this for its namespace)`,
      );
    }
    const username = decode(secret.data, "username");
    const password = decode(secret.data, "password");
    const hasCredentials = username !== undefined || password !== undefined;
    if (hasCredentials && secret.type !== "kubernetes.io/basic-auth") {
      throw new ReconcileError(
        "GitNotConfigured",
        `Secret ${namespace}/${gitSecretName} holds credentials, so it must be of type kubernetes.io/basic-auth (Fleet clones with it); it is ${secret.type ?? "Opaque"}`,
      );
    }
    return {
      repo: {
        url,
        branch: decode(secret.data, "branch") ?? "main",
        ...(hasCredentials ? { secretName: gitSecretName } : {}),
      },
      credentials: { ...(username ? { username } : {}), ...(password ? { password } : {}) },
    };
  }

  /** The package, its applications and registries, and secret parameter values. */
  private async inputs(dep: AppDeployment): Promise<{ bundles: RenderedBundle[]; pkg: DeploymentPackage }> {
    const ns = dep.metadata.namespace ?? "";
    const ref = dep.spec.packageRef;
    const pkg = this.cache<DeploymentPackage>(DeploymentPackageResource).get(
      `${ns}/${ref.name}-${ref.version}`,
    );
    if (!pkg) {
      throw new ReconcileError(
        "PackageNotFound",
        `DeploymentPackage ${ref.name} version ${ref.version} does not exist in namespace ${ns}; import it or fix spec.packageRef`,
      );
    }
    if (pkg.spec.draft) {
      throw new StalledError(
        "PackageIsDraft",
        `DeploymentPackage ${ref.name} ${ref.version} is a draft; release it (spec.draft: false) before deploying it`,
      );
    }
    if (!pkg.status?.contentDigest) {
      const why = getCondition(pkg.status?.conditions, "Ready")?.message ?? "it has not been checked yet";
      throw new ReconcileError(
        "PackageNotReady",
        `DeploymentPackage ${ref.name} ${ref.version} is not ready: ${why}`,
      );
    }
    const appCache = this.cache<Application>(ApplicationResource);
    const applications = new Map<string, Application>();
    for (const a of pkg.spec.applications) {
      const app = appCache.get(`${ns}/${a.name}-${a.version}`);
      if (!app) {
        throw new ReconcileError(
          "ApplicationNotFound",
          `Application ${a.name} ${a.version} of package ${ref.name} ${ref.version} does not exist in namespace ${ns}`,
        );
      }
      applications.set(a.name, app);
    }
    const registries = new Map(
      this.cache<Registry>(RegistryResource)
        .byNamespace(ns)
        .map((r) => [r.metadata.name ?? "", r] as const),
    );
    const secretValues = new Map<string, Map<string, string>>();
    const secrets = new Map<string, SecretObject | undefined>();
    for (const p of dep.spec.parameters ?? []) {
      if (!p.secretKeyRef) continue;
      const name = p.secretKeyRef.name;
      if (!secrets.has(name))
        secrets.set(name, await this.manager.client.get<SecretObject>(secretsResource, name, ns));
      const value = decode(secrets.get(name)?.data, p.secretKeyRef.key);
      if (value === undefined) continue;
      const forApp = secretValues.get(p.application) ?? new Map<string, string>();
      forApp.set(p.name, value);
      secretValues.set(p.application, forApp);
    }
    try {
      return { bundles: render({ deployment: dep, pkg, applications, registries, secretValues }), pkg };
    } catch (err) {
      if (err instanceof RenderError) throw new StalledError("InvalidSpec", err.message);
      throw err;
    }
  }

  private async deliver(dep: AppDeployment, status: Status): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const ns = dep.metadata.namespace ?? "";
    const name = dep.metadata.name ?? "";
    const key = `${ns}/${name}`;
    const generation = dep.metadata.generation;
    const g = generation !== undefined ? { observedGeneration: generation } : {};
    const condition = (type: string, ok: boolean, reason: string, message: string): void => {
      status.conditions = setCondition(status.conditions, {
        type,
        status: ok ? "True" : "False",
        reason,
        message,
        ...g,
      });
    };
    status.lastHandledReconcileAt = dep.metadata.annotations?.[requestedAtAnnotation];
    const requeue = { requeueAfterMs: Math.min(this.offlineAfterMs / 2, 5 * 60_000) };

    let bundles: RenderedBundle[];
    let pkg: DeploymentPackage;
    try {
      ({ bundles, pkg } = await this.inputs(dep));
    } catch (err) {
      if (!(err instanceof StalledError)) {
        status.phase = "Error";
        throw err;
      }
      status.phase = "Error";
      Object.assign(
        status,
        summarize(status, generation, { kind: "stalled", reason: err.reason, message: err.message }),
      );
      return undefined;
    }
    const git = await this.gitConfig(ns);
    const hash = revisionHash(dep.spec);
    const owned = this.cache<GitRepo>(GitRepoResource)
      .byLabels({ [deploymentLabel]: name })
      .filter((r) => r.metadata.namespace === ns && ownedBy(r, dep));

    // Approval and suspend: nothing new is delivered; what runs keeps running, paused.
    const approved =
      !dep.spec.approval?.required ||
      status.revisionHash === hash ||
      this.cache<Approval>(ApprovalResource)
        .byNamespace(ns)
        .some((a) => a.spec.deploymentRef.name === name && a.spec.revisionHash === hash);
    if (dep.spec.approval?.required) {
      condition(
        "Approved",
        approved,
        approved ? "Approved" : "AwaitingApproval",
        approved
          ? `revision hash ${hash} is approved`
          : `revision hash ${hash} needs an Approval (kubectl outpost approve ${name} -n ${ns})`,
      );
    } else {
      status.conditions = removeCondition(status.conditions, "Approved");
    }
    if (dep.spec.suspend || !approved) {
      await this.pause(owned, true);
      this.report(dep, status, bundles, owned, false);
      status.phase = dep.spec.suspend ? "Suspended" : "AwaitingApproval";
      const message = dep.spec.suspend
        ? "delivery is suspended (spec.suspend); what was delivered keeps running"
        : `waiting for an Approval of revision hash ${hash}: kubectl outpost approve ${name} -n ${ns}`;
      Object.assign(
        status,
        summarize(status, generation, { kind: "stalled", reason: status.phase, message }),
      );
      return requeue;
    }

    // Safety rail: a failed or empty cluster list, or a sudden large drop, keeps targets.
    const distinctTargets = new Map(bundles.map((b) => [JSON.stringify(b.targets), b.targets]));
    const matched = new Set(
      [...distinctTargets.values()].flatMap((t) => this.clusters.targeted(ns, t).map((c) => c.metadata.name)),
    );
    const previous = status.summary?.targets ?? 0;
    const held = getCondition(status.conditions, "TargetsHeld");
    const decision = guardDrop({
      previous,
      current: matched.size,
      heldSince: held?.status === "True" ? held.lastTransitionTime : undefined,
      now: this.now(),
      holdMs: this.dropHoldMs,
    });
    const existing = new Map(owned.map((r) => [r.metadata.name ?? "", r]));
    const targetsOf = (b: RenderedBundle): GitTarget[] =>
      decision.action === "deliver" ? b.targets : (existing.get(b.bundleName)?.spec.targets ?? b.targets);
    if (decision.action === "deliver") {
      status.conditions = removeCondition(status.conditions, "TargetsHeld");
    } else {
      condition(
        "TargetsHeld",
        true,
        decision.action === "hold" ? "LargeDrop" : "NoClustersListed",
        decision.message,
      );
    }

    // Git: one commit for the whole tree, only when it differs from what was synced.
    const tree = treeOf(bundles);
    const digest = treeDigest(tree);
    let commit: string;
    const last = this.synced.get(key);
    if (last?.digest === digest && last.repo === `${git.repo.url}#${git.repo.branch}`) {
      commit = last.commit;
    } else {
      try {
        const res = await this.gitStore(git.credentials).sync({
          repo: git.repo.url,
          branch: git.repo.branch,
          prefix: name,
          files: tree,
          message: `${ns}/${name}: ${dep.spec.packageRef.name} ${dep.spec.packageRef.version} (revision hash ${hash})`,
        });
        commit = res.commit;
        this.synced.set(key, { digest, commit, repo: `${git.repo.url}#${git.repo.branch}` });
        if (res.changed) {
          await this.manager.events.record(
            AppDeploymentResource,
            dep,
            "Normal",
            "Committed",
            `committed ${commit.slice(0, 12)} to ${git.repo.url} ${git.repo.branch}`,
          );
        }
      } catch (err) {
        if (!(err instanceof GitStoreError)) throw err;
        condition("Delivered", false, `Git${err.reason}`, err.message);
        throw new ReconcileError(`Git${err.reason}`, `${err.message}; retrying`);
      }
    }

    // Secret parameters: a Secret per bundle next to its GitRepo (Fleet copies it).
    // Only Secrets this deployment owns: Fleet's own Secrets carry the bundle labels too.
    const ownSecrets = (
      await client.list<SecretObject>(secretsResource, {
        namespace: ns,
        labelSelector: `${deploymentLabel}=${name},app.kubernetes.io/managed-by=outpost`,
      })
    ).items.filter((o) => ownedBy(o, dep));
    const wanted = new Set<string>();
    for (const b of bundles) {
      if (!b.secret) continue;
      wanted.add(b.secret.name);
      const data = { "values.yaml": Buffer.from(b.secret.valuesYaml).toString("base64") };
      const have = ownSecrets.find((s) => s.metadata.name === b.secret?.name);
      if (have && isDeepStrictEqual(have.data, data)) continue;
      await client.apply(
        secretsResource,
        {
          metadata: {
            name: b.secret.name,
            namespace: ns,
            labels: {
              [deploymentLabel]: name,
              [applicationLabel]: b.application,
              "app.kubernetes.io/managed-by": "outpost",
            },
            ownerReferences: gitRepoFor(dep, b, git.repo, false).metadata.ownerReferences,
          },
          type: "Opaque",
          data,
        },
        { fieldManager },
      );
    }
    for (const s of ownSecrets) {
      if (!wanted.has(s.metadata.name ?? "")) await client.delete(secretsResource, s.metadata.name ?? "", ns);
    }

    // GitRepos: one per application with targets; the others go.
    const keep = new Set<string>();
    for (const b of bundles) {
      const targets = targetsOf(b);
      if (targets.length === 0) continue;
      keep.add(b.bundleName);
      const desired = gitRepoFor(dep, b, git.repo, false, targets);
      const have = existing.get(b.bundleName);
      if (have && sameGitRepo(have, desired)) continue;
      await client.apply(GitRepoResource, desired, { fieldManager });
    }
    for (const [repoName, r] of existing) {
      if (!keep.has(repoName) && !r.metadata.deletionTimestamp)
        await client.delete(GitRepoResource, repoName, ns);
    }
    condition(
      "Delivered",
      true,
      "Committed",
      `commit ${commit.slice(0, 12)} on ${git.repo.url} ${git.repo.branch}`,
    );

    // Revision history.
    const packageDigest = pkg.status?.contentDigest ?? "";
    if (status.revisionHash !== hash || status.commit !== commit || status.revision === undefined) {
      const revisions = await client.list<ControllerRevision>(ControllerRevisionResource, {
        namespace: ns,
        labelSelector: `${deploymentLabel}=${name}`,
      });
      const plan = planRevision(dep, hash, revisions.items, {
        [commitAnnotation]: commit,
        [packageDigestAnnotation]: packageDigest,
      });
      if (plan.write === "create") await client.create(ControllerRevisionResource, plan.revision);
      if (plan.write === "replace") await client.replace(ControllerRevisionResource, plan.revision);
      for (const old of plan.prune) await client.delete(ControllerRevisionResource, old, ns);
      status.revision = plan.revision.revision;
      status.revisionHash = hash;
      status.commit = commit;
    }
    status.packageDigest = packageDigest;

    const delivered = [...keep].map((n) => existing.get(n)).filter((r): r is GitRepo => r !== undefined);
    // Status counts what is delivered: while a drop is held, the old targets.
    this.report(
      dep,
      status,
      bundles.map((b) => ({ ...b, targets: targetsOf(b) })),
      delivered,
    );
    if (decision.action === "hold") {
      // Look again when the hold ends.
      const left = Date.parse(decision.since) + this.dropHoldMs - this.now().getTime();
      return { requeueAfterMs: Math.max(100, Math.min(requeue.requeueAfterMs, left + 100)) };
    }
    return requeue;
  }

  /** Status from Fleet: summary, per application, the first non-ready clusters, phase, Ready. */
  private report(
    dep: AppDeployment,
    status: Status,
    bundles: RenderedBundle[],
    repos: GitRepo[],
    setPhase = true,
  ): void {
    const ns = dep.metadata.namespace ?? "";
    const name = dep.metadata.name ?? "";
    const bds = this.cache<FleetBundleDeployment & KubeObject>(BundleDeploymentResource).byLabels({
      [deploymentLabel]: name,
      "fleet.cattle.io/bundle-namespace": ns,
    });
    const result = aggregate({
      apps: bundles.map((b) => ({
        application: b.application,
        bundleName: b.bundleName,
        targets: b.targets,
        // Not yet delivered (suspended, awaiting approval): what runs is what counts.
        ...(setPhase ? { contentHash: b.contentHash } : {}),
      })),
      clusters: this.clusters.clusters(ns),
      bundleDeployments: bds,
      now: this.now(),
      offlineAfterMs: this.offlineAfterMs,
      offline: this.clusters.offline(ns),
      targeted: (targets) => this.clusters.targeted(ns, targets),
    });
    // Fleet's own errors (a clone or a fleet.yaml it refused) name the application.
    for (const r of repos) {
      const stalled = r.status?.conditions?.find((c) => c.type === "Stalled" && c.status === "True");
      const app = result.applications.find((a) => a.name === r.metadata.labels?.[applicationLabel]);
      if (stalled && app) app.message = `Fleet: ${stalled.message ?? stalled.reason ?? "GitRepo failed"}`;
    }
    status.summary = result.summary;
    status.applications = result.applications;
    status.clusters = result.clusters;
    if (!setPhase) return;
    const fleetError = result.applications.find((a) => a.message?.startsWith("Fleet: "));
    const generation = dep.metadata.generation;
    const phase = phaseOf(result.summary, (status.revision ?? 1) <= 1);
    status.phase = phase;
    const s = result.summary;
    const counts = `${s.ready}/${s.targets} clusters ready${s.offline ? `, ${s.offline} offline` : ""}${s.pending ? `, ${s.pending} pending` : ""}${s.notReady ? `, ${s.notReady} not ready` : ""}`;
    if (fleetError) {
      Object.assign(
        status,
        summarize(status, generation, {
          kind: "failed",
          reason: "FleetError",
          message: `${fleetError.name}: ${fleetError.message ?? ""}`,
        }),
      );
    } else if (phase === "NoTargetClusters") {
      const how = dep.spec.targets.clusterSelector
        ? `the clusterSelector ${JSON.stringify(dep.spec.targets.clusterSelector)}`
        : `spec.targets.clusters (${(dep.spec.targets.clusters ?? []).join(", ") || "empty"})`;
      Object.assign(
        status,
        summarize(status, generation, {
          kind: "failed",
          reason: "NoTargetClusters",
          message: `no Fleet cluster in namespace ${ns} matches ${how}; register clusters or change spec.targets`,
        }),
      );
    } else if (phase === "Running") {
      Object.assign(
        status,
        summarize(status, generation, {
          kind: "ready",
          reason: "Running",
          message: `revision ${status.revision ?? "?"}: ${counts}`,
        }),
      );
    } else if (phase === "Deploying" || phase === "Updating") {
      Object.assign(
        status,
        summarize(status, generation, { kind: "progressing", reason: phase, message: counts }),
      );
    } else {
      const first = result.clusters[0];
      Object.assign(
        status,
        summarize(status, generation, {
          kind: "failed",
          reason: phase,
          message: `${counts}${first ? `; ${first.name}: ${first.message}` : ""}`,
        }),
      );
    }
  }

  private async pause(repos: GitRepo[], paused: boolean): Promise<void> {
    for (const r of repos) {
      if (r.spec.paused === paused) continue;
      await this.manager.client.mergePatch(GitRepoResource, r.metadata.name ?? "", r.metadata.namespace, {
        spec: { paused },
      });
    }
  }

  /** GitRepos first (Fleet uninstalls), then the folder in Git (one commit), then release. */
  private async finalize(dep: AppDeployment): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const ns = dep.metadata.namespace ?? "";
    const name = dep.metadata.name ?? "";
    if (!dep.metadata.finalizers?.includes(deployFinalizer)) return undefined;
    return withStatus(client, AppDeploymentResource, dep, fieldManager, async (status: Status) => {
      status.phase = "Terminating";
      const repos = (
        await client.list<GitRepo>(GitRepoResource, {
          namespace: ns,
          labelSelector: `${deploymentLabel}=${name}`,
        })
      ).items.filter((r) => ownedBy(r, dep));
      for (const r of repos) {
        if (!r.metadata.deletionTimestamp) await client.delete(GitRepoResource, r.metadata.name ?? "", ns);
      }
      if (repos.length > 0) {
        Object.assign(
          status,
          summarize(status, dep.metadata.generation, {
            kind: "progressing",
            reason: "Terminating",
            message: `waiting for ${repos.length} Fleet GitRepo(s) to be removed`,
          }),
        );
        return { requeueAfterMs: 1_000 };
      }
      let git: GitConfig | undefined;
      try {
        git = await this.gitConfig(ns);
      } catch (err) {
        // No repository configured any more: nothing to remove from Git.
        if (!(err instanceof ReconcileError)) throw err;
      }
      if (git) {
        try {
          await this.gitStore(git.credentials).sync({
            repo: git.repo.url,
            branch: git.repo.branch,
            prefix: name,
            files: new Map(),
            message: `${ns}/${name}: removed`,
          });
        } catch (err) {
          if (!(err instanceof GitStoreError)) throw err;
          throw new ReconcileError(
            `Git${err.reason}`,
            `removing the deployment's folder from Git: ${err.message}; retrying`,
          );
        }
      }
      this.synced.delete(`${ns}/${name}`);
      try {
        await removeFinalizer(client, AppDeploymentResource, dep, deployFinalizer);
      } catch (err) {
        if (!ApiError.isNotFound(err)) throw err;
      }
      return undefined;
    });
  }
}

/** Whether `dep` is the controller owner of `obj` (what the operator may change or delete). */
function ownedBy(obj: KubeObject, dep: AppDeployment): boolean {
  return (obj.metadata.ownerReferences ?? []).some(
    (o) => o.controller === true && o.kind === "AppDeployment" && o.uid === dep.metadata.uid,
  );
}

/** A failure only a change of the spec (or of what it names) can fix. */
class StalledError extends ReconcileError {}

function sameGitRepo(have: GitRepo, want: GitRepo): boolean {
  const labels = have.metadata.labels ?? {};
  return (
    isDeepStrictEqual(
      Object.fromEntries(Object.keys(want.spec).map((k) => [k, (have.spec as Record<string, unknown>)[k]])),
      want.spec,
    ) &&
    Object.entries(want.metadata.labels ?? {}).every(([k, v]) => labels[k] === v) &&
    Object.entries(want.metadata.annotations ?? {}).every(([k, v]) => have.metadata.annotations?.[k] === v) &&
    (have.metadata.ownerReferences ?? []).some(
      (o) => o.controller && o.uid === want.metadata.ownerReferences?.[0]?.uid,
    )
  );
}

export function registerAppDeployments(manager: Manager, options: DeployOptions = {}): void {
  manager.informer<FleetBundleDeployment & KubeObject>(BundleDeploymentResource, {
    transform: slimBundleDeployment,
  });
  const offlineAfterMs = options.offlineAfterMs ?? 30 * 60_000;
  const deploymentsIn = (ns: string, test: (d: AppDeployment) => boolean = () => true): string[] =>
    manager
      .informer<AppDeployment>(AppDeploymentResource)
      .cache.byNamespace(ns)
      .filter(test)
      .map((d) => `${ns}/${d.metadata.name ?? ""}`);
  const stale = (c: KubeObject): boolean => {
    const seen = (c as FleetCluster).status?.agent?.lastSeen;
    return !seen || Date.now() - Date.parse(seen) > offlineAfterMs;
  };
  manager
    // Reconciles mostly wait on Git and the API server; many at once also make bigger Git
    // batches (one fetch and one push for all the changes queued meanwhile): 1,000
    // deployments at once are delivered in about a third of the time 16 workers take.
    .controller("appdeployment", { workers: 96, maxDelayMs: 30_000 })
    .for(AppDeploymentResource)
    .owns(GitRepoResource)
    // Catalog objects a deployment renders from (also starts their informers).
    .watches(
      ApplicationResource,
      (o) => {
        const a = o as Application;
        const ns = a.metadata.namespace ?? "";
        const pkgs = manager.informer<DeploymentPackage>(DeploymentPackageResource).cache.byNamespace(ns);
        return deploymentsIn(ns, (d) =>
          pkgs.some(
            (p) =>
              p.spec.name === d.spec.packageRef.name &&
              p.spec.version === d.spec.packageRef.version &&
              p.spec.applications.some((x) => x.name === a.spec.name && x.version === a.spec.version),
          ),
        );
      },
      generationOrRequestChanged,
    )
    .watches(RegistryResource, (o) => deploymentsIn(o.metadata.namespace ?? ""), generationOrRequestChanged)
    .watches(ApprovalResource, (o) => {
      const a = o as Approval;
      return [`${a.metadata.namespace ?? ""}/${a.spec.deploymentRef.name}`];
    })
    .watches(
      DeploymentPackageResource,
      (o) => {
        const p = o as DeploymentPackage;
        return deploymentsIn(
          p.metadata.namespace ?? "",
          (d) => d.spec.packageRef.name === p.spec.name && d.spec.packageRef.version === p.spec.version,
        );
      },
      (o, old) =>
        (o as DeploymentPackage).status?.contentDigest !== (old as DeploymentPackage).status?.contentDigest,
    )
    .watches(
      FleetClusterResource,
      (c) => deploymentsIn(c.metadata.namespace ?? ""),
      // Label changes move clusters in or out; an agent back from silence catches up.
      (c, old) => !isDeepStrictEqual(c.metadata.labels, old.metadata.labels) || (stale(old) && !stale(c)),
    )
    .watches(BundleDeploymentResource, (bd) => {
      const l = bd.metadata.labels ?? {};
      const dep = l[deploymentLabel];
      const ns = l["fleet.cattle.io/bundle-namespace"];
      return dep && ns ? [`${ns}/${dep}`] : [];
    })
    .complete(new AppDeploymentReconciler(manager, options));
}
