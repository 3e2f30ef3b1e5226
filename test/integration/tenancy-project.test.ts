// Project reconcile against a real API server with Outpost's RBAC installed: namespace,
// members bound to the project roles (checked with the API server's authorizer), quota,
// member removal, an unmanaged namespace left alone, and a clean cascade on delete.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Project } from "../../operators/api/project.generated.ts";
import {
  AppDeploymentResource,
  NetworkResource,
  NetworkServiceResource,
  ProjectResource,
} from "../../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { getCondition, kstatus } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { quotasResource, roleBindingsResource } from "../../operators/tenancy/project.ts";
import { registerTenancy } from "../../operators/tenancy/index.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { startOperator } from "../support/operator.ts";
import { installOutpost } from "../support/install.ts";
import { namespacesResource } from "../../operators/runtime/core.ts";

const controlPlane = useControlPlane();
let client: KubeClient;
let manager: Manager;

const reviews: ResourceType = {
  group: "authorization.k8s.io",
  version: "v1",
  kind: "SubjectAccessReview",
  plural: "subjectaccessreviews",
  namespaced: false,
};

async function can(
  user: string,
  groups: string[],
  namespace: string,
  verb: string,
  group: string,
  resource: string,
): Promise<boolean> {
  const r = await client.create<KubeObject & { status?: { allowed: boolean } }>(reviews, {
    metadata: {},
    spec: { user, groups, resourceAttributes: { namespace, verb, group, resource } },
  } as KubeObject);
  return r.status?.allowed ?? false;
}

const project = (name: string, spec: Project["spec"]): Project => ({ metadata: { name }, spec });
const waitProject = (name: string, test: (p: Project) => boolean): Promise<Project> =>
  eventually(`project ${name}`, async () => {
    const p = await client.get<Project>(ProjectResource, name);
    return p && test(p) ? p : undefined;
  });

describe("Project reconcile", () => {
  before(async () => {
    const cp = controlPlane();
    installOutpost(cp);
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    client = new KubeClient(kubeConfig);
    manager = await startOperator("outpost-tenancy", kubeConfig, (m) => {
      registerTenancy(m);
    });
  });
  after(async () => {
    await manager.stop();
    await client.close();
  });

  it("creates the namespace, binds members and operators, applies the quota", async () => {
    await client.create(
      ProjectResource,
      project("retail", {
        members: [
          { user: "alice", role: "admin" },
          { group: "retail-devs", role: "deployer" },
          { user: "olga", role: "approver" },
          { group: "support", role: "viewer" },
        ],
        quota: { "count/appdeployments.deploy.outpost.dev": 5 },
      }),
    );
    const p = await waitProject("retail", (x) => kstatus(x) === "Current");
    assert.equal(p.status?.namespace, "retail");
    assert.equal(p.status.memberCount, 4);
    for (const c of ["NamespaceReady", "MembersBound", "QuotaApplied"])
      assert.equal(getCondition(p.status.conditions, c)?.status, "True", c);
    const ns = await client.get<KubeObject>(namespacesResource, "retail");
    assert.equal(ns?.metadata.labels?.["outpost.dev/project"], "retail");
    const quota = await client.get<KubeObject & { spec: { hard: Record<string, string> } }>(
      quotasResource,
      "outpost-project",
      "retail",
    );
    assert.deepEqual(quota?.spec.hard, { "count/appdeployments.deploy.outpost.dev": "5" });

    await eventually("the project roles to take effect", async () =>
      (await can("alice", [], "retail", "create", "deploy.outpost.dev", "approvals")) ? true : undefined,
    );
    assert.equal(
      await can("dev", ["retail-devs"], "retail", "create", "deploy.outpost.dev", "appdeployments"),
      true,
    );
    assert.equal(
      await can("dev", ["retail-devs"], "retail", "create", "deploy.outpost.dev", "approvals"),
      false,
    );
    assert.equal(await can("olga", [], "retail", "create", "deploy.outpost.dev", "approvals"), true);
    assert.equal(await can("s", ["support"], "retail", "list", "catalog.outpost.dev", "applications"), true);
    assert.equal(
      await can("s", ["support"], "retail", "create", "catalog.outpost.dev", "applications"),
      false,
    );
    assert.equal(await can("mallory", [], "retail", "list", "catalog.outpost.dev", "applications"), false);
    assert.equal(
      await can("system:serviceaccount:outpost-system:outpost-catalog", [], "retail", "list", "", "secrets"),
      true,
      "the catalog reads this project's Secrets",
    );
  });

  it("follows member changes", async () => {
    const p = await client.get<Project>(ProjectResource, "retail");
    assert.ok(p);
    await client.mergePatch(ProjectResource, "retail", undefined, {
      spec: { members: [{ user: "alice", role: "admin" }], quota: null },
    });
    await waitProject("retail", (x) => x.status?.memberCount === 1 && kstatus(x) === "Current");
    assert.equal(await client.get(roleBindingsResource, "outpost:project-deployer", "retail"), undefined);
    assert.equal(await client.get(quotasResource, "outpost-project", "retail"), undefined);
    await eventually("the deployer binding to be gone", async () =>
      (await can("dev", ["retail-devs"], "retail", "create", "deploy.outpost.dev", "appdeployments"))
        ? undefined
        : true,
    );
  });

  it("leaves a namespace it did not create alone", async () => {
    await client.create(namespacesResource, { metadata: { name: "legacy" } });
    await client.create(ProjectResource, project("legacy", {}));
    const p = await waitProject("legacy", (x) => kstatus(x) === "Failed");
    assert.match(
      getCondition(p.status?.conditions, "Ready")?.message ?? "",
      /namespace legacy already exists and was not created by this project/,
    );
    await client.delete(ProjectResource, "legacy");
    await eventually("the project to be gone", async () =>
      (await client.get(ProjectResource, "legacy")) ? undefined : true,
    );
    assert.ok(await client.get(namespacesResource, "legacy"), "the namespace stays");
  });

  it("removes networks (and waits for their edge cleanup) before the namespace", async () => {
    await client.create(ProjectResource, project("stores", {}));
    await waitProject("stores", (p) => kstatus(p) === "Current");
    // The interconnect operator's finalizers hold these until the edges are clean; here a
    // test finalizer plays that part, so the order is visible.
    const hold = "test.outpost.dev/edge-cleanup";
    await client.create(NetworkResource, {
      metadata: { name: "stores", namespace: "stores", finalizers: [hold] },
      spec: { members: { clusterSelector: { matchLabels: { "site-type": "store" } } } },
    } as KubeObject);
    await client.create(NetworkServiceResource, {
      metadata: { name: "db", namespace: "stores", finalizers: [hold] },
      spec: {
        networkRef: { name: "stores" },
        deploymentRef: { name: "storefront" },
        application: "db",
        service: "db",
        port: 5432,
        consumers: { clusterSelector: { matchLabels: { "site-type": "store" } } },
      },
    } as KubeObject);
    await client.delete(ProjectResource, "stores");
    const waiting = await waitProject("stores", (p) =>
      (getCondition(p.status?.conditions, "Reconciling")?.message ?? "").includes(
        "waiting for NetworkService db, Network stores to clean up the edge clusters",
      ),
    );
    assert.ok(waiting);
    for (const r of [NetworkResource, NetworkServiceResource]) {
      const o = await client.get<KubeObject>(r, r === NetworkResource ? "stores" : "db", "stores");
      assert.ok(o?.metadata.deletionTimestamp, `${r.kind} deletion requested`);
    }
    const ns = await client.get<KubeObject>(namespacesResource, "stores");
    assert.equal(
      ns?.metadata.deletionTimestamp,
      undefined,
      "the namespace stays while the edges are cleaned",
    );

    for (const [r, n] of [
      [NetworkResource, "stores"],
      [NetworkServiceResource, "db"],
    ] as const)
      await client.mergePatch(r, n, "stores", { metadata: { finalizers: null } });
    await eventually(
      "the project and its namespace to be gone",
      async () =>
        (await client.get(ProjectResource, "stores")) || (await client.get(namespacesResource, "stores"))
          ? undefined
          : true,
      90_000,
    );
  });

  it("deletes deployments first, then the namespace, then itself", async () => {
    await client.create(AppDeploymentResource, {
      metadata: { name: "storefront", namespace: "retail" },
      spec: { packageRef: { name: "shop", version: "1.0.0" }, targets: { clusters: ["a"] } },
    } as KubeObject);
    await client.delete(ProjectResource, "retail");
    await eventually(
      "the project, its deployments and namespace to be gone",
      async () =>
        (await client.get(ProjectResource, "retail")) || (await client.get(namespacesResource, "retail"))
          ? undefined
          : true,
      90_000,
    );
  });
});
