// Work-queue semantics (client-go util/workqueue).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RateLimiter, WorkQueue } from "./workqueue.ts";

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("WorkQueue", () => {
  it("holds a waiting key once however often it is added", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("b");
    q.add("a");
    assert.equal(q.length, 2);
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), "b");
    assert.equal(q.length, 0);
  });

  it("never hands a key to two workers at once and re-queues it after done", async () => {
    const q = new WorkQueue();
    q.add("a");
    const first = await q.get();
    assert.equal(first, "a");
    q.add("a"); // added while processing
    assert.equal(q.length, 0, "not handed out while processing");
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await tick();
    assert.equal(second, undefined, "a second worker waits");
    q.done("a");
    await tick();
    assert.equal(second, "a", "processed again after done");
    q.done("a");
    assert.equal(q.length, 0);
  });

  it("hands a key out once when it is added many times during processing", async () => {
    const q = new WorkQueue();
    q.add("a");
    await q.get();
    q.add("a");
    q.add("a");
    q.done("a");
    assert.equal(q.length, 1);
    assert.equal(await q.get(), "a");
    q.done("a");
    assert.equal(q.length, 0);
  });

  it("lets the earliest of several schedules win", async () => {
    const q = new WorkQueue();
    q.addAfter("a", 10_000);
    q.addAfter("a", 20);
    q.addAfter("a", 5_000);
    const started = Date.now();
    assert.equal(await q.get(), "a");
    assert.ok(Date.now() - started < 2_000);
    q.done("a");
    await q.shutDown();
  });

  it("wakes waiting workers with undefined on shutdown and waits for in-flight keys", async () => {
    const q = new WorkQueue();
    q.add("busy");
    assert.equal(await q.get(), "busy");
    const waiting = q.get();
    let drained = false;
    const shutdown = q.shutDown().then(() => (drained = true));
    assert.equal(await waiting, undefined);
    await tick();
    assert.equal(drained, false, "in-flight key still processing");
    q.done("busy");
    await shutdown;
    assert.equal(drained, true);
    q.add("late");
    assert.equal(await q.get(), undefined, "no new work after shutdown");
  });

  it("reports depth and queue latency", async () => {
    const depths: number[] = [];
    const latencies: number[] = [];
    const q = new WorkQueue({ metrics: { depth: (d) => depths.push(d), latency: (s) => latencies.push(s) } });
    q.add("a");
    q.add("b");
    await q.get();
    assert.deepEqual(depths, [1, 2, 1]);
    assert.equal(latencies.length, 1);
    assert.ok((latencies[0] ?? -1) >= 0);
  });
});

describe("RateLimiter", () => {
  it("doubles the per-key delay on each failure up to the maximum, and forget resets it", () => {
    const limiter = new RateLimiter({ baseDelayMs: 5, maxDelayMs: 100, jitter: 0, qps: 1e9, burst: 1e9 });
    assert.deepEqual(
      Array.from({ length: 7 }, () => limiter.when("k")),
      [5, 10, 20, 40, 80, 100, 100],
    );
    assert.equal(limiter.retries("k"), 7);
    assert.equal(limiter.when("other"), 5, "keys back off independently");
    limiter.forget("k");
    assert.equal(limiter.retries("k"), 0);
    assert.equal(limiter.when("k"), 5);
  });

  it("adds at most the jitter fraction", () => {
    const limiter = new RateLimiter({ baseDelayMs: 100, jitter: 0.5, random: () => 1, qps: 1e9, burst: 1e9 });
    assert.equal(limiter.when("k"), 150);
  });

  it("limits the overall retry rate with a token bucket", () => {
    let now = 0;
    const limiter = new RateLimiter({ baseDelayMs: 1, jitter: 0, qps: 10, burst: 2 }, () => now);
    assert.equal(limiter.when("a"), 1);
    assert.equal(limiter.when("b"), 1);
    assert.equal(limiter.when("c"), 100, "third within the burst waits for a token");
    assert.equal(limiter.when("d"), 200);
    now = 1000; // ten tokens later (capped at the burst)
    assert.equal(limiter.when("e"), 1);
  });
});
