// The service proxy end to end: real TokenReview and SubjectAccessReview on the management
// API server with real ServiceAccount tokens and Outpost's project roles, a real edge API
// server whose service proxy reaches a web application on this machine (edge-backend.ts),
// and the deploy operator delivering the deployment that exports it. Streaming, WebSocket,
// the session cookie, header hygiene, redirects, the rate limit, the access log — and every
// way in that must be refused: each route on a host of its own, cookies kept to their
// route, no TokenReview flood from one address, no shared authorization answers, no way
// to tell which routes of another project exist.
import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { request } from "undici";
import WebSocket from "ws";
import { AppDeploymentResource } from "../../operators/api/resources.generated.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import { routeLabel } from "../../operators/proxy/origin.ts";
import { parseRoute, RouteError } from "../../operators/proxy/route.ts";
import { ServiceProxy, sessionCookie } from "../../operators/proxy/server.ts";
import type { KubeClient, KubeObject, ResourceType } from "../../operators/runtime/client.ts";
import { namespacesResource } from "../../operators/runtime/core.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import {
  shopDeployment,
  shopExporting,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";
import { startEdgeBackend, type EdgeBackend } from "../support/edge-backend.ts";
import { startEdges, type Edges } from "../support/interconnect.ts";
import { startOperator } from "../support/operator.ts";
import { roleBindingsResource } from "../../operators/tenancy/project.ts";

const controlPlane = useControlPlane({ edges: 3 });
const ns = "retail";
const started: (() => Promise<void>)[] = [];
let fx: DeployFixture;
let edges: Edges;
let client: KubeClient;
let backend: EdgeBackend;
let proxy: ServiceProxy;
let base: string;
const tokens: Record<string, string> = {};
const accessLog: Record<string, unknown>[] = [];

const serviceAccounts: ResourceType = {
  group: "",
  version: "v1",
  kind: "ServiceAccount",
  plural: "serviceaccounts",
  namespaced: true,
};

/** A ServiceAccount in `namespace` with project role `role` there, and a real token for it. */
async function user(namespace: string, name: string, role: string): Promise<string> {
  await client.create(serviceAccounts, { metadata: { name, namespace } });
  await client.create(roleBindingsResource, {
    metadata: { name: `${name}-${role}`, namespace },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: `outpost:project-${role}` },
    subjects: [{ kind: "ServiceAccount", name, namespace }],
  } as KubeObject);
  return tokenOf(namespace, name);
}

const route = "/retail/store-1/shop/web-ui:80";
/** The same application on another cluster: another route, another host. */
const routeB = "/retail/store-2/shop/web-ui:80";
const baseDomain = "proxy.test";

/** The host a path's route is served on (the base domain when the path is no route). */
function hostFor(path: string, port = proxy.port): string {
  try {
    return `${routeLabel(parseRoute(path))}.${baseDomain}:${port}`;
  } catch (err) {
    if (err instanceof RouteError) return `${baseDomain}:${port}`;
    throw err;
  }
}

/** A request to the proxy on 127.0.0.1, with the Host of its route unless `headers` name one. */
async function get(path: string, headers: Record<string, string> = {}, method = "GET", body?: string) {
  const res = await request(`${base}${path}`, {
    method: method as "GET",
    headers: { host: hostFor(path), ...headers },
    body,
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** The Set-Cookie headers of a response, as a list. */
const setCookies = (headers: Record<string, string | string[] | undefined>): string[] =>
  [headers["set-cookie"] ?? []].flat();

/** A ServiceAccount token for an existing account. */
async function tokenOf(namespace: string, name: string): Promise<string> {
  const tr = await client.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 3600 },
      },
    },
  );
  return tr.status.token;
}

/** Requests the management API server has served for `resource` (its /metrics, read as the admin). */
async function apiRequests(resource: string): Promise<number> {
  const { origin, headers, dispatcher } = await client.transport();
  const res = await request(`${origin}/metrics`, { dispatcher, headers });
  const text = await res.body.text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("apiserver_request_total{") && line.includes(`resource="${resource}"`))
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** A request sent byte for byte (no client-side URL normalization), read until close. */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(proxy.port, "127.0.0.1", () => {
      const host = headers.host ?? hostFor(path);
      const rest = Object.fromEntries(Object.entries(headers).filter(([k]) => k !== "host"));
      const other = Object.entries(rest)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${other}Connection: close\r\n\r\n`);
    });
    let out = "";
    socket.on("data", (d: Buffer) => (out += d.toString()));
    socket.on("error", reject);
    socket.on("close", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
      resolve({ status, text: out.slice(out.indexOf("\r\n\r\n") + 4) });
    });
  });
}

const bearer = (who: string): Record<string, string> => ({ authorization: `Bearer ${tokens[who] ?? ""}` });

describe("service proxy", () => {
  let deploy: Manager;
  before(async () => {
    const cp = controlPlane();
    fx = await startDeployFixture(cp, ns);
    started.push(() => fx.stop());
    client = fx.client;
    edges = await startEdges(cp, client, ns);
    started.push(() => edges.stop());
    backend = await startEdgeBackend();
    started.push(() => backend.stop());
    deploy = await startOperator("outpost-deploy", kubeConfigFromFile(cp.management.kubeconfig), (m) => {
      registerDeploy(m);
    });
    started.push(() => deploy.stop());

    // web 2.0.0 exports its UI; the deployment runs it on the stores in namespace shop.
    await shopExporting(client, ns, "web", [{ service: "web-ui", port: 80, displayName: "Web UI" }]);
    await client.create(
      AppDeploymentResource,
      shopDeployment(ns, "shop", { packageRef: { name: "shop", version: "2.0.0" } }),
    );
    await waitForDeployment(client, ns, "shop", "delivered", (d) => d.status?.summary?.targets === 2);

    const store1 = edges.clients["store-1"];
    await store1.create(namespacesResource, { metadata: { name: "shop" } });
    await backend.publish(store1, "shop", "web-ui", 80);
    await backend.publish(store1, "shop", "admin", 80); // running, but not exported
    const store2 = edges.clients["store-2"];
    await store2.create(namespacesResource, { metadata: { name: "shop" } });
    await backend.publish(store2, "shop", "web-ui", 80);

    await client.create(namespacesResource, { metadata: { name: "other" } });
    tokens.alice = await user(ns, "alice", "deployer");
    tokens.victor = await user(ns, "victor", "viewer");
    tokens.mallory = await user("other", "mallory", "deployer");

    const logStream = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean))
          accessLog.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    proxy = new ServiceProxy({
      management: client,
      logger: pino({ level: "info" }, logStream),
      baseDomain,
      secureCookie: false,
      cacheMs: 1_000,
    });
    await proxy.listen(0, "127.0.0.1");
    started.push(() => proxy.close(1_000));
    base = `http://127.0.0.1:${proxy.port}`;
  });

  after(async () => {
    for (const stop of started.reverse()) await stop();
  });

  it("forwards a request to the service on the edge, without the user's credentials", async () => {
    const res = await get(`${route}/echo?x=1`, {
      ...bearer("alice"),
      cookie: `theme=dark; ${sessionCookie}=leak`,
      "impersonate-user": "system:admin",
      "impersonate-group": "system:masters",
      "x-remote-user": "system:admin",
      "x-custom": "kept",
    });
    assert.equal(res.status, 200, res.text);
    const echo = JSON.parse(res.text) as { method: string; url: string; headers: Record<string, string> };
    assert.equal(echo.url, "/echo?x=1");
    assert.equal(echo.headers.authorization, undefined);
    assert.equal(echo.headers.cookie, "theme=dark");
    assert.equal(echo.headers["x-custom"], "kept");
    for (const h of Object.keys(echo.headers)) {
      assert.ok(!h.startsWith("impersonate-") && !h.startsWith("x-remote-"), `${h} reached the backend`);
    }
    assert.ok(res.headers["set-cookie"], "the application's own cookies come back");
    const line = accessLog.find((l) => l.msg === "access" && l.status === 200);
    assert.ok(line);
    assert.equal(line.user, "system:serviceaccount:retail:alice");
    assert.equal(line.path, `${route}/echo`);
  });

  it("passes request bodies for writes by a deployer", async () => {
    const res = await get(
      `${route}/echo`,
      { ...bearer("alice"), "content-type": "text/plain" },
      "POST",
      "hello edge",
    );
    assert.equal(res.status, 200, res.text);
    assert.equal((JSON.parse(res.text) as { body: string }).body, "hello edge");
  });

  it("streams responses instead of buffering them", async () => {
    const t0 = Date.now();
    const res = await request(`${base}${route}/stream`, {
      headers: { ...bearer("alice"), host: hostFor(route) },
    });
    const chunks: { at: number; text: string }[] = [];
    for await (const c of res.body) chunks.push({ at: Date.now() - t0, text: String(c) });
    assert.equal(chunks.map((c) => c.text).join(""), "first\nsecond\n");
    const first = chunks[0];
    const last = chunks[chunks.length - 1];
    assert.ok(
      first && last && last.at - first.at >= 400,
      `chunks at ${chunks.map((c) => c.at).join(", ")} ms`,
    );
  });

  it("joins WebSocket connections", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}${route}/ws`, {
      headers: { ...bearer("alice"), host: hostFor(route) },
    });
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on("open", () => {
        ws.send("ping");
      });
      ws.on("message", (data: Buffer) => {
        resolve(data.toString());
      });
      ws.on("error", reject);
      ws.on("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => {
          reject(new Error(`upgrade refused: ${res.statusCode ?? 0} ${body}`));
        });
      });
    });
    assert.equal(reply, "echo: ping");
    ws.close();
    const denied = new WebSocket(`ws://127.0.0.1:${proxy.port}${route}/ws`, {
      headers: { ...bearer("victor"), host: hostFor(route) },
    });
    const status = await new Promise<number>((resolve) => {
      denied.on("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
      });
      denied.on("open", () => {
        resolve(101);
      });
      denied.on("error", () => {
        resolve(-1);
      });
    });
    assert.equal(status, 404);
  });

  it("logs in with a token and then works with the session cookie", async () => {
    const login = await get(
      "/_login",
      { "content-type": "application/x-www-form-urlencoded", host: hostFor(route) },
      "POST",
      `token=${encodeURIComponent(tokens.alice ?? "")}`,
    );
    assert.equal(login.status, 204);
    const cookie = String(login.headers["set-cookie"]);
    assert.match(cookie, new RegExp(`^${sessionCookie}=[^;]+; Path=/; HttpOnly; SameSite=Strict$`));
    const res = await get(`${route}/echo`, { cookie: cookie.split(";")[0] ?? "" });
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.text) as { headers: Record<string, string> }).headers.cookie, undefined);
    assert.equal((await get("/_login", { host: hostFor(route) }, "POST", "token=not-a-token")).status, 401);
  });

  it("keeps redirects inside the route", async () => {
    const off = await get(
      `${route}/redirect?to=${encodeURIComponent("https://evil.example/phish")}`,
      bearer("alice"),
    );
    assert.equal(off.status, 302);
    assert.equal(off.headers.location, undefined);
    const proto = await get(`${route}/redirect?to=${encodeURIComponent("//evil.example/")}`, bearer("alice"));
    assert.equal(proto.headers.location, undefined);
    const inside = await get(`${route}/redirect?to=${encodeURIComponent("/login?next=1")}`, bearer("alice"));
    assert.equal(inside.headers.location, `${route}/login?next=1`);
  });

  it("refuses every way in it must refuse", async () => {
    const seenBefore = backend.seen.length;
    const cases: [string, string, Record<string, string>, number][] = [
      ["no token", `${route}/`, {}, 401],
      ["an invalid token", `${route}/`, { authorization: "Bearer not-a-token" }, 401],
      [
        "a malformed Authorization",
        `${route}/`,
        { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` },
        401,
      ],
      ["a user of another project", `${route}/`, bearer("mallory"), 404],
      ["a viewer without the proxy right", `${route}/`, bearer("victor"), 404],
      ["a service that is not exported", "/retail/store-1/shop/admin:80/", bearer("alice"), 404],
      [
        "the exported service on a cluster it does not run on",
        "/retail/central/shop/web-ui:80/",
        bearer("alice"),
        404,
      ],
      [
        "the exported service in another namespace",
        "/retail/store-1/kube-system/web-ui:80/",
        bearer("alice"),
        404,
      ],
      ["another project's route", "/other/store-1/shop/web-ui:80/", bearer("alice"), 404],
      ["dot-dot", `${route}/../../../../api/v1/secrets`, bearer("alice"), 400],
      ["a dot segment", `${route}/./echo`, bearer("alice"), 400],
      ["encoded dot-dot", `${route}/%2e%2e/%2E%2E/secrets`, bearer("alice"), 400],
      ["double-encoded dot-dot", `${route}/%252e%252e/secrets`, bearer("alice"), 400],
      ["an encoded slash", `${route}/a%2f..%2fsecrets`, bearer("alice"), 400],
      ["a backslash", `${route}/a%5c..%5csecrets`, bearer("alice"), 400],
      ["a control character", `${route}/a%00b`, bearer("alice"), 400],
      ["a malformed escape", `${route}/a%zz`, bearer("alice"), 400],
      ["dot-dot before the service", "/retail/store-1/../store-1/shop/web-ui:80/", bearer("alice"), 404],
      ["an absolute URL as the target", `http://evil.example${route}/`, bearer("alice"), 400],
    ];
    for (const [what, path, headers, status] of cases) {
      const res = await raw(path, headers);
      assert.equal(res.status, status, `${what}: ${res.status} ${res.text}`);
    }
    assert.equal(backend.seen.length, seenBefore, "no refused request reached the backend");
    const denied = await get(`${route}/`, bearer("victor"));
    assert.equal(denied.text, "no such route, or you may not open it\n");
    // The reason is in the access log, for the operator of the proxy.
    const line = accessLog.findLast(
      (l) => l.msg === "access" && l.user === "system:serviceaccount:retail:victor",
    );
    assert.equal(line?.reason, "may not get appdeployments/proxy of shop");
  });

  it("refuses smuggling: ambiguous framing never reaches the backend", async () => {
    const seenBefore = backend.seen.length;
    const raw = await new Promise<string>((resolve) => {
      const socket = connect(proxy.port, "127.0.0.1", () => {
        socket.write(
          `POST ${route}/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokens.alice ?? ""}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET ${route}/admin HTTP/1.1\r\nHost: x\r\n\r\n`,
        );
      });
      let out = "";
      socket.on("data", (d) => (out += d.toString()));
      socket.on("close", () => {
        resolve(out);
      });
      setTimeout(() => socket.destroy(), 3_000);
    });
    assert.match(raw, /^HTTP\/1\.1 400/);
    assert.equal(backend.seen.length, seenBefore);
  });

  it("serves a route from the first request after a start", async () => {
    // Routes are resolved from caches, Fleet's kinds among them. Fleet's GitRepos are listed
    // slowly here (each list answered 500 ms late): a proxy that listened before that list
    // completed answered 404 for a route that exists.
    const slowGitRepos = new Proxy(client, {
      get(target, prop) {
        if (prop === "list") {
          return async (r: ResourceType, o?: Parameters<KubeClient["list"]>[1]) => {
            if (r.plural === "gitrepos") await new Promise((resolve) => setTimeout(resolve, 500));
            return target.list(r, o);
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const fresh = new ServiceProxy({
      management: slowGitRepos,
      logger: pino({ level: "silent" }),
      baseDomain,
      secureCookie: false,
    });
    await fresh.listen(0, "127.0.0.1");
    try {
      const res = await request(`http://127.0.0.1:${fresh.port}${route}/`, {
        headers: { ...bearer("alice"), host: hostFor(route, fresh.port) },
      });
      const text = await res.body.text();
      assert.equal(res.statusCode, 200, text);
    } finally {
      await fresh.close(500);
    }
  });

  it("limits the request rate per user", async () => {
    const limited = new ServiceProxy({
      management: client,
      logger: pino({ level: "silent" }),
      baseDomain,
      secureCookie: false,
      // One token in 1000 s: no token comes back while the five requests run, however
      // slow the machine (a rate of 1/s refilled one when the first three took a second).
      rate: 0.001,
      burst: 3,
    });
    await limited.listen(0, "127.0.0.1");
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await request(`http://127.0.0.1:${limited.port}${route}/`, {
          headers: { ...bearer("alice"), host: hostFor(route, limited.port) },
        });
        await res.body.text();
        statuses.push(res.statusCode);
        if (res.statusCode === 429) assert.ok(Number(res.headers["retry-after"]) >= 1);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      // Another user has a bucket of their own.
      const other = await request(`http://127.0.0.1:${limited.port}${route}/`, {
        headers: { ...bearer("victor"), host: hostFor(route, limited.port) },
      });
      await other.body.text();
      assert.equal(other.statusCode, 404);
    } finally {
      await limited.close(500);
    }
  });
  it("serves each route only on its own host, and keeps each route's cookies on it", async () => {
    const hostA = hostFor(route);
    const hostB = hostFor(routeB);
    assert.notEqual(hostA, hostB);
    const seenBefore = backend.seen.length;
    // Route A's content asked on route B's host (and the other way round), on a host under
    // another domain, or with the Host in another case or with an IP: refused, never served.
    assert.equal((await get(`${route}/echo`, { ...bearer("alice"), host: hostB })).status, 421);
    assert.equal((await get(`${routeB}/echo`, { ...bearer("alice"), host: hostA })).status, 421);
    assert.equal(
      (await get(`${route}/echo`, { ...bearer("alice"), host: `${hostA.split(".")[0] ?? ""}.evil.example` }))
        .status,
      400,
    );
    assert.equal(
      (await get(`${route}/echo`, { ...bearer("alice"), host: `127.0.0.1:${proxy.port}` })).status,
      400,
    );
    assert.equal((await get(`${route}/echo`, { ...bearer("alice"), host: `x.${hostA}` })).status, 400);
    assert.equal(backend.seen.length, seenBefore, "nothing reached the backend");
    assert.equal((await get(`${route}/echo`, { ...bearer("alice"), host: hostA.toUpperCase() })).status, 200);

    // A plain GET on the base domain is sent to the route's own host; anything else refused.
    const redirect = await get(`${route}/echo?x=1`, { host: `${baseDomain}:${proxy.port}` });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.location, `http://${hostA}${route}/echo?x=1`);
    assert.equal(
      (await get(`${route}/echo`, { ...bearer("alice"), host: `${baseDomain}:${proxy.port}` }, "POST", "x"))
        .status,
      421,
    );

    // Route B's responses carry no cookie for another host or route.
    const b = await get(`${routeB}/echo`, bearer("alice"));
    assert.equal(b.status, 200, b.text);
    const cookies = setCookies(b.headers);
    assert.ok(cookies.length > 0);
    for (const c of cookies) {
      assert.doesNotMatch(c, /;\s*domain=/i, c);
      assert.match(c, new RegExp(`;\\s*Path=${routeB.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(/|;|$)`), c);
    }

    // A page of route A cannot use route B's session: routes are hosts of the same site,
    // but WebSockets and writes with the session cookie must come from B's own origin.
    const login = await get(
      "/_login",
      { "content-type": "application/x-www-form-urlencoded", host: hostB },
      "POST",
      `token=${encodeURIComponent(tokens.alice ?? "")}`,
    );
    assert.equal(login.status, 204);
    const session = (setCookies(login.headers)[0] ?? "").split(";")[0] ?? "";
    const upgrade = (origin: string): Promise<number> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}${routeB}/ws`, {
          headers: { host: hostB, cookie: session },
          origin,
        });
        ws.on("open", () => {
          ws.close();
          resolve(101);
        });
        ws.on("unexpected-response", (_req, res) => {
          resolve(res.statusCode ?? 0);
        });
        ws.on("error", () => {
          resolve(-1);
        });
      });
    assert.equal(await upgrade(`http://${hostA}`), 403);
    assert.equal(await upgrade(`http://${hostB}`), 101);
    const write = await get(`${routeB}/echo`, { cookie: session, origin: `http://${hostA}` }, "POST", "x");
    assert.equal(write.status, 403);
    assert.equal(
      (await get(`${routeB}/echo`, { cookie: session, origin: `http://${hostB}` }, "POST", "x")).status,
      200,
    );
  });

  it("passes no cookie of a hostile backend for another host, another route, or the session", async () => {
    const hostile = [
      `${sessionCookie}=evil; Domain=${baseDomain}; Path=/`,
      `${sessionCookie}=evil; Path=${route}/deeper`,
      `wide=1; Domain=${baseDomain}; Path=/`,
      `other-route=1; Path=${routeB}`,
      "plain=1",
    ];
    const res = await get(
      `${route}/set-cookie?${hostile.map((c) => `c=${encodeURIComponent(c)}`).join("&")}`,
      bearer("alice"),
    );
    assert.equal(res.status, 200, res.text);
    const cookies = setCookies(res.headers);
    assert.deepEqual(
      cookies.map((c) => c.split("=")[0]),
      ["wide", "other-route", "plain"],
      "no cookie named like the session",
    );
    for (const c of cookies) {
      assert.doesNotMatch(c, /;\s*domain=/i, c);
      const path = /;\s*Path=([^;]*)/i.exec(c)?.[1];
      assert.ok(path === undefined || path === route || path.startsWith(`${route}/`), c);
    }
    // And the session still works: the backend could not replace it.
    const login = await get(
      "/_login",
      { "content-type": "application/x-www-form-urlencoded", host: hostFor(route) },
      "POST",
      `token=${encodeURIComponent(tokens.alice ?? "")}`,
    );
    const cookie = setCookies(login.headers)[0] ?? "";
    assert.match(
      cookie,
      new RegExp(`^${sessionCookie}=[^;]+; Path=/; HttpOnly; SameSite=Strict$`),
      "host-only",
    );
  });

  it("costs at most the client's burst of TokenReviews for a flood of random tokens", async () => {
    const burst = 5;
    const flooded = new ServiceProxy({
      management: client,
      logger: pino({ level: "silent" }),
      baseDomain,
      secureCookie: false,
      clientRate: 0.001,
      clientBurst: burst,
    });
    await flooded.listen(0, "127.0.0.1");
    try {
      const before = await apiRequests("tokenreviews");
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const res = await request(`http://127.0.0.1:${flooded.port}${route}/`, {
          headers: {
            authorization: `Bearer ${randomBytes(24).toString("base64url")}`,
            host: hostFor(route, flooded.port),
          },
        });
        await res.body.text();
        statuses.push(res.statusCode);
        if (res.statusCode === 429) assert.ok(Number(res.headers["retry-after"]) >= 1);
      }
      // The reviews the proxy made are all answered; wait until the metric shows them.
      const made = await eventually("the TokenReviews in the API server's metrics", async () => {
        const n = (await apiRequests("tokenreviews")) - before;
        return n >= burst ? n : undefined;
      });
      assert.equal(made, burst);
      assert.deepEqual(statuses, [...Array<number>(burst).fill(401), ...Array<number>(40 - burst).fill(429)]);
    } finally {
      await flooded.close(500);
    }
  });

  it("asks again for a user with the same name and groups but other extra", async () => {
    // Two tokens of one ServiceAccount: same username, uid and groups; the API server
    // gives each its own extra (authentication.kubernetes.io/credential-id).
    const one = await tokenOf(ns, "alice");
    const two = await tokenOf(ns, "alice");
    interface Reviewed {
      status: { user: { username: string; uid: string; groups: string[]; extra?: object } };
    }
    const review = async (token: string) =>
      (
        (await client.create(
          {
            group: "authentication.k8s.io",
            version: "v1",
            kind: "TokenReview",
            plural: "tokenreviews",
            namespaced: false,
          },
          { metadata: {}, spec: { token } } as KubeObject,
        )) as KubeObject & Reviewed
      ).status.user;
    const [u1, u2] = [await review(one), await review(two)];
    assert.deepEqual([u1.username, u1.uid, u1.groups], [u2.username, u2.uid, u2.groups]);
    assert.notDeepEqual(u1.extra, u2.extra);

    const fresh = new ServiceProxy({
      management: client,
      logger: pino({ level: "silent" }),
      baseDomain,
      secureCookie: false,
    });
    await fresh.listen(0, "127.0.0.1");
    try {
      const send = async (token: string): Promise<number> => {
        const res = await request(`http://127.0.0.1:${fresh.port}${route}/`, {
          headers: { authorization: `Bearer ${token}`, host: hostFor(route, fresh.port) },
        });
        await res.body.text();
        return res.statusCode;
      };
      const before = await apiRequests("subjectaccessreviews");
      assert.equal(await send(one), 200);
      assert.equal(await send(one), 200);
      await eventually("the first SubjectAccessReview in the metrics", async () =>
        (await apiRequests("subjectaccessreviews")) - before >= 1 ? true : undefined,
      );
      assert.equal((await apiRequests("subjectaccessreviews")) - before, 1, "one user, one review");
      assert.equal(await send(two), 200);
      const made = await eventually(
        "a second SubjectAccessReview",
        async () => {
          const n = (await apiRequests("subjectaccessreviews")) - before;
          return n >= 2 ? n : undefined;
        },
        10_000,
      );
      assert.equal(made, 2);
    } finally {
      await fresh.close(500);
    }
  });

  it("answers a user of another project the same for its routes that exist and those that do not", async () => {
    const answers = [];
    for (const path of [
      `${route}/`, // exists, exported
      "/retail/store-1/shop/admin:80/", // runs, not exported
      "/retail/store-1/shop/nothing:80/", // nothing there
      "/retail/nowhere/shop/web-ui:80/", // no such cluster
      "/nope/store-1/shop/web-ui:80/", // no such project
    ]) {
      const res = await get(path, bearer("mallory"));
      answers.push({ status: res.status, text: res.text, type: res.headers["content-type"] });
    }
    assert.equal(answers[0]?.status, 404);
    for (const a of answers) assert.deepEqual(a, answers[0]);
  });
});
