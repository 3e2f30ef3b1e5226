// Project reconciler: the project's namespace, its members' RoleBindings to the project
// roles, the operators' per-project RoleBindings, and its ResourceQuota — each step
// idempotent (server-side apply) and reported as its own condition. Deletion removes the
// project's AppDeployments first, then the namespace, and never touches a namespace the
// project did not create.
import type { Project } from "../api/project.generated.ts";
import { AppDeploymentResource, ProjectResource } from "../api/resources.generated.ts";
import type { KubeObject, ResourceType } from "../runtime/client.ts";
import { setCondition, summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { addFinalizer, removeFinalizer, withStatus } from "../runtime/reconcile.ts";

export const namespacesResource: ResourceType = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
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

  /** AppDeployments first (they clean up what they delivered), then the namespace. */
  private async delete(project: Project): Promise<Result | undefined> {
    const { client } = this.manager;
    const name = project.metadata.name ?? "";
    const ns = await client.get<KubeObject>(namespacesResource, name);
    const ours = ns?.metadata.labels?.[projectLabel] === name;
    if (ns && ours) {
      const deployments = await client
        .list<KubeObject>(AppDeploymentResource, { namespace: name })
        .catch(() => ({ items: [] }));
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
