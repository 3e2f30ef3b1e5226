// Revision history: numbering in delivery order, rollback renumbering, history limit,
// immutable data.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import { planRevision, revisionHashLabel, type ControllerRevision } from "./revisions.ts";

const dep = (limit?: number, suspend?: boolean): AppDeployment => ({
  metadata: { name: "shop", namespace: "retail", uid: "u1" },
  spec: {
    packageRef: { name: "shop", version: "1.0.0" },
    targets: { clusterSelector: { matchLabels: { tier: "store" } } },
    ...(limit !== undefined ? { revisionHistoryLimit: limit } : {}),
    ...(suspend !== undefined ? { suspend } : {}),
  },
});

const rev = (hash: string, revision: number, commit = "c"): ControllerRevision => ({
  metadata: {
    name: `shop-${hash}`,
    namespace: "retail",
    resourceVersion: "7",
    labels: { [revisionHashLabel]: hash },
    annotations: { "outpost.dev/commit": commit },
  },
  revision,
  data: { spec: dep().spec },
});

describe("revision plan", () => {
  it("creates revision 1, then one past the newest", () => {
    const first = planRevision(dep(), "aaa", [], { "outpost.dev/commit": "c1" });
    assert.equal(first.write, "create");
    assert.equal(first.revision.revision, 1);
    assert.equal(first.revision.metadata.name, "shop-aaa");
    assert.equal(first.revision.metadata.ownerReferences?.[0]?.uid, "u1");
    const second = planRevision(dep(), "bbb", [rev("aaa", 1)], { "outpost.dev/commit": "c2" });
    assert.equal(second.write, "create");
    assert.equal(second.revision.revision, 2);
  });

  it("leaves the newest revision alone when it is the delivered one", () => {
    const plan = planRevision(dep(), "bbb", [rev("aaa", 1), rev("bbb", 2)], { "outpost.dev/commit": "c" });
    assert.equal(plan.write, "none");
    assert.equal(plan.revision.revision, 2);
    assert.deepEqual(plan.prune, []);
  });

  it("renumbers an old revision on rollback and keeps its data", () => {
    const old = rev("aaa", 1);
    old.data.spec.profile = "kiosk";
    const plan = planRevision(dep(), "aaa", [old, rev("bbb", 2)], { "outpost.dev/commit": "c" });
    assert.equal(plan.write, "replace");
    assert.equal(plan.revision.revision, 3);
    assert.equal(plan.revision.data.spec.profile, "kiosk");
    assert.equal(plan.revision.metadata.resourceVersion, "7");
  });

  it("prunes the oldest revisions beyond revisionHistoryLimit", () => {
    const existing = [rev("a", 1), rev("b", 2), rev("c", 3), rev("d", 4)];
    const plan = planRevision(dep(2), "e", existing, {});
    assert.equal(plan.revision.revision, 5);
    assert.deepEqual(plan.prune, ["shop-a", "shop-b", "shop-c"]);
    // The delivered revision is never pruned, even when it is the oldest.
    const back = planRevision(dep(1), "a", existing, {});
    assert.deepEqual(back.prune, ["shop-b", "shop-c", "shop-d"]);
  });

  it("stores the spec without suspend", () => {
    const plan = planRevision(dep(undefined, true), "x", [], {});
    assert.equal("suspend" in plan.revision.data.spec, false);
  });
});
