// AppDeployment reconciler. After the deletion path and the finalizer, a reconcile runs
// ordered sub-reconcilers with one signature, each owning a few conditions, stopping at
// the first that ends the run (as Flux's source-controller does):
//   1. inputs     render the deployment from its package (render.ts); a bad spec stalls;
//   2. engine     the project's delivery engine (Fleet or Argo CD), installed and the
//                 same one that delivered before (a switch is refused, nothing changes);
//   3. approval   approval and suspend: nothing new is delivered, what runs is paused;
//   4. targets    the safety rail against mass target removal (lifecycle.ts);
//   5. git        one commit of the whole tree, only when it changed (gitstore.ts);
//   6. delivery   the engine's objects for that commit (engines/);
//   7. revisions  each delivered spec as a ControllerRevision (revisions.ts);
//   8. status     per-cluster state from the engine, summarized (status.ts).
// The status is written on every path (withStatus). Deletion removes the engine's
// objects (the engine uninstalls), then the deployment's folder in Git (one commit),
// then releases the object.
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { Approval } from "../api/approval.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { Project } from "../api/project.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import type { RegistryAccess } from "../catalog/registry-client.ts";
import { registryAccess } from "../catalog/secrets.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  ApprovalResource,
  DeploymentPackageResource,
  ProjectResource,
  RegistryResource,
} from "../api/resources.generated.ts";
import { configureInventory, inventoryOf, type ClusterInventory } from "../inventory/inventory.ts";
import { matches } from "../inventory/selector.ts";
import { ApiError, type KubeObject } from "../runtime/client.ts";
import { getCondition, removeCondition, setCondition, summarize } from "../runtime/conditions.ts";
import {
  generationOrRequestChanged,
  requestedAtAnnotation,
  type Request,
  type Result,
} from "../runtime/controller.ts";
import { secretsResource } from "../runtime/core.ts";
import type { Manager } from "../runtime/manager.ts";
import { addFinalizer, ReconcileError, removeFinalizer, withStatus } from "../runtime/reconcile.ts";
import { ArgoCDEngine } from "./engines/argocd.ts";
import { engineNames, type DeliveryEngine, type EngineName } from "./engines/engine.ts";
import { FleetEngine } from "./engines/fleet.ts";
import { ControllerRevisionResource, deploymentLabel, type GitTargetRepo } from "./fleet.ts";
import { GitStoreError, HttpGitStore, type GitStore } from "./gitstore.ts";
import { guardDrop, revisionHash, type DropDecision } from "./lifecycle.ts";
import { bundleNameOf, render, RenderError, treeDigest, treeOf, type RenderedBundle } from "./render.ts";
import {
  commitAnnotation,
  packageDigestAnnotation,
  planRevision,
  type ControllerRevision,
} from "./revisions.ts";
import { aggregate, phaseOf } from "./status.ts";

type Status = NonNullable<AppDeployment["status"]>;

export const deployFinalizer = "deploy.outpost.dev/cleanup";
/** The Secret in a deployment's namespace naming its Git repository (and the engine's credentials). */
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
  /** The engines this operator delivers with. Default: fleet. */
  engines?: EngineName[];
  /** The engine of projects that name none. Default: fleet. */
  defaultEngine?: EngineName;
  /** Argo CD's namespace (its ApplicationSets, AppProjects and cluster Secrets). Default argocd. */
  argocdNamespace?: string;
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

/** A failure only a change of the spec (or of what it names) can fix. */
class StalledError extends ReconcileError {}

const engineTitle: Record<EngineName, string> = { fleet: "Fleet", argocd: "Argo CD" };

/** One reconcile of one deployment: what the sub-reconcilers found so far. */
interface Run {
  dep: AppDeployment;
  status: Status;
  ns: string;
  name: string;
  bundles: RenderedBundle[];
  pkg?: DeploymentPackage;
  registries: Map<string, Registry>;
  /** How to reach the registries the bundles' charts come from, by Registry name. */
  access: Map<string, RegistryAccess>;
  engine?: DeliveryEngine;
  hash: string;
  decision?: DropDecision;
  git?: GitConfig;
  commit?: string;
  /** treeDigest of the deployment's folder and repository at `commit`. */
  treeDigest?: string;
}

/** What an earlier sub-reconciler of the run found (a later one runs only after it). */
function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`internal error: no ${what} in this reconcile`);
  return value;
}

/** A sub-reconciler either lets the next one run, or ends the run with a result. */
type Outcome = { next: true } | { done: Result | undefined };
const next: Outcome = { next: true };
type SubReconciler = (run: Run) => Promise<Outcome>;

export class AppDeploymentReconciler {
  /** Per deployment: the tree (and repository) last synced to Git and its commit (skips needless clones). */
  private readonly synced = new Map<string, { digest: string; commit: string }>();
  private readonly dropHoldMs: number;
  private readonly now: () => Date;
  private readonly gitStore: (c: GitCredentials) => GitStore;
  private readonly inventory: ClusterInventory;
  readonly engines: Map<EngineName, DeliveryEngine>;
  private readonly defaultEngine: EngineName;
  private readonly steps: SubReconciler[];

  constructor(
    private readonly manager: Manager,
    options: DeployOptions = {},
  ) {
    this.dropHoldMs = options.dropHoldMs ?? 5 * 60_000;
    this.now = options.now ?? (() => new Date());
    this.inventory = inventoryOf(manager);
    const enabled = options.engines ?? ["fleet"];
    this.engines = new Map<EngineName, DeliveryEngine>();
    if (enabled.includes("fleet")) this.engines.set("fleet", new FleetEngine(manager));
    if (enabled.includes("argocd")) {
      this.engines.set(
        "argocd",
        new ArgoCDEngine(manager, this.inventory, {
          namespace: options.argocdNamespace ?? "argocd",
          probeIntervalMs: Math.min(15_000, Math.max(500, this.inventory.offlineAfterMs / 4)),
        }),
      );
    }
    this.defaultEngine = options.defaultEngine ?? "fleet";
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
    this.steps = [
      (r) => this.reconcileInputs(r),
      (r) => this.reconcileEngine(r),
      (r) => this.reconcileApproval(r),
      (r) => this.reconcileTargets(r),
      (r) => this.reconcileGit(r),
      (r) => this.reconcileDelivery(r),
      (r) => this.reconcileRevisions(r),
      (r) => this.reconcileStatus(r),
    ];
  }

  private cache<T extends KubeObject>(r: Parameters<Manager["informer"]>[0]) {
    return this.manager.informer<T>(r).cache;
  }

  /** How often a delivered deployment is looked at again (status, offline clusters). */
  private get requeue(): Result {
    return { requeueAfterMs: Math.min(this.inventory.offlineAfterMs / 2, 5 * 60_000) };
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
    return withStatus(client, AppDeploymentResource, dep, fieldManager, async (status: Status) => {
      status.lastHandledReconcileAt = dep.metadata.annotations?.[requestedAtAnnotation];
      const run: Run = {
        dep,
        status,
        ns: dep.metadata.namespace ?? "",
        name: dep.metadata.name ?? "",
        bundles: [],
        registries: new Map(),
        access: new Map(),
        hash: revisionHash(dep.spec),
      };
      for (const step of this.steps) {
        const outcome = await step(run);
        if ("done" in outcome) return outcome.done;
      }
      return undefined;
    });
  }

  private condition(run: Run, type: string, ok: boolean, reason: string, message: string): void {
    const generation = run.dep.metadata.generation;
    run.status.conditions = setCondition(run.status.conditions, {
      type,
      status: ok ? "True" : "False",
      reason,
      message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    });
  }

  private stall(run: Run, reason: string, message: string, phase: Status["phase"] = "Error"): Outcome {
    run.status.phase = phase;
    Object.assign(
      run.status,
      summarize(run.status, run.dep.metadata.generation, { kind: "stalled", reason, message }),
    );
    return { done: undefined };
  }

  private stalled(run: Run, reason: string, message: string): Promise<Outcome> {
    return Promise.resolve(this.stall(run, reason, message));
  }

  // ---------- 1. inputs ----------

  /** The package, its applications and registries, and secret parameter values, rendered. */
  private async reconcileInputs(run: Run): Promise<Outcome> {
    const { dep, ns } = run;
    try {
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
      const secretValues = await this.secretValues(dep);
      try {
        run.bundles = render({ deployment: dep, pkg, applications, registries, secretValues });
      } catch (err) {
        if (err instanceof RenderError) throw new StalledError("InvalidSpec", err.message);
        throw err;
      }
      const conflict = this.nameConflict(dep, run.bundles);
      if (conflict) throw new StalledError("NameConflict", conflict);
      run.access = await this.chartAccess(ns, run.bundles, registries);
      run.pkg = pkg;
      run.registries = registries;
      return next;
    } catch (err) {
      if (err instanceof StalledError) return this.stall(run, err.reason, err.message);
      run.status.phase = "Error";
      throw err;
    }
  }

  /**
   * Another deployment of the namespace, created earlier, whose application would be
   * delivered under the same name as one of this one's (the engine's objects would be
   * shared): said so, naming both; the earlier deployment keeps the name.
   */
  private nameConflict(dep: AppDeployment, bundles: RenderedBundle[]): string | undefined {
    const ns = dep.metadata.namespace ?? "";
    const earlier = (o: AppDeployment): boolean => {
      const a = o.metadata.creationTimestamp ?? "";
      const b = dep.metadata.creationTimestamp ?? "";
      return a < b || (a === b && (o.metadata.name ?? "") < (dep.metadata.name ?? ""));
    };
    const deployments = this.cache<AppDeployment>(AppDeploymentResource);
    const packages = this.cache<DeploymentPackage>(DeploymentPackageResource);
    // Names are DNS labels, so two deliveries share a name when "<deployment>-<application>"
    // is the same text: the other deployment's name is this text up to one of its dashes.
    // Looking those up keeps this O(applications), not O(deployments in the namespace).
    for (const b of bundles) {
      const text = `${dep.metadata.name ?? ""}-${b.application}`;
      for (let i = text.indexOf("-"); i > 0; i = text.indexOf("-", i + 1)) {
        const other = deployments.get(`${ns}/${text.slice(0, i)}`);
        if (!other || other.metadata.uid === dep.metadata.uid || !earlier(other)) continue;
        const ref = other.spec.packageRef;
        const pkg = packages.get(`${ns}/${ref.name}-${ref.version}`);
        const a = pkg?.spec.applications.find(
          (x) => bundleNameOf(other.metadata.name ?? "", x.name) === b.bundleName,
        );
        if (!a) continue;
        return `application ${b.application} of this deployment and application ${a.name} of AppDeployment ${other.metadata.name ?? ""} (created earlier) would both be delivered as ${b.bundleName}: rename this deployment (its name joined with an application's name must not equal another deployment's)`;
      }
    }
    return undefined;
  }

  /**
   * The credentials and CA of each Registry the bundles' charts come from, read on every
   * reconcile so that engine copies follow a changed Secret. Fleet and Argo CD log in to
   * chart registries with a username and password only: a Registry whose Secret holds a
   * token alone is refused here, before anything is committed or delivered.
   */
  private async chartAccess(
    ns: string,
    bundles: RenderedBundle[],
    registries: Map<string, Registry>,
  ): Promise<Map<string, RegistryAccess>> {
    const out = new Map<string, RegistryAccess>();
    for (const name of new Set(bundles.map((b) => b.chart.registry))) {
      const registry = registries.get(name);
      if (!registry) continue;
      const access = await registryAccess(this.manager.client, registry);
      if (access.token !== undefined && access.username === undefined) {
        throw new ReconcileError(
          "RegistryCredentialsUnsupported",
          `Registry ${name}: its Secret ${registry.spec.credentialsSecretRef?.name ?? ""} holds only a token, but Fleet and Argo CD fetch charts with a username and password; add the keys username and password to that Secret (for Harbor: the robot account's name and secret)`,
        );
      }
      out.set(name, access);
    }
    return out;
  }

  /** Secret parameter values read from their Secrets: application → parameter → text. */
  private async secretValues(dep: AppDeployment): Promise<Map<string, Map<string, string>>> {
    const ns = dep.metadata.namespace ?? "";
    const out = new Map<string, Map<string, string>>();
    const secrets = new Map<string, SecretObject | undefined>();
    for (const p of dep.spec.parameters ?? []) {
      if (!p.secretKeyRef) continue;
      const name = p.secretKeyRef.name;
      if (!secrets.has(name))
        secrets.set(name, await this.manager.client.get<SecretObject>(secretsResource, name, ns));
      const value = decode(secrets.get(name)?.data, p.secretKeyRef.key);
      if (value === undefined) continue;
      const forApp = out.get(p.application) ?? new Map<string, string>();
      forApp.set(p.name, value);
      out.set(p.application, forApp);
    }
    return out;
  }

  // ---------- 2. engine ----------

  /** The engine the project asks for: enabled, installed, and the one that delivered before. */
  private reconcileEngine(run: Run): Promise<Outcome> {
    const { dep, ns, status } = run;
    const project = this.manager.informer<Project>(ProjectResource).cache.get(ns);
    const wanted = project?.spec.delivery?.engine ?? this.defaultEngine;
    const previous = status.engine ?? [...this.engines.values()].find((e) => e.holds(dep))?.name;
    if (previous && previous !== wanted && this.engines.get(previous)?.holds(dep)) {
      return this.stalled(
        run,
        "EngineChanged",
        `${engineTitle[previous]} delivers this deployment, but project ${ns} now asks for ${engineTitle[wanted]}; Outpost does not move a running deployment between engines: set the project's spec.delivery.engine back to ${previous}, or delete this AppDeployment and create it again`,
      );
    }
    const engine = this.engines.get(wanted);
    if (!engine) {
      return this.stalled(
        run,
        "EngineNotEnabled",
        `project ${ns} delivers with ${engineTitle[wanted]}, which this Outpost installation does not run: start outpost-operator with --engines=${[...new Set([...this.engines.keys(), wanted])].join(",")} (see docs/engines.md), or set the project's spec.delivery.engine to ${[...this.engines.keys()].join(" or ")}`,
      );
    }
    // Nothing is committed or applied for an engine that cannot take it.
    const missing = engine.unavailable();
    if (missing) {
      this.condition(run, "Delivered", false, "EngineUnavailable", missing);
      throw new ReconcileError("EngineUnavailable", `${missing}; retrying`);
    }
    const refused = engine.refusals(run.bundles);
    if (refused.length > 0) {
      return this.stalled(
        run,
        "NotDeliverable",
        `${engineTitle[engine.name]} would not deliver this as written: ${refused.join("; ")}`,
      );
    }
    run.engine = engine;
    status.engine = engine.name;
    return Promise.resolve(next);
  }

  // ---------- 3. approval and suspend ----------

  private async reconcileApproval(run: Run): Promise<Outcome> {
    const { dep, ns, name, status, hash } = run;
    const engine = required(run.engine, "engine");
    const why = this.approvalNeeded(run);
    const needsApproval = why !== undefined;
    const approved =
      !needsApproval ||
      status.revisionHash === hash ||
      this.cache<Approval>(ApprovalResource)
        .byNamespace(ns)
        .some((a) => a.spec.deploymentRef.name === name && a.spec.revisionHash === hash);
    if (needsApproval) {
      this.condition(
        run,
        "Approved",
        approved,
        approved ? "Approved" : "AwaitingApproval",
        approved
          ? `revision hash ${hash} is approved`
          : `revision hash ${hash} needs an Approval (kubectl outpost approve ${name} -n ${ns}): ${why}`,
      );
    } else {
      status.conditions = removeCondition(status.conditions, "Approved");
    }
    if (!dep.spec.suspend && approved) return next;
    // Nothing new is delivered; what runs keeps running, paused.
    await engine.pause(dep, true);
    this.report(run, false);
    status.phase = dep.spec.suspend ? "Suspended" : "AwaitingApproval";
    const message = dep.spec.suspend
      ? "delivery is suspended (spec.suspend); what was delivered keeps running"
      : `waiting for an Approval of revision hash ${hash}: kubectl outpost approve ${name} -n ${ns}`;
    Object.assign(
      status,
      summarize(status, dep.metadata.generation, { kind: "stalled", reason: status.phase, message }),
    );
    return { done: this.requeue };
  }

  /**
   * Why the deployment's changes need an Approval, or undefined. The Project's policy
   * (spec.approval, out of deployers' reach) holds whatever the deployment says; the
   * deployment's own spec.approval.required can only add to it. A clusterSelector counts
   * the clusters the change reaches and those it would leave (cluster labels are set by
   * whoever registers clusters).
   */
  private approvalNeeded(run: Run): string | undefined {
    const { dep, ns } = run;
    const policy = this.manager.informer<Project>(ProjectResource).cache.get(ns)?.spec.approval;
    if (policy?.required)
      return `project ${ns} requires approval of every deployment (Project spec.approval.required)`;
    const selector = policy?.clusterSelector;
    if (selector) {
      const engine = required(run.engine, "engine");
      const lists = [...run.bundles.map((b) => b.targets), ...engine.deliveredTargets(dep).values()];
      const gated = new Set<string>();
      for (const targets of new Map(lists.map((t) => [JSON.stringify(t), t])).values())
        for (const c of this.inventory.targeted(ns, targets, engine.clusters))
          if (matches(selector, c.metadata.labels)) gated.add(c.metadata.name ?? "");
      if (gated.size > 0) {
        const names = [...gated].sort();
        return `it reaches cluster(s) ${names.slice(0, 5).join(", ")}${names.length > 5 ? ` and ${names.length - 5} more` : ""}, which project ${ns}'s spec.approval.clusterSelector selects`;
      }
    }
    if (dep.spec.approval?.required) return "spec.approval.required";
    return undefined;
  }

  // ---------- 4. targets: the safety rail ----------

  /** A failed or empty cluster list, or a sudden large drop, keeps the delivered targets. */
  private reconcileTargets(run: Run): Promise<Outcome> {
    const { ns, status } = run;
    const engine = required(run.engine, "engine");
    const distinct = [...new Map(run.bundles.map((b) => [JSON.stringify(b.targets), b.targets])).values()];
    const lists = distinct.map((t) => this.inventory.targeted(ns, t, engine.clusters));
    // One target list (the usual case): its length; otherwise the clusters any selects.
    const matchedCount =
      lists.length === 1
        ? (lists[0]?.length ?? 0)
        : new Set(lists.flatMap((l) => l.map((c) => c.metadata.name))).size;
    const held = getCondition(status.conditions, "TargetsHeld");
    const decision = guardDrop({
      previous: status.summary?.targets ?? 0,
      current: matchedCount,
      heldSince: held?.status === "True" ? held.lastTransitionTime : undefined,
      now: this.now(),
      holdMs: this.dropHoldMs,
    });
    run.decision = decision;
    if (decision.action === "deliver") {
      status.conditions = removeCondition(status.conditions, "TargetsHeld");
    } else {
      const delivered = engine.deliveredTargets(run.dep);
      run.bundles = run.bundles.map((b) => ({ ...b, targets: delivered.get(b.bundleName) ?? b.targets }));
      this.condition(
        run,
        "TargetsHeld",
        true,
        decision.action === "hold" ? "LargeDrop" : "NoClustersListed",
        decision.message,
      );
    }
    return Promise.resolve(next);
  }

  // ---------- 5. git ----------

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
        `Secret ${namespace}/${gitSecretName} holds credentials, so it must be of type kubernetes.io/basic-auth (the delivery engine clones with it); it is ${secret.type ?? "Opaque"}`,
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

  /**
   * One commit for the whole tree, only when it differs from what was synced. A deployment
   * whose folder did not change stays pinned to the commit it was delivered at (status),
   * not to the branch's head: other deployments' commits must not move its engine objects.
   */
  private async reconcileGit(run: Run): Promise<Outcome> {
    const { dep, ns, name, hash } = run;
    const engine = required(run.engine, "engine");
    const git = await this.gitConfig(ns);
    run.git = git;
    const key = `${ns}/${name}`;
    const tree = treeOf(run.bundles.map((b) => ({ ...b, files: { ...b.files, ...engine.extraFiles(b) } })));
    const digest = treeDigest(tree, `${git.repo.url}#${git.repo.branch}`);
    run.treeDigest = digest;
    const last = this.synced.get(key);
    if (last?.digest === digest) {
      run.commit = last.commit;
      return next;
    }
    try {
      const res = await this.gitStore(git.credentials).sync({
        repo: git.repo.url,
        branch: git.repo.branch,
        prefix: name,
        files: tree,
        message: `${ns}/${name}: ${dep.spec.packageRef.name} ${dep.spec.packageRef.version} (revision hash ${hash})`,
      });
      // Unchanged in Git (after a restart, say): the commit in status still holds this folder.
      const pinned = !res.changed && dep.status?.treeDigest === digest ? dep.status.commit : undefined;
      run.commit = pinned ?? res.commit;
      this.synced.set(key, { digest, commit: run.commit });
      if (res.changed) {
        await this.manager.events.record(
          AppDeploymentResource,
          dep,
          "Normal",
          "Committed",
          `committed ${res.commit.slice(0, 12)} to ${git.repo.url} ${git.repo.branch}`,
        );
      }
      return next;
    } catch (err) {
      if (!(err instanceof GitStoreError)) throw err;
      this.condition(run, "Delivered", false, `Git${err.reason}`, err.message);
      throw new ReconcileError(`Git${err.reason}`, `${err.message}; retrying`);
    }
  }

  // ---------- 6. delivery ----------

  private async reconcileDelivery(run: Run): Promise<Outcome> {
    const engine = required(run.engine, "engine");
    const git = required(run.git, "git");
    const commit = run.commit ?? "";
    await engine.apply({
      deployment: run.dep,
      bundles: run.bundles,
      git: git.repo,
      commit,
      registries: run.registries,
      access: run.access,
    });
    const limits = engine.limits(run.dep);
    if (limits.length > 0) this.condition(run, "SpecApplied", false, "NotAppliedByEngine", limits.join("; "));
    else run.status.conditions = removeCondition(run.status.conditions, "SpecApplied");
    this.condition(
      run,
      "Delivered",
      true,
      "Committed",
      `commit ${commit.slice(0, 12)} on ${git.repo.url} ${git.repo.branch}, delivered by ${engineTitle[engine.name]}`,
    );
    return next;
  }

  // ---------- 7. revisions ----------

  private async reconcileRevisions(run: Run): Promise<Outcome> {
    const { client } = this.manager;
    const { dep, ns, name, status, hash } = run;
    const commit = run.commit ?? "";
    const packageDigest = run.pkg?.status?.contentDigest ?? "";
    if (run.treeDigest) status.treeDigest = run.treeDigest;
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
    return next;
  }

  // ---------- 8. status ----------

  private reconcileStatus(run: Run): Promise<Outcome> {
    // Status counts what is delivered: while a drop is held, the old targets.
    this.report(run, true);
    const decision = run.decision;
    if (decision?.action === "hold") {
      // Look again when the hold ends.
      const left = Date.parse(decision.since) + this.dropHoldMs - this.now().getTime();
      const every = this.requeue.requeueAfterMs ?? 0;
      return Promise.resolve({ done: { requeueAfterMs: Math.max(100, Math.min(every, left + 100)) } });
    }
    return Promise.resolve({ done: this.requeue });
  }

  /** Status from the engine: summary, per application, the first non-ready clusters, phase, Ready. */
  private report(run: Run, delivered: boolean): void {
    const { dep, ns, status } = run;
    const engine = required(run.engine, "engine");
    const source = engine.clusters;
    const result = aggregate({
      apps: run.bundles.map((b) => ({
        application: b.application,
        bundleName: b.bundleName,
        targets: b.targets,
        // Not yet delivered (suspended, awaiting approval): what runs is what counts.
        ...(delivered ? { contentHash: b.contentHash } : {}),
      })),
      clusters: this.inventory.clusters(ns, source),
      offline: this.inventory.offline(ns, source),
      targeted: (targets) => this.inventory.targeted(ns, targets, source),
      stateOf: engine.states(dep, delivered ? run.commit : status.commit),
    });
    const problems = engine.problems(dep);
    for (const app of result.applications) {
      const problem = problems.get(app.name);
      if (problem) app.message = problem;
    }
    status.summary = result.summary;
    status.applications = result.applications;
    status.clusters = result.clusters;
    if (!delivered) return;
    const engineError = result.applications.find((a) => problems.has(a.name));
    const generation = dep.metadata.generation;
    const phase = phaseOf(result.summary, (status.revision ?? 1) <= 1);
    status.phase = phase;
    const s = result.summary;
    const counts = `${s.ready}/${s.targets} clusters ready${s.offline ? `, ${s.offline} offline` : ""}${s.pending ? `, ${s.pending} pending` : ""}${s.notReady ? `, ${s.notReady} not ready` : ""}`;
    const outcome = ((): Parameters<typeof summarize>[2] => {
      if (engineError) {
        return {
          kind: "failed",
          reason: "EngineError",
          message: `${engineError.name}: ${engineError.message ?? ""}`,
        };
      }
      if (phase === "NoTargetClusters") {
        const how = dep.spec.targets.clusterSelector
          ? `the clusterSelector ${JSON.stringify(dep.spec.targets.clusterSelector)}`
          : `spec.targets.clusters (${(dep.spec.targets.clusters ?? []).join(", ") || "empty"})`;
        return {
          kind: "failed",
          reason: "NoTargetClusters",
          message: `no ${engineTitle[engine.name]} cluster in namespace ${ns} matches ${how}; register clusters or change spec.targets`,
        };
      }
      if (phase === "Running") {
        return { kind: "ready", reason: "Running", message: `revision ${status.revision ?? "?"}: ${counts}` };
      }
      if (phase === "Deploying" || phase === "Updating")
        return { kind: "progressing", reason: phase, message: counts };
      const first = result.clusters[0];
      return {
        kind: "failed",
        reason: phase,
        message: `${counts}${first ? `; ${first.name}: ${first.message}` : ""}`,
      };
    })();
    Object.assign(status, summarize(status, generation, outcome));
  }

  // ---------- deletion ----------

  /** Engine objects first (the engine uninstalls), then the folder in Git (one commit), then release. */
  private async finalize(dep: AppDeployment): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const ns = dep.metadata.namespace ?? "";
    const name = dep.metadata.name ?? "";
    if (!dep.metadata.finalizers?.includes(deployFinalizer)) return undefined;
    return withStatus(client, AppDeploymentResource, dep, fieldManager, async (status: Status) => {
      status.phase = "Terminating";
      let going = 0;
      for (const engine of this.engines.values()) going += await engine.remove(dep);
      if (going > 0) {
        Object.assign(
          status,
          summarize(status, dep.metadata.generation, {
            kind: "progressing",
            reason: "Terminating",
            message: `waiting for ${going} ${status.engine ? engineTitle[status.engine] : "engine"} object(s) to be removed`,
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

export function registerAppDeployments(manager: Manager, options: DeployOptions = {}): void {
  for (const e of options.engines ?? []) {
    if (!engineNames.includes(e)) throw new Error(`unknown delivery engine ${e}`);
  }
  configureInventory(manager, {
    offlineAfterMs: options.offlineAfterMs,
    argocdNamespace: options.engines?.includes("argocd") ? (options.argocdNamespace ?? "argocd") : undefined,
  });
  const reconciler = new AppDeploymentReconciler(manager, options);
  const inventory = inventoryOf(manager);
  const deploymentsIn = (ns: string, test: (d: AppDeployment) => boolean = () => true): string[] =>
    manager
      .informer<AppDeployment>(AppDeploymentResource)
      .cache.byNamespace(ns)
      .filter(test)
      .map((d) => `${ns}/${d.metadata.name ?? ""}`);
  const offlineAfterMs = inventory.offlineAfterMs;
  const stale = (c: KubeObject): boolean => {
    const seen = (c as { status?: { agent?: { lastSeen?: string } } }).status?.agent?.lastSeen;
    return !seen || Date.now() - Date.parse(seen) > offlineAfterMs;
  };
  const controller = manager
    // Reconciles mostly wait on Git and the API server; many at once also make bigger Git
    // batches (one fetch and one push for all the changes queued meanwhile): 1,000
    // deployments at once are delivered in about a third of the time 16 workers take.
    .controller("appdeployment", { workers: 96, maxDelayMs: 30_000 })
    .for(AppDeploymentResource)
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
    // A deployment gone frees its names for one refused for a NameConflict.
    .watches(
      AppDeploymentResource,
      (o) =>
        deploymentsIn(
          o.metadata.namespace ?? "",
          (d) =>
            d.metadata.uid !== o.metadata.uid &&
            d.status?.conditions?.some((c) => c.reason === "NameConflict") === true,
        ),
      () => false,
    )
    // A project's engine choice and approval policy.
    .watches(
      ProjectResource,
      (p) => deploymentsIn(p.metadata.name ?? ""),
      (p, old) =>
        (p as Project).spec.delivery?.engine !== (old as Project).spec.delivery?.engine ||
        JSON.stringify((p as Project).spec.approval) !== JSON.stringify((old as Project).spec.approval),
    );
  // Clusters of every registration: label changes move clusters in or out; an agent back
  // from silence catches up.
  for (const source of inventory.all) {
    controller.watches(
      source.informer,
      (c) => deploymentsIn(source.namespaceOf(c) ?? ""),
      (c, old) =>
        JSON.stringify(c.metadata.labels) !== JSON.stringify(old.metadata.labels) ||
        (stale(old) && !stale(c)),
    );
  }
  for (const engine of reconciler.engines.values()) {
    for (const w of engine.watches()) controller.watches(w.informer, w.map, w.update);
    if (engine instanceof ArgoCDEngine) {
      engine.onClustersChanged = (ns) => {
        for (const key of deploymentsIn(ns)) controller.queue.add(key);
      };
    }
  }
  controller.complete(reconciler);
}
