// The informer against a real API server: cache and indexes, recovery after the API
// server is killed and restarted, relist on 410 Gone, and the REST client's basics.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { KubeClient, ApiError, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { Informer } from "../../operators/runtime/informer.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";

// Secrets bypass the watch cache here, so that a watch from a compacted resourceVersion
// reaches etcd and gets 410 Gone, as it does when a watch cache's window has moved on.
const controlPlane = useControlPlane({ apiServerArgs: ["--watch-cache-sizes=secrets#0"] });
const secrets: ResourceType = {
  group: "",
  version: "v1",
  kind: "Secret",
  plural: "secrets",
  namespaced: true,
};

/** Informers started in a test are stopped after it, pass or fail, then clients closed. */
const running: Informer<KubeObject>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((i) => i.stop()));
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
function informerFor<T extends KubeObject>(...args: ConstructorParameters<typeof Informer<T>>): Informer<T> {
  const informer = new Informer<T>(...args);
  running.push(informer as unknown as Informer<KubeObject>);
  return informer;
}

const configMaps: ResourceType = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};
const namespaces: ResourceType = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const clients: KubeClient[] = [];
function client(): KubeClient {
  const c = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
  clients.push(c);
  return c;
}

async function namespace(c: KubeClient, name: string): Promise<void> {
  await c.create(namespaces, { metadata: { name } });
}

describe("KubeClient", () => {
  it("creates, reads, applies, patches and deletes", async () => {
    const c = client();
    await namespace(c, "client");
    const created = await c.create<ConfigMap>(configMaps, {
      metadata: { name: "a", namespace: "client" },
      data: { x: "1" },
    });
    assert.equal(created.data?.x, "1");
    assert.equal((await c.get<ConfigMap>(configMaps, "a", "client"))?.data?.x, "1");
    assert.equal(await c.get(configMaps, "missing", "client"), undefined);
    const applied = await c.apply<ConfigMap>(
      configMaps,
      { metadata: { name: "a", namespace: "client" }, data: { y: "2" } },
      { fieldManager: "test" },
    );
    assert.deepEqual(applied.data, { x: "1", y: "2" });
    const patched = await c.mergePatch<ConfigMap>(configMaps, "a", "client", { data: { x: null } });
    assert.deepEqual(patched.data, { y: "2" });
    await assert.rejects(
      c.create(configMaps, { metadata: { name: "a", namespace: "client" } }),
      (err: unknown) => {
        assert.ok(ApiError.isConflict(err));
        assert.match((err as Error).message, /already exists/);
        return true;
      },
    );
    assert.equal(await c.delete(configMaps, "a", "client"), true);
    assert.equal(await c.delete(configMaps, "a", "client"), false);
  });
});

describe("Informer", () => {
  it("lists, watches and indexes", async () => {
    const c = client();
    await namespace(c, "inf");
    await c.create(configMaps, { metadata: { name: "before", namespace: "inf", labels: { app: "web" } } });
    const informer = informerFor<ConfigMap>(c, configMaps, { namespace: "inf" });
    const events: string[] = [];
    informer.addHandler({
      add: (o) => events.push(`add ${o.metadata.name ?? ""}`),
      update: (o) => events.push(`update ${o.metadata.name ?? ""}`),
      delete: (o) => events.push(`delete ${o.metadata.name ?? ""}`),
    });
    await informer.start();
    assert.ok(informer.hasSynced);
    assert.ok(informer.cache.get("inf/before"));
    assert.equal(
      informer.cache.get("inf/before")?.metadata.managedFields,
      undefined,
      "managedFields dropped",
    );

    await c.create(configMaps, {
      metadata: { name: "after", namespace: "inf", labels: { app: "web", tier: "db" } },
    });
    await c.mergePatch(configMaps, "before", "inf", { data: { k: "v" } });
    await c.delete(configMaps, "before", "inf");
    await eventually("the watch events", () =>
      Promise.resolve(events.includes("delete before") ? true : undefined),
    );
    assert.deepEqual(events, ["add before", "add after", "update before", "delete before"]);
    assert.deepEqual(
      informer.cache.byLabels({ app: "web", tier: "db" }).map((o) => o.metadata.name),
      ["after"],
    );
    assert.equal(informer.cache.byNamespace("inf").length, 1);
  });

  it("settles for a kind that is not served, and only after the first list for one that is", async () => {
    const c = client();
    await namespace(c, "inf-settle");
    await c.create(configMaps, { metadata: { name: "listed", namespace: "inf-settle" } });
    const missing = informerFor<KubeObject>(
      c,
      { group: "nowhere.outpost.dev", version: "v1", kind: "Missing", plural: "missings", namespaced: true },
      { optional: true },
    );
    void missing.start();
    await missing.settled;
    assert.equal(missing.notServed, true, "settled because the kind is not served");
    assert.equal(missing.hasSynced, false);

    const present = informerFor<ConfigMap>(c, configMaps, { namespace: "inf-settle", optional: true });
    void present.start();
    await present.settled;
    assert.ok(present.hasSynced, "settled only once the list completed");
    assert.ok(present.cache.get("inf-settle/listed"));
  });

  it("misses nothing across an API server restart", async () => {
    const cp = controlPlane();
    const c = client();
    await namespace(c, "restart");
    const restarts: string[] = [];
    const informer = informerFor<ConfigMap>(c, configMaps, {
      namespace: "restart",
      // Long enough that the objects below are written before the watch comes back.
      backoff: { initialMs: 10_000, maxMs: 10_000 },
      onRestart: (reason) => restarts.push(reason),
    });
    const seen = new Set<string>();
    informer.addHandler({ add: (o) => seen.add(o.metadata.name ?? "") });
    await informer.start();
    await c.create(configMaps, { metadata: { name: "doomed", namespace: "restart" } });
    await eventually("doomed in the cache", () => Promise.resolve(informer.cache.get("restart/doomed")));

    await cp.killApiServer(cp.management);
    await cp.restartApiServer(cp.management);
    const writer = client();
    for (let i = 0; i < 5; i++) {
      await writer.create(configMaps, { metadata: { name: `while-down-${i}`, namespace: "restart" } });
    }
    await writer.delete(configMaps, "doomed", "restart");
    assert.ok(!seen.has("while-down-0"), "the informer had not reconnected yet");

    await eventually("every object written while the watch was down", () =>
      Promise.resolve(
        [0, 1, 2, 3, 4].every((i) => informer.cache.get(`restart/while-down-${i}`)) &&
          !informer.cache.get("restart/doomed")
          ? true
          : undefined,
      ),
    );
    assert.ok(restarts.length >= 1, "the watch was restarted");
    assert.equal(informer.cache.size, 5);
  });

  it("relists on 410 Gone and keeps the cache consistent", async () => {
    const cp = controlPlane();
    const c = client();
    await namespace(c, "gone");
    const restarts: string[] = [];
    const informer = informerFor<ConfigMap>(c, secrets, {
      namespace: "gone",
      onRestart: (reason) => restarts.push(reason),
    });
    const deleted: string[] = [];
    informer.addHandler({ delete: (o) => deleted.push(o.metadata.name ?? "") });
    await c.create(secrets, { metadata: { name: "old", namespace: "gone" } });
    await informer.start();
    const startVersion = informer.cache.get("gone/old")?.metadata.resourceVersion ?? "";
    await c.create(secrets, { metadata: { name: "new", namespace: "gone" } });
    await c.delete(secrets, "old", "gone");
    await cp.compactEtcd();
    // Resume from a resourceVersion compacted away: the server answers 410 Gone.
    informer.resumeFrom(startVersion);
    await eventually("a relist after 410", () =>
      Promise.resolve(restarts.includes("gone") ? true : undefined),
    );
    await eventually("the cache to match the server", () =>
      Promise.resolve(
        informer.cache.get("gone/new") && !informer.cache.get("gone/old") && deleted.includes("old")
          ? true
          : undefined,
      ),
    );
  });

  it("relists when a watch goes silent, and resyncs periodically", async () => {
    const c = client();
    await namespace(c, "quiet");
    await c.create(configMaps, { metadata: { name: "a", namespace: "quiet" } });
    const restarts: string[] = [];
    const informer = informerFor<ConfigMap>(c, configMaps, {
      namespace: "quiet",
      // Shorter than the API server's bookmark interval, so a quiet watch trips it.
      watchdogMs: 1000,
      resyncMs: 300,
      onRestart: (reason) => restarts.push(reason),
    });
    let resyncs = 0;
    informer.addHandler({ update: (o, old) => (o === old ? resyncs++ : undefined) });
    await informer.start();
    await eventually("the watchdog to fire", () =>
      Promise.resolve(restarts.includes("watchdog") ? true : undefined),
    );
    assert.ok(resyncs >= 2, `resynced ${resyncs} times`);
    await c.create(configMaps, { metadata: { name: "b", namespace: "quiet" } });
    await eventually("the informer to keep working", () => Promise.resolve(informer.cache.get("quiet/b")));
  });
});
