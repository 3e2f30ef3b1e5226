// A Project's Git repository on a real Gitea: created in the configured organization,
// named in Secret outpost-git of the project's namespace (which the deploy operator and
// Fleet use), usable for commits, and deleted with the project — but only because the
// project created it. A bad configuration is named in the project's condition.
import assert from "node:assert/strict";
import { Octokit } from "@octokit/rest";
import { after, before, describe, it } from "node:test";
import type { Project } from "../../operators/api/project.generated.ts";
import { ProjectResource } from "../../operators/api/resources.generated.ts";
import { gitSecretName } from "../../operators/deploy/app-deployment.ts";
import { HttpGitStore } from "../../operators/deploy/gitstore.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { registerTenancy } from "../../operators/tenancy/index.ts";
import { gitCreatedAnnotation } from "../../operators/tenancy/project.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { giteaSettings, startGitea, type Gitea } from "../support/gitea.ts";
import { configureTenancy, installOutpost } from "../support/install.ts";
import { startOperator } from "../support/operator.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";

const controlPlane = useControlPlane();
let client: KubeClient;
let manager: Manager;
let gitea: Gitea;
let api: Octokit;
type SecretObject = KubeObject & { type?: string; data?: Record<string, string> };
const text = (s: SecretObject | undefined, key: string): string =>
  Buffer.from(s?.data?.[key] ?? "", "base64").toString();

const configure = (data: Record<string, string>): Promise<void> => configureTenancy(client, data);

describe("Project Git repository", () => {
  before(async () => {
    installOutpost(controlPlane());
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    client = new KubeClient(kubeConfig);
    gitea = await startGitea();
    api = new Octokit({ auth: gitea.token, baseUrl: gitea.api });
    manager = await startOperator("outpost-tenancy", kubeConfig, (m) => {
      registerTenancy(m, { systemNamespace: "outpost-system" });
    });
  });
  after(async () => {
    await manager.stop();
    await client.close();
    await gitea.stop();
  });

  it("names a bad configuration in the project's condition", async () => {
    await configure({ "git.provider": "gitea", "git.apiUrl": gitea.api });
    await client.create(ProjectResource, { metadata: { name: "misconfigured" }, spec: {} } as KubeObject);
    const p = await eventually("GitRepositoryReady=False", async () => {
      const o = await client.get<Project>(ProjectResource, "misconfigured");
      const c = getCondition(o?.status?.conditions, "GitRepositoryReady");
      return c?.status === "False" ? o : undefined;
    });
    assert.match(
      getCondition(p.status?.conditions, "GitRepositoryReady")?.message ?? "",
      /git.provider is gitea, so git.organization is required/,
    );
    assert.equal(getCondition(p.status?.conditions, "Ready")?.status, "False");
    await client.delete(ProjectResource, "misconfigured");
  });

  it("creates the repository, names it in outpost-git, and deletes it with the project", async () => {
    await configure(giteaSettings(gitea, "outpost-projects"));
    await client.create(ProjectResource, { metadata: { name: "shop" }, spec: {} } as KubeObject);
    const p = await eventually("project ready with a repository", async () => {
      const o = await client.get<Project>(ProjectResource, "shop");
      return getCondition(o?.status?.conditions, "GitRepositoryReady")?.status === "True" &&
        getCondition(o?.status?.conditions, "Ready")?.status === "True"
        ? o
        : undefined;
    });
    const url = `${gitea.url}/outpost-projects/shop.git`;
    assert.equal(p.status?.gitRepository, url);
    assert.equal(p.metadata.annotations?.[gitCreatedAnnotation], "outpost-projects/shop");
    const { data: repo } = await api.repos.get({ owner: "outpost-projects", repo: "shop" });
    assert.equal(repo.private, true);

    const secret = await client.get<SecretObject>(secretsResource, gitSecretName, "shop");
    assert.equal(secret?.type, "kubernetes.io/basic-auth");
    assert.equal(text(secret, "url"), url);
    assert.equal(text(secret, "branch"), "main");
    // What the deploy operator does with it.
    const store = new HttpGitStore({
      username: text(secret, "username"),
      password: text(secret, "password"),
    });
    const pushed = await store.sync({
      repo: url,
      branch: "main",
      prefix: "storefront",
      files: new Map([["storefront/web/fleet.yaml", "name: storefront-web\n"]]),
      message: "shop/storefront",
    });
    assert.equal(pushed.changed, true);

    await client.delete(ProjectResource, "shop");
    await eventually(
      "project gone",
      async () => ((await client.get(ProjectResource, "shop")) ? undefined : true),
      60_000,
    );
    await assert.rejects(api.repos.get({ owner: "outpost-projects", repo: "shop" }), /not found/i);
    await eventually(
      "namespace gone",
      async () => ((await client.get(namespacesResource, "shop")) ? undefined : true),
      60_000,
    );
  });

  it("leaves a repository it did not create", async () => {
    await api.repos.createInOrg({ org: "outpost-projects", name: "legacy", private: true, auto_init: true });
    await client.create(ProjectResource, { metadata: { name: "legacy" }, spec: {} } as KubeObject);
    const p = await eventually("project ready", async () => {
      const o = await client.get<Project>(ProjectResource, "legacy");
      return getCondition(o?.status?.conditions, "GitRepositoryReady")?.status === "True" ? o : undefined;
    });
    assert.equal(p.metadata.annotations?.[gitCreatedAnnotation], undefined);
    await client.delete(ProjectResource, "legacy");
    await eventually(
      "project gone",
      async () => ((await client.get(ProjectResource, "legacy")) ? undefined : true),
      60_000,
    );
    assert.equal((await api.repos.get({ owner: "outpost-projects", repo: "legacy" })).status, 200);
  });
});
