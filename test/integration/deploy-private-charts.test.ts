// Charts in a private registry, delivered by Fleet: the deploy operator writes the
// Registry's credentials as the helm Secret Fleet's gitjob reads and names it on each
// GitRepo, with the URL prefix Fleet may send them to; the Fleet test driver downloads
// every chart from a real OCI registry (Debian's docker-registry) behind htpasswd
// authentication with exactly those credentials, and fails the job as Fleet does when they
// are wrong. A Registry with a token only, which Fleet cannot log in with, is refused
// before anything is committed.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import { AppDeploymentResource } from "../../operators/api/resources.generated.ts";
import { GitRepoResource, type GitRepo } from "../../operators/deploy/fleet.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import type { KubeClient, KubeObject } from "../../operators/runtime/client.ts";
import { secretsResource } from "../../operators/runtime/core.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { FleetDriver } from "../drivers/fleet.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import {
  createShop,
  packageResolved,
  shopDeployment,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";
import { startOperator } from "../support/operator.ts";
import { makeChart, pushChart, startOciRegistry, type OciRegistry } from "../support/services.ts";

const controlPlane = useControlPlane();
let fx: DeployFixture;
let client: KubeClient;
let deploy: Manager;
let privateOci: OciRegistry;
/** Fleet for workspace "private" (the fixture's plays workspace "retail"). */
let fleet: FleetDriver;

const users = { reader: "reader-pass-1", rotated: "rotated-pass-2" };
const basic = (user: keyof typeof users): string =>
  `Basic ${Buffer.from(`${user}:${users[user]}`).toString("base64")}`;

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}
const decoded = (s: SecretObject | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));

const setCredentials = (ns: string, data: Record<string, string>) =>
  client.apply(
    secretsResource,
    {
      metadata: { name: "charts-credentials", namespace: ns },
      type: "Opaque",
      stringData: data,
    } as KubeObject,
    { fieldManager: "test", force: true },
  );

async function requestReconcile(ns: string, name: string, token: string): Promise<AppDeployment> {
  await client.mergePatch(AppDeploymentResource, name, ns, {
    metadata: { annotations: { "outpost.dev/requestedAt": token } },
  });
  return waitForDeployment(
    client,
    ns,
    name,
    `reconcile ${token} handled`,
    (d) => d.status?.lastHandledReconcileAt === token,
  );
}

/** A shop in `ns` whose Registry `charts` is at `url`, with Secret charts-credentials. */
async function privateShop(ns: string, url: string, credentials: Record<string, string>): Promise<void> {
  fx.git.createRepo(ns);
  await createShop(client, ns, {
    git: `${fx.git.url}/${ns}.git`,
    registry: url,
    registryCredentials: credentials,
  });
  await packageResolved(client, ns, "shop-1.0.0");
}

describe("charts from a private registry", () => {
  before(async () => {
    fx = await startDeployFixture(controlPlane(), "retail");
    client = fx.client;
    const htpasswd = Object.entries(users)
      .map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4)}`)
      .join("\n");
    privateOci = await startOciRegistry({ htpasswd });
    const values = { web: { replicaCount: 1 }, db: { auth: { password: "" } } };
    for (const [name, v] of Object.entries(values))
      await pushChart(
        privateOci.url,
        "charts",
        await makeChart({ name, version: "1.0.0", values: v }),
        basic("reader"),
      );
    await privateShop("private", `${privateOci.url}/charts`, { username: "reader", password: users.reader });
    fleet = new FleetDriver(client, { namespace: "private" });
    await fleet.registerCluster("store-1", { tier: "store" });
    await fleet.registerCluster("store-2", { tier: "store" });
    fleet.start(150);
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    deploy = await startOperator("outpost-deploy", kubeConfig, (m) => {
      registerDeploy(m, { offlineAfterMs: 4_000 });
    });
  });
  after(async () => {
    await deploy.stop();
    await fleet.stop();
    await privateOci.stop();
    await fx.stop();
  });

  it("fetches each chart with the Registry's credentials, only from that registry, and follows a changed Secret", async () => {
    const ns = "private";
    await client.create(AppDeploymentResource, shopDeployment(ns, "shop"));
    await waitForDeployment(
      client,
      ns,
      "shop",
      "Running on both stores",
      (d) => d.status?.phase === "Running",
    );

    const repos = (await client.list<GitRepo>(GitRepoResource, { namespace: ns })).items;
    assert.deepEqual(repos.map((r) => r.metadata.name).sort(), ["shop-db", "shop-web"]);
    const registry = `oci://127.0.0.1:${privateOci.port}/charts/`.replace(/[.]/g, "\\.");
    for (const r of repos) {
      assert.equal(r.spec.helmSecretName, "outpost-helm-charts", "one per Registry");
      assert.equal(r.spec.helmRepoURLRegex, registry, "credentials go to the Registry's own URL only");
      const helm = decoded(await client.get<SecretObject>(secretsResource, r.spec.helmSecretName ?? "", ns));
      // The keys Fleet's gitjob reads (gitjob.go volumesFromSecret, argsAndEnvs).
      assert.deepEqual(helm, { username: "reader", password: users.reader, basicHTTP: "true" });
    }
    const fetches = fleet.chartFetches().filter((f) => f.gitRepo.startsWith(`${ns}/`));
    assert.deepEqual(fetches.map((f) => [f.gitRepo, f.url, f.username, f.error]).sort(), [
      [`${ns}/shop-db`, `oci://127.0.0.1:${privateOci.port}/charts/db`, "reader", undefined],
      [`${ns}/shop-web`, `oci://127.0.0.1:${privateOci.port}/charts/web`, "reader", undefined],
    ]);

    // The robot account is rotated: the next reconcile copies the new credentials.
    await setCredentials(ns, { username: "rotated", password: users.rotated });
    await requestReconcile(ns, "shop", "rotated");
    for (const r of repos) {
      const helm = decoded(await client.get<SecretObject>(secretsResource, r.spec.helmSecretName ?? "", ns));
      assert.equal(helm.username, "rotated");
      assert.equal(helm.password, users.rotated);
    }

    // A wrong password: the next change's job fails as Fleet's does, and the deployment says so.
    await setCredentials(ns, { username: "rotated", password: "not-the-password" });
    await client.mergePatch(AppDeploymentResource, "shop", ns, {
      spec: {
        parameters: [
          ...(shopDeployment(ns, "shop").spec.parameters ?? []),
          { application: "web", name: "replicaCount", value: "3" },
        ],
      },
    });
    const failed = await waitForDeployment(client, ns, "shop", "web failing to fetch its chart", (d) =>
      (d.status?.applications ?? []).some((a) => a.name === "web" && (a.message ?? "").includes("401")),
    );
    const web = failed.status?.applications?.find((a) => a.name === "web");
    assert.match(
      web?.message ?? "",
      /^Fleet: downloading OCI chart from "oci:\/\/127\.0\.0\.1:\d+\/charts\/web": helm chart download: login attempt/,
    );
    assert.ok(
      fleet.chartFetches().some((f) => f.gitRepo === `${ns}/shop-web` && f.username === "rotated" && f.error),
      "the job tried the Secret's (wrong) credentials",
    );

    // Fixed, and the next change (a new commit, so a new job) fetches the chart again.
    await setCredentials(ns, { username: "rotated", password: users.rotated });
    await client.mergePatch(AppDeploymentResource, "shop", ns, {
      spec: {
        parameters: [
          ...(shopDeployment(ns, "shop").spec.parameters ?? []),
          { application: "web", name: "replicaCount", value: "4" },
        ],
      },
    });
    await waitForDeployment(
      client,
      ns,
      "shop",
      "Running again",
      (d) =>
        d.status?.phase === "Running" &&
        !(d.status.applications ?? []).some((a) => (a.message ?? "").includes("401")),
    );
  });

  it("refuses a Registry with a token only, before anything is committed", async () => {
    const ns = "tokens";
    // The anonymous registry: the catalog resolves the package with any credentials.
    await privateShop(ns, `${fx.oci.url}/charts`, { token: "a-bearer-token" });
    await client.create(AppDeploymentResource, shopDeployment(ns, "shop"));
    const refused = await waitForDeployment(client, ns, "shop", "refused", (d) =>
      (d.status?.conditions ?? []).some((c) => c.reason === "RegistryCredentialsUnsupported"),
    );
    const ready = refused.status?.conditions?.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "False");
    assert.match(
      ready.message,
      /Registry charts: its Secret charts-credentials holds only a token, but Fleet and Argo CD fetch charts with a username and password; add the keys username and password/,
    );
    assert.deepEqual(fx.git.log(ns), [], "nothing committed");
    assert.deepEqual((await client.list<GitRepo>(GitRepoResource, { namespace: ns })).items, []);

    // Given a username and password too, it is delivered.
    await setCredentials(ns, { token: "a-bearer-token", username: "anyone", password: "anything" });
    await requestReconcile(ns, "shop", "with-password");
    await eventually("delivered", async () =>
      (await client.list<GitRepo>(GitRepoResource, { namespace: ns })).items.length === 2 ? true : undefined,
    );
  });
});
