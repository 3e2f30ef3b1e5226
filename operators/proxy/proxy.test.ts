import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rewriteSetCookies } from "./cookies.ts";
import { parseBaseDomain, parseHost, routeHost, routeLabel } from "./origin.ts";
import { RateLimiter } from "./ratelimit.ts";
import { canonicalJson } from "../catalog/digest.ts";
import { accessReviewKey, ReviewCache, userKey } from "./reviews.ts";
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
      "outpost_proxy_session",
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

describe("one origin per route", () => {
  it("derives a DNS label from the route: base32 of 20 bytes of its sha256", () => {
    // Expected values from Python's base64.b32encode(sha256(...)[:20]).lower().
    assert.equal(routeLabel(route), "fqpctumjo6v62lzfkuk7bumh6u73wr5l");
    assert.equal(
      routeLabel(parseRoute("/retail/store-1/shop/web-ui:81/")),
      "hu6voilcofojcmdi2pmduuaynsflti3n",
    );
    assert.equal(routeLabel(parseRoute("/retail/store-1/shop/web-ui:80/other")), routeLabel(route));
    assert.equal(
      routeHost(route, "proxy.example.com", "8443"),
      "fqpctumjo6v62lzfkuk7bumh6u73wr5l.proxy.example.com:8443",
    );
  });

  it("parses the Host strictly", () => {
    const base = parseBaseDomain("Proxy.Example.com");
    assert.equal(base, "proxy.example.com");
    const label = routeLabel(route);
    assert.deepEqual(parseHost(`${label}.proxy.example.com`, base), { kind: "route", label, port: "" });
    assert.deepEqual(parseHost(`${label.toUpperCase()}.PROXY.example.com:8443`, base), {
      kind: "route",
      label,
      port: "8443",
    });
    assert.deepEqual(parseHost("proxy.example.com:80", base), { kind: "base", port: "80" });
    for (const bad of [
      undefined,
      ["proxy.example.com", "proxy.example.com"],
      "",
      "evil.example",
      "proxy.example.com.",
      `${label}.proxy.example.com.`,
      `a.${label}.proxy.example.com`,
      `${label}proxy.example.com`,
      `${label}.proxy.example.com.evil.example`,
      `${label}.proxy.example.com:0`,
      `${label}.proxy.example.com:99999`,
      `${label}.proxy.example.com:`,
      `user@${label}.proxy.example.com`,
      `-x.proxy.example.com`,
      "127.0.0.1",
      "[::1]:80",
    ])
      assert.equal(parseHost(bad, base), undefined, String(bad));
    for (const bad of ["", "proxy.example.com.", "a..b", "-a.b", "a_b.c"])
      assert.throws(() => parseBaseDomain(bad), bad);
  });
});

describe("upstream cookies", () => {
  const prefix = "/retail/store-1/shop/web-ui:80";
  it("drops Domain, puts Path under the route and drops the session cookie's name", () => {
    assert.deepEqual(
      rewriteSetCookies(
        [
          "outpost_proxy_session=evil; Domain=proxy.example.com; Path=/",
          "OUTPOST_PROXY_SESSION=evil; Path=/retail",
          "app=1; Domain=.proxy.example.com; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=60",
          "deep=a+b%20c; Path=/static/js",
          "nopath=1",
          "relative=1; Path=static",
          "=nameless",
        ],
        prefix,
        "outpost_proxy_session",
      ),
      [
        `app=1; Max-Age=60; Path=${prefix}; HttpOnly; Secure; SameSite=Lax`,
        `deep=a+b%20c; Path=${prefix}/static/js`,
        "nopath=1",
        "relative=1",
      ],
    );
    const headers = responseHeaders(
      { "set-cookie": ["outpost_proxy_session=evil; Path=/"], "x-app": "1" },
      route,
      "outpost_proxy_session",
    );
    assert.deepEqual(headers, { "x-app": "1" });
  });
});

describe("review caches", () => {
  it("keys SubjectAccessReviews by the whole user, canonically", () => {
    const attrs = { namespace: "retail", verb: "get", name: "shop" };
    const alice = { username: "alice", uid: "1", groups: ["a", "b"], extra: { scopes: ["x"], team: ["t"] } };
    const key = accessReviewKey(userKey(alice), attrs);
    assert.equal(
      accessReviewKey(
        userKey({ extra: { team: ["t"], scopes: ["x"] }, groups: ["a", "b"], uid: "1", username: "alice" }),
        { name: "shop", verb: "get", namespace: "retail" },
      ),
      key,
      "the order of keys does not matter",
    );
    for (const other of [
      { ...alice, uid: "2" },
      { ...alice, uid: undefined },
      { ...alice, extra: { scopes: ["y"], team: ["t"] } },
      { ...alice, extra: { scopes: ["x"] } },
      { ...alice, groups: ["a"] },
      { ...alice, username: "bob" },
    ])
      assert.notEqual(accessReviewKey(userKey(other), attrs), key, JSON.stringify(other));
    assert.notEqual(accessReviewKey(userKey(alice), { ...attrs, verb: "create" }), key);
    assert.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: "x" }), '{"a":"x","b":[1,{"c":2,"d":1}]}');
  });

  it("serves positive answers stale while one refresh runs, never past 3× the TTL, negatives shorter", async () => {
    let now = 1_000_000;
    const answers = new Map<string, string | undefined>([["good", "user"]]);
    const calls: string[] = [];
    const cache = new ReviewCache<{ name: string }, string>({
      review: (token) => {
        calls.push(token);
        const name = answers.get(token);
        return Promise.resolve(name === undefined ? undefined : { name });
      },
      ttlMs: 1000,
      negativeTtlMs: 200,
      max: 10,
      negativeMax: 10,
      now: () => now,
    });
    assert.equal(cache.known("k"), false);
    assert.deepEqual(await cache.get("k", "good"), { name: "user" });
    assert.equal(cache.known("k"), true);
    now += 500;
    await cache.get("k", "good");
    assert.equal(calls.length, 1, "fresh: reused");
    now += 1000;
    answers.set("good", "user2");
    assert.deepEqual(await cache.get("k", "good"), { name: "user" }, "stale: served while refreshing");
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.length, 2);
    assert.deepEqual(await cache.get("k", "good"), { name: "user2" });
    now += 3001;
    assert.equal(cache.known("k"), false, "older than 3× the TTL: not served");
    assert.deepEqual(await cache.get("k", "good"), { name: "user2" });
    assert.equal(calls.length, 3);

    // Negative answers: remembered for their shorter TTL.
    assert.equal(await cache.get("bad", "bad"), undefined);
    assert.equal(cache.known("bad"), true);
    await cache.get("bad", "bad");
    assert.equal(calls.length, 4);
    now += 201;
    assert.equal(cache.known("bad"), false);

    // A token revoked while its answer is stale: the stale answer is served once (the
    // refresh is in the background), then never again.
    now += 1500;
    answers.delete("good");
    assert.deepEqual(await cache.get("k", "good"), { name: "user2" });
    await new Promise((r) => setImmediate(r));
    now += 500;
    assert.equal(await cache.get("k", "good"), undefined);
  });
});
