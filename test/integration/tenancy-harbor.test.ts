// A Project's Harbor project and robot account against the Harbor contract fake
// (test/support/harbor-fake.ts): provisioning, the pull Secret and Registry, no cookie
// ever replayed, one robot across restarts (its secret regenerated when the Secret went
// missing), Harbor failing for a while, deletion emptying the project first and waiting
// out an outage, a Harbor project the operator did not create left in place, and a name
// Harbor refuses stopped before anything is created.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Project } from "../../operators/api/project.generated.ts";
import type { Registry } from "../../operators/api/registry.generated.ts";
import { ProjectResource, RegistryResource } from "../../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { HarborClient } from "../../operators/tenancy/harbor.ts";
import { registerTenancy } from "../../operators/tenancy/index.ts";
import { harborProjectAnnotation } from "../../operators/tenancy/project.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { harborSettings, startHarborFake, type HarborFake } from "../support/harbor-fake.ts";
import { configureTenancy, installOutpost } from "../support/install.ts";
import { startOperator } from "../support/operator.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";

const controlPlane = useControlPlane();
let client: KubeClient;
let manager: Manager;
let harbor: HarborFake;
type SecretObject = KubeObject & { type?: string; data?: Record<string, string> };

async function startTenancy(): Promise<Manager> {
  return startOperator("outpost-tenancy", kubeConfigFromFile(controlPlane().management.kubeconfig), (m) => {
    registerTenancy(m, { systemNamespace: "outpost-system" });
  });
}

const condition = (p: Project | undefined, type: string) => getCondition(p?.status?.conditions, type);

function waitForProject(name: string, what: string, test: (p: Project) => boolean, timeoutMs = 30_000) {
  return eventually(
    `${name}: ${what}`,
    async () => {
      const p = await client.get<Project>(ProjectResource, name);
      if (p && test(p)) return p;
      throw new Error(`status: ${JSON.stringify(p?.status ?? null)}`);
    },
    timeoutMs,
  );
}

const gone = (name: string) =>
  eventually(
    `project ${name} gone`,
    async () => ((await client.get(ProjectResource, name)) ? undefined : true),
    60_000,
  );

describe("Project Harbor project and robot", () => {
  before(async () => {
    installOutpost(controlPlane());
    client = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
    harbor = await startHarborFake();
    await configureTenancy(client, { ...harborSettings(harbor), "harbor.timeout": "1s" });
    manager = await startTenancy();
  });
  after(async () => {
    await manager.stop();
    await client.close();
    await harbor.stop();
  });

  it("creates the Harbor project and robot, the pull Secret and a Registry, never replaying cookies", async () => {
    await client.create(ProjectResource, { metadata: { name: "shop" }, spec: {} } as KubeObject);
    const p = await waitForProject("shop", "Ready", (x) => condition(x, "Ready")?.status === "True");
    assert.equal(condition(p, "HarborReady")?.status, "True");
    assert.equal(p.status?.harborProject, "shop");
    assert.equal(p.metadata.annotations?.[harborProjectAnnotation], "shop");
    assert.deepEqual(harbor.projects(), [{ name: "shop", repositories: [] }]);
    const robots = harbor.robots();
    assert.deepEqual(
      robots.map((r) => [r.name, r.actions]),
      [["robot$shop+outpost", ["pull", "push"]]],
    );

    const secret = await client.get<SecretObject>(secretsResource, "outpost-harbor", "shop");
    assert.ok(secret);
    assert.equal(secret.type, "kubernetes.io/dockerconfigjson");
    const config = JSON.parse(Buffer.from(secret.data?.[".dockerconfigjson"] ?? "", "base64").toString()) as {
      auths: Record<string, { username: string; password: string }>;
    };
    assert.deepEqual(config.auths["harbor.example.com"], {
      username: "robot$shop+outpost",
      password: robots[0]?.secret,
      auth: Buffer.from(`robot$shop+outpost:${robots[0]?.secret ?? ""}`).toString("base64"),
    });
    const registry = await client.get<Registry>(RegistryResource, "harbor", "shop");
    assert.ok(registry);
    assert.equal(registry.spec.url, "oci://harbor.example.com/shop");
    assert.equal(registry.spec.credentialsSecretRef?.name, "outpost-harbor");

    assert.ok(harbor.log.length > 0);
    assert.deepEqual(
      harbor.log.filter((l) => l.cookie),
      [],
      "Harbor's sid cookie is never sent back",
    );
  });

  it("keeps one robot across restarts and regenerates its secret when the Secret is lost", async () => {
    await manager.stop();
    await client.delete(secretsResource, "outpost-harbor", "shop");
    const before = harbor.robots()[0]?.secret;
    manager = await startTenancy();
    const secret = await eventually("the pull Secret back", () =>
      client.get<SecretObject>(secretsResource, "outpost-harbor", "shop"),
    );
    assert.equal(harbor.robots().length, 1, "one robot");
    assert.deepEqual(
      harbor.projects().map((p) => p.name),
      ["shop"],
      "one project",
    );
    const now = harbor.robots()[0]?.secret;
    assert.notEqual(now, before, "a new secret, since the old one was lost");
    assert.equal(Buffer.from(secret.data?.password ?? "", "base64").toString(), now);
  });

  it("says when Harbor fails or times out, and completes once it answers again", async () => {
    harbor.down();
    await client.create(ProjectResource, { metadata: { name: "flaky" }, spec: {} } as KubeObject);
    const failing = await waitForProject(
      "flaky",
      "HarborReady=False",
      (x) => condition(x, "HarborReady")?.status === "False",
    );
    assert.match(
      condition(failing, "HarborReady")?.message ?? "",
      // The first call is a HEAD (does the project exist?), whose answer has no body.
      /503 UNKNOWN: (internal server error|service unavailable) \(request [0-9a-f-]{36}\)/,
    );
    assert.equal(condition(failing, "Ready")?.status, "False");
    harbor.up();
    // Harbor too slow to answer within harbor.timeout (1s here).
    harbor.slow(2_500);
    const slow = await waitForProject("flaky", "timeout reported", (x) =>
      (condition(x, "HarborReady")?.message ?? "").includes("did not answer within 1s"),
    );
    assert.equal(condition(slow, "HarborReady")?.reason, "HarborUnreachable");
    harbor.slow(0);
    harbor.fail(2);
    await waitForProject("flaky", "Ready", (x) => condition(x, "Ready")?.status === "True", 60_000);
    assert.ok(harbor.projects().some((p) => p.name === "flaky"));
  });

  it("empties the Harbor project before deleting it, and waits out an outage", async () => {
    harbor.addRepository("shop", "charts/web");
    harbor.addRepository("shop", "nginx");
    await client.delete(ProjectResource, "shop");
    await gone("shop");
    assert.ok(!harbor.projects().some((p) => p.name === "shop"));
    assert.ok(!harbor.robots().some((r) => r.name.startsWith("robot$shop+")));
    const encoded = harbor.log.find((l) => l.method === "DELETE" && l.path.includes("/repositories/charts"));
    assert.ok(encoded?.path.includes("charts%252Fweb"), "a repository name with / is encoded twice");

    harbor.down();
    await client.delete(ProjectResource, "flaky");
    const terminating = await waitForProject("flaky", "deletion held", (x) =>
      (condition(x, "Ready")?.message ?? "").includes("could not delete Harbor project flaky"),
    );
    assert.ok(terminating.metadata.deletionTimestamp);
    harbor.up();
    await gone("flaky");
    assert.ok(!harbor.projects().some((p) => p.name === "flaky"));
  });

  it("leaves a Harbor project it did not create, removing only its robot", async () => {
    const admin = new HarborClient({ url: harbor.url, username: harbor.username, password: harbor.password });
    assert.equal(await admin.createProject("legacy"), true);
    await admin.close();
    await client.create(ProjectResource, { metadata: { name: "legacy" }, spec: {} } as KubeObject);
    const p = await waitForProject("legacy", "Ready", (x) => condition(x, "Ready")?.status === "True");
    assert.equal(p.metadata.annotations?.[harborProjectAnnotation], undefined);
    assert.ok(harbor.robots().some((r) => r.name === "robot$legacy+outpost"));
    await client.delete(ProjectResource, "legacy");
    await gone("legacy");
    assert.ok(
      harbor.projects().some((x) => x.name === "legacy"),
      "the Harbor project stays",
    );
    assert.ok(!harbor.robots().some((r) => r.name === "robot$legacy+outpost"), "its robot goes");
  });

  it("refuses a name Harbor does not accept before creating anything", async () => {
    await client.create(ProjectResource, { metadata: { name: "bad--name" }, spec: {} } as KubeObject);
    const p = await waitForProject("bad--name", "Stalled", (x) => condition(x, "Stalled")?.status === "True");
    assert.match(
      condition(p, "Stalled")?.message ?? "",
      /not a valid Harbor project name.*spec.harbor.enabled: false/,
    );
    assert.equal(await client.get(namespacesResource, "bad--name"), undefined, "no namespace");
    assert.ok(!harbor.projects().some((x) => x.name === "bad--name"));
    await client.delete(ProjectResource, "bad--name");
    await gone("bad--name");
  });
});
