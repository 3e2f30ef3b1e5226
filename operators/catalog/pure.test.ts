// MIME checks, the dependency graph and canonical digests.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalJson, sha256 } from "./digest.ts";
import { findCycle, startOrder } from "./graph.ts";
import { mimeMismatch } from "./mime.ts";
import { effectiveProfiles } from "./package.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";

describe("mimeMismatch", () => {
  const pngBytes = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
  const jpegBytes = Buffer.from("ffd8ffe000104a464946", "hex");
  it("accepts content of the declared type", () => {
    assert.equal(mimeMismatch("image/png", pngBytes), undefined);
    assert.equal(mimeMismatch("image/jpeg", jpegBytes), undefined);
    assert.equal(mimeMismatch("text/plain", Buffer.from("héllo\n\tworld")), undefined);
    assert.equal(mimeMismatch("application/json", Buffer.from('{"a": [1]}')), undefined);
    assert.equal(mimeMismatch("application/yaml", Buffer.from("a: 1\nb: [x]\n")), undefined);
  });
  it("says why content does not match", () => {
    assert.match(mimeMismatch("image/png", jpegBytes) ?? "", /not a PNG image/);
    assert.match(mimeMismatch("image/jpeg", pngBytes) ?? "", /not a JPEG image/);
    assert.match(mimeMismatch("text/plain", pngBytes) ?? "", /not UTF-8 text/);
    assert.match(mimeMismatch("application/json", Buffer.from("{a:")) ?? "", /not JSON/);
    assert.match(mimeMismatch("application/yaml", Buffer.from("a: [1")) ?? "", /not YAML/);
    assert.match(mimeMismatch("image/gif", pngBytes) ?? "", /unsupported MIME type image\/gif/);
  });
});

describe("dependency graph", () => {
  it("reports a cycle with its path", () => {
    const edges = [
      { application: "web", requires: "api" },
      { application: "api", requires: "db" },
      { application: "db", requires: "web" },
    ];
    assert.deepEqual(findCycle(["web", "api", "db", "cache"], edges), ["api", "db", "web", "api"]);
    assert.throws(() => startOrder(["web", "api", "db"], edges), /dependency cycle: api → db → web → api/);
  });
  it("orders applications after what they require", () => {
    const edges = [
      { application: "web", requires: "api" },
      { application: "api", requires: "db" },
      { application: "web", requires: "cache" },
    ];
    assert.equal(findCycle(["web", "api", "db", "cache"], edges), undefined);
    assert.deepEqual(startOrder(["web", "api", "db", "cache"], edges), ["cache", "db", "api", "web"]);
  });
});

describe("digest", () => {
  it("does not depend on key order", () => {
    assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: null }] }), '{"a":[{"c":null,"d":2}],"b":1}');
    assert.equal(sha256({ a: 1, b: 2 }), sha256({ b: 2, a: 1 }));
    assert.notEqual(sha256({ a: 1 }), sha256({ a: 2 }));
    assert.match(sha256("x"), /^sha256:[0-9a-f]{64}$/);
  });
});

describe("effectiveProfiles", () => {
  const app = (name: string, defaultProfile?: string): Application => ({
    metadata: { name: `${name}-1.0.0` },
    spec: {
      name,
      version: "1.0.0",
      chart: { registryRef: { name: "r" }, name, version: "1" },
      ...(defaultProfile ? { defaultProfile } : {}),
    },
  });
  const apps = new Map<string, Application | undefined>([
    ["web-1.0.0", app("web", "standard")],
    ["db-1.0.0", app("db")],
  ]);
  const pkg = (profiles?: DeploymentPackage["spec"]["profiles"]): DeploymentPackage => ({
    metadata: { name: "shop-1.0.0" },
    spec: {
      name: "shop",
      version: "1.0.0",
      applications: [
        { name: "web", version: "1.0.0" },
        { name: "db", version: "1.0.0" },
      ],
      ...(profiles ? { profiles } : {}),
    },
  });

  it("gives a package without profiles an implicit default from each application's default", () => {
    assert.deepEqual(effectiveProfiles(pkg(), apps), [
      { name: "default", applicationProfiles: { web: "standard", db: undefined } },
    ]);
  });

  it("fills in application defaults for applications a profile leaves out", () => {
    assert.deepEqual(
      effectiveProfiles(
        pkg([{ name: "kiosk", applicationProfiles: { web: "small" } }, { name: "plain" }]),
        apps,
      ),
      [
        { name: "kiosk", applicationProfiles: { web: "small", db: undefined } },
        { name: "plain", applicationProfiles: { web: "standard", db: undefined } },
      ],
    );
  });
});
