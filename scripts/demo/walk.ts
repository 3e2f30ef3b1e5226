// The demo's walk-through, once the example deployment runs on the local fleet: a change
// (fewer web replicas) that waits for approval and then replaces pods on the stores, a
// rollback that brings the earlier revision's pods back, and a ResourceAction that
// restarts the web at store-1 (new pods, new uids) — each step read back from the edges.
import { approve, rollback } from "../../cli/deploy.ts";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import type { ResourceAction } from "../../operators/api/resource-action.generated.ts";
import { AppDeploymentResource, ResourceActionResource } from "../../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { podsResource } from "../../operators/runtime/core.ts";

export interface Walk {
  client: KubeClient;
  ns: string;
  name: string;
  approver: string;
  /** Admin clients of the edges, by cluster name. */
  edges: Record<string, KubeClient>;
  progress: (line: string) => void;
  timeoutMs: number;
}

interface Pod {
  name: string;
  uid: string;
  ready: boolean;
}

/** The example's web application, as the chart installs it. */
const web = { application: "storefront-web", namespace: "storefront", release: "storefront-web" };
const store = "store-1";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function podsOf(edge: KubeClient): Promise<Pod[]> {
  const list = await edge.list<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(
    podsResource,
    { namespace: web.namespace, labelSelector: `app.kubernetes.io/instance=${web.release}` },
  );
  return list.items
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => ({
      name: p.metadata.name ?? "",
      uid: p.metadata.uid ?? "",
      ready: p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
    }));
}

const describePods = (pods: Pod[]): string =>
  pods.map((p) => `${p.name} (uid ${p.uid.slice(0, 8)})`).join(", ");

export async function walkThrough(w: Walk): Promise<string[]> {
  const deadline = Date.now() + w.timeoutMs;
  const edge = w.edges[store];
  if (!edge) throw new Error(`no client for ${store}`);
  const lines: string[] = [];
  const say = (line: string): void => {
    w.progress(line);
    lines.push(line);
  };
  const until = async <T>(what: string, check: () => Promise<T | undefined>): Promise<T> => {
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(300);
    }
  };
  const dep = async (): Promise<AppDeployment> => {
    const d = await w.client.get<AppDeployment>(AppDeploymentResource, w.name, w.ns);
    if (!d) throw new Error(`AppDeployment ${w.name} is gone`);
    return d;
  };
  const runningAfter = (revision: number): Promise<AppDeployment> =>
    until(`${w.name} running a revision after ${revision}`, async () => {
      const d = await dep();
      return d.status?.observedGeneration === d.metadata.generation &&
        d.status?.phase === "Running" &&
        (d.status.revision ?? 0) > revision
        ? d
        : undefined;
    });
  const readyPods = (count: number, not: Set<string> = new Set()): Promise<Pod[]> =>
    until(`${count} Ready web pods at ${store}`, async () => {
      const pods = await podsOf(edge);
      return pods.length === count && pods.every((p) => p.ready && !not.has(p.uid)) ? pods : undefined;
    });

  // 1. A change: fewer replicas of the web. It waits for an approval, then runs.
  const before = await dep();
  const revision = before.status?.revision ?? 0;
  const was = await podsOf(edge);
  say(`walk-through 1/3 — a change: ${store} runs ${was.length} web pods: ${describePods(was)}`);
  const parameters = (before.spec.parameters ?? []).map((p) =>
    p.application === web.application && p.name === "replicaCount" ? { ...p, value: "2" } : p,
  );
  await w.client.mergePatch(AppDeploymentResource, w.name, w.ns, { spec: { parameters } });
  // It waits for an approval — unless an Approval of this very spec exists (an earlier run).
  const waiting = await until("the change to await approval or run", async () => {
    const d = await dep();
    if (d.status?.observedGeneration !== d.metadata.generation) return undefined;
    if (d.status?.phase === "AwaitingApproval") return true;
    return (d.status?.revision ?? 0) > revision ? false : undefined;
  });
  if (waiting) {
    say(`  spec changed (replicaCount 2): AwaitingApproval; approving as ${w.approver}`);
    const asApprover = new KubeClient(w.client.kubeConfig, { impersonate: { user: w.approver } });
    try {
      await approve(asApprover, w.ns, w.name, "the demo's walk-through");
    } finally {
      await asApprover.close();
    }
  } else {
    say("  spec changed (replicaCount 2): an Approval of this spec exists already (an earlier run)");
  }
  const changed = await runningAfter(revision);
  const fewer = await readyPods(2);
  say(
    `  revision ${changed.status?.revision ?? "?"} (commit ${changed.status?.commit?.slice(0, 12) ?? "?"}) runs: ${store} has ${describePods(fewer)}`,
  );

  // 2. A rollback to the revision before: approved already, it runs at once.
  const back = await rollback(w.client, w.ns, w.name);
  const rolled = await runningAfter(changed.status?.revision ?? 0);
  const restored = await readyPods(was.length);
  say(
    `walk-through 2/3 — rollback to the spec of revision ${back.revision}: revision ${rolled.status?.revision ?? "?"} runs, ${store} has ${restored.length} web pods again: ${describePods(restored)}`,
  );

  // 3. A ResourceAction: restart the web at store-1; its pods are replaced.
  const action: ResourceAction = {
    metadata: { name: `restart-web-${Date.now().toString(36)}`, namespace: w.ns },
    spec: {
      deploymentRef: { name: w.name },
      cluster: store,
      target: { kind: "Deployment", namespace: web.namespace, name: `${web.release}-nginx` },
      action: "restart",
    },
  };
  await w.client.create(ResourceActionResource, action);
  const done = await until("the restart", async () => {
    const a = await w.client.get<ResourceAction>(ResourceActionResource, action.metadata.name ?? "", w.ns);
    return a?.status?.phase === "Succeeded" || a?.status?.phase === "Failed" ? a : undefined;
  });
  if (done.status?.phase === "Failed") throw new Error(`ResourceAction failed: ${done.status.message ?? ""}`);
  const fresh = await readyPods(restored.length, new Set(restored.map((p) => p.uid)));
  // Argo CD sees the rollout through (Progressing, then Healthy): Running again.
  await runningAfter((rolled.status?.revision ?? 1) - 1);
  say(
    `walk-through 3/3 — ResourceAction ${action.metadata.name ?? ""} restarted Deployment ${web.release}-nginx at ${store}: new pods ${describePods(fresh)}`,
  );
  return lines;
}
