// Isolation between projects with real identities (client certificates issued by the
// cluster's CA) and Outpost's real RBAC: a member of project A can do nothing with any
// Outpost object, Secret or Fleet object of project B; a viewer cannot create; a deployer
// cannot approve unless also an approver.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as kinds from "../../operators/api/resources.generated.ts";
import { ProjectResource } from "../../operators/api/resources.generated.ts";
import { BundleDeploymentResource, GitRepoResource } from "../../operators/deploy/fleet.ts";
import { ApiError, KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { registerTenancy } from "../../operators/tenancy/index.ts";
import { kubeConfigFromFile, kubeconfigFor } from "../controlplane/index.ts";
import { installFleetCRDs } from "../drivers/fleet-crds.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { installOutpost } from "../support/install.ts";
import { startOperator } from "../support/operator.ts";
import { secretsResource } from "../../operators/runtime/core.ts";
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

/** The HTTP status of `work`: 200 when it succeeds. */
async function statusOf(work: Promise<unknown>): Promise<number> {
  try {
    await work;
    return 200;
  } catch (err) {
    if (err instanceof ApiError) return err.code;
    throw err;
  }
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
