// Deployment status from Fleet objects: targeting, current revision, offline clusters,
// bounded detail; and label selectors.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { targetedClusters } from "../inventory/inventory.ts";
import {
  aggregate,
  fleetStates,
  phaseOf,
  slimBundleDeployment,
  type FleetBundleDeployment,
  type FleetCluster,
} from "./status.ts";
import { matches, type LabelSelector } from "../inventory/selector.ts";
import fc from "fast-check";

const now = new Date("2026-06-01T12:00:00Z");
const cluster = (name: string, labels: Record<string, string>, seenSecondsAgo = 10): FleetCluster => ({
  metadata: { name, labels },
  status: { agent: { lastSeen: new Date(now.getTime() - seenSecondsAgo * 1000).toISOString() } },
});
const bd = (
  bundle: string,
  cluster: string,
  state: "ready" | "applied" | "stale",
  message?: string,
): FleetBundleDeployment => ({
  metadata: { labels: { "fleet.cattle.io/bundle-name": bundle, "fleet.cattle.io/cluster": cluster } },
  spec: { deploymentID: "s-2" },
  status: {
    appliedDeploymentID: state === "stale" ? "s-1" : "s-2",
    ready: state === "ready",
    ...(message ? { conditions: [{ type: "Ready", status: "False", message }] } : {}),
  },
});

describe("label selectors", () => {
  it("match labels and expressions", () => {
    const labels = { site: "store", size: "large" };
    assert.equal(matches({}, labels), true);
    assert.equal(matches({ matchLabels: { site: "store" } }, labels), true);
    assert.equal(matches({ matchLabels: { site: "central" } }, labels), false);
    assert.equal(
      matches({ matchExpressions: [{ key: "site", operator: "In", values: ["store", "kiosk"] }] }, labels),
      true,
    );
    assert.equal(
      matches({ matchExpressions: [{ key: "size", operator: "NotIn", values: ["large"] }] }, labels),
      false,
    );
    assert.equal(
      matches({ matchExpressions: [{ key: "ring", operator: "NotIn", values: ["0"] }] }, labels),
      true,
    );
    assert.equal(matches({ matchExpressions: [{ key: "ring", operator: "Exists" }] }, labels), false);
    assert.equal(matches({ matchExpressions: [{ key: "ring", operator: "DoesNotExist" }] }, labels), true);
  });
});

describe("aggregate", () => {
  const clusters = [
    cluster("store-1", { site: "store" }),
    cluster("store-2", { site: "store" }),
    cluster("store-3", { site: "store" }, 3600),
    cluster("store-4", { site: "store" }),
    cluster("central", { site: "central" }),
  ];
  const apps = [
    {
      application: "web",
      bundleName: "shop-web",
      targets: [{ name: "selected", clusterSelector: { matchLabels: { site: "store" } } }],
    },
    {
      application: "db",
      bundleName: "shop-db",
      targets: [{ name: "cluster-central", clusterName: "central" }],
    },
  ];

  it("counts clusters by their worst application, offline apart from failures", () => {
    const status = aggregate({
      apps,
      clusters,
      stateOf: fleetStates([
        bd("shop-web", "store-1", "ready"),
        bd("shop-web", "store-2", "applied", "Deployment web: 0/2 replicas available"),
        bd("shop-web", "store-3", "ready"),
        bd("shop-web", "store-4", "stale"),
        bd("shop-db", "central", "ready"),
      ]),
      now,
      offlineAfterMs: 15 * 60_000,
    });
    assert.deepEqual(status.summary, { targets: 5, ready: 2, notReady: 1, offline: 1, pending: 1 });
    assert.deepEqual(status.applications, [
      { name: "web", targets: 4, ready: 1, message: "store-2: Deployment web: 0/2 replicas available" },
      { name: "db", targets: 1, ready: 1 },
    ]);
    assert.deepEqual(
      status.clusters.map((c) => [c.name, c.state]),
      [
        ["store-3", "Offline"],
        ["store-2", "NotReady"],
        ["store-4", "Pending"],
      ],
    );
    assert.equal(phaseOf(status.summary, false), "Degraded");
  });

  it("lists the worst clusters first, by name among equals, at most maxListed", () => {
    const states = ["Ready", "Pending", "NotReady", "Failed"] as const;
    const many = Array.from({ length: 200 }, (_, i) => cluster(`c-${(i * 7919) % 200}`, { tier: "store" }));
    const stateOf = (name: string) => states[Number(name.slice(2)) % states.length] ?? "Ready";
    const status = aggregate({
      apps: [{ application: "web", bundleName: "b", targets: [{ name: "all", clusterSelector: {} }] }],
      clusters: many,
      stateOf: (_app, c) => ({ state: stateOf(c), message: stateOf(c) === "Ready" ? "" : "why" }),
      now,
      maxListed: 7,
    });
    // By the spec: Failed before NotReady before Pending, then by name (code point order).
    const order = { Failed: 0, NotReady: 1, Pending: 2 } as Record<string, number>;
    const expected = many
      .map((c) => c.metadata.name ?? "")
      .filter((n) => stateOf(n) !== "Ready")
      .sort((a, b) => (order[stateOf(a)] ?? 0) - (order[stateOf(b)] ?? 0) || (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, 7);
    assert.deepEqual(
      status.clusters.map((c) => c.name),
      expected,
    );
    assert.deepEqual(status.clusters[0], { name: expected[0], state: "Failed", message: "web: why" });
    assert.deepEqual(status.summary, { targets: 200, ready: 50, notReady: 100, offline: 0, pending: 50 });
  });

  it("names the failing application on a cluster, not the ones waiting for it", () => {
    const both = [
      { ...apps[0], targets: [{ name: "s", clusterName: "store-1" }] },
      { ...apps[1], targets: [{ name: "s", clusterName: "store-1" }] },
    ] as typeof apps;
    for (const order of [both, [...both].reverse()]) {
      const status = aggregate({
        apps: order,
        clusters,
        stateOf: fleetStates([
          bd("shop-web", "store-1", "applied", "dependent bundle(s) are not ready: [shop-db]"),
          bd("shop-db", "store-1", "applied", "Deployment db: ImagePullBackOff"),
        ]),
        now,
        offlineAfterMs: 15 * 60_000,
      });
      assert.deepEqual(status.clusters, [
        { name: "store-1", state: "NotReady", message: "db: Deployment db: ImagePullBackOff" },
      ]);
    }
  });

  it("stays small at 10,000 clusters", () => {
    const many = Array.from({ length: 10_000 }, (_, i) => cluster(`c-${i}`, { site: "store" }));
    const status = aggregate({
      apps: [apps[0] ?? { application: "", bundleName: "", targets: [] }],
      clusters: many,
      stateOf: fleetStates(
        many.map((c, i) => bd("shop-web", c.metadata.name ?? "", i % 100 === 0 ? "applied" : "ready")),
      ),
      now,
      offlineAfterMs: 60_000,
    });
    assert.deepEqual(status.summary, {
      targets: 10_000,
      ready: 9_900,
      notReady: 100,
      offline: 0,
      pending: 0,
    });
    assert.equal(status.clusters.length, 20);
    assert.ok(JSON.stringify(status).length < 64 * 1024);
  });

  it("gives the phase", () => {
    const s = (
      o: Partial<{ targets: number; ready: number; notReady: number; offline: number; pending: number }>,
    ) => ({
      targets: 0,
      ready: 0,
      notReady: 0,
      offline: 0,
      pending: 0,
      ...o,
    });
    assert.equal(phaseOf(s({}), true), "NoTargetClusters");
    assert.equal(phaseOf(s({ targets: 2, ready: 2 }), false), "Running");
    assert.equal(
      phaseOf(s({ targets: 2, ready: 1, offline: 1 }), false),
      "Running",
      "offline is not a failure",
    );
    assert.equal(phaseOf(s({ targets: 2, pending: 2 }), true), "Deploying");
    assert.equal(phaseOf(s({ targets: 2, ready: 1, pending: 1 }), false), "Updating");
    assert.equal(phaseOf(s({ targets: 2, notReady: 2 }), false), "Down");
    assert.equal(phaseOf(s({ targets: 2, offline: 2 }), false), "Down");
  });

  it("selects clusters as Fleet does: targets ORed, criteria ANDed", () => {
    const picked = targetedClusters(
      [
        { name: "a", clusterName: "central", clusterSelector: { matchLabels: { site: "store" } } },
        { name: "b", clusterName: "store-1" },
      ],
      clusters,
    );
    assert.deepEqual(
      picked.map((c) => c.metadata.name),
      ["store-1"],
    );
  });
});

describe("current content", () => {
  it("counts a BundleDeployment of older content as pending, even when it is applied and ready", () => {
    const old = bd("shop-web", "store-1", "ready");
    old.metadata.labels = { ...old.metadata.labels, "outpost.dev/content": "old" };
    const fresh = bd("shop-web", "store-2", "ready");
    fresh.metadata.labels = { ...fresh.metadata.labels, "outpost.dev/content": "new" };
    const s = aggregate({
      apps: [
        {
          application: "web",
          bundleName: "shop-web",
          contentHash: "new",
          targets: [{ name: "all", clusterSelector: { matchLabels: { site: "store" } } }],
        },
      ],
      clusters: [cluster("store-1", { site: "store" }), cluster("store-2", { site: "store" })],
      stateOf: fleetStates([old, fresh]),
      now,
      offlineAfterMs: 60_000,
    });
    assert.deepEqual(s.summary, { targets: 2, ready: 1, notReady: 0, offline: 0, pending: 1 });
    assert.equal(s.clusters[0]?.name, "store-1");
    assert.equal(s.clusters[0].state, "Pending");
  });
});

describe("slim BundleDeployments", () => {
  it("keep what the status needs and drop the rest", () => {
    const full = bd("shop-web", "store-1", "applied", "ImagePullBackOff");
    const fat = {
      ...full,
      metadata: { ...full.metadata, name: "shop-web", namespace: "cluster-x", managedFields: [{}] },
      spec: {
        ...full.spec,
        options: { forceSyncGeneration: 3, helm: { values: { big: "x".repeat(10_000) } } },
      },
      status: {
        ...full.status,
        resources: Array.from({ length: 100 }, (_, i) => ({ kind: "Pod", name: `p${i}` })),
        nonReadyStatus: [{ kind: "Deployment", name: "web", summary: { message: ["waiting"] } }],
      },
    };
    const slim = slimBundleDeployment(fat);
    assert.ok(JSON.stringify(slim).length < 600, JSON.stringify(slim));
    const input = (b: typeof full) => ({
      apps: [
        { application: "web", bundleName: "shop-web", targets: [{ name: "all", clusterName: "store-1" }] },
      ],
      clusters: [cluster("store-1", {})],
      stateOf: fleetStates([b], new Map([["shop-web", 3]])),
      now,
      offlineAfterMs: 60_000,
    });
    assert.deepEqual(aggregate(input(slim)), aggregate(input(fat)));
    assert.equal(
      aggregate(input(slim)).summary.notReady,
      1,
      "ImagePullBackOff: not Pending on the sync generation",
    );
  });
});

describe("offline clusters by source", () => {
  it("counts only agent-based (Fleet) clusters offline by silence", () => {
    const s = aggregate({
      apps: [{ application: "web", bundleName: "shop-web", targets: [{ name: "all", clusterSelector: {} }] }],
      clusters: [
        { metadata: { name: "pushed" }, source: "argocd" },
        { metadata: { name: "silent-agent" }, source: "fleet" },
      ],
      stateOf: () => ({ state: "Ready", message: "" }),
      now,
      offlineAfterMs: 60_000,
    });
    assert.deepEqual(s.summary, { targets: 2, ready: 1, notReady: 0, offline: 1, pending: 0 });
    assert.deepEqual(
      s.clusters.map((c) => c.name),
      ["silent-agent"],
    );
  });
});

describe("fleetStates follows Fleet's GetDeploymentState", () => {
  const app = { application: "web", bundleName: "shop-web", contentHash: "c2", targets: [] };
  const labels = {
    "fleet.cattle.io/bundle-name": "shop-web",
    "fleet.cattle.io/cluster": "s1",
    "outpost.dev/content": "c2",
  };
  const state = (d: Omit<FleetBundleDeployment, "metadata">) =>
    fleetStates([{ metadata: { labels }, ...d }])(app, "s1");

  it("a held-back BundleDeployment is not on the current revision, whatever its labels say", () => {
    // Fleet copied the new labels and staged the new ID; the old one still runs, ready.
    const s = state({
      spec: { deploymentID: "old", stagedDeploymentID: "new" },
      status: { appliedDeploymentID: "old", ready: true, nonModified: true },
    });
    assert.equal(s.state, "Pending");
    assert.match(s.message, /^OutOfSync: Fleet holds the current revision back/);
  });

  it("changed secret values are Pending until Fleet's options carry them and the agent copied them", () => {
    const withGen = (generation: number, d: Omit<FleetBundleDeployment, "metadata">) =>
      fleetStates([{ metadata: { labels }, ...d }], new Map([["shop-web", generation]]))(app, "s1");
    const applied = { appliedDeploymentID: "a", ready: true, nonModified: true };
    // The GitRepo says generation 2; Fleet's BundleDeployment still has the options of 1.
    const old = withGen(2, {
      spec: { deploymentID: "a", stagedDeploymentID: "a", options: { forceSyncGeneration: 1 } },
      status: applied,
    });
    assert.deepEqual(old, {
      state: "Pending",
      message: "Fleet has not rolled out the changed secret values yet",
    });
    const copying = withGen(2, {
      spec: {
        deploymentID: "a",
        stagedDeploymentID: "a",
        options: { forceSyncGeneration: 2 },
        downstreamResourcesGeneration: 4,
      },
      status: { ...applied, downstreamResourcesGeneration: 3 },
    });
    assert.equal(copying.state, "Pending");
    assert.match(copying.message, /not copied the changed secret values/);
    const done = withGen(2, {
      spec: {
        deploymentID: "a",
        stagedDeploymentID: "a",
        options: { forceSyncGeneration: 2 },
        downstreamResourcesGeneration: 4,
      },
      status: { ...applied, downstreamResourcesGeneration: 4 },
    });
    assert.deepEqual(done, { state: "Ready", message: "" });
    // Never changed: no generation on either side.
    assert.equal(
      state({ spec: { deploymentID: "a", stagedDeploymentID: "a" }, status: applied }).state,
      "Ready",
    );
  });

  it("Deployed=False with the old appliedDeploymentID is Failed, with the agent's message", () => {
    const s = state({
      spec: { deploymentID: "new", stagedDeploymentID: "new" },
      status: {
        appliedDeploymentID: "old",
        ready: true,
        conditions: [
          { type: "Deployed", status: "False", message: "template: web/templates/cm.yaml:3: bad" },
        ],
      },
    });
    assert.deepEqual(s, {
      state: "Failed",
      message: "Fleet could not apply the current revision: template: web/templates/cm.yaml:3: bad",
    });
  });

  it("waiting for a dependency is Pending, and WaitApplied is Pending", () => {
    const waiting = state({
      spec: { deploymentID: "new" },
      status: {
        appliedDeploymentID: "old",
        conditions: [
          { type: "Deployed", status: "False", message: "dependent bundle(s) are not ready: [shop-db]" },
        ],
      },
    });
    assert.equal(waiting.state, "Pending");
    assert.equal(
      state({ spec: { deploymentID: "new" }, status: { appliedDeploymentID: "old" } }).state,
      "Pending",
    );
  });

  it("Modified (drift) is not ready, naming the resource", () => {
    const s = state({
      spec: { deploymentID: "new", stagedDeploymentID: "new" },
      status: {
        appliedDeploymentID: "new",
        ready: true,
        nonModified: false,
        modifiedStatus: [{ kind: "ConfigMap", namespace: "shop", name: "web" }],
      },
    });
    assert.deepEqual(s, {
      state: "NotReady",
      message: "Modified: on the cluster, ConfigMap shop/web was changed (drift from the revision)",
    });
  });

  it("a failed cluster counts as not ready, and slimming keeps what these rules read", () => {
    const full: FleetBundleDeployment = {
      metadata: { labels },
      spec: { deploymentID: "new", stagedDeploymentID: "new" },
      status: {
        appliedDeploymentID: "old",
        ready: false,
        conditions: [
          { type: "Ready", status: "False", message: "not ready" },
          { type: "Deployed", status: "False", message: "invalid ownership metadata" },
        ],
      },
    };
    const slim = slimBundleDeployment(full);
    assert.deepEqual(fleetStates([slim])(app, "s1"), fleetStates([full])(app, "s1"));
    const summary = aggregate({
      apps: [{ ...app, targets: [{ name: "s", clusterName: "s1" }] }],
      clusters: [cluster("s1", {})],
      stateOf: fleetStates([slim]),
      now,
      offlineAfterMs: 15 * 60_000,
    });
    assert.deepEqual(summary.summary, { targets: 1, ready: 0, notReady: 1, offline: 0, pending: 0 });
    assert.equal(summary.clusters[0]?.state, "Failed");
  });
});

describe("aggregate's shortcuts change nothing", () => {
  // Status looks only at the clusters where the engine holds something (EngineStates.absent)
  // and walks one target list cluster by cluster when every application shares it; both
  // must give what asking the engine for every (application, cluster) pair gives.
  const arbitraryCase = fc.record({
    clusters: fc.array(fc.record({ tier: fc.constantFrom("a", "b"), silent: fc.boolean() }), {
      minLength: 1,
      maxLength: 12,
    }),
    apps: fc.array(fc.constantFrom("all", "a", "b"), { minLength: 1, maxLength: 3 }),
    deployed: fc.array(
      fc.record({
        app: fc.nat(2),
        cluster: fc.nat(11),
        state: fc.constantFrom("ready", "applied", "stale"),
        message: fc.constantFrom(undefined, "boom", "dependent bundle(s) are not ready: x"),
      }),
      { maxLength: 30 },
    ),
  });
  it("gives the pair-by-pair result, shared target lists or not", () => {
    fc.assert(
      fc.property(arbitraryCase, (t) => {
        const clusters = t.clusters.map((c, i) => cluster(`c${i}`, { tier: c.tier }, c.silent ? 7200 : 10));
        const selectorOf = (k: string, spelled: boolean): LabelSelector =>
          k === "all"
            ? spelled
              ? { matchExpressions: [] }
              : {}
            : spelled
              ? { matchExpressions: [{ key: "tier", operator: "In", values: [k] }] }
              : { matchLabels: { tier: k } };
        const appsOf = (spelled: (i: number) => boolean) =>
          t.apps.map((k, i) => ({
            application: `app${i}`,
            bundleName: `b${i}`,
            targets: [{ name: "t", clusterSelector: selectorOf(k, spelled(i)) }],
          }));
        const bds = t.deployed.map((d) => bd(`b${d.app}`, `c${d.cluster}`, d.state, d.message));
        const withShortcut = fleetStates(bds);
        const pairByPair = fleetStates(bds);
        delete pairByPair.absent;
        assert.ok(withShortcut.absent, "Fleet's states name the clusters they hold something on");
        const apps = appsOf(() => false);
        const expected = aggregate({ apps, clusters, stateOf: pairByPair, now, maxListed: 5 });
        assert.deepEqual(aggregate({ apps, clusters, stateOf: withShortcut, now, maxListed: 5 }), expected);
        // The same targets spelled differently per application: no shared list.
        const spelledApart = appsOf((i) => i % 2 === 1);
        assert.deepEqual(
          aggregate({ apps: spelledApart, clusters, stateOf: withShortcut, now, maxListed: 5 }),
          expected,
        );
      }),
      { numRuns: 500 },
    );
  });
});
