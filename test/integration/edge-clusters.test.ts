// EdgeClusters against real API servers: clients from the Cluster API kubeconfig Secret
// or the Fleet Cluster's kubeConfigSecret, a changed Secret picked up, and each way a
// cluster cannot be used — no Secret, a broken kubeconfig, refused credentials, an API
// server that is down — reported as EdgeUnreachableError with what to do.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { EdgeClusters, EdgeUnreachableError } from "../../operators/edge/edge-clusters.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { createCertificateAuthority } from "../controlplane/pki.ts";
import { kubeconfigYaml } from "../controlplane/kubeconfig.ts";
import { useControlPlane } from "../support/controlplane.ts";

const controlPlane = useControlPlane({ edges: 2 });
const ns = "fleet-ws";
let client: KubeClient;
let now = 0;
let edges: EdgeClusters;

async function setSecret(name: string, value: string): Promise<void> {
  await client.apply(
    secretsResource,
    { metadata: { name, namespace: ns }, stringData: { value } } as KubeObject,
    { fieldManager: "test", force: true },
  );
}

const kubeconfigOf = (i: number): string => readFileSync(controlPlane().edges[i]?.kubeconfig ?? "", "utf8");

/** Which edge a client talks to: each edge gets a namespace named after it. */
const whichEdge = (c: KubeClient): Promise<string> =>
  c
    .list<KubeObject>(namespacesResource, { labelSelector: "outpost.test/edge" })
    .then((l) => l.items.map((n) => n.metadata.name ?? "").join(","));

async function unreachable(cluster: string): Promise<EdgeUnreachableError> {
  try {
    await edges.call(ns, cluster, (c) => c.list(namespacesResource));
  } catch (err) {
    if (err instanceof EdgeUnreachableError) return err;
    throw err;
  }
  throw new Error(`${cluster} was reachable`);
}

describe("EdgeClusters", () => {
  before(async () => {
    const cp = controlPlane();
    client = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
    await client.create(namespacesResource, { metadata: { name: ns } });
    for (const [i, edge] of cp.edges.entries()) {
      const c = new KubeClient(kubeConfigFromFile(edge.kubeconfig));
      await c.create(namespacesResource, {
        metadata: { name: `edge-${i + 1}`, labels: { "outpost.test/edge": "" } },
      });
      await c.close();
    }
    edges = new EdgeClusters({
      management: client,
      fleetCluster: (namespace, name) =>
        namespace === ns && name === "fleet-only"
          ? { metadata: { name }, spec: { kubeConfigSecret: "fleet-only-kubeconfig-secret" } }
          : undefined,
      revalidateMs: 1_000,
      connectTimeoutMs: 1_000,
      requestTimeoutMs: 2_000,
      now: () => now,
    });
  });
  after(async () => {
    await edges.close();
    await client.close();
  });

  it("gives a client from <cluster>-kubeconfig, and follows the Secret when it changes", async () => {
    await setSecret("store-kubeconfig", kubeconfigOf(0));
    assert.equal(await edges.call(ns, "store", whichEdge), "edge-1");
    // Changed: the cached client is used until it is checked again, then replaced.
    await setSecret("store-kubeconfig", kubeconfigOf(1));
    assert.equal(await edges.call(ns, "store", whichEdge), "edge-1");
    now += 1_500;
    assert.equal(await edges.call(ns, "store", whichEdge), "edge-2");
  });

  it("falls back to the Fleet Cluster's kubeConfigSecret", async () => {
    await setSecret("fleet-only-kubeconfig-secret", kubeconfigOf(1));
    assert.equal(await edges.call(ns, "fleet-only", whichEdge), "edge-2");
  });

  it("says what to do when there is no kubeconfig, or it is broken", async () => {
    const missing = await unreachable("nowhere");
    assert.equal(missing.reason, "NoKubeconfig");
    assert.match(
      missing.message,
      /create Secret fleet-ws\/nowhere-kubeconfig with the kubeconfig under key "value"/,
    );
    await setSecret("broken-kubeconfig", "this: is: not a kubeconfig");
    const broken = await unreachable("broken");
    assert.equal(broken.reason, "InvalidKubeconfig");
    assert.match(broken.message, /the kubeconfig in Secret fleet-ws\/broken-kubeconfig cannot be used/);
  });

  it("reports refused credentials (401)", async () => {
    // A client certificate from a CA the edge does not trust.
    const edge = controlPlane().edges[0];
    assert.ok(edge);
    const stranger = await createCertificateAuthority("stranger");
    const cert = await stranger.issue({ commonName: "mallory", usage: "client" });
    await setSecret(
      "refused-kubeconfig",
      kubeconfigYaml([
        {
          name: "refused",
          server: edge.server,
          caPem: edge.ca.certPem,
          user: { name: "mallory", certPem: cert.certPem, keyPem: cert.keyPem },
        },
      ]),
    );
    const refused = await unreachable("refused");
    assert.equal(refused.reason, "Unauthorized");
    assert.match(
      refused.message,
      /refused the credentials of its kubeconfig Secret \(401\); renew the Secret/,
    );
  });

  it("reports an API server that is down as unreachable, quickly, and recovers", async () => {
    const cp = controlPlane();
    const edge = cp.edges[0];
    assert.ok(edge);
    await setSecret("down-kubeconfig", kubeconfigOf(0));
    assert.equal(await edges.call(ns, "down", whichEdge), "edge-1");
    await cp.killApiServer(edge);
    try {
      const started = Date.now();
      const down = await unreachable("down");
      assert.equal(down.reason, "ConnectionFailed");
      assert.match(down.message, /cluster down is unreachable: .*ECONNREFUSED/);
      assert.ok(Date.now() - started < 5_000, "within the timeouts");
    } finally {
      await cp.restartApiServer(edge);
    }
    assert.equal(await edges.call(ns, "down", whichEdge), "edge-1");
  });
});
