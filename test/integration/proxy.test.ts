// The service proxy end to end: real TokenReview and SubjectAccessReview on the management
// API server with real ServiceAccount tokens and Outpost's project roles, a real edge API
// server whose service proxy reaches a web application on this machine (edge-backend.ts),
// and the deploy operator delivering the deployment that exports it. Streaming, WebSocket,
// the session cookie, header hygiene, redirects, the rate limit, the access log — and every
// way in that must be refused.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { request } from "undici";
import WebSocket from "ws";
import { AppDeploymentResource } from "../../operators/api/resources.generated.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import { ServiceProxy, sessionCookie } from "../../operators/proxy/server.ts";
import type { KubeClient, KubeObject, ResourceType } from "../../operators/runtime/client.ts";
import { namespacesResource } from "../../operators/runtime/core.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { useControlPlane } from "../support/controlplane.ts";
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

const route = "/retail/store-1/shop/web-ui:80";

async function get(path: string, headers: Record<string, string> = {}, method = "GET", body?: string) {
  const res = await request(`${base}${path}`, { method: method as "GET", headers, body });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** A request sent byte for byte (no client-side URL normalization), read until close. */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(proxy.port, "127.0.0.1", () => {
      const lines = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      socket.write(`GET ${path} HTTP/1.1\r\nHost: proxy\r\n${lines}Connection: close\r\n\r\n`);
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
    const res = await request(`${base}${route}/stream`, { headers: bearer("alice") });
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
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}${route}/ws`, { headers: bearer("alice") });
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
    const denied = new WebSocket(`ws://127.0.0.1:${proxy.port}${route}/ws`, { headers: bearer("victor") });
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
    assert.equal(status, 403);
  });

  it("logs in with a token and then works with the session cookie", async () => {
    const login = await get(
      "/_login",
      { "content-type": "application/x-www-form-urlencoded" },
      "POST",
      `token=${encodeURIComponent(tokens.alice ?? "")}`,
    );
    assert.equal(login.status, 204);
    const cookie = String(login.headers["set-cookie"]);
    assert.match(cookie, new RegExp(`^${sessionCookie}=[^;]+; Path=/; HttpOnly; SameSite=Strict$`));
    const res = await get(`${route}/echo`, { cookie: cookie.split(";")[0] ?? "" });
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.text) as { headers: Record<string, string> }).headers.cookie, undefined);
    assert.equal((await get("/_login", {}, "POST", "token=not-a-token")).status, 401);
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
      ["a user of another project", `${route}/`, bearer("mallory"), 403],
      ["a viewer without the proxy right", `${route}/`, bearer("victor"), 403],
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
    assert.match(
      denied.text,
      /system:serviceaccount:retail:victor may not get appdeployments\/proxy of shop in project retail/,
    );
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
      secureCookie: false,
    });
    await fresh.listen(0, "127.0.0.1");
    try {
      const res = await request(`http://127.0.0.1:${fresh.port}${route}/`, { headers: bearer("alice") });
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
        const res = await request(`http://127.0.0.1:${limited.port}${route}/`, { headers: bearer("alice") });
        await res.body.text();
        statuses.push(res.statusCode);
        if (res.statusCode === 429) assert.ok(Number(res.headers["retry-after"]) >= 1);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      // Another user has a bucket of their own.
      const other = await request(`http://127.0.0.1:${limited.port}${route}/`, { headers: bearer("victor") });
      await other.body.text();
      assert.equal(other.statusCode, 403);
    } finally {
      await limited.close(500);
    }
  });
});
