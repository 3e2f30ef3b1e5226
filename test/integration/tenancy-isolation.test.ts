// Isolation between projects with real identities (client certificates issued by the
// cluster's CA) and Outpost's real RBAC: a member of project A can do nothing with any
// Outpost object, Secret or Fleet object of project B; a viewer cannot create; a deployer
// cannot approve unless also an approver; no project role, admin included, reaches the
// edge credentials (outpost-edges, Fleet's namespace) or the Fleet Clusters naming them.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as kinds from "../../operators/api/resources.generated.ts";
import { ProjectResource } from "../../operators/api/resources.generated.ts";
import { BundleDeploymentResource, GitRepoResource } from "../../operators/deploy/fleet.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { registerTenancy } from "../../operators/tenancy/index.ts";
import { kubeConfigFromFile, kubeconfigFor } from "../controlplane/index.ts";
import { installFleetCRDs } from "../drivers/fleet-crds.ts";
import { eventually, statusOf, useControlPlane } from "../support/controlplane.ts";
import { installOutpost } from "../support/install.ts";
import { startOperator } from "../support/operator.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";
import { edgeCredentialsNamespace, edgeSecretName } from "../../operators/edge/edge-clusters.ts";
import { fleetSystemNamespace } from "../../operators/inventory/register.ts";
import { putEdgeCredentials } from "../support/interconnect.ts";
import { FleetClusterResource } from "../../operators/inventory/registrations.ts";

const controlPlane = useControlPlane();
let admin: KubeClient;
let manager: Manager;
const users = new Map<string, KubeClient>();

/** Every namespaced Outpost kind, Secrets, and the Fleet kinds a project holds. */
const outpostKinds = Object.values(kinds).filter((r) => r.namespaced);
const guarded: ResourceType[] = [
  ...outpostKinds,
  secretsResource,
  GitRepoResource,
  FleetClusterResource,
  BundleDeploymentResource,
];

async function as(user: string, groups: string[] = []): Promise<KubeClient> {
  let c = users.get(user);
  if (!c) {
    c = new KubeClient(kubeConfigFromFile(await kubeconfigFor(controlPlane().management, user, groups)));
    users.set(user, c);
  }
  return c;
}

const object = (r: ResourceType, ns: string): KubeObject => ({
  apiVersion: `${r.group ? `${r.group}/` : ""}${r.version}`,
  kind: r.kind,
  metadata: { name: "probe", namespace: ns },
});

describe("project isolation", () => {
  before(async () => {
    const cp = controlPlane();
    installOutpost(cp);
    await installFleetCRDs(cp.management.kubeconfig);
    admin = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
    manager = await startOperator("outpost-tenancy", kubeConfigFromFile(cp.management.kubeconfig), (m) => {
      registerTenancy(m, { systemNamespace: "outpost-system" });
    });
    for (const [name, members] of [
      [
        "alpha",
        [
          { user: "alice", role: "admin" },
          { user: "dave", role: "deployer" },
          { user: "vera", role: "viewer" },
          { user: "aaron", role: "approver" },
          { user: "dora", role: "deployer" },
          { user: "dora", role: "approver" },
        ],
      ],
      ["beta", [{ user: "bob", role: "admin" }]],
    ] as const) {
      await admin.create(ProjectResource, { metadata: { name }, spec: { members } } as unknown as KubeObject);
    }
    for (const name of ["alpha", "beta"]) {
      await eventually(`project ${name} ready`, async () => {
        const p = await admin.get<KubeObject & { status?: { conditions?: [] } }>(ProjectResource, name);
        return getCondition(p?.status?.conditions, "MembersBound")?.status === "True" ? true : undefined;
      });
    }
    // Something to find in beta.
    await admin.create(secretsResource, {
      metadata: { name: "probe", namespace: "beta" },
      stringData: { a: "b" },
    } as KubeObject);
  });
  after(async () => {
    await manager.stop();
    for (const c of users.values()) await c.close();
    await admin.close();
  });

  it(`denies a member of alpha every verb on ${guarded.length} kinds in beta`, async () => {
    const alice = await as("alice");
    const denied: string[] = [];
    for (const r of guarded) {
      const answers = {
        list: await statusOf(alice.list(r, { namespace: "beta" })),
        get: await statusOf(alice.get(r, "probe", "beta")),
        create: await statusOf(alice.create(r, object(r, "beta"))),
        delete: await statusOf(alice.delete(r, "probe", "beta")),
      };
      for (const [verb, status] of Object.entries(answers)) {
        if (status !== 403) denied.push(`${r.plural}.${r.group || "core"} ${verb}: ${status}`);
      }
    }
    assert.deepEqual(denied, [], "every answer is 403 Forbidden");
    // The same user works in her own project.
    assert.equal(await statusOf(alice.list(kinds.AppDeploymentResource, { namespace: "alpha" })), 200);
    assert.equal(await statusOf(alice.list(secretsResource, { namespace: "alpha" })), 200);
  });

  it("keeps edge credentials out of every project role's reach, admins' included", async () => {
    // Registered as a platform administrator does: Outpost's kubeconfig in outpost-edges
    // (created by config/), Fleet's in Fleet's own namespace.
    if (!(await admin.get(namespacesResource, fleetSystemNamespace)))
      await admin.create(namespacesResource, { metadata: { name: fleetSystemNamespace } });
    await putEdgeCredentials(admin, "alpha", "store-1", "apiVersion: v1\nkind: Config\n");
    await admin.apply(
      secretsResource,
      {
        metadata: { name: edgeSecretName("alpha", "store-1"), namespace: fleetSystemNamespace },
        stringData: { value: "x" },
      } as KubeObject,
      { fieldManager: "test", force: true },
    );
    const refusedAnswers: string[] = [];
    for (const user of ["dave", "alice"]) {
      const c = await as(user);
      // Their own project's credentials are out of reach as much as anyone's.
      for (const where of [edgeCredentialsNamespace, fleetSystemNamespace]) {
        const name = edgeSecretName("alpha", "store-1");
        const answers = {
          get: await statusOf(c.get(secretsResource, name, where)),
          list: await statusOf(c.list(secretsResource, { namespace: where })),
          create: await statusOf(
            c.create(secretsResource, {
              ...object(secretsResource, where),
              stringData: { value: "planted" },
            } as KubeObject),
          ),
          update: await statusOf(
            c.mergePatch(secretsResource, name, where, { stringData: { value: "planted" } }),
          ),
          delete: await statusOf(c.delete(secretsResource, name, where)),
        };
        for (const [verb, status] of Object.entries(answers))
          if (status !== 403) refusedAnswers.push(`${user} ${verb} secrets in ${where}: ${status}`);
      }
      // Nor can they re-point the Fleet Cluster at another kubeconfig.
      const cluster = await statusOf(
        c.create(FleetClusterResource, {
          ...object(FleetClusterResource, "alpha"),
          spec: { kubeConfigSecret: "x", kubeConfigSecretNamespace: edgeCredentialsNamespace },
        } as KubeObject),
      );
      if (cluster !== 403) refusedAnswers.push(`${user} create Fleet Cluster in alpha: ${cluster}`);
    }
    assert.deepEqual(refusedAnswers, [], "every answer is 403 Forbidden");
    // The witness: the same deployer writes Secrets in the project namespace.
    const dave = await as("dave");
    assert.equal(
      await statusOf(
        dave.create(secretsResource, {
          ...object(secretsResource, "alpha"),
          stringData: { a: "b" },
        } as KubeObject),
      ),
      200,
    );
    // Nothing was harmed: the credentials are as the administrator wrote them.
    const kept = await admin.get<KubeObject & { data?: Record<string, string> }>(
      secretsResource,
      edgeSecretName("alpha", "store-1"),
      edgeCredentialsNamespace,
    );
    assert.equal(Buffer.from(kept?.data?.value ?? "", "base64").toString(), "apiVersion: v1\nkind: Config\n");
  });

  it("lets a viewer read but not create, in every Outpost kind", async () => {
    const vera = await as("vera");
    for (const r of outpostKinds) {
      assert.equal(await statusOf(vera.list(r, { namespace: "alpha" })), 200, `list ${r.plural}`);
      assert.equal(await statusOf(vera.create(r, object(r, "alpha"))), 403, `create ${r.plural}`);
    }
    assert.equal(
      await statusOf(vera.list(secretsResource, { namespace: "alpha" })),
      403,
      "viewers read no Secrets",
    );
  });

  it("lets deployers deploy, and only approvers approve", async () => {
    const deployment = {
      metadata: { name: "web", namespace: "alpha" },
      spec: { packageRef: { name: "shop", version: "1.0.0" }, targets: { clusters: ["store-1"] } },
    } as KubeObject;
    const approval = {
      metadata: { name: "web-approval", namespace: "alpha" },
      spec: { deploymentRef: { name: "web" }, revisionHash: "0123456789abcdef" },
    } as KubeObject;
    const dryRun = { dryRun: true };
    const dave = await as("dave");
    assert.equal(await statusOf(dave.create(kinds.AppDeploymentResource, deployment, dryRun)), 200);
    assert.equal(
      await statusOf(dave.create(kinds.ApprovalResource, approval, dryRun)),
      403,
      "a deployer cannot approve",
    );
    const aaron = await as("aaron");
    assert.equal(await statusOf(aaron.create(kinds.ApprovalResource, approval, dryRun)), 200);
    assert.equal(
      await statusOf(aaron.create(kinds.AppDeploymentResource, deployment, dryRun)),
      403,
      "an approver cannot deploy",
    );
    const dora = await as("dora");
    assert.equal(
      await statusOf(dora.create(kinds.ApprovalResource, approval, dryRun)),
      200,
      "deployer and approver",
    );
    assert.equal(await statusOf(dora.create(kinds.AppDeploymentResource, deployment, dryRun)), 200);
  });
});
