// The informer cache and its indexes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cache } from "./cache.ts";
import type { KubeObject } from "./client.ts";

const obj = (
  namespace: string,
  name: string,
  labels: Record<string, string> = {},
  owner?: string,
): KubeObject => ({
  metadata: {
    namespace,
    name,
    labels,
    ownerReferences: owner ? [{ apiVersion: "v1", kind: "X", name: "o", uid: owner }] : undefined,
  },
});

describe("Cache", () => {
  it("indexes by namespace, owner and labels, and keeps indexes current on update and remove", () => {
    const cache = new Cache<KubeObject>();
    cache.upsert(obj("a", "one", { app: "web", tier: "fe" }, "u1"));
    cache.upsert(obj("a", "two", { app: "web" }));
    cache.upsert(obj("b", "three", { app: "db" }, "u1"));
    assert.deepEqual(
      cache
        .byNamespace("a")
        .map((o) => o.metadata.name)
        .sort(),
      ["one", "two"],
    );
    assert.deepEqual(
      cache
        .byOwner("u1")
        .map((o) => o.metadata.name)
        .sort(),
      ["one", "three"],
    );
    assert.deepEqual(
      cache.byLabels({ app: "web", tier: "fe" }).map((o) => o.metadata.name),
      ["one"],
    );
    assert.equal(cache.byLabels({}).length, 3);

    cache.upsert(obj("a", "one", { app: "db" }));
    assert.deepEqual(
      cache.byLabels({ app: "web" }).map((o) => o.metadata.name),
      ["two"],
    );
    assert.deepEqual(
      cache.byOwner("u1").map((o) => o.metadata.name),
      ["three"],
    );

    assert.ok(cache.remove("b/three"));
    assert.equal(cache.remove("b/three"), undefined);
    assert.deepEqual(cache.byOwner("u1"), []);
    assert.equal(cache.size, 2);
  });

  it("supports custom indexes, also over objects already cached", () => {
    const cache = new Cache<KubeObject>();
    cache.upsert(obj("a", "x", { cluster: "edge-1" }));
    cache.addIndex("cluster", (o) => (o.metadata.labels?.cluster ? [o.metadata.labels.cluster] : []));
    cache.upsert(obj("a", "y", { cluster: "edge-1" }));
    assert.deepEqual(
      cache.byIndex("cluster", "edge-1").map((o) => o.metadata.name),
      ["x", "y"],
    );
    assert.throws(() => {
      cache.addIndex("cluster", () => []);
    }, /already exists/);
    assert.throws(() => cache.byIndex("nope", "v"), /no index nope/);
  });
});
