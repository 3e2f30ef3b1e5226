// Networks and NetworkServices end to end: a management API server and three edge API
// servers (store-1, store-2, central) with Skupper's CRDs, the Skupper test driver playing
// Skupper's controller on the edges, the Fleet test driver, and the deploy and
// interconnect operators. Hub-and-spoke and mesh, services bound across clusters,
// AppDeployment exports, a member leaving and joining, an edge API server stopped and
// started again, and a Network deleted while an edge is down.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NetworkService } from "../../operators/api/network-service.generated.ts";
import type { Network } from "../../operators/api/network.generated.ts";
import {
  AppDeploymentResource,
  NetworkResource,
  NetworkServiceResource,
} from "../../operators/api/resources.generated.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import { registerInterconnect } from "../../operators/interconnect/index.ts";
import { exportedByLabel } from "../../operators/interconnect/exports.ts";
import type { KubeClient, KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import { namespacesResource, podsResource, servicesResource } from "../../operators/runtime/core.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import {
  AccessGrantResource,
  AccessTokenResource,
  AttachedConnectorBindingResource,
  AttachedConnectorResource,
  LinkResource,
  ListenerResource,
  SiteResource,
  type AccessGrant,
  type AccessToken,
  type Link,
  type Site,
} from "../drivers/skupper.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import {
  shopDeployment,
  shopExporting,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";
import { edgeNames, startEdges, type EdgeName, type Edges } from "../support/interconnect.ts";
import { startOperator } from "../support/operator.ts";

const controlPlane = useControlPlane({ edges: 3 });
const ns = "retail";
const siteNs = "outpost-network-retail";
let fx: DeployFixture;
let edges: Edges;
let client: KubeClient;
let operators: Manager[] = [];

const hubAndSpoke = {
  type: "hub-and-spoke" as const,
  hubSelector: { matchLabels: { tier: "central" } },
};

function network(spec: Partial<Network["spec"]> = {}): Network {
  return {
    metadata: { name: "retail", namespace: ns },
    spec: {
      members: {
        clusterSelector: {
          matchExpressions: [{ key: "tier", operator: "In", values: ["store", "central"] }],
        },
      },
      topology: hubAndSpoke,
      ...spec,
    },
  };
}

function waitNetwork(what: string, test: (n: Network) => boolean, timeoutMs = 60_000): Promise<Network> {
  return eventually(
    `network retail: ${what}`,
    async () => {
      const n = await client.get<Network>(NetworkResource, "retail", ns);
      return n && n.status?.observedGeneration === n.metadata.generation && test(n) ? n : undefined;
    },
    timeoutMs,
  );
}

const ready = (o: { status?: { conditions?: { type: string; status: string }[] } } | undefined): boolean =>
  getCondition(o?.status?.conditions as never, "Ready")?.status === "True";

const names = (items: KubeObject[]): string[] => items.map((i) => i.metadata.name ?? "").sort();

async function onEdge<T extends KubeObject>(
  edge: EdgeName,
  r: Parameters<KubeClient["list"]>[0],
  namespace = siteNs,
): Promise<T[]> {
  return (await edges.clients[edge].list<T>(r, { namespace })).items;
}

/** Redemptions the driver answered with 200, per token cluster/name. */
function successfulRedemptions(): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of edges.skupper.redemptions) {
    if (r.status !== 200) continue;
    const key = `${r.cluster}/${r.token}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

describe("interconnect: Networks and NetworkServices on three edge clusters", () => {
  before(async () => {
    const cp = controlPlane();
    fx = await startDeployFixture(cp, ns);
    client = fx.client;
    edges = await startEdges(cp, client, ns);
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    operators = [
      await startOperator("outpost-deploy", kubeConfig, (m) => {
        registerDeploy(m);
      }),
      await startOperator("outpost-interconnect", kubeConfig, (m) => {
        registerInterconnect(m, { pendingPollMs: 400, readyPollMs: 1_500 });
      }),
    ];
  });

  after(async () => {
    for (const m of operators) await m.stop();
    await edges.stop();
    await fx.stop();
  });

  it("hub-and-spoke: a site on every member, each store linked to the hub", async () => {
    await client.create(NetworkResource, network());
    const n = await waitNetwork("ready", ready);
    assert.deepEqual(n.status?.summary, {
      members: 3,
      sitesReady: 3,
      links: 2,
      linksConnected: 2,
      linksPending: 0,
      linksFailed: 0,
      unreachable: 0,
      servicesBound: 0,
    });
    assert.deepEqual(n.status.provisioned, ["central", "store-1", "store-2"]);
    assert.match(getCondition(n.status.conditions, "Ready")?.message ?? "", /3 members, all 2 links up/);

    // Only the hub accepts links; spokes initiate.
    const central = await onEdge<Site>("central", SiteResource);
    assert.deepEqual(names(central), ["central"]);
    assert.equal(central[0]?.spec?.linkAccess, "default");
    for (const store of ["store-1", "store-2"] as const) {
      const [site] = await onEdge<Site>(store, SiteResource);
      assert.equal(site?.spec?.linkAccess, "none");
      const links = await onEdge<Link>(store, LinkResource);
      assert.deepEqual(names(links), ["outpost-to-central"]);
      assert.equal(links[0]?.status?.remoteSiteName, "central");
      assert.deepEqual(names(await onEdge<AccessToken>(store, AccessTokenResource)), ["outpost-to-central"]);
    }
    assert.deepEqual(names(await onEdge<AccessGrant>("central", AccessGrantResource)), [
      "outpost-from-store-1",
      "outpost-from-store-2",
    ]);
    assert.deepEqual([...successfulRedemptions()].sort(), [
      ["store-1/outpost-to-central", 1],
      ["store-2/outpost-to-central", 1],
    ]);
    assert.deepEqual(edges.skupper.errors, []);
  });

  it("a NetworkService binds the database on the hub to listeners on the stores", async () => {
    // The shop's db runs on the central site, web on the stores.
    await client.create(
      AppDeploymentResource,
      shopDeployment(ns, "shop", {
        applications: [{ name: "db", targets: { clusterSelector: { matchLabels: { tier: "central" } } } }],
      }),
    );
    await waitForDeployment(client, ns, "shop", "delivered", (d) => (d.status?.summary?.targets ?? 0) === 3);
    // What Helm would install on central: the db Service and a pod behind it.
    const central = edges.clients.central;
    await central.create(namespacesResource, { metadata: { name: "shop" } });
    await central.create(servicesResource, {
      metadata: { name: "db", namespace: "shop" },
      spec: { selector: { app: "db" }, ports: [{ name: "pg", port: 5432, targetPort: "pg" }] },
    } as KubeObject);
    await central.create(podsResource, {
      metadata: { name: "db-0", namespace: "shop", labels: { app: "db" } },
      spec: {
        containers: [{ name: "pg", image: "postgres", ports: [{ name: "pg", containerPort: 15432 }] }],
      },
    } as KubeObject);
    await central.mergePatch(
      podsResource,
      "db-0",
      "shop",
      {
        status: {
          phase: "Running",
          podIP: "10.1.0.7",
          podIPs: [{ ip: "10.1.0.7" }],
          conditions: [{ type: "Ready", status: "True" }],
        },
      },
      { subresource: "status" },
    );

    await client.create(NetworkServiceResource, {
      metadata: { name: "db", namespace: ns },
      spec: {
        networkRef: { name: "retail" },
        deploymentRef: { name: "shop" },
        application: "db",
        service: "db",
        port: 5432,
        host: "shop-db",
      },
    });
    const svc = await eventually(
      "NetworkService db bound",
      async () => {
        const s = await client.get<NetworkService>(NetworkServiceResource, "db", ns);
        return ready(s) ? s : undefined;
      },
      60_000,
    );
    assert.equal(svc.status?.routingKey, "retail-db");
    assert.equal(svc.status.providers, 1);
    assert.equal(svc.status.consumers, 2);
    assert.equal(svc.status.connectors, 1);
    assert.equal(svc.status.listeners, 2);

    // The db lives in namespace shop, the site in its own: an AttachedConnector there,
    // bound in the site namespace; the pods' port from the Service's named targetPort.
    const [attached] = await onEdge<KubeObject & { spec: Record<string, unknown> }>(
      "central",
      AttachedConnectorResource,
      "shop",
    );
    assert.deepEqual(attached?.spec, { siteNamespace: siteNs, selector: "app=db", port: 15432 });
    const [binding] = await onEdge<KubeObject & { spec: Record<string, unknown> }>(
      "central",
      AttachedConnectorBindingResource,
    );
    assert.deepEqual(binding?.spec, { connectorNamespace: "shop", routingKey: "retail-db" });
    for (const store of ["store-1", "store-2"] as const) {
      const [listener] = await onEdge<KubeObject & { spec: Record<string, unknown> }>(
        store,
        ListenerResource,
      );
      assert.deepEqual(listener?.spec, { routingKey: "retail-db", host: "shop-db", port: 5432 });
      // Skupper made the Service the consumers connect to.
      assert.ok(await edges.clients[store].get(servicesResource, "shop-db", siteNs));
    }
    assert.deepEqual(await onEdge("central", ListenerResource), []);
    await waitNetwork("counts the bound services", (n) => n.status?.summary?.servicesBound === 3);

    // A second service with the same routing key is refused, and says why.
    await client.create(NetworkServiceResource, {
      metadata: { name: "db-copy", namespace: ns },
      spec: {
        networkRef: { name: "retail" },
        deploymentRef: { name: "shop" },
        application: "db",
        service: "db",
        port: 5432,
        routingKey: "retail-db",
      },
    });
    const copy = await eventually("db-copy stalled", async () => {
      const s = await client.get<NetworkService>(NetworkServiceResource, "db-copy", ns);
      return getCondition(s?.status?.conditions, "Stalled")?.status === "True" ? s : undefined;
    });
    assert.match(
      getCondition(copy.status?.conditions, "Ready")?.message ?? "",
      /routing key retail-db is already used by NetworkService db/,
    );
    await client.delete(NetworkServiceResource, "db-copy", ns);

    // Deleting the NetworkService removes its connectors and listeners everywhere.
    await client.delete(NetworkServiceResource, "db", ns);
    await eventually("connectors and listeners removed", async () => {
      const left = [
        ...(await onEdge("central", AttachedConnectorResource, "shop")),
        ...(await onEdge("central", AttachedConnectorBindingResource)),
        ...(await onEdge("store-1", ListenerResource)),
        ...(await onEdge("store-2", ListenerResource)),
      ];
      return left.length === 0 && !(await client.get(NetworkServiceResource, "db", ns)) ? true : undefined;
    });
  });

  it("an AppDeployment naming the network exports its applications' services", async () => {
    // db 2.0.0 exports its service; package shop 2.0.0 uses it.
    await shopExporting(client, ns, "db", [{ service: "db", port: 5432 }]);
    await client.mergePatch(AppDeploymentResource, "shop", ns, {
      spec: { packageRef: { name: "shop", version: "2.0.0" }, networkRef: { name: "retail" } },
    });
    const generated = await eventually(
      "exported NetworkService bound",
      async () => {
        const list = await client.list<NetworkService>(NetworkServiceResource, {
          namespace: ns,
          labelSelector: `${exportedByLabel}=shop`,
        });
        return list.items.length === 1 && ready(list.items[0]) ? list.items[0] : undefined;
      },
      60_000,
    );
    assert.equal(generated.metadata.name, "shop-db-db-5432");
    assert.equal(generated.metadata.ownerReferences?.[0]?.name, "shop");
    assert.equal(generated.status?.listeners, 2);

    // Without networkRef, nothing is exported any more.
    await client.jsonPatch(AppDeploymentResource, "shop", ns, [{ op: "remove", path: "/spec/networkRef" }]);
    await eventually("export removed", async () => {
      const list = await client.list(NetworkServiceResource, { namespace: ns });
      return list.items.length === 0 ? true : undefined;
    });
    await eventually("its listeners removed", async () =>
      (await onEdge("store-1", ListenerResource)).length === 0 ? true : undefined,
    );
  });

  it("mesh: switching the topology links every pair, keeping the links already up", async () => {
    await client.mergePatch(NetworkResource, "retail", ns, {
      spec: { topology: { type: "mesh", hubSelector: null } },
    });
    const n = await waitNetwork("mesh ready", (x) => ready(x) && x.status?.summary?.links === 3);
    assert.equal(n.status?.summary?.linksConnected, 3);
    // Every member but the last (by name) accepts links now.
    const [store1] = await onEdge<Site>("store-1", SiteResource);
    const [store2] = await onEdge<Site>("store-2", SiteResource);
    assert.equal(store1?.spec?.linkAccess, "default");
    assert.equal(store2?.spec?.linkAccess, "none");
    assert.deepEqual(names(await onEdge<Link>("store-2", LinkResource)), [
      "outpost-to-central",
      "outpost-to-store-1",
    ]);
    // The two hub links were not redone.
    const redeemed = successfulRedemptions();
    assert.equal(redeemed.get("store-1/outpost-to-central"), 1);
    assert.equal(redeemed.get("store-2/outpost-to-central"), 1);
    assert.equal(redeemed.get("store-2/outpost-to-store-1"), 1);
  });

  it("a member leaving is unlinked and its site removed; joining again links it", async () => {
    await fx.fleet.setLabels("store-2", { tier: "lab" });
    const n = await waitNetwork("store-2 gone", (x) => ready(x) && x.status?.summary?.members === 2);
    assert.deepEqual(n.status?.provisioned, ["central", "store-1"]);
    assert.equal(n.status.summary?.links, 1);
    await eventually("store-2's site namespace deleted", async () =>
      (await edges.clients["store-2"].get(namespacesResource, siteNs)) ? undefined : true,
    );
    assert.deepEqual(names(await onEdge<AccessGrant>("central", AccessGrantResource)), [
      "outpost-from-store-1",
    ]);
    assert.deepEqual(names(await onEdge<AccessGrant>("store-1", AccessGrantResource)), []);

    await fx.fleet.setLabels("store-2", { tier: "store" });
    const back = await waitNetwork(
      "store-2 back",
      (x) => ready(x) && x.status?.summary?.linksConnected === 3,
    );
    assert.deepEqual(back.status?.provisioned, ["central", "store-1", "store-2"]);
    // Linked again with new grants: one more redemption each.
    assert.equal(successfulRedemptions().get("store-2/outpost-to-central"), 2);
  });

  it("an edge API server stopped: Unreachable, then converges when it is back", async () => {
    const cp = controlPlane();
    await cp.killApiServer(edges.clusters["store-1"]);
    const down = await waitNetwork(
      "store-1 unreachable",
      (x) => getCondition(x.status?.conditions, "Unreachable")?.status === "True",
    );
    assert.match(getCondition(down.status?.conditions, "Unreachable")?.message ?? "", /store-1/);
    assert.equal(down.status?.summary?.unreachable, 1);
    assert.equal(ready(down), false);
    const entry = down.status.clusters?.find((c) => c.name === "store-1");
    assert.equal(entry?.unreachable, true);
    assert.match(entry.message ?? "", /store-1 is unreachable/);

    await cp.restartApiServer(edges.clusters["store-1"]);
    const up = await waitNetwork(
      "converged",
      (x) => ready(x) && !getCondition(x.status?.conditions, "Unreachable"),
    );
    assert.equal(up.status?.summary?.linksConnected, 3);
  });

  it("a Network deleted while an edge is down is cleaned from it when it returns", async () => {
    const cp = controlPlane();
    await cp.killApiServer(edges.clusters.central);
    await client.delete(NetworkResource, "retail", ns);
    for (const store of ["store-1", "store-2"] as const) {
      await eventually(`site namespace gone from ${store}`, async () =>
        (await edges.clients[store].get(namespacesResource, siteNs)) ? undefined : true,
      );
    }
    const waiting = await eventually("the Network waits for central", async () => {
      const n = await client.get<Network>(NetworkResource, "retail", ns);
      return n &&
        (getCondition(n.status?.conditions, "Ready")?.message ?? "").includes(
          "waiting to remove the site from 1 unreachable cluster(s): central",
        )
        ? n
        : undefined;
    });
    assert.deepEqual(waiting.status?.provisioned, ["central"]);

    await cp.restartApiServer(edges.clusters.central);
    await eventually("Network gone", async () =>
      (await client.get(NetworkResource, "retail", ns)) ? undefined : true,
    );
    // The operator asks central to delete the namespace; the edge's own namespace
    // controller then empties it, which takes longer while that controller manager
    // reconnects to the API server that just came back.
    await eventually("site namespace deleted on central", async () => {
      const n = await edges.clients.central.get<KubeObject>(namespacesResource, siteNs);
      return !n || n.metadata.deletionTimestamp ? true : undefined;
    });
    await eventually(
      "site namespace gone from central",
      async () => ((await edges.clients.central.get(namespacesResource, siteNs)) ? undefined : true),
      120_000,
    );
    for (const e of edgeNames) assert.deepEqual(await onEdge(e, SiteResource), []);
    assert.deepEqual(edges.skupper.errors, []);
  });
});
