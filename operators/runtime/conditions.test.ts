// kstatus conditions: transitions, trimming, summaries and the computed status.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kstatus, maxMessageLength, setCondition, summarize, type ConditionedStatus } from "./conditions.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const t1 = new Date("2026-01-01T01:00:00Z");

describe("conditions", () => {
  it("changes lastTransitionTime only when the status changes", () => {
    let c = setCondition([], { type: "Ready", status: "False", reason: "A", message: "a" }, t0);
    assert.equal(c[0]?.lastTransitionTime, "2026-01-01T00:00:00Z");
    c = setCondition(c, { type: "Ready", status: "False", reason: "B", message: "b" }, t1);
    assert.equal(c[0]?.lastTransitionTime, "2026-01-01T00:00:00Z", "same status keeps the time");
    assert.equal(c[0].reason, "B");
    c = setCondition(c, { type: "Ready", status: "True", reason: "C", message: "c" }, t1);
    assert.equal(c[0]?.lastTransitionTime, "2026-01-01T01:00:00Z");
    assert.equal(c.length, 1);
  });

  it("trims messages to one bounded paragraph", () => {
    const c = setCondition([], {
      type: "Ready",
      status: "False",
      reason: "X",
      message: `a\n  b ${"x".repeat(5000)}`,
    });
    assert.equal(c[0]?.message.length, maxMessageLength);
    assert.ok(c[0].message.startsWith("a b x"));
    assert.ok(c[0].message.endsWith("…"));
  });
});

describe("summarize and kstatus", () => {
  const obj = (generation: number, status: ConditionedStatus) => ({ metadata: { generation }, status });

  it("is InProgress until the generation is observed, then Current when ready", () => {
    assert.equal(kstatus(obj(2, {})), "InProgress");
    const ready = summarize({}, 1, { kind: "ready", message: "ok" });
    assert.equal(kstatus(obj(2, ready)), "InProgress", "old generation");
    assert.equal(kstatus(obj(1, ready)), "Current");
    assert.equal(ready.conditions?.[0]?.observedGeneration, 1);
  });

  it("reports progress, retryable failure and stalls", () => {
    const progressing = summarize({}, 1, { kind: "progressing", reason: "Working", message: "m" });
    assert.equal(kstatus(obj(1, progressing)), "InProgress");
    const failed = summarize(progressing, 1, { kind: "failed", reason: "Unreachable", message: "m" });
    assert.equal(kstatus(obj(1, failed)), "InProgress");
    const stalled = summarize(failed, 1, { kind: "stalled", reason: "InvalidSpec", message: "fix x" });
    assert.equal(kstatus(obj(1, stalled)), "Failed");
    assert.deepEqual(stalled.conditions?.map((c) => `${c.type}=${c.status}`).sort(), [
      "Ready=False",
      "Stalled=True",
    ]);
    const ready = summarize(stalled, 2, { kind: "ready", message: "ok" });
    assert.deepEqual(
      ready.conditions?.map((c) => `${c.type}=${c.status}`),
      ["Ready=True"],
    );
  });

  it("is Terminating while deleting", () => {
    assert.equal(kstatus({ metadata: { deletionTimestamp: "2026-01-01T00:00:00Z" } }), "Terminating");
  });
});
