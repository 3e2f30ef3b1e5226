// AppDeployment delivered by a real Argo CD to edges that really run workloads (kwok
// nodes, kube-scheduler, the workload controllers): placement per application, state per
// cluster from Argo CD's sync and health (a broken image is Degraded with its message),
// clusters joining and leaving, per-cluster overrides chosen by Argo CD's templatePatch,
// upgrade, rollback to the exact tree, suspend (no sync, no self-heal), an edge API
// server that stops (Offline, then caught up), a project switching engines (refused),
// deletion (workloads and Argo CD objects gone) and SIGKILL of the operator mid-delivery.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import { rollback } from "../../cli/deploy.ts";
import { AppDeploymentResource, ProjectResource } from "../../operators/api/resources.generated.ts";
import {
  ApplicationSetResource,
  AppProjectResource,
  ArgoApplicationResource,
  type ApplicationSet,
  type ArgoApplication,
} from "../../operators/deploy/argocd.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import { ApiError, KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { secretsResource } from "../../operators/runtime/core.ts";
import { roleBindingsResource } from "../../operators/tenancy/project.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile, kubeconfigFor } from "../controlplane/index.ts";
import {
  argoEdgeLabels,
  argoShop,
  deploymentsResource,
  readyPods,
  startArgoDeployFixture,
  type ArgoDeployFixture,
} from "../support/argocd-deploy.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { waitForDeployment } from "../support/deploy.ts";
import { OperatorProcess, startOperator } from "../support/operator.ts";

const controlPlane = useControlPlane({ edges: 3, workloads: { nodes: 2 } });
const ns = "retail";
let fx: ArgoDeployFixture;
let client: KubeClient;
let deploy: Manager | undefined;

const startDeploy = (): Promise<Manager> =>
  startOperator("outpost-deploy", kubeConfigFromFile(controlPlane().management.kubeconfig), (m) => {
    registerDeploy(m, { offlineAfterMs: 4_000, engines: ["argocd", "fleet"], defaultEngine: "fleet" });
  });
const waitFor = (name: string, what: string, test: (d: AppDeployment) => boolean, timeoutMs = 180_000) =>
  waitForDeployment(client, ns, name, what, test, timeoutMs);
const get = async (name: string): Promise<AppDeployment> => {
  const d = await client.get<AppDeployment>(AppDeploymentResource, name, ns);
  if (!d) throw new Error(`no AppDeployment ${name}`);
  return d;
};
const patchSpec = async (name: string, spec: Partial<AppDeployment["spec"]>): Promise<void> => {
  await client.mergePatch(AppDeploymentResource, name, ns, { spec });
};
const appSets = async (name: string): Promise<ApplicationSet[]> =>
  (
    await client.list<ApplicationSet>(ApplicationSetResource, {
      namespace: fx.argo.namespace,
      labelSelector: `outpost.dev/project=${ns},outpost.dev/deployment=${name}`,
    })
  ).items;
const applications = async (name: string): Promise<ArgoApplication[]> =>
  (
    await client.list<ArgoApplication>(ArgoApplicationResource, {
      namespace: fx.argo.namespace,
      labelSelector: `outpost.dev/project=${ns},outpost.dev/deployment=${name}`,
    })
  ).items;
const running = (d: AppDeployment, ready: number): boolean =>
  d.status?.phase === "Running" && d.status.summary?.ready === ready;

describe("AppDeployment delivered by Argo CD", () => {
  before(async () => {
    fx = await startArgoDeployFixture(controlPlane());
    client = fx.client;
    deploy = await startDeploy();
  });
  after(async () => {
    await deploy?.stop();
    await fx.stop();
  });

  it("delivers each application to its placement, where its pods run, and reports Running from Argo CD", async () => {
    await client.create(AppDeploymentResource, argoShop(ns, "shop"));
    const d = await waitFor("shop", "Running on 3 clusters", (x) => running(x, 3));
    assert.equal(d.status?.engine, "argocd");
    assert.deepEqual(d.status.summary, { targets: 3, ready: 3, notReady: 0, offline: 0, pending: 0 });
    assert.deepEqual(
      d.status.applications?.map((a) => [a.name, a.targets, a.ready]),
      [
        ["web", 2, 2],
        ["db", 1, 1],
      ],
    );
    // The workloads really run: web (replicaCount 2, the parameter's default) at the stores, db at central.
    await readyPods(fx, "store-1", "shop", "web", 2);
    await readyPods(fx, "store-2", "shop", "web", 2);
    await readyPods(fx, "central", "shop", "db", 1);
    assert.deepEqual(await fx.pods("central", "shop", "web"), [], "web only where placed");
    assert.deepEqual(await fx.pods("store-1", "shop", "db"), []);

    // One ApplicationSet per application, pinned to the delivered commit; one Application per cluster.
    const sets = await appSets("shop");
    assert.deepEqual(sets.map((s) => s.metadata.name).sort(), ["retail-shop-db", "retail-shop-web"]);
    const apps = await applications("shop");
    assert.deepEqual(
      apps
        .map(
          (a) =>
            `${a.metadata.labels?.["outpost.dev/application"]}@${a.metadata.labels?.["outpost.dev/cluster"]}`,
        )
        .sort(),
      ["db@central", "web@store-1", "web@store-2"],
    );
    for (const a of apps) {
      assert.equal(a.spec?.sources?.find((s) => s.ref === "values")?.targetRevision, d.status.commit);
      assert.equal(a.status?.sync?.revisions?.[1], d.status.commit);
      assert.equal(a.spec?.project, "outpost-retail");
    }
    assert.ok(await client.get(AppProjectResource, "outpost-retail", fx.argo.namespace));
    // The secret parameter reached the cluster, and no file in Git holds it.
    assert.ok(!fx.git.files(fx.repo).some((f) => fx.git.show(fx.repo, f)?.includes("s3cret-value")));
    const secret = await fx.edges.central.client.get<KubeObject & { data?: Record<string, string> }>(
      { group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true },
      "db-auth",
      "shop",
    );
    assert.equal(Buffer.from(secret?.data?.password ?? "", "base64").toString(), "s3cret-value");
  });

  it("says which part of the spec Argo CD does not apply, instead of dropping it silently", async () => {
    assert.equal(getCondition((await get("shop")).status?.conditions, "SpecApplied"), undefined);
    await patchSpec("shop", {
      rollout: { waves: [{ name: "pilot", clusterSelector: { matchLabels: { ring: "pilot" } } }] },
    });
    const d = await waitFor(
      "shop",
      "SpecApplied=False",
      (x) => getCondition(x.status?.conditions, "SpecApplied")?.status === "False",
    );
    assert.match(
      getCondition(d.status?.conditions, "SpecApplied")?.message ?? "",
      /spec\.rollout\.waves: the Argo CD engine does not stage waves yet/,
    );
    await patchSpec("shop", { rollout: null as unknown as undefined });
    await waitFor(
      "shop",
      "SpecApplied gone, Running",
      (x) => getCondition(x.status?.conditions, "SpecApplied") === undefined && running(x, 3),
    );
  });

  it("keeps a project deployer out of Argo CD's objects: no ApplicationSet, AppProject or cluster Secret of its own", async () => {
    // A real non-admin identity: a client certificate for a user bound to the project's deployer role.
    await client.create(roleBindingsResource, {
      metadata: { name: "deployer-mallory", namespace: ns },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: "outpost:project-deployer",
      },
      subjects: [{ kind: "User", name: "mallory", apiGroup: "rbac.authorization.k8s.io" }],
    } as KubeObject);
    const mallory = new KubeClient(
      kubeConfigFromFile(await kubeconfigFor(controlPlane().management, "mallory")),
    );
    try {
      // The witness that the identity works: it may read deployments in its project.
      assert.ok(await mallory.get(AppDeploymentResource, "shop", ns));
      const forbidden = async (what: string, call: () => Promise<unknown>): Promise<void> => {
        await assert.rejects(call, (err: unknown) => err instanceof ApiError && err.code === 403, what);
      };
      const sets = await appSets("shop");
      const hijack = {
        ...sets[0],
        metadata: { name: "mine", namespace: fx.argo.namespace },
      } as ApplicationSet;
      await forbidden("create an ApplicationSet", () => mallory.create(ApplicationSetResource, hijack));
      await forbidden("edit Outpost's ApplicationSet", () =>
        mallory.mergePatch(ApplicationSetResource, sets[0]?.metadata.name ?? "", fx.argo.namespace, {
          spec: { template: { spec: { project: "default" } } },
        }),
      );
      await forbidden("widen the AppProject", () =>
        mallory.mergePatch(AppProjectResource, "outpost-retail", fx.argo.namespace, {
          spec: { sourceRepos: ["*"] },
        }),
      );
      await forbidden("read cluster credentials", () =>
        mallory.list(secretsResource, { namespace: fx.argo.namespace }),
      );
      await forbidden("register a cluster for Argo CD", () =>
        mallory.create(secretsResource, {
          metadata: {
            name: "evil",
            namespace: fx.argo.namespace,
            labels: { "argocd.argoproj.io/secret-type": "cluster" },
          },
          stringData: { name: "evil", server: "https://10.0.0.1" },
        } as KubeObject),
      );
    } finally {
      await mallory.close();
    }
    // Nothing changed: the same two ApplicationSets, the AppProject as Outpost wrote it.
    assert.equal((await appSets("shop")).length, 2);
    const project = await client.get<KubeObject & { spec: { sourceRepos: string[] } }>(
      AppProjectResource,
      "outpost-retail",
      fx.argo.namespace,
    );
    assert.ok(!project?.spec.sourceRepos.includes("*"));
  });

  it("reports a broken image as Degraded with Argo CD's message, not Ready, and recovers", async () => {
    const before = (await get("shop")).status?.revision ?? 0;
    await patchSpec("shop", {
      applications: [
        { name: "db", targets: { clusters: ["central"] } },
        { name: "web", values: { image: "registry.example/web:broken" } },
      ],
    });
    try {
      // Each store's rollout passes its progress deadline on its own: wait for both.
      const d = await waitFor(
        "shop",
        "Degraded at both stores",
        (x) =>
          x.status?.phase === "Degraded" &&
          (x.status.revision ?? 0) > before &&
          (x.status.clusters ?? []).filter((c) => c.state === "NotReady").length === 2,
      );
      assert.equal(getCondition(d.status?.conditions, "Ready")?.status, "False");
      const web = d.status?.applications?.find((a) => a.name === "web");
      assert.equal(web?.ready, 0);
      assert.match(web.message ?? "", /Argo CD: Degraded/);
      assert.deepEqual(
        d.status?.clusters?.map((c) => c.name).sort(),
        ["store-1", "store-2"],
        "only the stores, where web runs",
      );
    } finally {
      await patchSpec("shop", { applications: [{ name: "db", targets: { clusters: ["central"] } }] });
    }
    await waitFor("shop", "Running again", (x) => running(x, 3));
    await readyPods(fx, "store-1", "shop", "web", 2, "registry.example/web:1.0");
  });

  it("follows clusters joining and leaving the selector, and applies overrides per cluster", async () => {
    await fx.register("central", { ...argoEdgeLabels.central, tier: "store", size: "large" });
    try {
      await patchSpec("shop", {
        overrides: [
          {
            application: "web",
            clusterSelector: { matchExpressions: [{ key: "size", operator: "In", values: ["large"] }] },
            values: { replicaCount: 3 },
          },
        ],
      });
      await waitFor(
        "shop",
        "web on central too",
        (x) => x.status?.applications?.find((a) => a.name === "web")?.ready === 3 && running(x, 3),
      );
      await readyPods(fx, "central", "shop", "web", 3, undefined);
      await readyPods(fx, "store-1", "shop", "web", 2);

      await fx.register("central", argoEdgeLabels.central);
      await waitFor(
        "shop",
        "web gone from central",
        (x) => x.status?.applications?.find((a) => a.name === "web")?.targets === 2 && running(x, 3),
      );
      await eventually(
        "web's pods gone from central",
        async () => ((await fx.pods("central", "shop", "web")).length === 0 ? true : undefined),
        120_000,
      );
    } finally {
      await fx.register("central", argoEdgeLabels.central);
      await patchSpec("shop", { overrides: null as unknown as undefined });
    }
    await waitFor("shop", "Running without overrides", (x) => running(x, 3));
  });

  it("upgrades, then rolls back to exactly the tree of an earlier revision", async () => {
    const first = await get("shop");
    const firstTree = new Map(fx.git.files(fx.repo).map((f) => [f, fx.git.show(fx.repo, f)]));
    await patchSpec("shop", {
      parameters: [
        ...(first.spec.parameters ?? []),
        { application: "web", name: "replicaCount", value: "1" },
      ],
    });
    const up = await waitFor(
      "shop",
      "upgraded",
      (x) => (x.status?.revision ?? 0) > (first.status?.revision ?? 0) && running(x, 3),
    );
    assert.notEqual(up.status?.commit, first.status?.commit);
    await readyPods(fx, "store-2", "shop", "web", 1);

    const r = await rollback(client, ns, "shop", first.status?.revision);
    assert.equal(r.revision, first.status?.revision);
    const back = await waitFor(
      "shop",
      "rolled back",
      (x) => x.status?.revisionHash === first.status?.revisionHash && running(x, 3),
    );
    const tree = new Map(fx.git.files(fx.repo).map((f) => [f, fx.git.show(fx.repo, f)]));
    assert.deepEqual(tree, firstTree, "the delivered tree is the earlier revision's");
    for (const a of await applications("shop"))
      assert.equal(a.status?.sync?.revisions?.[1], back.status?.commit);
    await readyPods(fx, "store-2", "shop", "web", 2);
  });

  it("suspends: nothing is synced or healed until resumed", async () => {
    await patchSpec("shop", { suspend: true });
    await waitFor("shop", "Suspended", (x) => x.status?.phase === "Suspended");
    await eventually(
      "automated sync off",
      async () =>
        (await applications("shop")).every(
          (a) =>
            (a.spec as { syncPolicy?: { automated?: { enabled?: boolean } } } | undefined)?.syncPolicy
              ?.automated?.enabled === false,
        )
          ? true
          : undefined,
      60_000,
    );
    // Scale web by hand on store-1: Argo CD sees the drift (the witness) and does not undo it.
    await fx.edges["store-1"].client.mergePatch(deploymentsResource, "web", "shop", {
      spec: { replicas: 4 },
    });
    await eventually(
      "Argo CD sees store-1 out of sync",
      async () => {
        const a = (await applications("shop")).find(
          (x) => x.metadata.labels?.["outpost.dev/cluster"] === "store-1",
        );
        return a?.status?.sync?.status === "OutOfSync" ? true : undefined;
      },
      120_000,
    );
    const scaled = await fx.edges["store-1"].client.get<KubeObject & { spec?: { replicas?: number } }>(
      deploymentsResource,
      "web",
      "shop",
    );
    assert.equal(scaled?.spec?.replicas, 4, "not healed while suspended");

    await patchSpec("shop", { suspend: false });
    await waitFor("shop", "Running after resume", (x) => running(x, 3));
    await readyPods(fx, "store-1", "shop", "web", 2);
  });

  it("counts a stopped edge API server as offline, not failed, and catches it up when it returns", async () => {
    const cp = controlPlane();
    const store2 = fx.edges["store-2"].cluster;
    await cp.killApiServer(store2);
    try {
      const d = await waitFor("shop", "store-2 offline", (x) => x.status?.summary?.offline === 1, 120_000);
      assert.equal(d.status?.phase, "Running", "offline is not a failure");
      assert.deepEqual(
        d.status.clusters?.map((c) => [c.name, c.state]),
        [["store-2", "Offline"]],
      );
      // A change while it is away.
      const rev = d.status.revision ?? 0;
      await patchSpec("shop", {
        parameters: [
          ...((await get("shop")).spec.parameters ?? []),
          { application: "web", name: "replicaCount", value: "3" },
        ],
      });
      await waitFor(
        "shop",
        "delivered while store-2 is away",
        (x) => (x.status?.revision ?? 0) > rev && x.status?.summary?.offline === 1,
      );
      await readyPods(fx, "store-1", "shop", "web", 3);
    } finally {
      await cp.restartApiServer(store2);
    }
    await waitFor("shop", "store-2 back and caught up", (x) => running(x, 3), 240_000);
    await readyPods(fx, "store-2", "shop", "web", 3, undefined, 180_000);
  });

  it("refuses to move a delivered deployment to another engine, changing nothing", async () => {
    const before = await get("shop");
    await client.mergePatch(ProjectResource, ns, undefined, { spec: { delivery: { engine: "fleet" } } });
    try {
      const d = await waitFor(
        "shop",
        "EngineChanged",
        (x) => getCondition(x.status?.conditions, "Stalled")?.reason === "EngineChanged",
      );
      assert.match(
        getCondition(d.status?.conditions, "Ready")?.message ?? "",
        /Argo CD delivers this deployment, but project retail now asks for Fleet/,
      );
      assert.equal(d.status?.engine, "argocd");
      assert.equal(d.status.commit, before.status?.commit);
      assert.equal((await appSets("shop")).length, 2, "its ApplicationSets stay");
    } finally {
      await client.mergePatch(ProjectResource, ns, undefined, { spec: { delivery: { engine: "argocd" } } });
    }
    await waitFor("shop", "Running again", (x) => running(x, 3));
  });

  it("delivers exactly one commit, converged, across SIGKILLs of the operator mid-delivery", async () => {
    await deploy?.stop();
    deploy = undefined;
    const operator = await OperatorProcess.create(controlPlane().management.kubeconfig, "deploy", [
      "--engines=argocd,fleet",
      "--offline-after=4s",
    ]);
    operator.start();
    try {
      const commits = fx.git.log(fx.repo).length;
      await client.create(
        AppDeploymentResource,
        argoShop(ns, "kiosk", {
          targets: { clusters: ["store-1"] },
          applications: [{ name: "db", targets: { clusters: ["store-1"] }, namespace: "kiosk-db" }],
        }),
      );
      // SIGKILL at random points for 15 s: around the commit, the ApplicationSets and status.
      const until = Date.now() + 15_000;
      const kills = await operator.killRepeatedly((k) => Date.now() < until || k < 3, 100, 900);
      console.log(`# deploy operator killed ${kills} times`);
      const d = await waitFor("kiosk", "Running", (x) => running(x, 1));
      assert.equal(fx.git.log(fx.repo).length, commits + 1, "one commit for the new deployment");
      assert.equal(fx.git.log(fx.repo)[0], d.status?.commit);
      await readyPods(fx, "store-1", "kiosk", "web", 2);
      await client.delete(AppDeploymentResource, "kiosk", ns);
      await eventually(
        "kiosk gone",
        async () => ((await client.get(AppDeploymentResource, "kiosk", ns)) ? undefined : true),
        120_000,
      );
    } finally {
      await operator.kill();
    }
    deploy = await startDeploy();
  });

  it("deletes: the workloads leave the edges, then the ApplicationSets, Applications and AppProject go", async () => {
    await client.delete(AppDeploymentResource, "shop", ns);
    await eventually(
      "shop gone",
      async () => ((await client.get(AppDeploymentResource, "shop", ns)) ? undefined : true),
      180_000,
    );
    assert.deepEqual(await appSets("shop"), []);
    assert.deepEqual(await applications("shop"), []);
    for (const [edge, release] of [
      ["store-1", "web"],
      ["store-2", "web"],
      ["central", "db"],
    ] as const) {
      assert.deepEqual(await fx.pods(edge, "shop", release), [], `${release} gone from ${edge}`);
    }
    assert.equal(await client.get(AppProjectResource, "outpost-retail", fx.argo.namespace), undefined);
    assert.ok(!fx.git.files(fx.repo).some((f) => f.startsWith("shop/")), "its folder is gone from Git");
  });
});
