// The cluster inventory: answers reused until a source says its namespace changed,
// offline sets (agent sources only) reused for a few seconds, one entry per cluster name.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubeObject } from "../runtime/client.ts";
import type { Informer } from "../runtime/informer.ts";
import {
  clusterDisplayNameLabel,
  ClusterInventory,
  targetedClusters,
  type ClusterSource,
  type ClusterSourceName,
  type InventoryCluster,
} from "./inventory.ts";

function source(name: ClusterSourceName, clusters: InventoryCluster[]) {
  const handlers: ((ns: string) => void)[] = [];
  let lists = 0;
  const s: ClusterSource & { changed(ns: string): void; lists(): number } = {
    name,
    informer: undefined as unknown as Informer<KubeObject>,
    synced: true,
    list: (ns) => {
      lists++;
      return clusters.filter((c) => c.metadata.namespace === ns);
    },
    namespaceOf: (o) => o.metadata.namespace,
    onChange: (h) => handlers.push(h),
    changed: (ns) => {
      for (const h of handlers) h(ns);
    },
    lists: () => lists,
  };
  return s;
}

describe("ClusterInventory", () => {
  it("reuses answers until the namespace's clusters change", () => {
    let now = new Date("2026-06-01T12:00:00Z");
    const fleet: InventoryCluster[] = [
      {
        metadata: { name: "a", namespace: "ns", labels: { tier: "store" } },
        status: { agent: { lastSeen: now.toISOString() } },
        source: "fleet",
      },
      { metadata: { name: "b", namespace: "ns", labels: { tier: "central" } }, source: "fleet" },
    ];
    const argo: InventoryCluster[] = [
      { metadata: { name: "c", namespace: "ns", labels: { tier: "store" } }, source: "argocd" },
      { metadata: { name: "a", namespace: "ns", labels: { tier: "elsewhere" } }, source: "argocd" },
    ];
    const f = source("fleet", fleet);
    const a = source("argocd", argo);
    const inv = new ClusterInventory([f, a], { offlineAfterMs: 60_000, now: () => now });
    const store = [{ name: "s", clusterSelector: { matchLabels: { tier: "store" } } }];
    assert.deepEqual(
      inv.targeted("ns", store).map((c) => `${c.metadata.name ?? ""}/${c.source}`),
      ["a/fleet", "c/argocd"],
      "a cluster registered twice is one cluster",
    );
    assert.deepEqual(
      inv.targeted("ns", store, "argocd").map((c) => c.metadata.name),
      ["c"],
    );
    assert.equal(inv.targeted("ns", store), inv.targeted("ns", store), "the same answer object");
    // Only agent-based registrations go offline by silence.
    assert.deepEqual([...inv.offline("ns")], ["b"]);
    const lists = f.lists();

    fleet.push({ metadata: { name: "d", namespace: "ns", labels: { tier: "store" } }, source: "fleet" });
    assert.equal(inv.targeted("ns", store).length, 2, "not told yet");
    f.changed("ns");
    assert.deepEqual(
      inv.targeted("ns", store).map((c) => c.metadata.name),
      ["a", "d", "c"],
    );
    assert.ok(f.lists() > lists);

    // a goes silent: offline once the reuse window has passed.
    now = new Date(now.getTime() + 120_000);
    assert.deepEqual([...inv.offline("ns")].sort(), ["a", "b", "d"]);
  });
});

describe("targetedClusters", () => {
  const cluster = (name: string, labels: Record<string, string> = {}) => ({ metadata: { name, labels } });
  const clusters = [
    cluster("c-m-8x2k", { [clusterDisplayNameLabel]: "store-1", tier: "store" }),
    cluster("store-2", { tier: "store" }),
    cluster("central", { tier: "central" }),
  ];
  const names = (targets: Parameters<typeof targetedClusters>[0]) =>
    targetedClusters(targets, clusters).map((c) => c.metadata.name);

  it("matches a name by the cluster's name or its Rancher display name, as Fleet does", () => {
    assert.deepEqual(names([{ name: "a", clusterName: "store-1" }]), ["c-m-8x2k"]);
    assert.deepEqual(names([{ name: "a", clusterName: "c-m-8x2k" }]), ["c-m-8x2k"]);
    assert.deepEqual(names([{ name: "a", clusterName: "store-2" }]), ["store-2"]);
    assert.deepEqual(names([{ name: "a", clusterName: "nowhere" }]), []);
  });

  it("ORs targets and ANDs a target's criteria", () => {
    assert.deepEqual(
      names([
        { name: "a", clusterName: "central" },
        { name: "b", clusterSelector: { matchLabels: { tier: "store" } } },
      ]),
      ["c-m-8x2k", "store-2", "central"],
    );
    assert.deepEqual(
      names([{ name: "a", clusterName: "store-1", clusterSelector: { matchLabels: { tier: "central" } } }]),
      [],
    );
  });
});
