// Leader election between two operator processes: only the leader reconciles; when the
// leader is killed with SIGKILL the other takes over within lease duration + retry
// period; a leader stopped with SIGTERM releases the lease so the other takes over at once;
// a leader cut off its API server stops at its renew deadline, before anyone can take over.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { leasesResource } from "../../operators/runtime/leader.ts";
import { Manager } from "../../operators/runtime/manager.ts";
import { kstatus } from "../../operators/runtime/conditions.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import { registerSample, sampleCRD, samples, type Sample } from "../fixtures/sample-operator.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { Partition } from "../support/partition.ts";

const fixture = fileURLToPath(new URL("../fixtures/sample-operator.ts", import.meta.url));
const leaseDurationMs = 4000;
const retryPeriodMs = 500;

interface Operator {
  child: ChildProcess;
  identity?: string;
  leaderAt?: number;
  logs: string[];
}

const controlPlane = useControlPlane();
const operators: Operator[] = [];
let client: KubeClient;

function startOperator(): Operator {
  const op: Operator = {
    child: spawn(process.execPath, ["--import", "tsx", fixture], {
      env: {
        ...process.env,
        KUBECONFIG: controlPlane().management.kubeconfig,
        LEASE_DURATION_MS: String(leaseDurationMs),
        RENEW_DEADLINE_MS: "3000",
        RETRY_PERIOD_MS: String(retryPeriodMs),
      },
      stdio: ["ignore", "pipe", "inherit"],
    }),
    logs: [],
  };
  let buffered = "";
  op.child.stdout?.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      op.logs.push(line);
      const entry = JSON.parse(line) as { msg?: string; identity?: string };
      if (entry.identity) op.identity = entry.identity;
      if (entry.msg === "became leader") op.leaderAt = Date.now();
    }
  });
  operators.push(op);
  return op;
}

async function reconciledBy(name: string): Promise<string> {
  await client.create<Sample>(samples, {
    metadata: { name, namespace: "default" },
    spec: { data: { n: name } },
  });
  const s = await eventually(`${name} to be reconciled`, async () => {
    const obj = await client.get<Sample>(samples, name, "default");
    return obj && kstatus(obj) === "Current" ? obj : undefined;
  });
  return s.status?.reconciledBy ?? "";
}

describe("leader election", () => {
  before(async () => {
    await installCRDs(controlPlane().management, [sampleCRD]);
    client = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
  });

  after(async () => {
    for (const op of operators) op.child.kill("SIGKILL");
    await client.close();
  });

  it("lets only the leader reconcile and hands over within lease duration + retry period", async () => {
    const a = startOperator();
    await eventually("the first operator to lead", () => Promise.resolve(a.leaderAt));
    const b = startOperator();
    await eventually("the second operator to run", () => Promise.resolve(b.identity));
    assert.equal(b.leaderAt, undefined, "the second one stands by");

    assert.equal(await reconciledBy("one"), a.identity);
    assert.equal(b.leaderAt, undefined);

    const killedAt = Date.now();
    a.child.kill("SIGKILL");
    const tookOver = await eventually("the standby to take over", () => Promise.resolve(b.leaderAt), 30_000);
    const handover = tookOver - killedAt;
    // Jittered retries add up to 20 %; one request round trip on top.
    assert.ok(
      handover <= leaseDurationMs + retryPeriodMs * 1.2 + 1000,
      `took over after ${handover} ms, bound ${leaseDurationMs} + ${retryPeriodMs} ms`,
    );
    assert.equal(await reconciledBy("two"), b.identity);
  });

  it("releases the lease on SIGTERM so the standby takes over at once", async () => {
    const b = operators[1];
    assert.ok(b?.leaderAt);
    const c = startOperator();
    await eventually("a third operator to run", () => Promise.resolve(c.identity));
    const stoppedAt = Date.now();
    b.child.kill("SIGTERM");
    const exit = await new Promise<number | null>((resolve) => b.child.once("exit", resolve));
    assert.equal(exit, 0, "graceful shutdown exits 0");
    assert.ok(b.logs.some((l) => l.includes('"msg":"stopped"')));
    const tookOver = await eventually("the standby to take over", () => Promise.resolve(c.leaderAt), 30_000);
    assert.ok(tookOver - stoppedAt < leaseDurationMs, `took over after ${tookOver - stoppedAt} ms`);
    assert.equal(await reconciledBy("three"), c.identity);
  });

  it("stops reconciling at once when the lease is taken away", async () => {
    for (const op of operators) op.child.kill("SIGKILL");
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    let lost = false;
    const manager = new Manager({
      name: "sample-operator",
      kubeConfig,
      leaderElection: {
        namespace: "default",
        name: "stolen",
        leaseDurationMs: 3000,
        renewDeadlineMs: 1500,
        retryPeriodMs: 300,
      },
      onLeaseLost: () => (lost = true),
    });
    manager.logger.level = "silent";
    const reconciler = registerSample(manager);
    await manager.start();
    await eventually("the manager to lead", () => Promise.resolve(manager.isLeader ? true : undefined));
    // Another holder writes the lease as if it had won it.
    const lease = await client.get<KubeObject & { spec: Record<string, unknown> }>(
      leasesResource,
      "stolen",
      "default",
    );
    assert.ok(lease);
    const stealUntil = Date.now() + 5000;
    const steal = async (): Promise<void> => {
      while (!lost && Date.now() < stealUntil) {
        const current = await client.get<KubeObject & { spec: Record<string, unknown> }>(
          leasesResource,
          "stolen",
          "default",
        );
        if (current) {
          await client
            .replace(leasesResource, {
              ...current,
              spec: {
                ...current.spec,
                holderIdentity: "intruder",
                renewTime: new Date().toISOString().replace("Z", "000Z"),
              },
            })
            .catch(() => undefined);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await steal();
    assert.ok(lost, "the lease loss was reported");
    assert.equal(manager.isLeader, false);
    const before = reconciler.reconciles;
    await client.create<Sample>(samples, {
      metadata: { name: "after-loss", namespace: "default" },
      spec: {},
    });
    // The witness: the manager's informer has the object, so its event reached the
    // controller (handlers run as the cache is updated) and could only have been dropped.
    await eventually("the informer to see the object", () =>
      Promise.resolve(manager.informer(samples).cache.get("default/after-loss") ? true : undefined),
    );
    assert.equal(reconciler.reconciles, before, "no reconcile after the lease was lost");
    await manager.stop();
  });

  it("stops a leader whose API calls hang at its renew deadline, before the standby takes over", async (t) => {
    const direct = kubeConfigFromFile(controlPlane().management.kubeconfig);
    const server = new URL(direct.getCurrentCluster()?.server ?? "");
    const partition = await Partition.start({ host: server.hostname, port: Number(server.port) });
    // The leader reaches the API server through the partition only.
    const cutOff = kubeConfigFromFile(controlPlane().management.kubeconfig);
    cutOff.loadFromOptions({
      clusters: cutOff.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${partition.port}` })),
      users: cutOff.users,
      contexts: cutOff.contexts,
      currentContext: cutOff.currentContext,
    });
    const election = { namespace: "default", name: "frozen", leaseDurationMs: 4000, renewDeadlineMs: 2500 };
    let lostAt: number | undefined;
    const a = new Manager({
      name: "sample-operator",
      kubeConfig: cutOff,
      leaderElection: { ...election, retryPeriodMs: 300 },
      onLeaseLost: () => (lostAt = Date.now()),
    });
    const b = new Manager({
      name: "sample-operator",
      kubeConfig: direct,
      leaderElection: { ...election, retryPeriodMs: 300 },
      onLeaseLost: () => undefined,
    });
    a.logger.level = "silent";
    b.logger.level = "silent";
    const reconcilerA = registerSample(a);
    registerSample(b);
    try {
      await a.start();
      await eventually("the first manager to lead", () => Promise.resolve(a.isLeader ? true : undefined));
      await b.start();
      assert.equal(await reconciledBy("before-freeze"), a.identity, "the leader works through the partition");
      assert.equal(b.isLeader, false);

      const frozenAt = Date.now();
      partition.freeze();
      const tookOverAt = await eventually(
        "the standby to take over",
        () => Promise.resolve(b.isLeader ? Date.now() : undefined),
        30_000,
      );
      // The last renewal of the leader began at most a retry period before the freeze,
      // so its deadline passed at most renewDeadline after it; the standby waited a
      // whole lease duration from its last sight of that renewal.
      assert.ok(lostAt !== undefined, "the cut-off leader noticed before the standby took over");
      assert.ok(
        lostAt <= tookOverAt,
        `lost at +${lostAt - frozenAt} ms, taken over at +${tookOverAt - frozenAt} ms`,
      );
      assert.ok(
        lostAt - frozenAt <= election.renewDeadlineMs + 500,
        `the leader stopped ${lostAt - frozenAt} ms after the freeze, renew deadline ${election.renewDeadlineMs} ms`,
      );
      assert.equal(a.isLeader, false);
      t.diagnostic(
        `after the freeze: leader stopped at +${lostAt - frozenAt} ms, standby led at +${tookOverAt - frozenAt} ms`,
      );
      const reconcilesAtLoss = reconcilerA.reconciles;

      // Heal: the deposed leader reaches the API server again, and must write nothing.
      partition.heal();
      const writesByA: string[] = [];
      const watching = new AbortController();
      const list = await client.list<Sample>(samples, { namespace: "default" });
      const watch = client.watch<Sample>(
        samples,
        { namespace: "default", resourceVersion: list.metadata.resourceVersion, signal: watching.signal },
        (event) => {
          if (event.object.status?.reconciledBy === a.identity)
            writesByA.push(event.object.metadata.name ?? "");
        },
      );
      assert.equal(await reconciledBy("after-heal"), b.identity);
      // The witness: the deposed manager's informer, reconnected after the heal, has the
      // new object, so it was offered the event and did not act on it.
      await eventually(
        "the deposed manager's informer to see the new object",
        () => Promise.resolve(a.informer(samples).cache.get("default/after-heal") ? true : undefined),
        30_000,
      );
      assert.equal(reconcilerA.reconciles, reconcilesAtLoss, "no reconcile after the lease was lost");
      assert.deepEqual(writesByA, [], "no write by the deposed leader reached the API server");
      t.diagnostic(`writes by the deposed leader after the heal: ${writesByA.length}`);
      watching.abort();
      await watch.catch(() => undefined);
    } finally {
      await a.stop();
      await b.stop();
      await partition.close();
    }
  });
});
