// The interconnect operator as its own process, killed with SIGKILL at random points
// while it links a mesh of three edge clusters and while a member leaves and joins again:
// afterwards every link is up with exactly one AccessGrant, one AccessToken and one Link,
// and each token was redeemed once — no grant or token was ever made twice.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { Network } from "../../operators/api/network.generated.ts";
import { NetworkResource } from "../../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import { namespacesResource } from "../../operators/runtime/core.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { FleetDriver } from "../drivers/fleet.ts";
import { installFleetCRDs } from "../drivers/fleet-crds.ts";
import { AccessGrantResource, AccessTokenResource, LinkResource } from "../drivers/skupper.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { installOutpost } from "../support/install.ts";
import { edgeNames, startEdges, type Edges } from "../support/interconnect.ts";
import { OperatorProcess } from "../support/operator.ts";

const controlPlane = useControlPlane({ edges: 3 });
const ns = "mesh";
const siteNs = "outpost-network-mesh";
let client: KubeClient;
let fleet: FleetDriver;
let edges: Edges;
let operator: OperatorProcess;

const names = (items: KubeObject[]): string[] => items.map((i) => i.metadata.name ?? "").sort();

async function waitReady(what: string, links: number): Promise<Network> {
  return eventually(
    what,
    async () => {
      const n = await client.get<Network>(NetworkResource, "mesh", ns);
      return n?.status?.observedGeneration === n?.metadata.generation &&
        getCondition(n?.status?.conditions, "Ready")?.status === "True" &&
        n?.status?.summary?.linksConnected === links
        ? n
        : undefined;
    },
    120_000,
  );
}

describe("interconnect operator reliability", () => {
  before(async () => {
    const cp = controlPlane();
    installOutpost(cp);
    await installFleetCRDs(cp.management.kubeconfig);
    client = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
    await client.create(namespacesResource, { metadata: { name: ns } });
    fleet = new FleetDriver(client, { namespace: ns });
    for (const n of edgeNames) await fleet.registerCluster(n, { mesh: "yes" });
    fleet.start(300);
    edges = await startEdges(cp, client, ns);
    operator = await OperatorProcess.create(cp.management.kubeconfig, "interconnect", [
      "--edge-poll=300ms",
      "--edge-resync=2s",
    ]);
    operator.start();
  });
  after(async () => {
    await operator.kill();
    await fleet.stop();
    await edges.stop();
    await client.close();
  });

  it("links a mesh exactly once despite SIGKILL at random points", async () => {
    const state = { linking: true };
    const killer = operator.killRepeatedly((kills) => state.linking || kills < 3, 100, 900);
    await client.create(NetworkResource, {
      metadata: { name: "mesh", namespace: ns },
      spec: { members: { clusterSelector: { matchLabels: { mesh: "yes" } } }, topology: { type: "mesh" } },
    });
    await sleep(4_000);
    // A member leaves and comes back while the kills go on.
    await fleet.setLabels("store-2", { mesh: "no" });
    await sleep(3_000);
    await fleet.setLabels("store-2", { mesh: "yes" });
    await sleep(3_000);
    state.linking = false;
    const kills = await killer;
    console.log(`# interconnect operator killed ${kills} times`);

    const n = await waitReady("the mesh linked after the last restart", 3);
    assert.deepEqual(n.status?.provisioned, ["central", "store-1", "store-2"]);

    // Mesh by name: store-1 → central, store-2 → central, store-2 → store-1.
    const expected = {
      central: { grants: ["outpost-from-store-1", "outpost-from-store-2"], tokens: [] as string[] },
      "store-1": { grants: ["outpost-from-store-2"], tokens: ["outpost-to-central"] },
      "store-2": { grants: [] as string[], tokens: ["outpost-to-central", "outpost-to-store-1"] },
    };
    for (const e of edgeNames) {
      const c = edges.clients[e];
      assert.deepEqual(
        names((await c.list(AccessGrantResource, { namespace: siteNs })).items),
        expected[e].grants,
        e,
      );
      assert.deepEqual(
        names((await c.list(AccessTokenResource, { namespace: siteNs })).items),
        expected[e].tokens,
        e,
      );
      assert.deepEqual(
        names((await c.list(LinkResource, { namespace: siteNs })).items),
        expected[e].tokens,
        e,
      );
    }
    // Every redemption that succeeded made a link that is still there: none was redone,
    // except store-2's, which left and joined (its namespace was removed in between).
    const ok = edges.skupper.redemptions.filter((r) => r.status === 200);
    const per = new Map<string, number>();
    for (const r of ok) per.set(`${r.cluster}/${r.token}`, (per.get(`${r.cluster}/${r.token}`) ?? 0) + 1);
    assert.equal(per.get("store-1/outpost-to-central"), 1);
    for (const [key, count] of per) assert.ok(count <= 2, `${key} redeemed ${count} times`);
    // No token met a grant that was gone or used — except store-2's while it was leaving
    // (its grants went before its namespace, and the tokens in it, did).
    const failed = edges.skupper.redemptions.filter((r) => r.status !== 200 && r.cluster !== "store-2");
    assert.deepEqual(
      failed.map((r) => `${r.cluster}/${r.token}: ${r.status}`),
      [],
    );
    assert.deepEqual(edges.skupper.errors, []);
  });
});
