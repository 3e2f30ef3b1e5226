// Approval revision hashes and the safety rail against mass removal.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import { guardDrop, revisionHash } from "./lifecycle.ts";

const spec: AppDeployment["spec"] = {
  packageRef: { name: "shop", version: "1.0.0" },
  targets: { clusters: ["a"] },
};

describe("revisionHash", () => {
  it("changes with any edit except suspend", () => {
    const h = revisionHash(spec);
    assert.match(h, /^[0-9a-f]{16}$/);
    assert.equal(revisionHash({ ...spec, suspend: true }), h);
    assert.notEqual(revisionHash({ ...spec, packageRef: { name: "shop", version: "1.0.1" } }), h);
    assert.notEqual(revisionHash({ ...spec, applications: [{ name: "web", values: { a: 1 } }] }), h);
    assert.equal(
      revisionHash({ targets: spec.targets, packageRef: spec.packageRef }),
      h,
      "key order does not matter",
    );
  });
});

describe("guardDrop", () => {
  const now = new Date("2026-06-01T12:00:00Z");
  it("never removes every target on an empty read", () => {
    const d = guardDrop({ previous: 40, current: 0, now, holdMs: 600_000 });
    assert.equal(d.action, "refuse");
  });
  it("holds a drop of more than half until it persists", () => {
    const first = guardDrop({ previous: 100, current: 30, now, holdMs: 600_000 });
    if (first.action !== "hold") assert.fail(`expected a hold, got ${first.action}`);
    assert.match(first.message, /dropped from 100 to 30/);
    const since = first.since;
    const later = new Date(now.getTime() + 601_000);
    assert.equal(
      guardDrop({ previous: 100, current: 30, heldSince: since, now: later, holdMs: 600_000 }).action,
      "deliver",
    );
    assert.equal(
      guardDrop({ previous: 100, current: 60, now, holdMs: 600_000 }).action,
      "deliver",
      "small drops pass",
    );
    assert.equal(
      guardDrop({ previous: 0, current: 0, now, holdMs: 600_000 }).action,
      "deliver",
      "nothing matched before",
    );
  });
});
