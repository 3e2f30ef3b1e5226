// The Skupper test driver (test/drivers/skupper.ts) against two real edge API servers:
// sites, grants and tokens linking them with Skupper's status texts and HTTP codes,
// redemption failures (wrong code, wrong CA, used up, expired, unreachable grant server),
// listeners matched with connectors and attached connectors across the link, routers
// going down, and the strictness checks the stand-in CRDs leave to the driver.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import {
  namespacesResource,
  podsResource,
  secretsResource,
  servicesResource,
} from "../../operators/runtime/core.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { installSkupperCRDs } from "../drivers/skupper-crds.ts";
import {
  AccessGrantResource,
  AccessTokenResource,
  AttachedConnectorBindingResource,
  AttachedConnectorResource,
  ConnectorResource,
  LinkResource,
  ListenerResource,
  SiteResource,
  SkupperController,
  SkupperDriver,
  type AccessGrant,
  type AccessToken,
  type AttachedConnector,
  type AttachedConnectorBinding,
  type Condition,
  type Connector,
  type Link,
  type Listener,
  type Site,
} from "../drivers/skupper.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";

const controlPlane = useControlPlane({ edges: 2 });
let a: KubeClient; // edge-1: the sites that initiate links (tokens)
let b: KubeClient; // edge-2: the sites that accept links (grants)
let driver: SkupperDriver;
/** Which CRDs the edges serve: with Skupper's own, the API server rejects what the driver would report. */
let crds: "upstream" | "stand-in";

interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}
interface Service extends KubeObject {
  spec?: {
    selector?: Record<string, string>;
    ports?: { name?: string; port?: number; targetPort?: number }[];
  };
}

const cond = (
  obj: { status?: { conditions?: Condition[] } } | undefined,
  type: string,
): Condition | undefined => obj?.status?.conditions?.find((c) => c.type === type);
const isTrue = (obj: { status?: { conditions?: Condition[] } } | undefined, type: string): boolean =>
  cond(obj, type)?.status === "True";

async function namespace(client: KubeClient, name: string): Promise<void> {
  if (!(await client.get(namespacesResource, name)))
    await client.create(namespacesResource, { metadata: { name } });
}

async function create<T extends KubeObject>(client: KubeClient, r: ResourceType, obj: T): Promise<T> {
  if (obj.metadata.namespace) await namespace(client, obj.metadata.namespace);
  return client.create<T>(r, obj);
}

/** Waits until `get` returns an object for which `ok` holds; returns it. */
function until<T>(
  what: string,
  get: () => Promise<T | undefined>,
  ok: (o: T) => boolean,
  timeoutMs = 30_000,
) {
  return eventually(
    what,
    async () => {
      const o = await get();
      return o !== undefined && ok(o) ? o : undefined;
    },
    timeoutMs,
  );
}

const site = (client: KubeClient, ns: string, name: string) => () => client.get<Site>(SiteResource, name, ns);
const grantOf = (ns: string, name: string) => () => b.get<AccessGrant>(AccessGrantResource, name, ns);
const tokenOf = (client: KubeClient, ns: string, name: string) => () =>
  client.get<AccessToken>(AccessTokenResource, name, ns);
const linkOf = (client: KubeClient, ns: string, name: string) => () =>
  client.get<Link>(LinkResource, name, ns);

async function readyGrant(ns: string, name: string, spec: AccessGrant["spec"] = {}): Promise<AccessGrant> {
  await create<AccessGrant>(b, AccessGrantResource, { metadata: { name, namespace: ns }, spec });
  return until(`grant ${ns}/${name} Ready`, grantOf(ns, name), (g) => isTrue(g, "Ready"));
}

async function tokenFor(
  client: KubeClient,
  ns: string,
  name: string,
  grant: AccessGrant,
  override: Partial<NonNullable<AccessToken["spec"]>> = {},
): Promise<void> {
  await create<AccessToken>(client, AccessTokenResource, {
    metadata: { name, namespace: ns },
    spec: { url: grant.status?.url, code: grant.status?.code, ca: grant.status?.ca, ...override },
  });
}

/** The token status once its redemption failed with a message matching `message`. */
function failedToken(client: KubeClient, ns: string, name: string, message: RegExp): Promise<AccessToken> {
  return until(
    `token ${ns}/${name} failing with ${String(message)}`,
    tokenOf(client, ns, name),
    (t) => cond(t, "Redeemed")?.status === "False" && message.test(t.status?.message ?? ""),
  );
}

async function readyPod(
  client: KubeClient,
  ns: string,
  name: string,
  labels: Record<string, string>,
  ip: string,
) {
  await create(client, podsResource, {
    metadata: { name, namespace: ns, labels },
    spec: { nodeName: "node-1", containers: [{ name: "main", image: "registry.invalid/app:1" }] },
  } as KubeObject);
  await client.mergePatch(
    podsResource,
    name,
    ns,
    {
      status: {
        phase: "Running",
        podIP: ip,
        podIPs: [{ ip }],
        conditions: [{ type: "Ready", status: "True" }],
      },
    },
    { subresource: "status" },
  );
}

const syncFailures = (): string[] => driver.errors.filter((e) => e.startsWith("sync failed"));

describe("Skupper test driver", () => {
  before(async () => {
    const cp = controlPlane();
    const [edge1, edge2] = cp.edges;
    assert.ok(edge1 && edge2);
    const kinds = await Promise.all([
      installSkupperCRDs(edge1.kubeconfig),
      installSkupperCRDs(edge2.kubeconfig),
    ]);
    console.log(`Skupper CRDs: ${kinds.join(", ")}`);
    crds = kinds[0];
    a = new KubeClient(kubeConfigFromFile(edge1.kubeconfig));
    b = new KubeClient(kubeConfigFromFile(edge2.kubeconfig));
    driver = new SkupperDriver({
      clusters: [
        { name: edge1.name, client: a },
        { name: edge2.name, client: b },
      ],
      tokenResyncMs: 300,
    });
    driver.start(100);
  });

  after(async () => {
    await driver.stop();
    await a.close();
    await b.close();
  });

  it("links two sites with a grant and a token, as Skupper does", async () => {
    await create<Site>(a, SiteResource, { metadata: { name: "site-a", namespace: "net" }, spec: {} });
    await create<Site>(b, SiteResource, {
      metadata: { name: "site-b", namespace: "net" },
      spec: { linkAccess: "default" },
    });
    const siteB = await until("site-b Ready", site(b, "net", "site-b"), (s) => isTrue(s, "Ready"));
    assert.deepEqual(
      siteB.status?.conditions?.map((c) => [c.type, c.status, c.reason, c.message]),
      [
        ["Configured", "True", "Ready", "OK"],
        ["Ready", "True", "Ready", "OK"],
        ["Running", "True", "Ready", "OK"],
        ["Resolved", "True", "Ready", "OK"],
      ],
    );
    assert.equal(siteB.status.status, "Ready");
    assert.equal(siteB.status.message, "OK");
    assert.deepEqual(siteB.status.controller, SkupperController);
    assert.equal(siteB.status.defaultIssuer, "skupper-site-ca");
    assert.deepEqual(siteB.status.endpoints, [
      {
        name: "inter-router",
        host: "skupper-inter-router-net.edge-2.outpost.test",
        port: "55671",
        group: "skupper-router",
      },
      { name: "edge", host: "skupper-edge-net.edge-2.outpost.test", port: "45671", group: "skupper-router" },
    ]);
    const siteA = await until("site-a Ready", site(a, "net", "site-a"), (s) => isTrue(s, "Ready"));
    assert.equal(cond(siteA, "Resolved"), undefined, "no Resolved condition without linkAccess");
    assert.equal(siteA.status?.endpoints, undefined);
    assert.equal(siteA.status?.sitesInNetwork, 1);

    // The grant: redemptionsAllowed written back as 1, a 10 minute window, URL, code and CA.
    const before = Date.now();
    const grant = await readyGrant("net", "g1");
    assert.equal(grant.spec?.redemptionsAllowed, 1);
    assert.equal(
      grant.status?.url,
      `https://skupper-grant-server.edge-2.outpost.test:9090/${grant.metadata.uid ?? ""}`,
    );
    assert.match(grant.status.code ?? "", /^[A-Za-z0-9]{24}$/);
    assert.equal(grant.status.ca, await driver.grantServerCA("edge-2"));
    assert.match(grant.status.ca ?? "", /^-----BEGIN CERTIFICATE-----/);
    const expires = Date.parse(grant.status.expirationTime ?? "");
    assert.ok(
      Math.abs(expires - before - 10 * 60_000) < 10_000,
      `expires at ${grant.status.expirationTime ?? ""}`,
    );
    assert.deepEqual(
      grant.status.conditions?.map((c) => c.type),
      ["Processed", "Ready", "Resolved"],
    );

    await tokenFor(a, "net", "to-b", grant, { linkCost: 5 });
    const token = await until(
      "token redeemed",
      tokenOf(a, "net", "to-b"),
      (t) => t.status?.redeemed === true,
    );
    assert.equal(cond(token, "Redeemed")?.reason, "Ready");
    assert.equal(token.status?.status, "Ready");
    assert.equal(token.status.message, "OK");

    const owner = [
      { kind: "Site", apiVersion: "skupper.io/v2alpha1", name: "site-a", uid: siteA.metadata.uid },
    ];
    const secret = await a.get<Secret>(secretsResource, "to-b", "net");
    assert.equal(secret?.type, "kubernetes.io/tls");
    assert.deepEqual(Object.keys(secret.data ?? {}).sort(), ["ca.crt", "tls.crt", "tls.key"]);
    assert.deepEqual(secret.metadata.ownerReferences, owner);
    const link = await until("link Ready", linkOf(a, "net", "to-b"), (l) => isTrue(l, "Ready"));
    assert.deepEqual(link.spec?.endpoints, siteB.status.endpoints);
    assert.equal(link.spec.tlsCredentials, "to-b");
    assert.equal(link.spec.cost, 5);
    assert.deepEqual(link.metadata.ownerReferences, owner);
    assert.equal(link.status?.remoteSiteName, "site-b");
    assert.equal(link.status.remoteSiteId, siteB.metadata.uid);

    const inNetwork = (s: Site) => s.status?.sitesInNetwork === 2;
    const a2 = await until("site-a sees 2 sites", site(a, "net", "site-a"), inNetwork);
    await until("site-b sees 2 sites", site(b, "net", "site-b"), inNetwork);
    const self = a2.status?.network?.find((r) => r.name === "site-a");
    assert.deepEqual(self?.links, [
      { name: "to-b", remoteSiteId: siteB.metadata.uid, remoteSiteName: "site-b", operational: true },
    ]);
    const g = await grantOf("net", "g1")();
    assert.equal(g?.status?.redemptions, 1);
    assert.deepEqual(
      driver.redemptions.filter((r) => r.token === "to-b"),
      [{ url: grant.status.url, cluster: "edge-1", namespace: "net", token: "to-b", status: 200 }],
    );
  });

  it("fails redemptions as the grant server answers: wrong code, wrong CA, used up, expired, http", async () => {
    const grant = await readyGrant("net", "g2");
    await tokenFor(a, "net", "bad-code", grant, { code: "wrong" });
    const badCode = await failedToken(a, "net", "bad-code", /403/);
    assert.equal(
      badCode.status?.message,
      "Controller got failed response: 403 (Forbidden) Redemption of access token refused",
    );
    assert.equal(badCode.status.status, "Error");
    assert.equal(cond(badCode, "Redeemed")?.reason, "Error");
    assert.equal(badCode.status.redeemed, undefined);
    assert.equal(await linkOf(a, "net", "bad-code")(), undefined);
    assert.equal(await a.get(secretsResource, "bad-code", "net"), undefined);

    await tokenFor(a, "net", "bad-ca", grant, { ca: await driver.grantServerCA("edge-1") });
    const badCA = await failedToken(a, "net", "bad-ca", /tls/);
    assert.equal(
      badCA.status?.message,
      `Controller got error: Post "${grant.status?.url ?? ""}": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
    );

    await tokenFor(a, "net", "plain", grant, { url: (grant.status?.url ?? "").replace("https:", "http:") });
    await failedToken(a, "net", "plain", /^token url scheme must be https$/);

    // A wrong code uses nothing up: the grant still redeems.
    assert.equal((await grantOf("net", "g2")())?.status?.redemptions, undefined);
    await tokenFor(a, "net", "good", grant);
    await until("good token redeemed", tokenOf(a, "net", "good"), (t) => t.status?.redeemed === true);

    // A token recreated under the same name: the first one's Secret (owned by the Site) is in
    // the way, after a redemption was used up.
    await a.delete(AccessTokenResource, "good", "net");
    await eventually("token deleted", async () => ((await tokenOf(a, "net", "good")()) ? undefined : true));
    const again = await readyGrant("net", "g-again", { redemptionsAllowed: 100 });
    await tokenFor(a, "net", "good", again);
    const blocked = await failedToken(a, "net", "good", /already exists/);
    assert.equal(
      blocked.status?.message,
      'Controller could not create received secret: secrets "good" already exists',
    );
    assert.ok(((await grantOf("net", "g-again")())?.status?.redemptions ?? 0) >= 1);

    // g1 was used by to-b in the first test.
    const used = await grantOf("net", "g1")();
    assert.ok(used);
    await tokenFor(a, "net", "second", used);
    const second = await failedToken(a, "net", "second", /404/);
    assert.equal(
      second.status?.message,
      "Controller got failed response: 404 (Not Found) No such access granted",
    );

    const short = await readyGrant("net", "g-short", { expirationWindow: "1s" });
    await sleep(1500);
    await tokenFor(a, "net", "late", short);
    const late = await failedToken(a, "net", "late", /404/);
    assert.equal(late.status?.message, "Controller got failed response: 404 (Not Found) No such claim");

    await create<AccessGrant>(b, AccessGrantResource, {
      metadata: { name: "g-bad-window", namespace: "net" },
      // "1d" passes the CRD's format: duration, not Go's time.ParseDuration.
      spec: { expirationWindow: "1d", redemptionsAllowed: 2 },
    });
    const bad = await until(
      "grant with a bad window",
      grantOf("net", "g-bad-window"),
      (x) => cond(x, "Processed") !== undefined,
    );
    assert.equal(bad.status?.status, "Error");
    assert.equal(bad.status.message, 'Invalid duration "1d": time: unknown unit "d" in duration "1d"');
    assert.equal(bad.status.expirationTime, undefined);
    // Its URL is set all the same; a redemption finds no expiration time.
    await tokenFor(a, "net", "corrupt", bad);
    await failedToken(
      a,
      "net",
      "corrupt",
      /^Controller got failed response: 500 \(Internal Server Error\) Corrupted claim$/,
    );

    for (const name of ["bad-code", "bad-ca", "second", "late"]) {
      const attempts = driver.redemptions.filter((r) => r.token === name);
      assert.ok(attempts.length >= 1, `${name} was attempted`);
    }
    // Retried on every resync, never given up: once "good" used g2 up, "bad-code" gets 404s.
    assert.equal(driver.redemptions.find((r) => r.token === "bad-code")?.status, 403);
    assert.ok(driver.redemptions.filter((r) => r.token === "bad-ca").every((r) => r.status === 0));
    assert.equal(driver.redemptions.filter((r) => r.token === "plain").length, 0, "no POST for an http URL");
  });

  it("redeems a token only once its namespace has a Site", async () => {
    const grant = await readyGrant("net", "g3");
    await tokenFor(a, "waiting", "early", grant);
    await sleep(1000);
    const early = await tokenOf(a, "waiting", "early")();
    assert.equal(early?.status, undefined);
    assert.equal(driver.redemptions.filter((r) => r.token === "early").length, 0);
    await create<Site>(a, SiteResource, { metadata: { name: "late-site", namespace: "waiting" }, spec: {} });
    await until("early token redeemed", tokenOf(a, "waiting", "early"), (t) => t.status?.redeemed === true);
    await until("its link Ready", linkOf(a, "waiting", "early"), (l) => isTrue(l, "Ready"));

    // Deleting the Site: its Links go with it (the garbage collector), the token says so.
    await a.delete(SiteResource, "late-site", "waiting");
    const gone = await until(
      "token of a deleted site",
      tokenOf(a, "waiting", "early"),
      (t) => t.status?.status === "Error",
    );
    assert.equal(gone.status?.message, "Already redeemed for a deleted site");
    assert.equal(cond(gone, "Redeemed")?.status, "True");
    assert.equal(gone.status.redeemed, true);
    // The garbage collector maps skupper.io only after its discovery resync (30 s), then retries.
    await eventually(
      "the link garbage-collected",
      async () => ((await linkOf(a, "waiting", "early")()) ? undefined : true),
      90_000,
    );
  });

  it("reports Site and grant problems where Skupper does; a failed generation uses the grant up", async () => {
    await create<Site>(b, SiteResource, {
      metadata: { name: "gw", namespace: "unresolved" },
      spec: { linkAccess: "gateway" },
    });
    const gw = await until(
      "gateway site resolved pending",
      site(b, "unresolved", "gw"),
      (s) => cond(s, "Resolved") !== undefined,
    );
    assert.deepEqual(
      cond(gw, "Resolved") && [
        cond(gw, "Resolved")?.status,
        cond(gw, "Resolved")?.reason,
        cond(gw, "Resolved")?.message,
      ],
      ["False", "Pending", "Pending"],
    );
    assert.equal(gw.status?.status, "Pending");
    assert.equal(gw.status.message, "Pending");
    assert.equal(gw.status.endpoints, undefined);
    // The grant does not depend on the Site's endpoints (the grant server has its own access)…
    const grant = await readyGrant("unresolved", "g-unresolved");
    await tokenFor(a, "net", "to-unresolved", grant);
    // …but its redemption fails after using it up, and the immediate retry gets a 404.
    await failedToken(a, "net", "to-unresolved", /404 \(Not Found\) No such access granted/);
    const attempts = driver.redemptions.filter((r) => r.token === "to-unresolved").map((r) => r.status);
    assert.deepEqual(attempts.slice(0, 2), [500, 404]);
    assert.equal((await grantOf("unresolved", "g-unresolved")())?.status?.redemptions, 1);

    // No Site in the grant's namespace.
    const lonely = await readyGrant("no-site", "g-lonely", { redemptionsAllowed: 50 });
    await tokenFor(a, "net", "to-nowhere", lonely);
    await failedToken(a, "net", "to-nowhere", /Site not yet defined for no-site/);
    assert.ok(driver.redemptions.some((r) => r.token === "to-nowhere" && r.status === 500));

    await create<Site>(b, SiteResource, {
      metadata: { name: "bogus", namespace: "bogus" },
      spec: { linkAccess: "bogus" },
    });
    const bogus = await until(
      "unsupported access",
      site(b, "bogus", "bogus"),
      (s) => cond(s, "Configured") !== undefined,
    );
    assert.equal(cond(bogus, "Configured")?.message, "Unsupported value for LinkAccess: bogus");
    assert.equal(bogus.status?.status, "Error");

    await create<Site>(b, SiteResource, { metadata: { name: "twin", namespace: "net" }, spec: {} });
    const twin = await until(
      "second site",
      site(b, "net", "twin"),
      (s) => cond(s, "Configured") !== undefined,
    );
    assert.equal(twin.status?.message, "An active site already exists in the namespace (site-b)");

    await create<Site>(b, SiteResource, {
      metadata: { name: "edge", namespace: "edge" },
      spec: { edge: true, ha: true },
    });
    const edgeHA = await until(
      "edge+ha site",
      site(b, "edge", "edge"),
      (s) => cond(s, "Configured") !== undefined,
    );
    assert.equal(edgeHA.status?.message, "Edge sites cannot have HA enabled");
    await b.mergePatch(SiteResource, "edge", "edge", { spec: { ha: null } });
    await until("edge site Ready", site(b, "edge", "edge"), (s) => isTrue(s, "Ready"));
    await create<AccessGrant>(b, AccessGrantResource, {
      metadata: { name: "g-edge", namespace: "edge" },
      spec: {},
    });
    const edgeGrant = await until(
      "edge grant processed",
      grantOf("edge", "g-edge"),
      (x) => cond(x, "Processed") !== undefined,
    );
    assert.equal(edgeGrant.status?.message, "Edge sites cannot accept incoming links from remote sites");
    assert.equal(cond(edgeGrant, "Processed")?.reason, "Error");
  });

  it("matches listeners and connectors across the link only, and exposes the listener's Service", async () => {
    await create<Site>(a, SiteResource, { metadata: { name: "front", namespace: "apps" }, spec: {} });
    await create<Site>(b, SiteResource, {
      metadata: { name: "back", namespace: "apps" },
      spec: { linkAccess: "loadbalancer" },
    });
    await create<Listener>(a, ListenerResource, {
      metadata: { name: "db", namespace: "apps" },
      spec: { routingKey: "db", host: "db", port: 5432 },
    });
    await create<Connector>(b, ConnectorResource, {
      metadata: { name: "db", namespace: "apps" },
      spec: { routingKey: "db", selector: "app=db", port: 5432 },
    });
    const noPods = await until(
      "connector without pods",
      () => b.get<Connector>(ConnectorResource, "db", "apps"),
      (c) => cond(c, "Configured") !== undefined,
    );
    assert.equal(cond(noPods, "Configured")?.message, "No matches for selector");
    assert.equal(noPods.status?.status, "Error");
    await readyPod(b, "apps", "db-0", { app: "db" }, "10.1.0.7");
    const unlinked = await until(
      "connector configured, unmatched",
      () => b.get<Connector>(ConnectorResource, "db", "apps"),
      (c) => isTrue(c, "Configured"),
    );
    assert.equal(cond(unlinked, "Matched")?.message, "No matching listeners");
    assert.equal(unlinked.status?.hasMatchingListener, undefined);
    assert.equal(unlinked.status?.selectedPods, undefined, "Skupper never writes selectedPods");
    const lonely = await until(
      "listener unmatched",
      () => a.get<Listener>(ListenerResource, "db", "apps"),
      (l) => isTrue(l, "Configured"),
    );
    assert.equal(cond(lonely, "Matched")?.message, "No matching connectors");
    assert.equal(lonely.status?.message, "No matching connectors");

    const service = await until(
      "listener Service",
      () => a.get<Service>(servicesResource, "db", "apps"),
      () => true,
    );
    const front = await site(a, "apps", "front")();
    assert.deepEqual(service.spec?.selector, {
      application: "skupper-router",
      "skupper.io/component": "router",
    });
    const ports = service.spec.ports ?? [];
    assert.equal(ports.length, 1);
    assert.equal(ports[0]?.name, "db");
    assert.equal(ports[0].port, 5432);
    assert.ok((ports[0].targetPort ?? 0) >= 1024);
    assert.equal(service.metadata.labels?.["internal.skupper.io/listener"], "db");
    assert.equal(service.metadata.ownerReferences?.[0]?.uid, front?.metadata.uid);

    await until("back Ready", site(b, "apps", "back"), (s) => isTrue(s, "Ready"));
    const grant = await readyGrant("apps", "g-apps");
    await tokenFor(a, "apps", "to-back", grant);
    await until(
      "listener matched",
      () => a.get<Listener>(ListenerResource, "db", "apps"),
      (l) => isTrue(l, "Ready"),
    );
    const connector = await until(
      "connector matched",
      () => b.get<Connector>(ConnectorResource, "db", "apps"),
      (c) => isTrue(c, "Ready"),
    );
    assert.equal(connector.status?.hasMatchingListener, true);
    const back = await until(
      "back sees the services",
      site(b, "apps", "back"),
      (s) => s.status?.sitesInNetwork === 2,
    );
    const record = back.status?.network?.find((r) => r.name === "back");
    assert.deepEqual(record?.services, [{ routingKey: "db", connectors: ["10.1.0.7"] }]);

    // An empty host is no host (the CRD's oneOf only asks for the field).
    await create<Connector>(b, ConnectorResource, {
      metadata: { name: "empty", namespace: "apps" },
      spec: { routingKey: "empty", host: "", port: 80 },
    });
    const empty = await until(
      "connector without target",
      () => b.get<Connector>(ConnectorResource, "empty", "apps"),
      (c) => cond(c, "Configured") !== undefined,
    );
    assert.equal(empty.status?.message, "Connector must define a non-empty spec.host or spec.selector");

    // A Service of the listener's name made by someone else is a conflict.
    await create(a, servicesResource, {
      metadata: { name: "taken", namespace: "apps" },
      spec: { ports: [{ port: 80 }] },
    } as KubeObject);
    await create<Listener>(a, ListenerResource, {
      metadata: { name: "taken", namespace: "apps" },
      spec: { routingKey: "web", host: "taken", port: 80 },
    });
    const taken = await until(
      "listener conflict",
      () => a.get<Listener>(ListenerResource, "taken", "apps"),
      (l) => cond(l, "Configured")?.status === "False",
    );
    assert.equal(taken.status?.message, "Service taken already exists in namespace");

    // Deleting the listener deletes its Service.
    await a.delete(ListenerResource, "db", "apps");
    await eventually("listener Service deleted", async () =>
      (await a.get(servicesResource, "db", "apps")) ? undefined : true,
    );
  });

  it("plays AttachedConnectors with their bindings", async () => {
    await readyPod(b, "workload", "api-0", { app: "api" }, "10.1.0.9");
    await create<AttachedConnector>(b, AttachedConnectorResource, {
      metadata: { name: "api", namespace: "workload" },
      spec: { siteNamespace: "apps", selector: "app=api", port: 8080 },
    });
    await create<AttachedConnectorBinding>(b, AttachedConnectorBindingResource, {
      metadata: { name: "api", namespace: "apps" },
      spec: { connectorNamespace: "workload", routingKey: "api" },
    });
    const ac = await until(
      "attached connector Ready",
      () => b.get<AttachedConnector>(AttachedConnectorResource, "api", "workload"),
      (x) => isTrue(x, "Ready"),
    );
    assert.equal(cond(ac, "Matched"), undefined);
    const unmatched = await until(
      "binding configured",
      () => b.get<AttachedConnectorBinding>(AttachedConnectorBindingResource, "api", "apps"),
      (x) => isTrue(x, "Configured"),
    );
    assert.equal(unmatched.status?.message, "Not Matched");
    await create<Listener>(a, ListenerResource, {
      metadata: { name: "api", namespace: "apps" },
      spec: { routingKey: "api", host: "api", port: 8080 },
    });
    await until(
      "binding matched",
      () => b.get<AttachedConnectorBinding>(AttachedConnectorBindingResource, "api", "apps"),
      (x) => isTrue(x, "Ready"),
    );
    await until(
      "listener matched by the attached connector",
      () => a.get<Listener>(ListenerResource, "api", "apps"),
      (l) => isTrue(l, "Ready"),
    );

    await create<AttachedConnector>(b, AttachedConnectorResource, {
      metadata: { name: "alone", namespace: "workload" },
      spec: { siteNamespace: "apps", selector: "app=api", port: 8080 },
    });
    const alone = await until(
      "unbound attached connector",
      () => b.get<AttachedConnector>(AttachedConnectorResource, "alone", "workload"),
      (x) => cond(x, "Configured") !== undefined,
    );
    assert.equal(alone.status?.message, "No matching AttachedConnectorBinding in site namespace");
    await create<AttachedConnectorBinding>(b, AttachedConnectorBindingResource, {
      metadata: { name: "orphan", namespace: "apps" },
      spec: { connectorNamespace: "workload", routingKey: "orphan" },
    });
    const orphan = await until(
      "binding without connector",
      () => b.get<AttachedConnectorBinding>(AttachedConnectorBindingResource, "orphan", "apps"),
      (x) => cond(x, "Configured") !== undefined,
    );
    assert.equal(orphan.status?.message, "No matching AttachedConnector");
  });

  it("keeps Links without credentials unconfigured, and hand-made Links not operational", async () => {
    const siteB = await site(b, "net", "site-b")();
    await create<Link>(a, LinkResource, {
      metadata: { name: "no-secret", namespace: "net" },
      spec: { endpoints: siteB?.status?.endpoints ?? [], tlsCredentials: "nope" },
    });
    const noSecret = await until(
      "link without secret",
      linkOf(a, "net", "no-secret"),
      (l) => cond(l, "Configured") !== undefined,
    );
    assert.equal(noSecret.status?.message, 'TLS credentials secret "nope" not found');
    await create(a, secretsResource, {
      metadata: { name: "forged", namespace: "net" },
      type: "kubernetes.io/tls",
      data: { "tls.crt": "", "tls.key": "", "ca.crt": "" },
    } as KubeObject);
    await create<Link>(a, LinkResource, {
      metadata: { name: "forged", namespace: "net" },
      spec: { endpoints: siteB?.status?.endpoints ?? [], tlsCredentials: "forged" },
    });
    const forged = await until("forged link configured", linkOf(a, "net", "forged"), (l) =>
      isTrue(l, "Configured"),
    );
    await sleep(500);
    const still = await linkOf(a, "net", "forged")();
    assert.equal(cond(still, "Operational"), undefined);
    assert.equal(still?.status?.message, "Not Operational");
    assert.equal(forged.status?.status, "Pending");
  });

  it("reports what Skupper's CRDs would reject or prune in driver.errors", async () => {
    const both = (): Promise<Connector> =>
      create<Connector>(b, ConnectorResource, {
        metadata: { name: "both", namespace: "apps" },
        spec: { routingKey: "x", port: 1, host: "x.example", selector: "app=x" },
      });
    const typo = (): Promise<KubeObject> =>
      create(a, LinkResource, {
        metadata: { name: "typo", namespace: "net" },
        spec: { endpoint: [] },
      } as KubeObject);
    if (crds === "upstream") {
      await assert.rejects(both(), /must validate one and only one schema/);
      await assert.rejects(typo(), /spec.endpoints: Required value/);
      return;
    }
    await both();
    await typo();
    await eventually("violations reported", () =>
      Promise.resolve(
        driver.errors.some((e) =>
          e.includes("Connector apps/both: exactly one of spec.host and spec.selector"),
        ) &&
          driver.errors.some((e) => e.includes("Link net/typo: spec.endpoints is required")) &&
          driver.errors.some((e) => e.includes("Link net/typo: spec.endpoint is not a field of Link"))
          ? true
          : undefined,
      ),
    );
    const reported = driver.errors.filter((e) => e.includes("Connector apps/both"));
    await sleep(500);
    assert.deepEqual(
      driver.errors.filter((e) => e.includes("Connector apps/both")),
      reported,
      "reported once per generation",
    );
  });

  it("names the Links of a token after the endpoint groups of an HA site", async () => {
    await create<Site>(a, SiteResource, { metadata: { name: "client", namespace: "ha" }, spec: {} });
    await create<Site>(b, SiteResource, {
      metadata: { name: "server", namespace: "ha" },
      spec: { linkAccess: "default", ha: true },
    });
    const server = await until("HA site Ready", site(b, "ha", "server"), (x) => isTrue(x, "Ready"));
    assert.deepEqual(
      server.status?.endpoints?.map((e) => `${e.group ?? ""}/${e.name ?? ""}`),
      [
        "skupper-router/inter-router",
        "skupper-router/edge",
        "skupper-router-2/inter-router",
        "skupper-router-2/edge",
      ],
    );
    const grant = await readyGrant("ha", "g-ha");
    await tokenFor(a, "ha", "to-ha", grant);
    await until("token redeemed", tokenOf(a, "ha", "to-ha"), (t) => t.status?.redeemed === true);
    for (const [name, group] of [
      ["to-ha-1", "skupper-router"],
      ["to-ha-2", "skupper-router-2"],
    ] as const) {
      const link = await until(`${name} Ready`, linkOf(a, "ha", name), (l) => isTrue(l, "Ready"));
      assert.equal(link.spec?.tlsCredentials, "to-ha");
      assert.deepEqual(
        link.spec.endpoints?.map((e) => e.group),
        [group, group],
      );
      assert.equal(link.status?.remoteSiteName, "server");
    }
    assert.equal(await linkOf(a, "ha", "to-ha")(), undefined);
    await until("two sites", site(a, "ha", "client"), (x) => x.status?.sitesInNetwork === 2);
  });

  it("takes links down with the routers, not with the API server", async () => {
    const cp = controlPlane();
    const edge2 = cp.edges[1];
    assert.ok(edge2);
    const grant = await readyGrant("net", "g-outage");
    await cp.killApiServer(edge2);
    try {
      await tokenFor(a, "net", "during-outage", grant);
      const t = await failedToken(a, "net", "during-outage", /connection refused/);
      assert.equal(
        t.status?.message,
        `Controller got error: Post "${grant.status?.url ?? ""}": dial tcp skupper-grant-server.edge-2.outpost.test:9090: connect: connection refused`,
      );
      assert.ok(driver.redemptions.some((r) => r.token === "during-outage" && r.status === 0));
      // The data plane does not need the API server: the first link stays up.
      await sleep(500);
      assert.ok(isTrue(await linkOf(a, "net", "to-b")(), "Ready"));
      assert.ok(driver.events.some((e) => e.startsWith("cluster edge-2: API server unreachable")));
    } finally {
      await cp.restartApiServer(edge2);
    }
    await until(
      "redeemed after the restart",
      tokenOf(a, "net", "during-outage"),
      (x) => x.status?.redeemed === true,
      60_000,
    );
    await until("its link Ready", linkOf(a, "net", "during-outage"), (l) => isTrue(l, "Ready"));
    assert.deepEqual(syncFailures(), []);

    driver.setRouterUp("edge-2", false);
    const down = await until(
      "link down",
      linkOf(a, "net", "to-b"),
      (l) => cond(l, "Operational")?.status === "False",
    );
    assert.equal(down.status?.status, "Pending");
    assert.equal(down.status.message, "Not operational");
    await until("site-a alone", site(a, "net", "site-a"), (s) => s.status?.sitesInNetwork === 1);
    driver.setRouterUp("edge-2", true);
    await until("link up again", linkOf(a, "net", "to-b"), (l) => isTrue(l, "Ready"));
    await until("site-a sees 2 sites again", site(a, "net", "site-a"), (s) => s.status?.sitesInNetwork === 2);
    assert.deepEqual(syncFailures(), []);
  });

  it("reported no error but the violations made on purpose", () => {
    const expected = ["Connector apps/both:", "Link net/typo:"];
    assert.deepEqual(
      driver.errors.filter((e) => !expected.some((x) => e.includes(x))),
      [],
    );
  });
});
