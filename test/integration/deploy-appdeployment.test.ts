// AppDeployment end to end against a real API server, a real Git server and OCI registry,
// the catalog operator, and the Fleet test driver playing Fleet: delivery to Git and
// GitRepos, status from BundleDeployments, clusters joining and leaving, offline and
// failing clusters, upgrade, suspend, approval, rollback, restarts without duplicate
// commits, a Git outage, and deletion.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import { approve, deploymentStatus, diff, formatStatus, history, rollback } from "../../cli/deploy.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  ApprovalResource,
  DeploymentPackageResource,
} from "../../operators/api/resources.generated.ts";
import { ControllerRevisionResource, GitRepoResource, type GitRepo } from "../../operators/deploy/fleet.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import type { ControllerRevision } from "../../operators/deploy/revisions.ts";
import type { KubeClient, KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import type { FleetDriver } from "../drivers/fleet.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import {
  app,
  packageResolved,
  shopDeployment,
  specHash,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";
import type { GitServer } from "../support/git-server.ts";
import { startOperator } from "../support/operator.ts";
import { secretsResource } from "../../operators/runtime/core.ts";

const controlPlane = useControlPlane();
const ns = "retail";
let fx: DeployFixture;
let client: KubeClient;
let deploy: Manager;
let fleet: FleetDriver;
let git: GitServer;

async function startDeploy(): Promise<Manager> {
  const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
  return startOperator("outpost-deploy", kubeConfig, (m) => {
    registerDeploy(m, { offlineAfterMs: 4_000, dropHoldMs: 3_000 });
  });
}

const get = (name: string): Promise<AppDeployment | undefined> =>
  client.get<AppDeployment>(AppDeploymentResource, name, ns);

const waitFor = (name: string, what: string, test: (d: AppDeployment) => boolean, timeoutMs?: number) =>
  waitForDeployment(client, ns, name, what, test, timeoutMs);

const gitRepos = async (name: string): Promise<GitRepo[]> =>
  (
    await client.list<GitRepo>(GitRepoResource, {
      namespace: ns,
      labelSelector: `outpost.dev/deployment=${name}`,
    })
  ).items;

const deployment = (name: string, spec: Partial<AppDeployment["spec"]> = {}): AppDeployment =>
  shopDeployment(ns, name, spec);

describe("AppDeployment", () => {
  before(async () => {
    fx = await startDeployFixture(controlPlane(), ns);
    console.log(`# Fleet CRDs: ${fx.fleetCRDs}`);
    ({ client, git, fleet } = fx);
    deploy = await startDeploy();
  });
  after(async () => {
    await deploy.stop();
    await fx.stop();
  });

  it("delivers one commit and one GitRepo per application, and reports Running from Fleet", async () => {
    await client.create(AppDeploymentResource, deployment("storefront"));
    const d = await waitFor("storefront", "Running", (x) => x.status?.phase === "Running");
    assert.deepEqual(d.status?.summary, { targets: 2, ready: 2, notReady: 0, offline: 0, pending: 0 });
    assert.equal(d.status.revision, 1);
    assert.equal(d.status.revisionHash, specHash(d.spec));
    assert.equal(getCondition(d.status.conditions, "Ready")?.status, "True");
    assert.deepEqual(
      d.status.applications?.map((a) => [a.name, a.targets, a.ready]),
      [
        ["web", 2, 2],
        ["db", 2, 2],
      ],
    );

    assert.deepEqual(git.log("retail"), [d.status.commit], "exactly one commit");
    assert.deepEqual(git.files("retail").sort(), [
      "storefront/db/fleet.yaml",
      "storefront/db/values.yaml",
      "storefront/web/fleet.yaml",
      "storefront/web/values.yaml",
    ]);
    assert.ok(
      !JSON.stringify(git.files("retail").map((f) => git.show("retail", f))).includes("s3cret-value"),
    );
    const secret = await client.get<KubeObject & { data?: Record<string, string> }>(
      secretsResource,
      "storefront-db-secret-values",
      ns,
    );
    assert.match(Buffer.from(secret?.data?.["values.yaml"] ?? "", "base64").toString(), /s3cret-value/);

    const repos = await gitRepos("storefront");
    assert.deepEqual(repos.map((r) => r.metadata.name).sort(), ["storefront-db", "storefront-web"]);
    for (const r of repos) {
      // Pinned to the delivered commit; no branch (Fleet's clone would take the branch).
      assert.equal(r.spec.revision, d.status.commit);
      assert.equal(r.spec.branch, undefined);
      assert.equal(r.spec.paused, false);
      assert.deepEqual(r.spec.targets, [
        { name: "selected", clusterSelector: { matchLabels: { tier: "store" } } },
      ]);
      assert.equal(r.metadata.ownerReferences?.[0]?.uid, d.metadata.uid);
    }
    const revisions = await client.list<ControllerRevision>(ControllerRevisionResource, {
      namespace: ns,
      labelSelector: "outpost.dev/deployment=storefront",
    });
    assert.deepEqual(
      revisions.items.map((r) => r.revision),
      [1],
    );
  });

  it("follows clusters that join, and counts offline and failing clusters apart", async () => {
    await fleet.setLabels("central", { tier: "store" });
    await waitFor("storefront", "3 ready", (x) => x.status?.summary?.ready === 3);

    fleet.setOnline("central", false);
    let d = await waitFor("storefront", "central offline", (x) => x.status?.summary?.offline === 1);
    assert.equal(d.status?.phase, "Running", "offline is not a failure");
    assert.deepEqual(
      d.status.clusters?.map((c) => [c.name, c.state]),
      [["central", "Offline"]],
    );
    fleet.setOnline("central", true);
    await waitFor("storefront", "central back", (x) => x.status?.summary?.ready === 3);

    fleet.failCluster("store-2", "ImagePullBackOff: web");
    try {
      d = await waitFor("storefront", "Degraded", (x) => x.status?.phase === "Degraded");
      assert.equal(d.status?.summary?.notReady, 1);
      assert.match(getCondition(d.status.conditions, "Ready")?.message ?? "", /store-2.*ImagePullBackOff/);
    } finally {
      // The other tests need a healthy fleet, whatever happened here.
      fleet.healCluster("store-2");
    }
    await waitFor("storefront", "Running again", (x) => x.status?.phase === "Running");

    await fleet.setLabels("central", { tier: "central" });
    await waitFor("storefront", "2 targets", (x) => x.status?.summary?.targets === 2);
  });

  it("reports an upgrade Fleet's agent could not apply as Failed, with Helm's message", async () => {
    const helmError =
      'Unable to continue with install: ConfigMap "web" in namespace "shop" exists and cannot be imported into the current release: invalid ownership metadata';
    await client.create(AppDeploymentResource, deployment("owned"));
    await waitFor("owned", "Running", (x) => x.status?.phase === "Running");
    fleet.failInstall("store-2", helmError);
    try {
      await client.mergePatch(AppDeploymentResource, "owned", ns, {
        spec: {
          parameters: [
            ...(deployment("x").spec.parameters ?? []),
            { application: "web", name: "replicaCount", value: "4" },
          ],
        },
      });
      // Deployed=False with the agent's error and the old appliedDeploymentID: Fleet's
      // ErrApplied, not a revision on its way.
      const d = await waitFor("owned", "store-2 Failed", (x) =>
        (x.status?.clusters ?? []).some((c) => c.name === "store-2" && c.state === "Failed"),
      );
      const store2 = d.status?.clusters?.find((c) => c.name === "store-2");
      assert.ok((store2?.message ?? "").includes(helmError), JSON.stringify(store2));
      assert.equal(d.status?.phase, "Degraded");
      assert.equal(d.status.summary?.notReady, 1);
      assert.equal(d.status.summary.ready, 1);
    } finally {
      fleet.healCluster("store-2");
    }
    await waitFor(
      "owned",
      "Running once healed",
      (x) => x.status?.phase === "Running" && x.status.revision === 2,
    );
    await client.delete(AppDeploymentResource, "owned", ns);
    await eventually("owned deleted", async () => ((await get("owned")) ? undefined : true));
  });

  it("delivers changed secret values as an upgrade: Failed with Helm's message where it fails, then everywhere", async () => {
    // Fleet's own redeploy on a copied Secret keeps the deployment ID, and a failed one is
    // retried as already installed (agent deployer.go helmdeploy EnsureInstalled) and then
    // reported deployed, with the old values still running.
    const helmError =
      'template: db/templates/secret.yaml:7:20: executing "db/templates/secret.yaml": password too short';
    await client.create(secretsResource, {
      metadata: { name: "rotate-password", namespace: ns },
      stringData: { password: "first-value" },
    } as KubeObject);
    const parameters = [
      {
        application: "db",
        name: "auth.password",
        secretKeyRef: { name: "rotate-password", key: "password" },
      },
    ];
    await client.create(AppDeploymentResource, deployment("rotate", { parameters }));
    await waitFor("rotate", "Running", (x) => x.status?.phase === "Running");
    const commits = git.log("retail").length;
    const copied = (cluster: string): string =>
      fleet.downstream(cluster).find((o) => o.kind === "Secret" && o.name === "rotate-db-secret-values")
        ?.data["values.yaml"] ?? "";
    assert.match(copied("store-2"), /first-value/);

    fleet.failInstall("store-2", helmError);
    try {
      await client.mergePatch(secretsResource, "rotate-password", ns, {
        stringData: { password: "second-value" },
      });
      const d = await waitFor("rotate", "store-2 Failed", (x) =>
        (x.status?.clusters ?? []).some((c) => c.name === "store-2" && c.state === "Failed"),
      );
      const store2 = d.status?.clusters?.find((c) => c.name === "store-2");
      assert.ok(
        (store2?.message ?? "").includes(`db: Fleet could not apply the current revision: ${helmError}`),
        JSON.stringify(store2),
      );
      assert.equal(d.status?.phase, "Degraded");
      assert.match(copied("store-1"), /second-value/);
      assert.ok(!JSON.stringify(d.status).includes("second-value"), "no secret value in status");
    } finally {
      fleet.healCluster("store-2");
    }
    const healed = await waitFor("rotate", "Running once healed", (x) => x.status?.phase === "Running");
    assert.equal(healed.status?.summary?.ready, 2);
    assert.match(copied("store-2"), /second-value/);
    assert.equal(git.log("retail").length, commits, "secret values never go to Git");
    const [bd] = await fleet.bundleDeployments({ bundle: "rotate-db", cluster: "store-2" });
    assert.equal(bd?.spec.options?.forceSyncGeneration, 1, "one change of the values");

    await client.delete(AppDeploymentResource, "rotate", ns);
    await eventually("rotate gone", async () => ((await get("rotate")) ? undefined : true), 60_000);
  });

  it("upgrades with exactly one new commit and revision, and a restart adds none", async () => {
    const before = git.log("retail").length;
    await client.mergePatch(AppDeploymentResource, "storefront", ns, {
      spec: {
        parameters: [
          ...(deployment("x").spec.parameters ?? []),
          { application: "web", name: "replicaCount", value: "5" },
        ],
      },
    });
    const d = await waitFor(
      "storefront",
      "revision 2 running",
      (x) => x.status?.revision === 2 && x.status.phase === "Running",
    );
    assert.equal(git.log("retail").length, before + 1);
    assert.match(git.show("retail", "storefront/web/values.yaml") ?? "", /replicaCount: 5/);

    await deploy.stop();
    deploy = await startDeploy();
    await client.mergePatch(AppDeploymentResource, "storefront", ns, {
      metadata: { annotations: { "outpost.dev/requestedAt": "restart-1" } },
    });
    await waitFor(
      "storefront",
      "handled after restart",
      (x) => x.status?.lastHandledReconcileAt === "restart-1",
    );
    assert.equal(git.log("retail").length, before + 1, "no second commit for the same tree");
    assert.equal((await get("storefront"))?.status?.commit, d.status?.commit);
  });

  it("pins each GitRepo to its deployment's commit: another deployment's commit starts none of its jobs", async () => {
    const storefront = await get("storefront");
    const pinned = storefront?.status?.commit;
    assert.ok(pinned);
    await client.create(AppDeploymentResource, deployment("kiosk"));
    await waitFor("kiosk", "Running", (x) => x.status?.phase === "Running");
    const before = fleet.jobsStarted();
    await client.mergePatch(AppDeploymentResource, "kiosk", ns, {
      spec: {
        parameters: [
          ...(deployment("x").spec.parameters ?? []),
          { application: "web", name: "replicaCount", value: "3" },
        ],
      },
    });
    const kiosk = await waitFor(
      "kiosk",
      "revision 2 running",
      (x) => x.status?.revision === 2 && x.status.phase === "Running",
    );
    assert.equal(git.log("retail")[0], kiosk.status?.commit, "kiosk's change is the branch's head");
    const after = fleet.jobsStarted();
    // The witness that Fleet's gitjobs ran after the change: kiosk's web GitRepo got one.
    assert.equal(after.get("retail/kiosk-web"), (before.get("retail/kiosk-web") ?? 0) + 1);
    for (const repo of ["retail/storefront-web", "retail/storefront-db"])
      assert.equal(after.get(repo), before.get(repo), `${repo}: no job for another deployment's commit`);
    assert.ok((await gitRepos("storefront")).every((r) => r.spec.revision === pinned));

    // A restart re-reads every deployment; an unchanged one keeps its commit.
    await deploy.stop();
    deploy = await startDeploy();
    await client.mergePatch(AppDeploymentResource, "storefront", ns, {
      metadata: { annotations: { "outpost.dev/requestedAt": "pin-restart" } },
    });
    const handled = await waitFor(
      "storefront",
      "handled after restart",
      (x) => x.status?.lastHandledReconcileAt === "pin-restart",
    );
    assert.equal(handled.status?.commit, pinned);
    assert.ok((await gitRepos("storefront")).every((r) => r.spec.revision === pinned));

    await client.delete(AppDeploymentResource, "kiosk", ns);
    await eventually("kiosk gone", async () => ((await get("kiosk")) ? undefined : true), 60_000);
  });

  it("suspends and resumes delivery by pausing the GitRepos", async () => {
    await client.mergePatch(AppDeploymentResource, "storefront", ns, { spec: { suspend: true } });
    await waitFor("storefront", "Suspended", (x) => x.status?.phase === "Suspended");
    assert.ok((await gitRepos("storefront")).every((r) => r.spec.paused));
    await client.mergePatch(AppDeploymentResource, "storefront", ns, { spec: { suspend: false } });
    await waitFor("storefront", "Running", (x) => x.status?.phase === "Running");
    assert.ok((await gitRepos("storefront")).every((r) => !r.spec.paused));
  });

  it("delivers nothing new until an Approval names the spec's hash", async () => {
    await client.mergePatch(AppDeploymentResource, "storefront", ns, {
      spec: { approval: { required: true } },
    });
    // Turning approval on is itself a spec change that needs approving.
    let d = await waitFor("storefront", "AwaitingApproval", (x) => x.status?.phase === "AwaitingApproval");
    const commits = git.log("retail").length;
    assert.ok((await gitRepos("storefront")).every((r) => r.spec.paused));
    assert.match(
      getCondition(d.status?.conditions, "Ready")?.message ?? "",
      /kubectl outpost approve storefront/,
    );

    await client.create(ApprovalResource, {
      metadata: { name: "storefront-stale", namespace: ns },
      spec: { deploymentRef: { name: "storefront" }, revisionHash: "0000000000000000" },
    } as KubeObject);
    // The witness: a reconcile that ran after the operator saw the stale Approval.
    await eventually("the operator sees the stale Approval", () =>
      Promise.resolve(
        deploy.informer(ApprovalResource).cache.get(`${ns}/storefront-stale`) ? true : undefined,
      ),
    );
    await client.mergePatch(AppDeploymentResource, "storefront", ns, {
      metadata: { annotations: { "outpost.dev/requestedAt": "stale-approval" } },
    });
    await waitFor("storefront", "handled", (x) => x.status?.lastHandledReconcileAt === "stale-approval");
    assert.equal(
      (await get("storefront"))?.status?.phase,
      "AwaitingApproval",
      "an Approval of another hash does not count",
    );

    await client.create(ApprovalResource, {
      metadata: { name: "storefront-ok", namespace: ns },
      spec: { deploymentRef: { name: "storefront" }, revisionHash: specHash(d.spec) },
    } as KubeObject);
    d = await waitFor("storefront", "Running after approval", (x) => x.status?.phase === "Running");
    assert.equal(d.status?.revision, 3);
    assert.equal(git.log("retail").length, commits, "approval alone changes no bundle content");
    assert.ok((await gitRepos("storefront")).every((r) => !r.spec.paused));
  });

  it("rolls back by restoring a revision's spec, renumbering that revision", async () => {
    const revisions = await client.list<ControllerRevision>(ControllerRevisionResource, {
      namespace: ns,
      labelSelector: "outpost.dev/deployment=storefront",
    });
    const first = revisions.items.find((r) => r.revision === 1);
    assert.ok(first);
    // kubectl outpost rollback --to-revision 1 (revision 1 needed no approval).
    assert.deepEqual(await rollback(client, ns, "storefront", 1), {
      revision: 1,
      hash: specHash(first.data.spec),
    });
    const d = await waitFor(
      "storefront",
      "rolled back",
      (x) => x.status?.phase === "Running" && x.status.revisionHash === specHash(first.data.spec),
    );
    assert.doesNotMatch(git.show("retail", "storefront/web/values.yaml") ?? "", /replicaCount: 5/);
    assert.equal(d.status?.revision, 4);
    const after = await client.list<ControllerRevision>(ControllerRevisionResource, {
      namespace: ns,
      labelSelector: "outpost.dev/deployment=storefront",
    });
    assert.deepEqual(after.items.map((r) => r.revision).sort(), [2, 3, 4], "revision 1 became revision 4");
  });

  it("answers kubectl outpost status, history, diff, approve and rollback", async () => {
    const status = await deploymentStatus(client, ns, "storefront", { clusters: true });
    assert.deepEqual(
      status.clusters?.map((r) => `${r.cluster}/${r.application}=${r.state}`),
      ["store-1/db=Ready", "store-1/web=Ready", "store-2/db=Ready", "store-2/web=Ready"],
    );
    assert.match(formatStatus(status), /Phase:\s+Running/);

    const rows = await history(client, ns, "storefront");
    assert.deepEqual(
      rows.map((r) => [r.revision, r.current]),
      [
        [2, false],
        [3, false],
        [4, true],
      ],
    );
    assert.equal((await diff(client, ns, "storefront")).changed, false);

    // An edit that needs approval: diff shows it, nothing is delivered until approved.
    await client.mergePatch(AppDeploymentResource, "storefront", ns, {
      spec: {
        approval: { required: true },
        targets: {
          clusterSelector: {
            matchLabels: null,
            matchExpressions: [{ key: "tier", operator: "In", values: ["store", "central"] }],
          },
        },
        applications: [{ name: "web", values: { banner: "winter sale" } }],
      },
    });
    await waitFor("storefront", "AwaitingApproval", (x) => x.status?.phase === "AwaitingApproval");
    const d = await diff(client, ns, "storefront");
    assert.ok(d.changed);
    assert.deepEqual(d.targets, [
      { application: "db", added: ["central"], removed: [] },
      { application: "web", added: ["central"], removed: [] },
    ]);
    const webValues = d.files.find(
      (f) => f.application === "web" && f.patch.includes("+++ b/storefront/web/values.yaml"),
    );
    assert.match(webValues?.patch ?? "", /\+banner: winter sale/);
    assert.ok(!JSON.stringify(d).includes("s3cret-value"), "secrets are redacted");

    const approved = await approve(client, ns, "storefront", "winter campaign");
    assert.equal(approved.created, true);
    assert.equal((await approve(client, ns, "storefront")).created, false, "approving twice is a no-op");
    let after = await waitFor(
      "storefront",
      "Running on 3 clusters",
      (x) => x.status?.phase === "Running" && x.status.summary?.targets === 3,
    );
    assert.equal(after.status?.revision, 5);

    const back = await rollback(client, ns, "storefront");
    assert.equal(back.revision, 4);
    after = await waitFor(
      "storefront",
      "rolled back to 2 clusters",
      (x) => x.status?.phase === "Running" && x.status.summary?.targets === 2,
    );
    assert.equal(after.status?.revision, 6);
    assert.equal(after.spec.approval, undefined);
    await assert.rejects(rollback(client, ns, "storefront", 1), /has no revision 1 \(it has 2, 3, 5, 6\)/);
  });

  it("reports a missing package, no matching cluster and Git outages with what to do", async () => {
    await client.create(
      AppDeploymentResource,
      deployment("missing", { packageRef: { name: "shop", version: "9.9.9" } }),
    );
    let d = await waitFor(
      "missing",
      "PackageNotFound",
      (x) => getCondition(x.status?.conditions, "Ready")?.reason === "PackageNotFound",
    );
    assert.match(
      getCondition(d.status?.conditions, "Ready")?.message ?? "",
      /shop version 9.9.9 does not exist in namespace retail/,
    );

    await client.create(
      AppDeploymentResource,
      deployment("nowhere", { targets: { clusterSelector: { matchLabels: { tier: "moon" } } } }),
    );
    d = await waitFor("nowhere", "NoTargetClusters", (x) => x.status?.phase === "NoTargetClusters");
    assert.match(
      getCondition(d.status?.conditions, "Ready")?.message ?? "",
      /no Fleet cluster in namespace retail matches/,
    );

    git.down();
    await client.mergePatch(AppDeploymentResource, "nowhere", ns, {
      spec: { applications: [{ name: "web", values: { banner: "sale" } }] },
    });
    d = await waitFor(
      "nowhere",
      "Git unreachable",
      (x) => getCondition(x.status?.conditions, "Delivered")?.status === "False",
    );
    assert.match(getCondition(d.status?.conditions, "Delivered")?.reason ?? "", /^Git/);
    git.up();
    await waitFor(
      "nowhere",
      "delivered again",
      (x) => getCondition(x.status?.conditions, "Delivered")?.status === "True",
      45_000,
    );
  });

  it("rolls out in waves, and clusters in no wave still get the deployment", async () => {
    await fleet.setLabels("central", { tier: "store", ring: "late" });
    await fleet.setLabels("store-1", { tier: "store", ring: "pilot" });
    await client.create(
      AppDeploymentResource,
      deployment("waves", {
        rollout: {
          maxUnavailable: 1,
          waves: [{ name: "pilot", clusterSelector: { matchLabels: { ring: "pilot" } } }],
        },
      }),
    );
    const d = await waitFor("waves", "Running on 3 clusters", (x) => x.status?.phase === "Running");
    assert.equal(d.status?.summary?.ready, 3);
    const bundle = (await fleet.bundles()).find((b) => b.metadata.name === "waves-web");
    assert.ok(bundle);
    assert.deepEqual(
      bundle.spec.rolloutStrategy?.partitions?.map((p) => p.name),
      ["pilot", "remaining"],
    );
    // Fleet puts a cluster in every partition that selects it: the last one holds only
    // the clusters in no wave (central and store-2), not the pilot again.
    assert.deepEqual(
      bundle.status?.partitions?.map((p) => [p.name, p.count]),
      [
        ["pilot", 1],
        ["remaining", 2],
      ],
    );
    assert.equal(getCondition(d.status.conditions, "SpecApplied"), undefined);
    // Without maxUnavailable, Fleet's default of 100% gates no wave: said so.
    await client.mergePatch(AppDeploymentResource, "waves", ns, {
      spec: { rollout: { maxUnavailable: null } },
    });
    const ungated = await waitFor(
      "waves",
      "SpecApplied=False",
      (x) => getCondition(x.status?.conditions, "SpecApplied")?.status === "False",
    );
    assert.match(
      getCondition(ungated.status?.conditions, "SpecApplied")?.message ?? "",
      /without spec\.rollout\.maxUnavailable Fleet updates every wave at once/,
    );
    await fleet.setLabels("central", { tier: "central" });
    await fleet.setLabels("store-1", { tier: "store" });
  });

  it("holds a drop of more than half the targeted clusters until it persists", async () => {
    await client.create(
      AppDeploymentResource,
      deployment("named", { targets: { clusters: ["store-1", "store-2", "central"] } }),
    );
    await waitFor(
      "named",
      "3 targets",
      (x) => x.status?.summary?.targets === 3 && x.status.phase === "Running",
    );
    const before = Date.now();
    await client.mergePatch(AppDeploymentResource, "named", ns, {
      spec: { targets: { clusters: ["store-1"] } },
    });
    const held = await waitFor(
      "named",
      "TargetsHeld",
      (x) => getCondition(x.status?.conditions, "TargetsHeld")?.status === "True",
    );
    assert.match(
      getCondition(held.status?.conditions, "TargetsHeld")?.message ?? "",
      /dropped from 3 to 1; holding the change/,
    );
    assert.ok(
      (await gitRepos("named")).every((r) => r.spec.targets.length === 3),
      "old targets kept",
    );
    // The hold is 3 s here (--drop-hold): then the change goes through.
    const done = await waitFor(
      "named",
      "drop accepted",
      (x) =>
        x.status?.summary?.targets === 1 && getCondition(x.status.conditions, "TargetsHeld") === undefined,
    );
    // Condition times have whole seconds: the hold starts up to a second early.
    assert.ok(Date.now() - before >= 2_000, `released after ${Date.now() - before} ms`);
    assert.equal(done.status?.phase, "Running");
    assert.ok((await gitRepos("named")).every((r) => r.spec.targets.length === 1));
  });

  it("refuses a deployment delivered under another's names, committing nothing, until that one goes", async () => {
    // Package "combo" has an application named web-db: deployment "pair" would deliver it as
    // pair-web-db, the name of deployment "pair-web"'s application db.
    await client.create(ApplicationResource, {
      metadata: { name: "web-db-1.0.0", namespace: ns },
      spec: {
        name: "web-db",
        version: "1.0.0",
        chart: { registryRef: { name: "charts" }, name: "web", version: "1.0.0" },
      },
    } as KubeObject);
    await client.create(DeploymentPackageResource, {
      metadata: { name: "combo-1.0.0", namespace: ns },
      spec: { name: "combo", version: "1.0.0", applications: [{ name: "web-db", version: "1.0.0" }] },
    } as KubeObject);
    await packageResolved(client, ns, "combo-1.0.0");
    await client.create(AppDeploymentResource, deployment("pair-web"));
    await waitFor("pair-web", "Running", (x) => x.status?.phase === "Running");
    const commits = git.log("retail").length;

    await client.create(
      AppDeploymentResource,
      deployment("pair", { packageRef: { name: "combo", version: "1.0.0" }, parameters: [] }),
    );
    const refused = await waitFor(
      "pair",
      "NameConflict",
      (x) => getCondition(x.status?.conditions, "Ready")?.reason === "NameConflict",
    );
    assert.match(
      getCondition(refused.status?.conditions, "Ready")?.message ?? "",
      /application web-db of this deployment and application db of AppDeployment pair-web \(created earlier\) would both be delivered as pair-web-db/,
    );
    assert.equal(git.log("retail").length, commits, "nothing committed");
    assert.ok(!git.files("retail").some((f) => f.startsWith("pair/")));
    assert.deepEqual(await gitRepos("pair"), [], "no GitRepo written");
    const shared = await client.get<GitRepo>(GitRepoResource, "pair-web-db", ns);
    assert.equal(shared?.metadata.labels?.["outpost.dev/deployment"], "pair-web", "the earlier one keeps it");

    // Deleting pair-web frees the name: pair is delivered without being touched.
    await client.delete(AppDeploymentResource, "pair-web", ns);
    await eventually("pair-web gone", async () => ((await get("pair-web")) ? undefined : true), 60_000);
    await waitFor("pair", "Running", (x) => x.status?.phase === "Running");
    assert.deepEqual(
      (await gitRepos("pair")).map((r) => r.metadata.name),
      ["pair-web-db"],
    );
    await client.delete(AppDeploymentResource, "pair", ns);
    await eventually("pair gone", async () => ((await get("pair")) ? undefined : true), 60_000);
  });

  it("ignores drift in ignoredResources, and reports other drift as Modified, which holds dependents", async () => {
    // Fleet's agent hides drift only where a comparePatch matches the object and drops a
    // JSON pointer above the change (desiredset/diff.go); a dependency that is Modified is
    // not Ready, so its dependents are not upgraded (deployer.go checkDependency).
    await client.create(
      ApplicationResource,
      app(ns, "dweb", [{ name: "replicaCount", type: "number", default: "1" }], {}, { chart: "web" }),
    );
    await client.create(
      ApplicationResource,
      app(ns, "ddb", [], {}, { chart: "db", ignoredResources: [{ kind: "ConfigMap", name: "db-runtime" }] }),
    );
    await client.create(DeploymentPackageResource, {
      metadata: { name: "drifty-1.0.0", namespace: ns },
      spec: {
        name: "drifty",
        version: "1.0.0",
        applications: [
          { name: "dweb", version: "1.0.0" },
          { name: "ddb", version: "1.0.0" },
        ],
        dependencies: [{ application: "dweb", requires: "ddb" }],
      },
    } as KubeObject);
    await packageResolved(client, ns, "drifty-1.0.0");
    const replicas = (n: number) => ({
      parameters: [{ application: "dweb", name: "replicaCount", value: String(n) }],
    });
    await client.create(
      AppDeploymentResource,
      deployment("drift", { packageRef: { name: "drifty", version: "1.0.0" }, ...replicas(1) }),
    );
    await waitFor("drift", "Running", (x) => x.status?.phase === "Running");

    // The operator of the database rewrites its ConfigMap: ignored, the upgrade goes on.
    fleet.drift("store-1", "drift-ddb", {
      apiVersion: "v1",
      kind: "ConfigMap",
      namespace: "drift",
      name: "db-runtime",
      pointer: "/data/leader",
      desired: "db-0",
    });
    await client.mergePatch(AppDeploymentResource, "drift", ns, { spec: replicas(2) });
    await waitFor(
      "drift",
      "revision 2 everywhere",
      (x) => x.status?.revision === 2 && x.status.phase === "Running" && x.status.summary?.ready === 2,
    );
    const [ddb] = await fleet.bundleDeployments({ bundle: "drift-ddb", cluster: "store-1" });
    assert.equal(ddb?.status?.nonModified, true, "the ignored change is not a modification");

    // Someone edits the database's Service: Modified, and dweb is held on store-1.
    fleet.drift("store-1", "drift-ddb", {
      apiVersion: "v1",
      kind: "Service",
      namespace: "drift",
      name: "db",
      pointer: "/spec/ports",
      desired: [{ port: 5432 }],
    });
    const d = await waitFor("drift", "store-1 Modified", (x) =>
      (x.status?.clusters ?? []).some((c) => c.name === "store-1" && c.state === "NotReady"),
    );
    assert.match(
      d.status?.clusters?.find((c) => c.name === "store-1")?.message ?? "",
      /ddb: Modified: on the cluster, Service drift\/db was changed \(drift from the revision\)/,
    );
    await client.mergePatch(AppDeploymentResource, "drift", ns, { spec: replicas(3) });
    const held = await waitFor(
      "drift",
      "store-2 upgraded, store-1 held",
      (x) =>
        x.status?.revision === 3 &&
        (x.status.applications ?? []).some((a) => a.name === "dweb" && a.ready === 1 && a.targets === 2),
    );
    // Fleet's summary of its clusters, copied from the Bundle, is per-cluster state, not an error.
    assert.notEqual(getCondition(held.status?.conditions, "Ready")?.reason, "EngineError");
    const [store1] = await fleet.bundleDeployments({ bundle: "drift-dweb", cluster: "store-1" });
    const [store2] = await fleet.bundleDeployments({ bundle: "drift-dweb", cluster: "store-2" });
    assert.ok(store1 && store2);
    assert.equal((await fleet.valuesOf(store2)).replicaCount, 3);
    assert.equal(store2.status?.appliedDeploymentID, store2.spec.deploymentID);
    assert.notEqual(store1.status?.appliedDeploymentID, store1.spec.deploymentID, "store-1 not upgraded");
    assert.match(
      store1.status?.conditions?.find((c) => c.type === "Deployed")?.message ?? "",
      /dependent bundle\(s\) are not ready: \[drift-ddb\]/,
    );

    await client.delete(AppDeploymentResource, "drift", ns);
    await eventually("drift gone", async () => ((await get("drift")) ? undefined : true), 60_000);
  });

  it("targets a cluster by its Rancher display name, as Fleet matches names", async () => {
    // Fleet's cluster matcher takes a target's clusterName as the Cluster's name or its
    // label management.cattle.io/cluster-display-name (target/matcher/clustermatcher.go).
    await fleet.registerCluster("c-m-8x2k", { "management.cattle.io/cluster-display-name": "kiosk-7" });
    try {
      await client.create(
        AppDeploymentResource,
        deployment("byname", { targets: { clusters: ["kiosk-7"] } }),
      );
      const d = await waitFor("byname", "Running", (x) => x.status?.phase === "Running");
      assert.deepEqual(d.status?.summary, { targets: 1, ready: 1, notReady: 0, offline: 0, pending: 0 });
      const bds = await fleet.bundleDeployments({ bundle: "byname-web" });
      assert.deepEqual(
        bds.map((b) => b.metadata.labels?.["fleet.cattle.io/cluster"]),
        ["c-m-8x2k"],
      );
      await client.delete(AppDeploymentResource, "byname", ns);
      await eventually("byname gone", async () => ((await get("byname")) ? undefined : true), 60_000);
    } finally {
      await fleet.deleteCluster("c-m-8x2k");
    }
  });

  it("passes values to Helm as written: Fleet does not template them", async () => {
    // Fleet runs values through Go templates with ${ } delimiters on clusters with labels
    // unless helm.disablePreProcess is set (target/builder.go preprocessHelmValues).
    const literal = { home: "${HOME}", cluster: "${ .ClusterName }" };
    await client.create(
      AppDeploymentResource,
      deployment("literal", { applications: [{ name: "web", values: literal }] }),
    );
    await waitFor("literal", "Running", (x) => x.status?.phase === "Running");
    const bds = await fleet.bundleDeployments({ bundle: "literal-web" });
    assert.equal(bds.length, 2, "one per store cluster");
    for (const bd of bds) {
      const values = await fleet.valuesOf(bd);
      assert.equal(values.home, "${HOME}");
      assert.equal(values.cluster, "${ .ClusterName }");
    }
    await client.delete(AppDeploymentResource, "literal", ns);
    await eventually("literal gone", async () => ((await get("literal")) ? undefined : true), 60_000);
  });

  it("refuses a value Fleet would replace by a cluster label, and leaves what it delivered", async () => {
    // Fleet replaces string values beginning with global.fleet.clusterLabels. by the
    // cluster's label, disablePreProcess or not (target/builder.go processLabelValues).
    await client.create(
      AppDeploymentResource,
      deployment("labelled", { applications: [{ name: "web", values: { tier: "gold" } }] }),
    );
    await waitFor("labelled", "Running", (x) => x.status?.phase === "Running");
    const commits = git.log("retail").length;
    const before = (await gitRepos("labelled")).map((r) => [r.metadata.name, r.spec.revision]);

    await client.mergePatch(AppDeploymentResource, "labelled", ns, {
      spec: { applications: [{ name: "web", values: { tier: "global.fleet.clusterLabels.tier" } }] },
    });
    const refused = await waitFor(
      "labelled",
      "NotDeliverable",
      (x) => getCondition(x.status?.conditions, "Ready")?.reason === "NotDeliverable",
    );
    assert.match(
      getCondition(refused.status?.conditions, "Ready")?.message ?? "",
      /values of application web: tier is "global\.fleet\.clusterLabels\.tier", which Fleet replaces by the cluster's label tier/,
    );
    assert.equal(getCondition(refused.status?.conditions, "Stalled")?.status, "True");
    assert.equal(git.log("retail").length, commits, "nothing committed");
    assert.deepEqual(
      (await gitRepos("labelled")).map((r) => [r.metadata.name, r.spec.revision]),
      before,
      "the GitRepos stay on the delivered commit",
    );
    for (const bd of await fleet.bundleDeployments({ bundle: "labelled-web" }))
      assert.equal((await fleet.valuesOf(bd)).tier, "gold");

    await client.delete(AppDeploymentResource, "labelled", ns);
    await eventually("labelled gone", async () => ((await get("labelled")) ? undefined : true), 60_000);
  });

  it("deletes GitRepos and the folder in Git (one commit), then goes away", async () => {
    const commits = git.log("retail").length;
    git.down();
    await client.delete(AppDeploymentResource, "storefront", ns);
    await eventually("GitRepos removed", async () =>
      (await gitRepos("storefront")).length === 0 ? true : undefined,
    );
    assert.ok(await get("storefront"), "held while Git is down");
    git.up();
    await eventually("deployment gone", async () => ((await get("storefront")) ? undefined : true), 45_000);
    assert.equal(git.log("retail").length, commits + 1);
    assert.ok(!git.files("retail").some((f) => f.startsWith("storefront/")));
    assert.ok(
      git.files("retail").some((f) => f.startsWith("nowhere/")),
      "other deployments stay",
    );
  });
});
