import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RateLimiter } from "./ratelimit.ts";
import {
  mapLocation,
  parseRoute,
  requestHeaders,
  responseHeaders,
  RouteError,
  upstreamPath,
} from "./route.ts";

const route = parseRoute("/retail/store-1/shop/web-ui:80/a/b?x=1");

describe("service proxy routes", () => {
  it("parses a route and maps it to the edge API server's service proxy", () => {
    assert.deepEqual(
      { ...route },
      {
        project: "retail",
        cluster: "store-1",
        namespace: "shop",
        service: "web-ui",
        port: 80,
        rest: "/a/b",
        search: "?x=1",
        prefix: "/retail/store-1/shop/web-ui:80",
      },
    );
    assert.equal(upstreamPath(route), "/api/v1/namespaces/shop/services/web-ui:80/proxy/a/b?x=1");
    assert.equal(
      upstreamPath(parseRoute("/retail/store-1/shop/web-ui:80")),
      "/api/v1/namespaces/shop/services/web-ui:80/proxy/",
    );
  });

  it("refuses paths that could leave the route", () => {
    const refused = (path: string, status: number): void => {
      assert.throws(
        () => parseRoute(path),
        (err: unknown) => err instanceof RouteError && err.status === status,
        path,
      );
    };
    for (const p of [
      "/r/c/ns/s:80/..",
      "/r/c/ns/s:80/a/../../b",
      "/r/c/ns/s:80/./a",
      "/r/c/ns/s:80/%2e%2e/x",
      "/r/c/ns/s:80/%2E%2e/x",
      "/r/c/ns/s:80/%252e%252e/x",
      "/r/c/ns/s:80/%25252e%25252e/x",
      "/r/c/ns/s:80/a%2fb",
      "/r/c/ns/s:80/a%5cb",
      "/r/c/ns/s:80/a\\b",
      "/r/c/ns/s:80/a%0db",
      "/r/c/ns/s:80/%zz",
      "http://evil/r/c/ns/s:80/",
    ])
      refused(p, 400);
    for (const p of [
      "/",
      "/r/c/ns",
      "/r/c/ns/s",
      "/r/c/ns/s:0/",
      "/r/c/ns/s:99999/",
      "/R/c/ns/s:80/",
      "/r/../ns/s:80/",
      "/r/c/ns/-s:80/",
    ])
      refused(p, 404);
  });

  it("cleans request headers: no credentials, impersonation or hop-by-hop headers", () => {
    const out = requestHeaders(
      {
        authorization: "Bearer t",
        cookie: "a=1; outpost_proxy_session=tok; b=2",
        "impersonate-user": "admin",
        "impersonate-extra-scopes": "x",
        "x-remote-user": "admin",
        "x-remote-group": "system:masters",
        connection: "keep-alive, x-hop",
        "x-hop": "1",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        "content-length": "4",
        host: "proxy",
        te: "trailers",
        "proxy-authorization": "Basic x",
        accept: ["text/html", "application/json"],
        "x-kept": "yes",
      },
      "outpost_proxy_session",
    );
    assert.deepEqual(out, { cookie: "a=1; b=2", accept: "text/html, application/json", "x-kept": "yes" });
  });

  it("maps redirects back under the route and drops off-site ones", () => {
    const r = parseRoute("/retail/store-1/shop/web-ui:80/app/page");
    assert.equal(
      mapLocation("/api/v1/namespaces/shop/services/web-ui:80/proxy/login", r),
      "/retail/store-1/shop/web-ui:80/login",
    );
    assert.equal(mapLocation("/login?next=%2F", r), "/retail/store-1/shop/web-ui:80/login?next=%2F");
    assert.equal(mapLocation("other", r), "/retail/store-1/shop/web-ui:80/app/other");
    assert.equal(mapLocation("../../../../x", r), undefined);
    for (const off of [
      "https://evil.example/",
      "//evil.example/",
      "/\\evil.example",
      "\\\\evil.example",
      "javascript:alert(1)",
      "HTTP://x",
    ])
      assert.equal(mapLocation(off, r), undefined, off);
    const headers = responseHeaders(
      { location: "https://evil.example/", "content-length": "3", connection: "close", "x-app": "1" },
      r,
    );
    assert.deepEqual(headers, { "content-length": "3", "x-app": "1" });
  });
});

describe("rate limiter", () => {
  it("allows a burst, then the rate, per key, and forgets idle keys", () => {
    let now = 0;
    const rl = new RateLimiter(2, 3, () => now);
    assert.deepEqual(
      [1, 2, 3, 4].map(() => rl.take("a")),
      [true, true, true, false],
    );
    assert.equal(rl.retryAfter("a"), 1);
    assert.equal(rl.take("b"), true);
    now += 500;
    assert.equal(rl.take("a"), true);
    assert.equal(rl.take("a"), false);
    now += 10_000;
    rl.take("c");
    assert.equal(rl.size, 1, "full buckets are forgotten");
  });
});
