import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { NetworkService } from "../api/network-service.generated.ts";
import type { Network } from "../api/network.generated.ts";
import { isConnectionError } from "../edge/edge-clusters.ts";
import { ApiError } from "../runtime/client.ts";
import { exportedServices } from "./exports.ts";
import { nextLinkStep } from "./link.ts";
import { routingKeyOf, routingKeyOwner, selectorString } from "./network-service.ts";
import type { AccessGrant, AccessToken, Link, Site } from "./skupper.ts";
import { networkHealth, type MemberObservation } from "./status.ts";
import { isLinkOfToken, planTopology, siteNamespace, tokenName } from "./topology.ts";

const cluster = (name: string, labels: Record<string, string>) => ({ metadata: { name, labels } });
const fleet = [
  cluster("store-2", { type: "store" }),
  cluster("store-1", { type: "store" }),
  cluster("central", { type: "central" }),
  cluster("lab", { type: "lab" }),
];
const network = (spec: Partial<Network["spec"]>): Network => ({
  metadata: { name: "retail", namespace: "shop" },
  spec: {
    members: {
      clusterSelector: { matchExpressions: [{ key: "type", operator: "In", values: ["store", "central"] }] },
    },
    ...spec,
  },
});

describe("topology", () => {
  it("mesh: one link per pair, the later member initiating", () => {
    const t = planTopology(network({}), fleet);
    assert.deepEqual(t.members, ["central", "store-1", "store-2"]);
    assert.deepEqual(t.links, [
      { from: "store-1", to: "central" },
      { from: "store-2", to: "central" },
      { from: "store-2", to: "store-1" },
    ]);
    assert.deepEqual([...t.accepting].sort(), ["central", "store-1"]);
  });

  it("hub-and-spoke: spokes link to every hub, hubs mesh among themselves, only hubs accept", () => {
    const hubs = [...fleet, cluster("central-2", { type: "central" })];
    const t = planTopology(
      network({ topology: { type: "hub-and-spoke", hubSelector: { matchLabels: { type: "central" } } } }),
      hubs,
    );
    assert.deepEqual(t.links, [
      { from: "central-2", to: "central" },
      { from: "store-1", to: "central" },
      { from: "store-1", to: "central-2" },
      { from: "store-2", to: "central" },
      { from: "store-2", to: "central-2" },
    ]);
    assert.deepEqual([...t.accepting].sort(), ["central", "central-2"]);
  });

  it("hub-and-spoke without a hub among the members says what to fix", () => {
    const t = planTopology(
      network({ topology: { type: "hub-and-spoke", hubSelector: { matchLabels: { type: "lab" } } } }),
      fleet,
    );
    assert.equal(t.links.length, 0);
    assert.match(t.problem ?? "", /no member cluster matches hubSelector/);
  });

  it("a member leaving removes exactly the links that touch it", () => {
    const before = planTopology(network({}), fleet).links;
    const after = planTopology(
      network({}),
      fleet.filter((c) => c.metadata.name !== "store-1"),
    ).links;
    assert.deepEqual(
      after,
      before.filter((l) => l.from !== "store-1" && l.to !== "store-1"),
    );
  });

  it("names: site namespace, tokens and the links Skupper makes of them", () => {
    assert.equal(siteNamespace(network({})), "outpost-network-retail");
    assert.equal(siteNamespace(network({ namespace: "skupper" })), "skupper");
    assert.equal(
      siteNamespace({ ...network({}), metadata: { name: "a.b", namespace: "x" } }).includes("."),
      false,
    );
    const t = tokenName("central");
    assert.equal(isLinkOfToken(t, t), true);
    assert.equal(isLinkOfToken(`${t}-2`, t), true);
    assert.equal(isLinkOfToken(`${t}-x`, t), false);
    assert.equal(isLinkOfToken(`${t}-2`, `${t}-2`), true);
    assert.ok(tokenName("x".repeat(100)).length <= 63);
  });
});

describe("network health", () => {
  const member = (name: string, o: Partial<MemberObservation> = {}): MemberObservation => ({
    name,
    siteReady: true,
    servicesBound: 0,
    ...o,
  });

  it("ready only when every site is ready and every link is up", () => {
    const h = networkHealth(
      [member("a", { servicesBound: 2 }), member("b")],
      [{ from: "b", to: "a", state: "connected" }],
    );
    assert.equal(h.ready, true);
    assert.equal(h.summary?.servicesBound, 2);
    assert.deepEqual(h.clusters, []);
    assert.equal(h.message, "2 members, all 1 link up");
  });

  it("counts links per cluster and lists the worst first, capped", () => {
    const many = Array.from({ length: 30 }, (_, i) => member(`m${String(i).padStart(2, "0")}`));
    const links = many
      .slice(1)
      .map((m) => ({ from: m.name, to: "m00", state: "pending" as const, message: "x" }));
    const h = networkHealth(
      [
        ...many,
        member("gone", {
          unreachable: "cluster gone is unreachable: connect ECONNREFUSED",
          siteReady: false,
        }),
      ],
      [...links, { from: "gone", to: "m00", state: "failed", message: "boom" }],
    );
    assert.equal(h.ready, false);
    assert.equal(h.clusters?.length, 20);
    const [gone, hub] = h.clusters ?? [];
    assert.ok(gone && hub);
    assert.equal(gone.name, "gone");
    assert.equal(gone.unreachable, true);
    assert.equal(hub.name, "m00");
    assert.equal(hub.linksPending, 29);
    assert.equal(hub.linksFailed, 1);
    assert.deepEqual(h.unreachable, ["gone"]);
    assert.equal(h.summary?.unreachable, 1);
    assert.match(h.message, /^0\/30 links up, 1 failed, 1 member unreachable, 30\/31 sites ready; gone: /);
  });

  it("a network without members is not ready and says why", () => {
    const h = networkHealth([], []);
    assert.equal(h.ready, false);
    assert.equal(h.message, "no cluster matches the member selector");
  });
});

describe("network services", () => {
  const svc = (name: string, created: string, routingKey?: string): NetworkService => ({
    metadata: { name, namespace: "shop", creationTimestamp: created },
    spec: {
      networkRef: { name: "n" },
      deploymentRef: { name: "d" },
      application: "db",
      service: "db",
      port: 5432,
      ...(routingKey ? { routingKey } : {}),
    },
  });

  it("routing keys default to namespace-name, and the oldest user of a key keeps it", () => {
    const a = svc("a", "2026-01-01T00:00:00Z", "db");
    const b = svc("b", "2026-01-02T00:00:00Z", "db");
    const c = svc("c", "2026-01-03T00:00:00Z");
    assert.equal(routingKeyOf(c), "shop-c");
    assert.equal(routingKeyOwner(a, [a, b, c]), undefined);
    assert.equal(routingKeyOwner(b, [a, b, c])?.metadata.name, "a");
    assert.equal(routingKeyOwner(c, [a, b, c]), undefined);
  });

  it("selectors are written as Skupper reads them", () => {
    assert.equal(
      selectorString({ "app.kubernetes.io/name": "db", app: "x" }),
      "app=x,app.kubernetes.io/name=db",
    );
  });

  it("an AppDeployment with a networkRef exports every service its applications export", () => {
    const dep = {
      metadata: { name: "shop", namespace: "retail", uid: "u1" },
      spec: { packageRef: { name: "shop", version: "1.0.0" }, networkRef: { name: "retail" } },
    } as unknown as AppDeployment;
    const pkg = {
      metadata: { name: "shop-1.0.0" },
      spec: {
        name: "shop",
        version: "1.0.0",
        applications: [
          { name: "db", version: "1.0.0" },
          { name: "web", version: "1.0.0" },
        ],
      },
    } as unknown as DeploymentPackage;
    const apps = [
      {
        metadata: {},
        spec: { name: "db", version: "1.0.0", serviceExports: [{ service: "db-pg", port: 5432 }] },
      },
      { metadata: {}, spec: { name: "db", version: "0.9.0", serviceExports: [{ service: "old", port: 1 }] } },
      { metadata: {}, spec: { name: "web", version: "1.0.0" } },
    ] as unknown as Application[];
    const out = exportedServices(dep, pkg, apps);
    assert.equal(out.length, 1);
    const [first] = out;
    assert.ok(first);
    assert.equal(first.metadata.name, "shop-db-db-pg-5432");
    assert.deepEqual(first.spec, {
      networkRef: { name: "retail" },
      deploymentRef: { name: "shop" },
      application: "db",
      service: "db-pg",
      port: 5432,
    });
    assert.equal(first.metadata.ownerReferences?.[0]?.uid, "u1");
    const without = { ...dep, spec: { ...dep.spec, networkRef: undefined } } as AppDeployment;
    assert.deepEqual(exportedServices(without, pkg, apps), []);
  });
});

describe("edge errors", () => {
  it("tells a cluster that did not answer from one that answered with an error", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    const timeout = Object.assign(new Error("Headers Timeout Error"), { code: "UND_ERR_HEADERS_TIMEOUT" });
    const wrapped = Object.assign(new Error("fetch failed"), { cause: refused });
    assert.equal(isConnectionError(refused), true);
    assert.equal(isConnectionError(timeout), true);
    assert.equal(isConnectionError(wrapped), true);
    assert.equal(isConnectionError(new ApiError(503, "unavailable", "GET /")), false);
    assert.equal(isConnectionError(new TypeError("x is undefined")), false);
  });
});

describe("the next step of a link", () => {
  const now = new Date("2026-11-22T10:00:00Z");
  const readyStatus = { status: "Ready", conditions: [{ type: "Ready", status: "True" }] };
  const site: Site = {
    metadata: { name: "central" },
    spec: { linkAccess: "default" },
    status: { ...readyStatus, endpoints: [{ name: "inter-router", host: "h", port: "55671" }] },
  };
  const grant = (status: Partial<NonNullable<AccessGrant["status"]>> = {}): AccessGrant => ({
    metadata: { name: "outpost-from-store-1", uid: "g1" },
    spec: { redemptionsAllowed: 1, expirationWindow: "30m" },
    status: {
      ...readyStatus,
      url: "https://grants/g1",
      code: "c0de",
      ca: "PEM",
      redemptions: 0,
      expirationTime: "2026-11-22T10:30:00Z",
      ...status,
    },
  });
  const token = (
    status: NonNullable<AccessToken["status"]> = {},
    url = "https://grants/g1",
  ): AccessToken => ({
    metadata: { name: "outpost-to-central" },
    spec: { url, code: "c0de", ca: "PEM" },
    status,
  });
  const link = (status: NonNullable<Link["status"]>): Link => ({
    metadata: { name: "outpost-to-central" },
    spec: {},
    status,
  });
  const step = (input: Partial<Parameters<typeof nextLinkStep>[0]>) =>
    nextLinkStep({ from: "store-1", to: "central", links: [], site, now, ...input });

  it("goes grant → token → link", () => {
    assert.deepEqual(step({}).action, { kind: "createGrant" });
    assert.equal(
      step({ grant: grant({ url: undefined, status: "Pending", conditions: [] }) }).action.kind,
      "none",
    );
    assert.deepEqual(step({ grant: grant() }).action, {
      kind: "createToken",
      url: "https://grants/g1",
      code: "c0de",
      ca: "PEM",
      grantUid: "g1",
    });
    const redeeming = step({ grant: grant(), token: token() });
    assert.deepEqual([redeeming.state, redeeming.action.kind], ["pending", "none"]);
    const up = step({
      grant: grant({ redemptions: 1 }),
      token: token({ redeemed: true }),
      links: [link(readyStatus)],
    });
    assert.deepEqual([up.state, up.action.kind], ["connected", "none"]);
  });

  it("waits for the accepting site, and fails with its error", () => {
    const waiting = step({ site: { ...site, status: { status: "Pending", message: "Pending" } } });
    assert.deepEqual([waiting.state, waiting.action.kind], ["pending", "none"]);
    assert.match(waiting.message ?? "", /waiting for the site on central to accept links \(Pending\)/);
    const failed = step({
      site: { ...site, status: { status: "Error", message: "Unsupported value for LinkAccess: x" } },
    });
    assert.equal(failed.state, "failed");
    assert.match(failed.message ?? "", /Unsupported value for LinkAccess/);
  });

  it("replaces a grant that expired or was used before any token was made", () => {
    assert.deepEqual(step({ grant: grant({ expirationTime: "2026-11-22T09:59:59Z" }) }).action, {
      kind: "deleteGrant",
    });
    assert.deepEqual(step({ grant: grant({ redemptions: 1 }) }).action, { kind: "deleteGrant" });
  });

  it("starts over when a token cannot be redeemed any more, or its grant expired first", () => {
    const used = token({
      status: "Error",
      message: "Controller got failed response: 404 (Not Found) No such access granted",
    });
    assert.deepEqual(step({ grant: grant({ redemptions: 1 }), token: used }).action, { kind: "restart" });
    const expired = step({ grant: grant({ expirationTime: "2026-11-22T09:00:00Z" }), token: token() });
    assert.deepEqual(
      [expired.action.kind, expired.message],
      ["restart", "access grant expired before redemption; issuing a new one"],
    );
  });

  it("reports other redemption errors as failed and leaves them to Skupper's retries", () => {
    const refused = token({
      status: "Error",
      message: 'Controller got error: Post "https://grants/g1": dial tcp: connection refused',
    });
    const s = step({ grant: grant(), token: refused });
    assert.deepEqual([s.state, s.action.kind], ["failed", "none"]);
    assert.match(s.message ?? "", /redeeming the access token on store-1: .*connection refused/);
  });

  it("drops a token of an earlier grant, and starts over when a redeemed token's link is gone", () => {
    assert.deepEqual(step({ grant: grant(), token: token({}, "https://grants/old") }).action, {
      kind: "deleteToken",
    });
    assert.deepEqual(step({ grant: grant({ redemptions: 1 }), token: token({ redeemed: true }) }).action, {
      kind: "restart",
    });
  });

  it("reports a link that is not up with its message", () => {
    const connecting = step({
      token: token({ redeemed: true }),
      links: [link({ status: "Pending", message: "Not operational" })],
    });
    assert.deepEqual([connecting.state, connecting.action.kind], ["pending", "none"]);
    const failed = step({
      token: token({ redeemed: true }),
      links: [link({ status: "Error", message: 'TLS credentials secret "x" not found' })],
    });
    assert.equal(failed.state, "failed");
  });
});
