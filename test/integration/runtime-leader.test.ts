// Leader election between two operator processes: only the leader reconciles; when the
// leader is killed with SIGKILL the other takes over within lease duration + retry
// period; a leader stopped with SIGTERM releases the lease so the other takes over at once.
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
});
