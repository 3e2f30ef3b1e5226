// Git delivery against a real Git server (git http-backend): one commit per distinct
// tree, none for a retry, other folders untouched, concurrent writers, credentials and
// an unreachable server.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GitStoreError, HttpGitStore, type SyncRequest } from "../../operators/deploy/gitstore.ts";
import { startGitServer, type GitServer } from "../support/git-server.ts";

let server: GitServer;
const tmpCache = (name: string): string => mkdtempSync(join(tmpdir(), `outpost-git-cache-${name}-`));
let privateServer: GitServer;
const store = new HttpGitStore();

const request = (
  repo: string,
  prefix: string,
  files: Record<string, string>,
  message = `update ${prefix}`,
): SyncRequest => ({
  repo,
  branch: "main",
  prefix,
  files: new Map(Object.entries(files)),
  message,
});

describe("HttpGitStore", () => {
  before(async () => {
    server = await startGitServer();
    privateServer = await startGitServer({ basicAuth: "outpost:s3cret" });
  });
  after(async () => {
    await Promise.all([server.stop(), privateServer.stop()]);
  });

  it("commits once per distinct tree, starting an empty repository", async () => {
    const repo = server.createRepo("retail");
    const first = await store.sync(
      request(repo, "storefront", {
        "storefront/web/fleet.yaml": "a: 1\n",
        "storefront/db/fleet.yaml": "b: 1\n",
      }),
    );
    assert.equal(first.changed, true);
    assert.deepEqual(server.log("retail"), [first.commit]);
    assert.equal(server.show("retail", "storefront/web/fleet.yaml"), "a: 1\n");

    const again = await store.sync(
      request(repo, "storefront", {
        "storefront/web/fleet.yaml": "a: 1\n",
        "storefront/db/fleet.yaml": "b: 1\n",
      }),
    );
    assert.deepEqual(again, { commit: first.commit, changed: false }, "a retry makes no commit");
    assert.equal(server.log("retail").length, 1);

    const second = await store.sync(request(repo, "storefront", { "storefront/web/fleet.yaml": "a: 2\n" }));
    assert.equal(second.changed, true);
    assert.deepEqual(
      server.files("retail"),
      ["storefront/web/fleet.yaml"],
      "files no longer rendered are removed",
    );
    assert.equal(server.log("retail").length, 2);
  });

  it("leaves other folders alone and survives concurrent writers", async () => {
    const repo = server.createRepo("shared");
    await store.sync(request(repo, "a", { "a/fleet.yaml": "x\n" }));
    const results = await Promise.all(
      ["b", "c", "d"].map((p) => store.sync(request(repo, p, { [`${p}/fleet.yaml`]: `${p}\n` }))),
    );
    assert.ok(results.every((r) => r.changed));
    assert.deepEqual(server.files("shared"), [
      "a/fleet.yaml",
      "b/fleet.yaml",
      "c/fleet.yaml",
      "d/fleet.yaml",
    ]);
    // b is pushed at once; c and d arrive while it is under way and go into one commit.
    assert.equal(server.log("shared").length, 3, "one commit per batch, none lost");
    assert.equal(results[1]?.commit, results[2]?.commit);
    assert.notEqual(results[0]?.commit, results[1]?.commit);
    assert.equal(server.log("shared")[0], results[2]?.commit);
  });

  it("gives a folder queued twice in one batch a commit of its own each time", async () => {
    const repo = server.createRepo("repeat");
    await store.sync(request(repo, "a", { "a/fleet.yaml": "a\n" }));
    const [b, c1, c2] = await Promise.all([
      store.sync(request(repo, "b", { "b/fleet.yaml": "b\n" })),
      store.sync(request(repo, "c", { "c/fleet.yaml": "1\n" })),
      store.sync(request(repo, "c", { "c/fleet.yaml": "2\n" })),
    ]);
    assert.ok(b.changed && c1.changed && c2.changed);
    assert.notEqual(c1.commit, c2.commit, "each names the commit that holds its tree");
    assert.deepEqual(server.log("repeat"), [c2.commit, c1.commit, b.commit, server.log("repeat")[3]]);
    assert.equal(server.show("repeat", "c/fleet.yaml"), "2\n");
  });

  it("keeps every change when two stores (two processes) push to one branch at once", async () => {
    const repo = server.createRepo("contended");
    const [one, two] = [
      new HttpGitStore({ cacheDir: tmpCache("one") }),
      new HttpGitStore({ cacheDir: tmpCache("two") }),
    ];
    const results = await Promise.all(
      ["p1", "p2", "p3", "p4", "p5", "p6"].map((p, i) =>
        (i % 2 ? one : two).sync(request(repo, p, { [`${p}/deep/fleet.yaml`]: `${p}\n` })),
      ),
    );
    assert.ok(results.every((r) => r.changed));
    // Each store pushes its first change alone and the two queued meanwhile as one commit.
    assert.equal(server.log("contended").length, 4, "one commit per batch, none lost");
    assert.equal(results[2]?.commit, results[4]?.commit, "p3 and p5: one batch of store two");
    assert.equal(results[3]?.commit, results[5]?.commit, "p4 and p6: one batch of store one");
    assert.equal(server.files("contended").length, 6);
    assert.equal(server.show("contended", "p4/deep/fleet.yaml"), "p4\n");
    // Removing a folder is a change too; removing it again is not.
    assert.equal((await one.sync(request(repo, "p1", {}))).changed, true);
    assert.equal((await two.sync(request(repo, "p1", {}))).changed, false);
    assert.ok(!server.files("contended").some((f) => f.startsWith("p1/")));
  });

  it("builds on the newer head when another writer pushes between its listing and its fetch", async () => {
    const repo = server.createRepo("moving");
    const store = new HttpGitStore({ cacheDir: tmpCache("moving") });
    assert.equal((await store.sync(request(repo, "p1", { "p1/fleet.yaml": "1\n" }))).changed, true);
    // The branch moves twice: once before the store lists it, once between its listing
    // (which names the first new head) and its fetch (which brings the second).
    const listed = server.commit("moving", "other/a", "a\n");
    let newer = "";
    let listings = 0;
    // The store lists the branch's head, then fetches it: the fetch starts with a listing
    // of its own, which is where the other writer's second commit has landed.
    server.onRequest((method, url) => {
      if (method === "GET" && url.includes("/moving.git/info/refs") && ++listings === 2)
        newer = server.commit("moving", "other/b", "b\n");
    });
    const result = await store.sync(request(repo, "p2", { "p2/fleet.yaml": "2\n" })).finally(() => {
      server.onRequest(undefined);
    });
    assert.ok(newer, "the other writer pushed during the fetch");
    assert.equal(result.changed, true);
    assert.deepEqual(server.log("moving").slice(1, 3), [newer, listed], "on top of both other commits");
    assert.deepEqual(server.files("moving").sort(), ["other/a", "other/b", "p1/fleet.yaml", "p2/fleet.yaml"]);
  });

  it("sends credentials and names a refusal", async () => {
    const repo = privateServer.createRepo("private");
    const withCreds = new HttpGitStore({ username: "outpost", password: "s3cret" });
    assert.equal((await withCreds.sync(request(repo, "x", { "x/a": "1\n" }))).changed, true);
    await assert.rejects(
      new HttpGitStore({ username: "outpost", password: "wrong" }).sync(request(repo, "x", { "x/a": "2\n" })),
      (err: unknown) => {
        assert.ok(err instanceof GitStoreError);
        assert.equal(err.reason, "Unauthorized");
        assert.match(err.message, /refused the credentials/);
        return true;
      },
    );
  });

  it("reports an unreachable server and recovers when it is back", async () => {
    const repo = server.createRepo("flaky");
    server.down();
    await assert.rejects(store.sync(request(repo, "x", { "x/a": "1\n" })), (err: unknown) => {
      assert.ok(err instanceof GitStoreError);
      assert.equal(err.reason, "Unreachable");
      assert.ok(err.message.startsWith(repo), err.message);
      return true;
    });
    server.up();
    assert.equal((await store.sync(request(repo, "x", { "x/a": "1\n" }))).changed, true);
  });
});
