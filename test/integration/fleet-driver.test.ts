// The Fleet test driver (test/drivers/fleet.ts) against a real API server and a real Git
// server: bundles and BundleDeployments for the targeted clusters with Fleet's names and
// labels, status counts, git and fleet.yaml errors reported where Fleet reports them,
// targeting that follows cluster labels, offline clusters, pausing, and cleanup.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { HttpGitStore } from "../../operators/deploy/gitstore.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { installFleetCRDs } from "../drivers/fleet-crds.ts";
import {
  BundleDeploymentResource,
  BundleLabel,
  BundleNamespaceLabel,
  BundleResource,
  ClusterLabel,
  ClusterNamespaceLabel,
  ClusterResource,
  CommitLabel,
  ContentNameLabel,
  FleetDriver,
  GitRepoFinalizer,
  GitRepoResource,
  ManagedLabel,
  RepoLabel,
  type BundleDeployment,
  type Condition,
  type FleetCluster,
  type GitRepo,
  type GitTarget,
} from "../drivers/fleet.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { startGitServer, type GitServer } from "../support/git-server.ts";
import {
  makeChart,
  pushChart,
  startHelmRepo,
  startOciRegistry,
  type HelmRepo,
  type OciRegistry,
} from "../support/services.ts";

const namespaces: ResourceType = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
const secrets: ResourceType = {
  group: "",
  version: "v1",
  kind: "Secret",
  plural: "secrets",
  namespaced: true,
};

const controlPlane = useControlPlane();
const ws = "fleet-default";
let client: KubeClient;
let server: GitServer;
let driver: FleetDriver;
let repoURL: string;
const store = new HttpGitStore();
/** Charts as Fleet's gitjob downloads them: a Helm repository and an OCI registry (plain HTTP). */
let helmRepo: HelmRepo;
let oci: OciRegistry;
const ociChart = (name: string): string => `oci://127.0.0.1:${oci.port}/charts/${name}`;
/** The helm Secret every GitRepo here names: Helm speaks HTTPS to oci:// without basicHTTP. */
const plainHttp = "charts-plain-http";

const cond = (conds: Condition[] | undefined, type: string): Condition | undefined =>
  conds?.find((c) => c.type === type);

async function push(prefix: string, files: Record<string, unknown>): Promise<string> {
  const result = await store.sync({
    repo: repoURL,
    branch: "main",
    prefix,
    files: new Map(
      Object.entries(files).map(([path, content]) => [
        `${prefix}/${path}`,
        typeof content === "string" ? content : stringify(content),
      ]),
    ),
    message: `update ${prefix}`,
  });
  return result.commit;
}

async function gitRepo(name: string, spec: Partial<GitRepo["spec"]>, namespace = ws): Promise<void> {
  await client.apply(
    secrets,
    { metadata: { name: plainHttp, namespace }, stringData: { basicHTTP: "true" } } as KubeObject,
    { fieldManager: "test", force: true },
  );
  await client.create<GitRepo>(GitRepoResource, {
    metadata: { name, namespace },
    spec: { repo: repoURL, helmSecretName: plainHttp, ...spec },
  });
}

const getRepo = async (name: string, namespace = ws): Promise<GitRepo> => {
  const r = await client.get<GitRepo>(GitRepoResource, name, namespace);
  assert.ok(r, `GitRepo ${name}`);
  return r;
};

const prod: GitTarget[] = [{ name: "prod", clusterSelector: { matchLabels: { env: "prod" } } }];

/** A database (chart from an https repository, values file, secret values) and a web app depending on it. */
const shopFiles = (greeting: string): Record<string, unknown> => ({
  "db/fleet.yaml": {
    name: "shop-db",
    labels: { "outpost.dev/application": "db" },
    defaultNamespace: "shop",
    helm: {
      repo: helmRepo.url,
      chart: "postgresql",
      version: "12.1.0",
      releaseName: "db",
      valuesFiles: ["values.yaml"],
      valuesFrom: [{ secretKeyRef: { name: "shop-db-secret-values", key: "values.yaml" } }],
    },
    downstreamResources: [{ kind: "Secret", name: "shop-db-secret-values" }],
  },
  "db/values.yaml": { auth: { database: "shop" } },
  "web/fleet.yaml": {
    defaultNamespace: "shop",
    helm: {
      chart: ociChart("web"),
      version: "1.2.3",
      values: { replicas: 1, image: { tag: "a" } },
      valuesFiles: ["values.yaml"],
    },
    dependsOn: [{ name: "shop-db" }],
    targetCustomizationMode: "AllMatches",
    targetCustomizations: [
      { name: "eu", clusterSelector: { matchLabels: { region: "eu" } }, helm: { values: { replicas: 3 } } },
    ],
  },
  "web/values.yaml": { image: { tag: "b" }, greeting },
});

describe("Fleet test driver", () => {
  let shopCommit: string;

  before(async () => {
    const cp = controlPlane();
    const crds = await installFleetCRDs(cp.management.kubeconfig);
    console.log(`Fleet CRDs: ${crds}`);
    client = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
    await client.create(namespaces, { metadata: { name: ws } });
    server = await startGitServer();
    oci = await startOciRegistry();
    for (const version of ["1.0.0", "1.2.3"])
      await pushChart(oci.url, "charts", await makeChart({ name: "web", version }));
    helmRepo = await startHelmRepo([await makeChart({ name: "postgresql", version: "12.1.0" })]);
    repoURL = server.createRepo("fleet");
    driver = new FleetDriver(client, { namespace: ws });
    await driver.registerCluster("store-1", { env: "prod", region: "eu" });
    await driver.registerCluster("store-2", { env: "prod", region: "us" });
    await driver.registerCluster("lab", { env: "dev" });
    await client.create(secrets, {
      metadata: { name: "shop-db-secret-values", namespace: ws },
      stringData: { "values.yaml": "auth:\n  password: s3cret\n" },
    } as KubeObject);
    shopCommit = await push("shop", shopFiles("hi"));
    await gitRepo("shop", { branch: "main", paths: ["shop"], targets: prod });
  });

  after(async () => {
    await driver.stop();
    await server.stop();
    await Promise.all([oci.stop(), helmRepo.stop()]);
    await client.close();
  });

  it("registers clusters as Fleet does: cluster namespace, agent check-in, status", async () => {
    const cluster = await client.get<FleetCluster>(ClusterResource, "store-1", ws);
    assert.ok(cluster?.status);
    const { namespace, agent, display, conditions } = cluster.status;
    assert.equal(namespace, driver.clusterNamespace("store-1"));
    assert.match(namespace, /^cluster-fleet-default-store-1-[0-9a-f]{12}$/);
    assert.equal(agent?.namespace, "cattle-fleet-system");
    assert.match(agent.lastSeen ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(
      { readyBundles: display?.readyBundles, ready: cond(conditions, "Ready")?.status },
      { readyBundles: "0/0", ready: "True" },
    );
    const ns = await client.get(namespaces, namespace);
    assert.deepEqual(
      {
        managed: ns?.metadata.labels?.[ManagedLabel],
        cluster: ns?.metadata.annotations?.["fleet.cattle.io/cluster"],
      },
      { managed: "true", cluster: "store-1" },
    );
  });

  it("turns the repository into bundles and BundleDeployments for the targeted clusters", async () => {
    await driver.sync();
    const repo = await getRepo("shop");
    assert.deepEqual(repo.metadata.finalizers, [GitRepoFinalizer]);
    const st = repo.status ?? {};
    assert.deepEqual(
      {
        commit: st.commit,
        gitJobStatus: st.gitJobStatus,
        stalled: cond(st.conditions, "Stalled")?.status,
        ready: cond(st.conditions, "Ready")?.status,
        readyClusters: st.readyClusters,
        desiredReadyClusters: st.desiredReadyClusters,
        summary: st.summary,
        readyBundleDeployments: st.display?.readyBundleDeployments,
      },
      {
        commit: shopCommit,
        gitJobStatus: "Current",
        stalled: "False",
        ready: "True",
        readyClusters: 2,
        desiredReadyClusters: 2,
        summary: { ready: 4, desiredReady: 4 },
        readyBundleDeployments: "4/4",
      },
    );

    // Bundle names: fleet.yaml name, else HelmReleaseName("<gitrepo>/<path>").
    const bundles = await driver.bundles("shop");
    assert.deepEqual(
      bundles.map((b) => b.metadata.name),
      ["shop-db", "shop-shop-web"],
    );
    const web = bundles[1];
    assert.ok(web);
    assert.deepEqual(
      { repo: web.metadata.labels?.[RepoLabel], commit: web.metadata.labels?.[CommitLabel] },
      { repo: "shop", commit: shopCommit },
    );
    assert.equal(web.spec.helm?.values, undefined, "values live in the values Secret");
    assert.deepEqual(
      web.spec.targets?.map((t) => t.name),
      ["eu", "prod"],
    );
    assert.equal(web.status?.display?.readyClusters, "2/2");
    assert.deepEqual(await driver.bundleValues(web), {
      "values.yaml": { replicas: 1, image: { tag: "b" }, greeting: "hi" },
      eu: { replicas: 3 },
    });

    const bds = await driver.bundleDeployments({ gitRepo: "shop" });
    assert.deepEqual(
      bds.map((b) => `${b.metadata.labels?.[ClusterLabel] ?? ""}/${b.metadata.name ?? ""}`).sort(),
      ["store-1/shop-db", "store-1/shop-shop-web", "store-2/shop-db", "store-2/shop-shop-web"],
    );
    const webEU = bds.find(
      (b) => b.metadata.name === "shop-shop-web" && b.metadata.labels?.[ClusterLabel] === "store-1",
    );
    assert.ok(webEU);
    assert.equal(webEU.metadata.namespace, driver.clusterNamespace("store-1"));
    const labels = webEU.metadata.labels ?? {};
    assert.equal(labels[BundleLabel], "shop-shop-web");
    assert.equal(labels[BundleNamespaceLabel], ws);
    assert.equal(labels[ClusterNamespaceLabel], ws);
    assert.equal(labels[ManagedLabel], "true");
    assert.equal(labels[RepoLabel], "shop");
    assert.equal(labels[CommitLabel], shopCommit);
    assert.match(labels[ContentNameLabel] ?? "", /^s-[0-9a-f]{61}$/);
    assert.match(webEU.spec.deploymentID ?? "", /^s-[0-9a-f]{61}:[0-9a-f]{64}$/);
    assert.deepEqual(webEU.spec.dependsOn, [{ name: "shop-db" }]);
    const bdStatus = webEU.status ?? {};
    assert.deepEqual(
      {
        applied: bdStatus.appliedDeploymentID,
        ready: bdStatus.ready,
        release: bdStatus.release,
        state: bdStatus.display?.state,
        conditions: bdStatus.conditions?.map((c) => `${c.type}=${c.status}`),
      },
      {
        applied: webEU.spec.deploymentID,
        ready: true,
        release: "shop/shop-shop-web:1",
        state: "Ready",
        conditions: ["Installed=True", "Deployed=True", "Ready=True", "Monitored=True"],
      },
    );
    // Values after the eu customization (AllMatches), from the options Secret.
    assert.deepEqual(await driver.valuesOf(webEU), { replicas: 3, image: { tag: "b" }, greeting: "hi" });
    const webUS = bds.find(
      (b) => b.metadata.name === "shop-shop-web" && b.metadata.labels?.[ClusterLabel] === "store-2",
    );
    assert.ok(webUS);
    assert.equal((await driver.valuesOf(webUS)).replicas, 1);

    // downstreamResources: copied into the cluster namespace, then downstream by the agent.
    const copy = await client.get<KubeObject & { data?: Record<string, string> }>(
      secrets,
      "shop-db-secret-values",
      driver.clusterNamespace("store-1"),
    );
    assert.equal(copy?.metadata.ownerReferences?.[0]?.kind, "BundleDeployment");
    assert.deepEqual(
      driver.downstream("store-1").map((o) => `${o.namespace}/${o.kind}/${o.name}`),
      ["shop/Secret/shop-db-secret-values"],
    );
    const db = bds.find((b) => b.metadata.name === "shop-db");
    assert.equal(db?.status?.release, "shop/db:1");

    const cluster = await client.get<FleetCluster>(ClusterResource, "store-1", ws);
    assert.deepEqual(
      { readyBundles: cluster?.status?.display?.readyBundles, readyGitRepos: cluster?.status?.readyGitRepos },
      { readyBundles: "2/2", readyGitRepos: 1 },
    );
    const lab = await driver.bundleDeployments({ cluster: "lab" });
    assert.equal(lab.length, 0, "lab is not env=prod");
  });

  it("follows cluster label changes with clusterSelector", async () => {
    await driver.setLabels("lab", { env: "prod", region: "us" });
    await driver.sync();
    assert.equal((await driver.bundleDeployments({ cluster: "lab" })).length, 2);
    assert.equal((await getRepo("shop")).status?.desiredReadyClusters, 3);
    await driver.setLabels("lab", { env: "dev" });
    await driver.sync();
    assert.equal((await driver.bundleDeployments({ cluster: "lab" })).length, 0);
    assert.equal((await getRepo("shop")).status?.desiredReadyClusters, 2);
  });

  it("leaves an offline cluster's BundleDeployments unapplied", async () => {
    await driver.registerCluster("ship", { env: "prod" }, { online: false });
    await driver.sync();
    const bds = await driver.bundleDeployments({ cluster: "ship" });
    assert.equal(bds.length, 2);
    for (const bd of bds) {
      assert.equal(bd.status?.appliedDeploymentID, undefined);
      assert.equal(bd.status?.display?.state, "WaitApplied");
    }
    const repo = await getRepo("shop");
    const waiting = repo.status?.summary?.waitApplied;
    assert.equal(waiting, 2);
    // status_controller.go setReadyStatusFromBundle: a Bundle's Ready=False replaces the GitRepo's.
    const ready = cond(repo.status?.conditions ?? [], "Ready");
    assert.deepEqual(
      { status: ready?.status, message: ready?.message },
      { status: "False", message: "WaitApplied(1) [Cluster fleet-default/ship]" },
    );
    const ship = await client.get<FleetCluster>(ClusterResource, "ship", ws);
    assert.deepEqual(
      { state: ship?.status?.display?.state, lastSeen: ship?.status?.agent?.lastSeen },
      { state: "WaitCheckIn", lastSeen: null },
    );

    driver.setOnline("ship", true);
    await driver.sync();
    assert.equal((await getRepo("shop")).status?.summary?.ready, 6);
    await driver.deleteCluster("ship");
    await driver.sync();
    assert.equal((await getRepo("shop")).status?.summary?.desiredReady, 4);
  });

  it("reports a failing agent like Fleet's agent does", async () => {
    driver.failCluster("store-2", "Back-off pulling image");
    await driver.sync();
    const [bd] = await driver.bundleDeployments({ cluster: "store-2", bundle: "shop-db" });
    assert.ok(bd);
    assert.deepEqual(
      { ready: bd.status?.ready, state: bd.status?.display?.state },
      { ready: false, state: "NotReady" },
    );
    assert.match(
      cond(bd.status?.conditions, "Ready")?.message ?? "",
      /deployment\.apps shop\/db error\] Back-off pulling image/,
    );
    const repo = await getRepo("shop");
    assert.deepEqual(
      { readyClusters: repo.status?.readyClusters, notReady: repo.status?.summary?.notReady },
      { readyClusters: 1, notReady: 1 },
      "web was applied before and stays; db is not ready",
    );
    driver.healCluster("store-2");
    await driver.sync();
    assert.equal((await getRepo("shop")).status?.readyClusters, 2);
  });

  it("does not roll out a new commit while the GitRepo is paused", async () => {
    await client.mergePatch(GitRepoResource, "shop", ws, { spec: { paused: true } });
    await driver.sync();
    const [before] = await driver.bundleDeployments({ cluster: "store-1", bundle: "shop-shop-web" });
    assert.ok(before);
    assert.equal(before.spec.paused, true);
    const commit = await push("shop", shopFiles("hello"));
    await driver.sync();
    const repo = await getRepo("shop");
    const { commit: read, summary } = repo.status ?? {};
    assert.equal(read, commit, "the new commit is read");
    const [paused] = await driver.bundleDeployments({ cluster: "store-1", bundle: "shop-shop-web" });
    assert.ok(paused);
    assert.equal(paused.spec.deploymentID, before.spec.deploymentID, "not rolled out");
    assert.notEqual(paused.spec.stagedDeploymentID, before.spec.stagedDeploymentID, "but staged");
    assert.equal((await driver.valuesOf(paused)).greeting, "hi");
    assert.equal(summary?.outOfSync, 2, "the GitRepo shows its bundles OutOfSync");

    await client.mergePatch(GitRepoResource, "shop", ws, { spec: { paused: false } });
    await driver.sync();
    const [resumed] = await driver.bundleDeployments({ cluster: "store-1", bundle: "shop-shop-web" });
    assert.ok(resumed);
    assert.equal(resumed.spec.deploymentID, paused.spec.stagedDeploymentID);
    assert.equal(resumed.status?.release, "shop/shop-shop-web:2");
    assert.equal((await driver.valuesOf(resumed)).greeting, "hello");
    assert.equal((await getRepo("shop")).status?.summary?.ready, 4);
  });

  it("reports git errors as Stalled (an empty branch means master)", async () => {
    await gitRepo("no-branch", { paths: ["shop"], targets: prod });
    await gitRepo("bad-branch", { branch: "nope", paths: ["shop"], targets: prod });
    await driver.sync();
    for (const [name, branch] of [
      ["no-branch", "master"],
      ["bad-branch", "nope"],
    ]) {
      const repo = await getRepo(name ?? "");
      assert.equal(cond(repo.status?.conditions, "Stalled")?.status, "True", name);
      assert.equal(
        cond(repo.status?.conditions, "Stalled")?.message,
        `commit not found for branch: ${branch ?? ""}`,
      );
      assert.equal(cond(repo.status?.conditions, "GitPolling")?.status, "False");
      assert.equal(repo.status?.commit, undefined);
      assert.equal((await driver.bundles(name)).length, 0);
    }
  });

  it("fails the job on an unknown fleet.yaml key; a dependsOn naming no bundle fails per cluster", async () => {
    await push("typo", {
      "app/fleet.yaml": {
        helm: { chart: ociChart("web"), version: "1.0.0", valuesFile: ["v.yaml"] },
      },
    });
    await push("dep", {
      "app/fleet.yaml": {
        helm: { chart: ociChart("web"), version: "1.0.0" },
        dependsOn: [{ name: "nope" }],
      },
    });
    await gitRepo("typo", { branch: "main", paths: ["typo"], targets: prod });
    await gitRepo("dep", { branch: "main", paths: ["dep"], targets: prod });
    await driver.sync();
    const typo = await getRepo("typo");
    const typoStalled = cond(typo.status?.conditions, "Stalled");
    assert.deepEqual(
      { job: typo.status?.gitJobStatus, stalled: typoStalled?.status },
      { job: "Failed", stalled: "True" },
    );
    assert.match(typoStalled?.message ?? "", /typo\/app\/fleet\.yaml: helm\.valuesFile: unknown field/);
    assert.equal((await driver.bundles("typo")).length, 0);
    // As in Fleet, the dependency is checked by the agent on each cluster (ErrApplied).
    const dep = await getRepo("dep");
    assert.notEqual(cond(dep.status?.conditions, "Stalled")?.status, "True");
    assert.equal(dep.status?.display?.state, "ErrApplied");
    assert.match(
      JSON.stringify(dep.status.summary?.nonReadyResources ?? []),
      /no bundles matching labels fleet.cattle.io\/bundle-name=nope/,
    );
    for (const name of ["no-branch", "bad-branch", "typo", "dep"])
      await client.delete(GitRepoResource, name, ws);
  });

  it("downloads charts with the helm Secret only where helmRepoURLRegex allows, as Fleet's gitjob", async () => {
    const privateRepo = await startHelmRepo([await makeChart({ name: "vault", version: "0.1.0" })], {
      basicAuth: "fleet:chart-pass",
    });
    try {
      await client.create(secrets, {
        metadata: { name: "vault-creds", namespace: ws },
        stringData: { username: "fleet", password: "chart-pass" },
      } as KubeObject);
      await push("vault", {
        "app/fleet.yaml": { helm: { repo: privateRepo.url, chart: "vault", version: "0.1.0" } },
      });
      const escaped = privateRepo.url.replace(/[.]/g, "\\.");
      // resources.go shouldAddAuthToRequest: no regex, no credentials; a regex for another
      // host, none either; the repository's own URL, the credentials.
      await gitRepo("vault-noregex", {
        branch: "main",
        paths: ["vault"],
        targets: prod,
        helmSecretName: "vault-creds",
      });
      await gitRepo("vault-other", {
        branch: "main",
        paths: ["vault"],
        targets: prod,
        helmSecretName: "vault-creds",
        helmRepoURLRegex: "https://charts\\.example\\.com",
      });
      await gitRepo("vault-own", {
        branch: "main",
        paths: ["vault"],
        targets: prod,
        helmSecretName: "vault-creds",
        helmRepoURLRegex: escaped,
      });
      await driver.sync();
      const stalled = async (name: string) => cond((await getRepo(name)).status?.conditions, "Stalled");
      const noRegex = await stalled("vault-noregex");
      assert.equal(noRegex?.status, "True");
      assert.match(
        noRegex.message ?? "",
        /^failed to resolve URL of repo=http:\/\/127\.0\.0\.1:\d+ chart=vault version=0\.1\.0: .*401.*: helmRepoURLRegex is empty, so Helm credentials were not forwarded; set spec\.helmRepoURLRegex to allow credential forwarding$/,
      );
      const other = await stalled("vault-other");
      assert.equal(other?.status, "True");
      assert.doesNotMatch(other.message ?? "", /helmRepoURLRegex is empty/);
      assert.notEqual((await stalled("vault-own"))?.status, "True");
      assert.equal((await driver.bundles("vault-own")).length, 1);
      const basic = `Basic ${Buffer.from("fleet:chart-pass").toString("base64")}`;
      const byAuth = privateRepo.requests.map(
        (r) => `${r.url} ${r.authorization === basic ? "auth" : "none"}`,
      );
      assert.deepEqual([...new Set(byAuth)].sort(), [
        "/charts/vault-0.1.0.tgz auth",
        "/index.yaml auth",
        "/index.yaml none",
      ]);
      for (const name of ["vault-noregex", "vault-other", "vault-own"])
        await client.delete(GitRepoResource, name, ws);
    } finally {
      await privateRepo.stop();
    }
  });

  it("applies BundleDeployments only on applyAll() when autoAgent is off", async () => {
    const manual = "fleet-manual";
    await client.create(namespaces, { metadata: { name: manual } });
    const d = new FleetDriver(client, { namespace: manual, autoAgent: false });
    await d.registerCluster("edge", { env: "prod" });
    await push("solo", {
      "app/fleet.yaml": { helm: { chart: ociChart("web"), version: "1.0.0" } },
    });
    await gitRepo("solo", { branch: "main", paths: ["solo"], targets: prod }, manual);
    await d.sync();
    const before = await getRepo("solo", manual);
    assert.deepEqual(
      {
        summary: before.status?.summary?.waitApplied,
        display: before.status?.display?.readyBundleDeployments,
      },
      { summary: 1, display: "0/1" },
    );
    await d.applyAll();
    const after = await getRepo("solo", manual);
    assert.deepEqual(
      { ready: after.status?.summary?.ready, condition: cond(after.status?.conditions, "Ready")?.status },
      { ready: 1, condition: "True" },
    );
  });

  it("redeploys on a changed downstream Secret, forgets a failed redeploy, and keeps a failed forceSyncGeneration", async () => {
    // agent bundledeployment_controller.go: copyResourcesFromUpstream says the copy changed,
    // DeployBundle forces an upgrade with the same deployment ID; when it fails, the next
    // reconcile copies nothing new and helmdeploy finds the old release installed
    // (deployer.go helmdeploy EnsureInstalled): Deployed=True, old release, new Secret.
    const dbOf = async () => {
      const [bd] = await driver.bundleDeployments({ cluster: "store-1", bundle: "shop-db" });
      assert.ok(bd);
      return bd;
    };
    const before = await dbOf();
    const release = before.status?.release ?? "";
    driver.failInstall("store-1", "UPGRADE FAILED: template: db/templates/secret.yaml:3: bad password");
    try {
      await client.mergePatch(secrets, "shop-db-secret-values", ws, {
        stringData: { "values.yaml": "auth:\n  password: rotated\n" },
      });
      await driver.sync();
      const forgotten = await dbOf();
      assert.equal(
        forgotten.spec.downstreamResourcesGeneration,
        (before.spec.downstreamResourcesGeneration ?? 0) + 1,
        "the bundle controller counted the copy",
      );
      assert.equal(
        forgotten.status?.downstreamResourcesGeneration,
        forgotten.spec.downstreamResourcesGeneration,
      );
      assert.equal(forgotten.spec.deploymentID, before.spec.deploymentID);
      assert.equal(forgotten.status.release, release, "no upgrade happened");
      assert.equal(cond(forgotten.status.conditions, "Deployed")?.status, "True", "and none is reported");
      assert.match(
        driver.downstream("store-1").find((o) => o.name === "shop-db-secret-values")?.data["values.yaml"] ??
          "",
        /rotated/,
      );

      // forceSyncGeneration: a new deployment ID; its failure stays (ErrApplied).
      await client.mergePatch(GitRepoResource, "shop", ws, { spec: { forceSyncGeneration: 1 } });
      await driver.sync();
      const failed = await dbOf();
      assert.equal(failed.spec.options?.forceSyncGeneration, 1);
      assert.notEqual(failed.spec.deploymentID, before.spec.deploymentID);
      assert.equal(failed.status?.appliedDeploymentID, before.spec.deploymentID);
      assert.match(cond(failed.status?.conditions, "Deployed")?.message ?? "", /bad password/);
      assert.equal(failed.status?.display?.state, "ErrApplied");
    } finally {
      driver.healCluster("store-1");
    }
    await driver.sync();
    const upgraded = await dbOf();
    assert.equal(upgraded.status?.appliedDeploymentID, upgraded.spec.deploymentID);
    assert.notEqual(upgraded.status?.release, release);
  });

  it("runs in the background and removes bundles and BundleDeployments with the GitRepo", async () => {
    driver.start(50);
    await client.delete(GitRepoResource, "shop", ws);
    await eventually("the shop GitRepo to be gone", async () =>
      (await client.get(GitRepoResource, "shop", ws)) ? undefined : true,
    );
    await driver.stop();
    assert.deepEqual(driver.errors, []);
    assert.equal((await driver.bundles("shop")).length, 0);
    const left = await client.list<BundleDeployment>(BundleDeploymentResource, {
      labelSelector: `${RepoLabel}=shop`,
    });
    assert.equal(left.items.length, 0);
    assert.equal((await client.list(BundleResource, { namespace: ws })).items.length, 0);
  });
});
