// Git hosting against a real Gitea (built from its Go module): organizations and
// repositories through the Octokit provider, commits through the smart-HTTP GitStore
// with a token, and the host's own answers for conflicts and ordering.
import assert from "node:assert/strict";
import { Octokit } from "@octokit/rest";
import { after, before, describe, it } from "node:test";
import { GitHostError, OctokitGitHost } from "../../operators/deploy/githost.ts";
import { HttpGitStore } from "../../operators/deploy/gitstore.ts";
import { startGitea, type Gitea } from "../support/gitea.ts";

let gitea: Gitea;
let host: OctokitGitHost;

describe("Gitea through the Octokit provider", () => {
  before(async () => {
    gitea = await startGitea();
    host = new OctokitGitHost({ kind: "gitea", baseUrl: gitea.api, token: gitea.token });
  });
  after(async () => {
    await gitea.stop();
  });

  it("creates an organization and a repository once, and takes commits over smart HTTP", async () => {
    assert.deepEqual(await host.ensureOrganization("retail"), { created: true });
    assert.deepEqual(await host.ensureOrganization("retail"), { created: false });
    const repo = await host.ensureRepository("retail", "deployments");
    assert.equal(repo.created, true);
    assert.equal(repo.defaultBranch, "main");
    assert.equal(repo.cloneUrl, `${gitea.url}/retail/deployments.git`);
    assert.equal((await host.ensureRepository("retail", "deployments")).created, false);

    const store = new HttpGitStore({ username: gitea.username, password: gitea.token });
    const files = new Map([["storefront/web/fleet.yaml", "name: storefront-web\n"]]);
    const first = await store.sync({
      repo: repo.cloneUrl,
      branch: repo.defaultBranch,
      prefix: "storefront",
      files,
      message: "retail/storefront",
    });
    assert.equal(first.changed, true);
    const again = await store.sync({
      repo: repo.cloneUrl,
      branch: repo.defaultBranch,
      prefix: "storefront",
      files,
      message: "retail/storefront",
    });
    assert.deepEqual(again, { commit: first.commit, changed: false });

    const api = new Octokit({ auth: gitea.token, baseUrl: gitea.api });
    const { data } = await api.repos.getContent({
      owner: "retail",
      repo: "deployments",
      path: "storefront/web/fleet.yaml",
    });
    assert.ok(!Array.isArray(data) && data.type === "file");
    assert.equal(Buffer.from(data.content, "base64").toString(), "name: storefront-web\n");
    const branch = await api.repos.getBranch({ owner: "retail", repo: "deployments", branch: "main" });
    // Gitea names the head commit `id` where GitHub says `sha`.
    const head =
      (branch.data.commit as { sha?: string; id?: string }).sha ?? (branch.data.commit as { id?: string }).id;
    assert.equal(head, first.commit);
  });

  it("refuses to delete an organization that still owns repositories, then deletes in order", async () => {
    await assert.rejects(host.deleteOrganization("retail"), (err: unknown) => {
      assert.ok(err instanceof GitHostError);
      assert.match(err.message, /still owns repositories; delete them first/);
      return true;
    });
    assert.equal(await host.deleteRepository("retail", "deployments"), true);
    assert.equal(await host.deleteRepository("retail", "deployments"), false);
    assert.equal(await host.deleteOrganization("retail"), true);
    assert.equal(await host.deleteOrganization("retail"), false);
  });

  it("creates repositories under the token's own user, and names a refused token", async () => {
    const repo = await host.ensureRepository(gitea.username, "personal");
    assert.equal(repo.created, true);
    assert.equal(repo.cloneUrl, `${gitea.url}/${gitea.username}/personal.git`);
    const bad = new OctokitGitHost({ kind: "gitea", baseUrl: gitea.api, token: "not-a-token" });
    await assert.rejects(
      bad.ensureRepository("someone-else", "x"),
      /gitea .*: reading repository someone-else\/x/,
    );
  });
});
