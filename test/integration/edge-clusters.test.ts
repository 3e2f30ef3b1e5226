// EdgeClusters against real API servers: clients from the edge credentials Secret in
// outpost-edges (never from the project namespace, where deployers write Secrets), a
// changed Secret picked up, and each way a cluster cannot be used — no Secret, a broken
// kubeconfig, refused credentials, an API server that is down — reported as
// EdgeUnreachableError with what to do. Kubeconfigs that would run a program, read a
// file of the operator's or send its traffic elsewhere are refused, naming the field,
// and nothing runs and nothing is sent.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseYaml, stringify } from "yaml";
import { EdgeClusters, EdgeUnreachableError } from "../../operators/edge/edge-clusters.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { createCertificateAuthority } from "../controlplane/pki.ts";
import { kubeconfigYaml } from "../controlplane/kubeconfig.ts";
import { useControlPlane } from "../support/controlplane.ts";
import { putEdgeCredentials } from "../support/interconnect.ts";

const controlPlane = useControlPlane({ edges: 2 });
const ns = "fleet-ws";
let client: KubeClient;
let now = 0;
let edges: EdgeClusters;

/** The credentials a platform administrator registers for cluster `cluster` of the project. */
const setSecret = (cluster: string, value: string): Promise<void> =>
  putEdgeCredentials(client, ns, cluster, value);

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

  it("gives a client from outpost-edges/<project>.<cluster>, and follows the Secret when it changes", async () => {
    await setSecret("store", kubeconfigOf(0));
    assert.equal(await edges.call(ns, "store", whichEdge), "edge-1");
    // Changed: the cached client is used until it is checked again, then replaced.
    await setSecret("store", kubeconfigOf(1));
    assert.equal(await edges.call(ns, "store", whichEdge), "edge-1");
    now += 1_500;
    assert.equal(await edges.call(ns, "store", whichEdge), "edge-2");
  });

  it("never takes a kubeconfig from the project namespace, where deployers write Secrets", async () => {
    // Where a deployer could put one: the Cluster API name in the project namespace.
    await client.apply(
      secretsResource,
      {
        metadata: { name: "planted-kubeconfig", namespace: ns },
        stringData: { value: kubeconfigOf(0) },
      } as KubeObject,
      { fieldManager: "test", force: true },
    );
    const planted = await unreachable("planted");
    assert.equal(planted.reason, "NoKubeconfig");
    // The same cluster, registered where only administrators write: reached (the witness).
    await setSecret("planted", kubeconfigOf(0));
    assert.equal(await edges.call(ns, "planted", whichEdge), "edge-1");
  });

  it("says what to do when there is no kubeconfig, or it is broken", async () => {
    const missing = await unreachable("nowhere");
    assert.equal(missing.reason, "NoKubeconfig");
    assert.match(
      missing.message,
      /a platform administrator registers it .*Secret outpost-edges\/fleet-ws\.nowhere with the cluster's kubeconfig under key "value"/,
    );
    await setSecret("broken", "this: is: not a kubeconfig");
    const broken = await unreachable("broken");
    assert.equal(broken.reason, "InvalidKubeconfig");
    assert.match(
      broken.message,
      /the credentials in Secret outpost-edges\/fleet-ws\.broken are refused: kubeconfig: is not YAML/,
    );
  });

  it("refuses kubeconfigs that would run, read or redirect: nothing runs, nothing is sent", async () => {
    // A listener stands in for whatever server a hostile kubeconfig names.
    let connections = 0;
    const seen = (): number => connections;
    const listener: Server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const port = (listener.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), "outpost-kubeconfig-"));
    const marker = join(dir, "exec-ran");
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "the-operators-own-token");
    const edge = controlPlane().edges[0];
    assert.ok(edge);
    const hostile = (cluster: Record<string, unknown>, user: Record<string, unknown>): string =>
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          {
            name: "c",
            cluster: {
              server: `https://127.0.0.1:${port}`,
              "certificate-authority-data": Buffer.from(edge.ca.certPem).toString("base64"),
              ...cluster,
            },
          },
        ],
        users: [{ name: "u", user }],
        contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
        "current-context": "c",
      });
    const twoUsers = parseYaml(hostile({}, { token: "t" })) as Record<string, unknown>;
    try {
      const cases: [string, string, string][] = [
        [
          "exec",
          hostile(
            {},
            {
              exec: {
                apiVersion: "client.authentication.k8s.io/v1",
                command: "/bin/sh",
                args: [
                  "-c",
                  `touch ${marker}; echo '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","status":{"token":"x"}}'`,
                ],
                interactiveMode: "Never",
              },
            },
          ),
          "users[0].user.exec",
        ],
        ["token-file", hostile({}, { tokenFile }), "users[0].user.tokenFile"],
        [
          "proxy",
          hostile({ "proxy-url": `http://127.0.0.1:${port}` }, { token: "t" }),
          "clusters[0].cluster.proxy-url",
        ],
        [
          "insecure",
          hostile({ "insecure-skip-tls-verify": true }, { token: "t" }),
          "clusters[0].cluster.insecure-skip-tls-verify",
        ],
        ["impersonate", hostile({}, { token: "t", as: "system:admin" }), "users[0].user.as"],
        [
          "two-users",
          stringify({
            ...twoUsers,
            users: [
              { name: "u", user: { token: "t" } },
              { name: "v", user: { token: "t" } },
            ],
          }),
          "users",
        ],
      ];
      for (const [cluster, kubeconfig, field] of cases) {
        await setSecret(`hostile-${cluster}`, kubeconfig);
        const refused = await unreachable(`hostile-${cluster}`);
        assert.equal(refused.reason, "InvalidKubeconfig", cluster);
        assert.ok(refused.message.includes(`are refused: ${field}: `), `${cluster}: ${refused.message}`);
      }
      assert.equal(existsSync(marker), false, "the exec command did not run");
      assert.equal(seen(), 0, "nothing was sent to the server the kubeconfigs name");
      // The witness: an acceptable kubeconfig naming the listener does reach it.
      await setSecret("listener", hostile({}, { token: "t" }));
      const reached = await unreachable("listener");
      assert.equal(reached.reason, "ConnectionFailed");
      assert.ok(seen() > 0, "the listener sees a client that was allowed to connect");
    } finally {
      listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports refused credentials (401)", async () => {
    // A client certificate from a CA the edge does not trust.
    const edge = controlPlane().edges[0];
    assert.ok(edge);
    const stranger = await createCertificateAuthority("stranger");
    const cert = await stranger.issue({ commonName: "mallory", usage: "client" });
    await setSecret(
      "refused",
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
    await setSecret("down", kubeconfigOf(0));
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
