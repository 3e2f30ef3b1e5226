// Project reconciler: the project's namespace, its members' RoleBindings to the project
// roles, the operators' per-project RoleBindings, and its ResourceQuota — each step
// idempotent (server-side apply) and reported as its own condition, and its Git
// repository (git.ts). Deletion removes the project's AppDeployments first, then its
// Networks and NetworkServices, then the Harbor project and Git repository it created,
// then the namespace, and never touches a namespace the project did not create.
//
// What the project creates outside the API server (the Harbor project, its robot, the Git
// repository) is recorded on the Project before it is created, not after: a crash between
// the creation and the record would otherwise leave it behind when the Project is deleted.
// A record whose creation then finds the thing made by someone else is withdrawn.
import type { Project } from "../api/project.generated.ts";
import { secretData } from "../catalog/secrets.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
  NetworkResource,
  NetworkServiceResource,
  ProjectResource,
  RegistryResource,
} from "../api/resources.generated.ts";
import { planExtensions } from "./extensions.ts";
import { ApiError, type KubeClient, type KubeObject, type ResourceType } from "../runtime/client.ts";
import { setCondition, summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { addFinalizer, ReconcileError, removeFinalizer, withStatus } from "../runtime/reconcile.ts";
import { gitSecretName } from "../deploy/app-deployment.ts";
import {
  deleteProjectRepository,
  ensureProjectRepository,
  gitSettingsFrom,
  GitSettingsError,
  type GitSettings,
  type ProjectRepository,
} from "./git.ts";
import { HarborClient, HarborError } from "./harbor.ts";
import {
  deleteHarborProject,
  ensureHarborProject,
  harborProjectName,
  harborRegistryName,
  harborSecretName,
  harborSettingsFrom,
  pullSecretData,
  robotFullName,
  robotName,
  type HarborProvisioned,
  type HarborSettings,
} from "./harbor-project.ts";
import { namespacesResource, secretsResource } from "../runtime/core.ts";

export const roleBindingsResource: ResourceType = {
  group: "rbac.authorization.k8s.io",
  version: "v1",
  kind: "RoleBinding",
  plural: "rolebindings",
  namespaced: true,
};
export const quotasResource: ResourceType = {
  group: "",
  version: "v1",
  kind: "ResourceQuota",
  plural: "resourcequotas",
  namespaced: true,
};

export const projectLabel = "outpost.dev/project";
/** On a Project: the Git repository (owner/name) it created, deleted with it. */
export const gitCreatedAnnotation = "tenancy.outpost.dev/git-repository";
/** On a Project: the Harbor project, and the robot (its name; an id in older records), it created. */
export const harborProjectAnnotation = "tenancy.outpost.dev/harbor-project";
export const harborRobotAnnotation = "tenancy.outpost.dev/harbor-robot";
/** The tenancy operator's configuration Secret in its namespace. */
export const configSecret = "outpost-tenancy";
const finalizer = "tenancy.outpost.dev/cleanup";
const roles = ["admin", "deployer", "approver", "viewer"] as const;
/** Operators that work inside project namespaces, bound there to their per-project role. */
export const projectOperators = ["catalog", "deploy", "interconnect", "ops", "tenancy", "service-proxy"];

type Status = NonNullable<Project["status"]>;
type Member = NonNullable<Project["spec"]["members"]>[number];

interface Subject {
  kind: "User" | "Group" | "ServiceAccount";
  name: string;
  apiGroup?: string;
  namespace?: string;
}

/** One RoleBinding per project role that has members, subjects sorted. */
export function memberBindings(members: Member[]): Map<string, Subject[]> {
  const out = new Map<string, Subject[]>();
  for (const role of roles) {
    const subjects = members
      .filter((m) => m.role === role)
      .map((m): Subject =>
        m.user !== undefined
          ? { kind: "User", name: m.user, apiGroup: "rbac.authorization.k8s.io" }
          : { kind: "Group", name: m.group ?? "", apiGroup: "rbac.authorization.k8s.io" },
      )
      .sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
    if (subjects.length > 0) out.set(role, subjects);
  }
  return out;
}

export class ProjectReconciler {
  constructor(
    private readonly manager: Manager,
    private readonly options: { systemNamespace: string },
  ) {}

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const project = await client.get<Project>(ProjectResource, req.name);
    if (!project) return undefined;
    const name = project.metadata.name ?? "";
    const labels = { [projectLabel]: name, "app.kubernetes.io/managed-by": "outpost" };

    if (project.metadata.deletionTimestamp) return this.delete(project);
    const current = await addFinalizer(client, ProjectResource, project, finalizer);

    return withStatus(client, ProjectResource, current, fieldManager, async (status: Status) => {
      const generation = current.metadata.generation;
      const g = generation !== undefined ? { observedGeneration: generation } : {};
      status.lastHandledReconcileAt = current.metadata.annotations?.[requestedAtAnnotation];
      const condition = (type: string, ok: boolean, reason: string, message: string): void => {
        status.conditions = setCondition(status.conditions, {
          type,
          status: ok ? "True" : "False",
          reason,
          message,
          ...g,
        });
      };

      // The operator's settings, read once for this reconcile.
      const config = await this.config();

      // 0. Bad input is refused before anything is created.
      if (current.spec.harbor?.enabled !== false) {
        const hp = harborProjectName(name);
        const harborOn = ((): boolean => {
          try {
            return harborSettingsFrom(config) !== undefined;
          } catch {
            return true; // misconfigured, but meant to be on
          }
        })();
        if ("problem" in hp && harborOn) {
          condition("HarborReady", false, "InvalidName", hp.problem);
          Object.assign(
            status,
            summarize(status, generation, { kind: "stalled", reason: "InvalidName", message: hp.problem }),
          );
          return undefined;
        }
      }

      // 1. The namespace, unless one of that name exists that the project did not create.
      const existing = await client.get<KubeObject>(namespacesResource, name);
      if (existing && existing.metadata.labels?.[projectLabel] !== name) {
        condition(
          "NamespaceReady",
          false,
          "NamespaceConflict",
          `namespace ${name} exists and does not belong to this project`,
        );
        Object.assign(
          status,
          summarize(status, generation, {
            kind: "stalled",
            reason: "NamespaceConflict",
            message: `namespace ${name} already exists and was not created by this project; rename the project or remove the namespace`,
          }),
        );
        return undefined;
      }
      await client.apply(namespacesResource, { metadata: { name, labels } }, { fieldManager });
      status.namespace = name;
      condition(
        "NamespaceReady",
        true,
        "Created",
        `namespace ${name} is the project's namespace and Fleet workspace`,
      );

      // 2. Members: one RoleBinding per role; bindings of roles no member has any more go.
      const bindings = memberBindings(current.spec.members ?? []);
      for (const role of roles) {
        const bindingName = `outpost:project-${role}`;
        const subjects = bindings.get(role);
        if (subjects) {
          await client.apply(
            roleBindingsResource,
            {
              metadata: { name: bindingName, namespace: name, labels },
              roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: bindingName },
              subjects,
            } as KubeObject,
            { fieldManager },
          );
        } else {
          await client.delete(roleBindingsResource, bindingName, name);
        }
      }
      // The operators read this project's Secrets through their per-project roles.
      for (const op of projectOperators) {
        const role =
          op === "service-proxy" ? "outpost:service-proxy-project" : `outpost:${op}-operator-project`;
        await client.apply(
          roleBindingsResource,
          {
            metadata: { name: role, namespace: name, labels },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
            subjects: [
              { kind: "ServiceAccount", name: `outpost-${op}`, namespace: this.options.systemNamespace },
            ],
          } as KubeObject,
          { fieldManager },
        );
      }
      status.memberCount = current.spec.members?.length ?? 0;
      condition(
        "MembersBound",
        true,
        "Bound",
        `${status.memberCount} member${status.memberCount === 1 ? "" : "s"} bound to the project roles`,
      );

      // 3. Quota.
      const hard = current.spec.quota ?? {};
      if (Object.keys(hard).length > 0) {
        await client.apply(
          quotasResource,
          { metadata: { name: "outpost-project", namespace: name, labels }, spec: { hard } } as KubeObject,
          { fieldManager },
        );
        condition(
          "QuotaApplied",
          true,
          "Applied",
          `ResourceQuota outpost-project limits ${Object.keys(hard).join(", ")}`,
        );
      } else {
        await client.delete(quotasResource, "outpost-project", name);
        status.conditions = status.conditions?.filter((c) => c.type !== "QuotaApplied");
      }

      // 4. The Git repository for the project's deployments.
      await this.provisionGit(current, status, condition, config);

      // 5. Base extensions from the system namespace.
      await this.provisionExtensions(current, status, condition);

      // 6. Harbor: project, robot account, pull secret and Registry.
      const problem = await this.provisionHarbor(current, status, condition, config);
      if (problem) {
        Object.assign(
          status,
          summarize(status, generation, { kind: "stalled", reason: "InvalidName", message: problem }),
        );
        return undefined;
      }

      Object.assign(
        status,
        summarize(status, generation, {
          kind: "ready",
          reason: "Provisioned",
          message: `namespace ${name} is ready`,
        }),
      );
      return undefined;
    });
  }

  /**
   * Before creating what `value` names: records it in `annotation` on the Project (true),
   * unless it is recorded already (false).
   */
  private async recordIntent(project: Project, annotation: string, value: string): Promise<boolean> {
    if (project.metadata.annotations?.[annotation] === value) return false;
    await this.annotate(project, { [annotation]: value });
    return true;
  }

  /** Sets (null: removes) annotations of the Project, and keeps `project` up to date. */
  private async annotate(project: Project, annotations: Record<string, string | null>): Promise<void> {
    const patched = await this.manager.client.mergePatch<Project>(
      ProjectResource,
      project.metadata.name ?? "",
      undefined,
      { metadata: { annotations } },
    );
    project.metadata.resourceVersion = patched.metadata.resourceVersion;
    project.metadata.annotations = patched.metadata.annotations;
  }

  private async provisionExtensions(
    project: Project,
    status: Status,
    condition: (type: string, ok: boolean, reason: string, message: string) => void,
  ): Promise<void> {
    const { client, fieldManager } = this.manager;
    const name = project.metadata.name ?? "";
    const system = this.options.systemNamespace;
    const [packages, applications, registries] = await Promise.all([
      client.list<DeploymentPackage>(DeploymentPackageResource, { namespace: system }),
      client.list<Application>(ApplicationResource, { namespace: system }),
      client.list<Registry>(RegistryResource, { namespace: system }),
    ]);
    const plan = planExtensions(
      { packages: packages.items, applications: applications.items, registries: registries.items },
      name,
      project.spec.extensions,
    );
    const resources = {
      Registry: RegistryResource,
      Application: ApplicationResource,
      DeploymentPackage: DeploymentPackageResource,
    };
    for (const { kind, object } of plan.objects)
      await client.apply(resources[kind], object, { fieldManager });
    for (const d of plan.deployments) {
      // Created once; afterwards the deployment is the project's to change.
      if (!(await client.get(AppDeploymentResource, d.metadata.name ?? "", name))) {
        await client.create(AppDeploymentResource, d).catch((err: unknown) => {
          if (!ApiError.isConflict(err)) throw err;
        });
      }
    }
    if (plan.problems.length > 0) {
      condition("ExtensionsReady", false, "ExtensionProblem", plan.problems.join("; "));
    } else if (plan.names.length === 0) {
      status.conditions = status.conditions?.filter((c) => c.type !== "ExtensionsReady");
    } else {
      condition(
        "ExtensionsReady",
        true,
        "Copied",
        `${plan.names.length} extension(s): ${plan.names.join(", ")}${plan.deployments.length ? `; deployed: ${plan.deployments.map((d) => d.metadata.name).join(", ")}` : ""}`,
      );
    }
  }

  /** The operator's configuration (Secret outpost-tenancy), decoded; empty when absent. */
  private async config(): Promise<Record<string, string>> {
    try {
      return await secretData(
        this.manager.client,
        this.options.systemNamespace,
        configSecret,
        "configuration",
      );
    } catch (err) {
      if (err instanceof ReconcileError && err.reason === "SecretNotFound") return {};
      throw err;
    }
  }

  private harborClient(settings: HarborSettings): HarborClient {
    return new HarborClient({
      url: settings.url,
      username: settings.username,
      password: settings.password,
      timeoutMs: settings.timeoutMs,
      onRequest: (e) => {
        this.manager.logger.debug({ harbor: e }, "harbor request");
      },
    });
  }

  /** Returns a problem only the user can fix, if any. */
  private async provisionHarbor(
    project: Project,
    status: Status,
    condition: (type: string, ok: boolean, reason: string, message: string) => void,
    config: Record<string, string>,
  ): Promise<string | undefined> {
    const { client, fieldManager } = this.manager;
    const name = project.metadata.name ?? "";
    if (project.spec.harbor?.enabled === false) {
      status.conditions = status.conditions?.filter((c) => c.type !== "HarborReady");
      return undefined;
    }
    let settings: HarborSettings | undefined;
    try {
      settings = harborSettingsFrom(config);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      condition("HarborReady", false, "InvalidConfiguration", message);
      throw new ReconcileError("InvalidConfiguration", message);
    }
    if (!settings) {
      condition(
        "HarborReady",
        false,
        "NotConfigured",
        `the tenancy operator has no Harbor configuration (harbor.url in Secret ${this.options.systemNamespace}/${configSecret})`,
      );
      return undefined;
    }
    const hp = harborProjectName(name);
    if ("problem" in hp) {
      condition("HarborReady", false, "InvalidName", hp.problem);
      return hp.problem;
    }
    const existing = await client.get<KubeObject & { data?: Record<string, string> }>(
      secretsResource,
      harborSecretName,
      name,
    );
    const harbor = this.harborClient(settings);
    const intended = { project: false, robot: false };
    let result: HarborProvisioned;
    try {
      result = await ensureHarborProject(
        harbor,
        hp.name,
        (robot) => Buffer.from(existing?.data?.username ?? "", "base64").toString() === robot,
        async (what) => {
          intended[what] =
            what === "project"
              ? await this.recordIntent(project, harborProjectAnnotation, hp.name)
              : await this.recordIntent(project, harborRobotAnnotation, robotFullName(hp.name));
        },
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const reason = err instanceof HarborError && err.status === 0 ? "HarborUnreachable" : "HarborError";
      condition("HarborReady", false, reason, message);
      throw new ReconcileError(reason, `${message}; retrying`);
    } finally {
      await harbor.close();
    }
    // Recorded, then made by someone else in between: not ours to delete.
    const withdraw: Record<string, null> = {};
    if (intended.project && !result.createdProject) withdraw[harborProjectAnnotation] = null;
    if (intended.robot && !result.createdRobot) withdraw[harborRobotAnnotation] = null;
    if (Object.keys(withdraw).length > 0) await this.annotate(project, withdraw);
    const labels = { [projectLabel]: name, "app.kubernetes.io/managed-by": "outpost" };
    if (result.secret) {
      await client.apply(
        secretsResource,
        {
          metadata: { name: harborSecretName, namespace: name, labels },
          type: "kubernetes.io/dockerconfigjson",
          data: pullSecretData(settings.registry, result.robot.name, result.secret),
        } as KubeObject,
        { fieldManager },
      );
    }
    await client.apply(
      RegistryResource,
      {
        metadata: { name: harborRegistryName, namespace: name, labels },
        spec: {
          type: "oci",
          url: `oci://${settings.registry}/${result.project}`,
          displayName: `Harbor project ${result.project}`,
          credentialsSecretRef: { name: harborSecretName },
        },
      } as KubeObject,
      { fieldManager },
    );
    status.harborProject = result.project;
    condition(
      "HarborReady",
      true,
      "Provisioned",
      `Harbor project ${result.project} with robot ${result.robot.name}; Secret ${harborSecretName} and Registry ${harborRegistryName} use it`,
    );
    return undefined;
  }

  private async provisionGit(
    project: Project,
    status: Status,
    condition: (type: string, ok: boolean, reason: string, message: string) => void,
    config: Record<string, string>,
  ): Promise<void> {
    const { client, fieldManager } = this.manager;
    const name = project.metadata.name ?? "";
    if (project.spec.git?.enabled === false) {
      status.conditions = status.conditions?.filter((c) => c.type !== "GitRepositoryReady");
      return;
    }
    let settings: GitSettings | undefined;
    try {
      settings = gitSettingsFrom(config);
    } catch (err) {
      if (!(err instanceof GitSettingsError)) throw err;
      condition("GitRepositoryReady", false, "InvalidConfiguration", err.message);
      throw new ReconcileError("InvalidConfiguration", err.message);
    }
    if (!settings) {
      condition(
        "GitRepositoryReady",
        false,
        "NotConfigured",
        `the tenancy operator has no Git configuration (git.provider in Secret ${this.options.systemNamespace}/${configSecret}); deployments here need Secret ${gitSecretName} made by hand`,
      );
      return;
    }
    let repo: ProjectRepository;
    const intended = { repository: false };
    try {
      repo = await ensureProjectRepository(name, settings, async (repository) => {
        intended.repository = await this.recordIntent(project, gitCreatedAnnotation, repository);
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      condition("GitRepositoryReady", false, "GitHostError", message);
      throw new ReconcileError("GitHostError", message);
    }
    // Recorded, then made by someone else in between: not ours to delete.
    if (intended.repository && !repo.created) await this.annotate(project, { [gitCreatedAnnotation]: null });
    const credentials = repo.username !== undefined || repo.password !== undefined;
    const b64 = (v: string): string => Buffer.from(v).toString("base64");
    await client.apply(
      secretsResource,
      {
        metadata: {
          name: gitSecretName,
          namespace: name,
          labels: { [projectLabel]: name, "app.kubernetes.io/managed-by": "outpost" },
        },
        type: credentials ? "kubernetes.io/basic-auth" : "Opaque",
        data: {
          url: b64(repo.url),
          branch: b64(repo.branch),
          ...(repo.username !== undefined ? { username: b64(repo.username) } : {}),
          ...(repo.password !== undefined ? { password: b64(repo.password) } : {}),
        },
      } as KubeObject,
      { fieldManager },
    );
    status.gitRepository = repo.url;
    condition(
      "GitRepositoryReady",
      true,
      "Provisioned",
      `deployments are committed to ${repo.url} (branch ${repo.branch}); Secret ${gitSecretName} names it`,
    );
  }

  /**
   * AppDeployments first (they clean up what they delivered), then Networks and
   * NetworkServices (they clean up the edges), Harbor and Git, then the namespace.
   */
  private async delete(project: Project): Promise<Result | undefined> {
    const { client } = this.manager;
    const name = project.metadata.name ?? "";
    const ns = await client.get<KubeObject>(namespacesResource, name);
    const ours = ns?.metadata.labels?.[projectLabel] === name;
    if (ns && ours) {
      // Only a kind that is not served has nothing to wait for; any other failure to list
      // stops the deletion here (retried), or what the deployments delivered would stay.
      let deployments: { items: KubeObject[] };
      let interconnect: { r: ResourceType; o: KubeObject }[];
      try {
        deployments = await listServed(client, AppDeploymentResource, name);
        interconnect = (
          await Promise.all(
            [NetworkServiceResource, NetworkResource].map(async (r) =>
              (await listServed(client, r, name)).items.map((o) => ({ r, o })),
            ),
          )
        ).flat();
      } catch (err) {
        if (!(err instanceof ReconcileError)) throw err;
        this.manager.logger.warn({ project: name, err: err.message }, "project deletion blocked");
        return this.deleting(project, err.message);
      }
      if (deployments.items.length > 0) {
        for (const d of deployments.items) {
          if (!d.metadata.deletionTimestamp)
            await client.delete(AppDeploymentResource, d.metadata.name ?? "", name);
        }
        return this.deleting(
          project,
          `waiting for ${deployments.items.length} AppDeployment(s) to be removed`,
        );
      }
      // Networks and services next: their finalizers remove what they made on the edge
      // clusters, which they reach with the project's edge credentials (outpost-edges).
      if (interconnect.length > 0) {
        for (const { r, o } of interconnect) {
          if (!o.metadata.deletionTimestamp) await client.delete(r, o.metadata.name ?? "", name);
        }
        return this.deleting(
          project,
          `waiting for ${interconnect.map(({ r, o }) => `${r.kind} ${o.metadata.name ?? ""}`).join(", ")} to clean up the edge clusters and be removed`,
        );
      }
      const harborProject = project.metadata.annotations?.[harborProjectAnnotation];
      const harborRobot = project.metadata.annotations?.[harborRobotAnnotation];
      if (harborProject ?? harborRobot) {
        let settings: HarborSettings | undefined;
        try {
          settings = harborSettingsFrom(await this.config());
          if (settings) {
            const harbor = this.harborClient(settings);
            try {
              // A project it created goes with its robots; otherwise only its robot.
              if (harborProject) await deleteHarborProject(harbor, harborProject);
              else if (harborRobot) await deleteHarborRobot(harbor, harborRobot, harborProjectName(name));
            } finally {
              await harbor.close();
            }
          }
        } catch (err) {
          return this.deleting(
            project,
            `could not delete Harbor project ${harborProject ?? ""} (retrying): ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        await client.mergePatch(ProjectResource, name, undefined, {
          metadata: { annotations: { [harborProjectAnnotation]: null, [harborRobotAnnotation]: null } },
        });
        return this.deleting(project, `deleted Harbor project ${harborProject ?? ""} (or the robot account)`);
      }
      const created = project.metadata.annotations?.[gitCreatedAnnotation];
      if (created) {
        try {
          const settings = gitSettingsFrom(await this.config());
          if (settings) await deleteProjectRepository(created, settings);
        } catch (err) {
          return this.deleting(
            project,
            `could not delete Git repository ${created} (retrying): ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        await client.mergePatch(ProjectResource, name, undefined, {
          metadata: { annotations: { [gitCreatedAnnotation]: null } },
        });
        return this.deleting(project, `deleted Git repository ${created}`);
      }
      if (!ns.metadata.deletionTimestamp) await client.delete(namespacesResource, name);
      return this.deleting(project, `waiting for namespace ${name} to be deleted`);
    }
    await removeFinalizer(client, ProjectResource, project, finalizer);
    return undefined;
  }

  private deleting(project: Project, message: string): Promise<Result> {
    const { client, fieldManager } = this.manager;
    return withStatus(client, ProjectResource, project, fieldManager, (status: Status) => {
      Object.assign(
        status,
        summarize(status, project.metadata.generation, { kind: "progressing", reason: "Deleting", message }),
      );
      return Promise.resolve({ requeueAfterMs: 2_000 });
    });
  }
}

/** The objects of kind `r` in `namespace`; none when the kind is not served (404). */
async function listServed(
  client: KubeClient,
  r: ResourceType,
  namespace: string,
): Promise<{ items: KubeObject[] }> {
  try {
    return await client.list<KubeObject>(r, { namespace });
  } catch (err) {
    if (ApiError.isNotFound(err)) return { items: [] };
    throw new ReconcileError(
      "DeletionBlocked",
      `cannot list the project's ${r.plural} to delete them first, so the deletion waits (retrying): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** Deletes the project's robot in Harbor project `hp` (older records hold its id). */
async function deleteHarborRobot(
  harbor: HarborClient,
  recorded: string,
  hp: { name: string } | { problem: string },
): Promise<void> {
  const id = /^\d+$/.test(recorded)
    ? Number(recorded)
    : "name" in hp
      ? (await harbor.findRobot(hp.name, robotName))?.id
      : undefined;
  if (id !== undefined) await harbor.deleteRobot(id);
}

export function registerProjects(manager: Manager, options: { systemNamespace?: string } = {}): void {
  // A project's namespace carries the project's name as a label.
  const toProject = (o: KubeObject): string[] => {
    const p = o.metadata.labels?.[projectLabel];
    return p ? [p] : [];
  };
  manager
    .controller("project", { workers: 2 })
    .for(ProjectResource)
    .watches(namespacesResource, toProject)
    .complete(
      new ProjectReconciler(manager, { systemNamespace: options.systemNamespace ?? "outpost-system" }),
    );
}
