// The approval policy is the Project's, out of deployers' reach. With real identities
// (client certificates bound to the project roles, as the tenancy operator binds them): a
// deployer of a project whose policy gates clusters labelled tier=store cannot deliver to
// them without an approver's Approval — not by leaving spec.approval.required out, not by
// setting it to false in the same edit as a change — cannot approve, and cannot edit the
// policy; a deployment that reaches no gated cluster needs no approval.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import {
  AppDeploymentResource,
  ApprovalResource,
  ProjectResource,
} from "../../operators/api/resources.generated.ts";
import { approve } from "../../cli/deploy.ts";
import { GitRepoResource, type GitRepo } from "../../operators/deploy/fleet.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile, kubeconfigFor } from "../controlplane/index.ts";
import { statusOf, useControlPlane } from "../support/controlplane.ts";
import { roleBindingsResource } from "../../operators/tenancy/project.ts";
import {
  shopDeployment,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";
import { startOperator } from "../support/operator.ts";

const controlPlane = useControlPlane();
const ns = "retail";
let fx: DeployFixture;
let deploy: Manager;
let dave: KubeClient;
let aaron: KubeClient;

const waitFor = (name: string, what: string, test: (d: AppDeployment) => boolean) =>
  waitForDeployment(fx.client, ns, name, what, test);

const gitRepos = async (name: string): Promise<GitRepo[]> =>
  (
    await fx.client.list<GitRepo>(GitRepoResource, {
      namespace: ns,
      labelSelector: `outpost.dev/deployment=${name}`,
    })
  ).items;

describe("approval policy", () => {
  before(async () => {
    const cp = controlPlane();
    fx = await startDeployFixture(cp, ns);
    // The Project's policy, set by a platform administrator: changes that reach stores.
    await fx.client.create(ProjectResource, {
      metadata: { name: ns },
      spec: { approval: { clusterSelector: { matchLabels: { tier: "store" } } } },
    } as KubeObject);
    // The members' bindings, as the tenancy operator makes them.
    for (const [user, role] of [
      ["dave", "deployer"],
      ["aaron", "approver"],
    ] as const) {
      await fx.client.create(roleBindingsResource, {
        metadata: { name: `${user}-${role}`, namespace: ns },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: `outpost:project-${role}`,
        },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
      } as KubeObject);
    }
    dave = new KubeClient(kubeConfigFromFile(await kubeconfigFor(cp.management, "dave")));
    aaron = new KubeClient(kubeConfigFromFile(await kubeconfigFor(cp.management, "aaron")));
    deploy = await startOperator("outpost-deploy", kubeConfigFromFile(cp.management.kubeconfig), (m) => {
      registerDeploy(m, { dropHoldMs: 1_000 });
    });
  });
  after(async () => {
    await deploy.stop();
    await dave.close();
    await aaron.close();
    await fx.stop();
  });

  it("holds a deployer's deployment to gated clusters until an approver approves", async () => {
    const commits = fx.git.log(fx.repo).length;
    await dave.create(
      AppDeploymentResource,
      shopDeployment(ns, "storefront", { approval: { required: false } }),
    );
    const held = await waitFor(
      "storefront",
      "AwaitingApproval",
      (d) => d.status?.phase === "AwaitingApproval",
    );
    assert.match(
      getCondition(held.status?.conditions, "Approved")?.message ?? "",
      /needs an Approval .*: it reaches cluster\(s\) store-1, store-2, which project retail's spec\.approval\.clusterSelector selects/,
    );
    assert.equal(fx.git.log(fx.repo).length, commits, "nothing was committed");
    assert.deepEqual(await gitRepos("storefront"), [], "nothing was delivered");

    // The deployer can neither approve nor change the policy.
    assert.equal(
      await statusOf(
        dave.create(ApprovalResource, {
          metadata: { name: "self-approved", namespace: ns },
          spec: { deploymentRef: { name: "storefront" }, revisionHash: "0123456789abcdef" },
        } as KubeObject),
      ),
      403,
    );
    assert.equal(
      await statusOf(dave.mergePatch(ProjectResource, ns, undefined, { spec: { approval: null } })),
      403,
    );

    await approve(aaron, ns, "storefront");
    const running = await waitFor("storefront", "Running", (d) => d.status?.phase === "Running");
    assert.equal(fx.git.log(fx.repo).length, commits + 1);
    assert.ok((await gitRepos("storefront")).every((r) => r.spec.revision === running.status?.commit));
  });

  it("does not let a deployer turn approval off in the same edit as a change", async () => {
    const before = await waitFor("storefront", "Running", (d) => d.status?.phase === "Running");
    const commits = fx.git.log(fx.repo).length;
    await dave.mergePatch(AppDeploymentResource, "storefront", ns, {
      spec: { approval: { required: false }, targets: { clusters: ["store-1"], clusterSelector: null } },
    });
    const held = await waitFor(
      "storefront",
      "AwaitingApproval of the change",
      (d) => d.status?.phase === "AwaitingApproval" && d.metadata.generation === d.status.observedGeneration,
    );
    assert.notEqual(held.status?.revisionHash, undefined);
    assert.equal(fx.git.log(fx.repo).length, commits, "the change was not committed");
    for (const r of await gitRepos("storefront")) {
      assert.equal(r.spec.revision, before.status?.commit, "the delivered commit stays");
      assert.deepEqual(r.spec.targets, [
        { name: "selected", clusterSelector: { matchLabels: { tier: "store" } } },
      ]);
    }

    await approve(aaron, ns, "storefront");
    const changed = await waitFor(
      "storefront",
      "Running the change",
      (d) => d.status?.phase === "Running" && d.status.summary?.targets === 1,
    );
    assert.ok((await gitRepos("storefront")).every((r) => r.spec.revision === changed.status?.commit));
  });

  it("needs no approval for a deployment that reaches no gated cluster", async () => {
    await dave.create(
      AppDeploymentResource,
      shopDeployment(ns, "hq", {
        targets: { clusterSelector: { matchLabels: { tier: "central" } } },
      }),
    );
    const d = await waitFor("hq", "Running", (x) => x.status?.phase === "Running");
    assert.equal(getCondition(d.status?.conditions, "Approved"), undefined);
  });
});
