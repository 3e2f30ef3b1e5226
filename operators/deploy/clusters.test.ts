// The cluster view: selector answers reused until a cluster changes, offline sets reused
// for a few seconds.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ClusterView } from "./clusters.ts";
import type { FleetCluster } from "./status.ts";

describe("ClusterView", () => {
  it("reuses answers until the namespace's clusters change", () => {
    let now = new Date("2026-06-01T12:00:00Z");
    const clusters: FleetCluster[] = [
      {
        metadata: { name: "a", labels: { tier: "store" } },
        status: { agent: { lastSeen: now.toISOString() } },
      },
      { metadata: { name: "b", labels: { tier: "central" } } },
    ];
    let lists = 0;
    const view = new ClusterView(
      () => {
        lists++;
        return [...clusters];
      },
      60_000,
      () => now,
    );
    const store = [{ name: "s", clusterSelector: { matchLabels: { tier: "store" } } }];
    assert.deepEqual(
      view.targeted("ns", store).map((c) => c.metadata.name),
      ["a"],
    );
    assert.equal(view.targeted("ns", store), view.targeted("ns", store), "the same answer object");
    assert.deepEqual([...view.offline("ns")], ["b"]);
    assert.equal(lists, 1);

    clusters.push({ metadata: { name: "c", labels: { tier: "store" } } });
    assert.deepEqual(
      view.targeted("ns", store).map((c) => c.metadata.name),
      ["a"],
      "not told yet",
    );
    view.invalidate("ns");
    assert.deepEqual(
      view.targeted("ns", store).map((c) => c.metadata.name),
      ["a", "c"],
    );
    assert.equal(lists, 2);

    // a goes silent: seen as offline once the reuse window has passed.
    now = new Date(now.getTime() + 120_000);
    assert.deepEqual([...view.offline("ns")].sort(), ["a", "b", "c"]);
  });
});
