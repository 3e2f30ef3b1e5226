// The helm Secret and URL regex a GitRepo needs for Fleet's gitjob to fetch its chart
// (Fleet v0.16.1 gitops/reconciler/gitjob.go, bundlereader/resources.go).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Registry } from "../api/registry.generated.ts";
import { gitRepoError, helmAccessFor, type GitRepo } from "./fleet.ts";

const registry = (type: "oci" | "helm", url: string): Registry => ({
  metadata: { name: "charts" },
  spec: { type, url },
});
/** Fleet's test: ^(?:regex) against helm.repo, or the chart reference without a repo. */
const forwards = (regex: string, url: string): boolean => new RegExp(`^(?:${regex})`).test(url);

describe("helmAccessFor", () => {
  it("needs nothing for an anonymous registry over HTTPS", () => {
    assert.equal(helmAccessFor(registry("oci", "oci://harbor.example.com/retail"), undefined), undefined);
    assert.equal(
      helmAccessFor(registry("helm", "https://charts.example.com"), { type: "helm", url: "" }),
      undefined,
    );
  });

  it("writes username, password and CA under Fleet's keys, and credentials go to that registry only", () => {
    const h = helmAccessFor(registry("oci", "https://harbor.example.com/retail/"), {
      type: "oci",
      url: "",
      username: "robot$retail",
      password: "pw",
      caPem: "PEM",
    });
    assert.ok(h);
    assert.equal(h.secretName, "outpost-helm-charts");
    assert.deepEqual(h.data, { username: "robot$retail", password: "pw", cacerts: "PEM" });
    assert.ok(forwards(h.urlRegex, "oci://harbor.example.com/retail/web"));
    assert.ok(!forwards(h.urlRegex, "oci://harbor.example.com/retailer/web"), "another project's path");
    assert.ok(!forwards(h.urlRegex, "oci://harborXexample.com/retail/web"), "dots are literal");
    assert.ok(!forwards(h.urlRegex, "oci://evil.example/?u=oci://harbor.example.com/retail/web"));
  });

  it("says basicHTTP for a plain-HTTP OCI registry, even without credentials", () => {
    const h = helmAccessFor(registry("oci", "http://127.0.0.1:5000/charts"), undefined);
    assert.deepEqual(h?.data, { basicHTTP: "true" });
  });

  it("matches a Helm repository's URL, not a longer host", () => {
    const h = helmAccessFor(registry("helm", "https://charts.example.com"), {
      type: "helm",
      url: "",
      username: "u",
      password: "p",
    });
    assert.ok(h);
    assert.ok(forwards(h.urlRegex, "https://charts.example.com"));
    assert.ok(forwards(h.urlRegex, "https://charts.example.com/sub"));
    assert.ok(!forwards(h.urlRegex, "https://charts.example.com.evil.example"));
  });
});

describe("gitRepoError", () => {
  const repo = (conditions: { type: string; status: string; message?: string }[]): GitRepo => ({
    metadata: { name: "shop-web" },
    spec: { repo: "", paths: [], targets: [], paused: false },
    status: { conditions },
  });

  it("is a failed job, or a Bundle error Fleet copied over Ready", () => {
    assert.equal(
      gitRepoError(repo([{ type: "Stalled", status: "True", message: "fleet.yaml: unknown field" }])),
      "fleet.yaml: unknown field",
    );
    assert.equal(
      gitRepoError(
        repo([
          { type: "Ready", status: "False", message: "targeting error: invalid clusterSelector: bad value" },
        ]),
      ),
      "targeting error: invalid clusterSelector: bad value",
    );
  });

  it("is not the summary of per-cluster states", () => {
    const summary =
      "Deployment shop/web not ready; NotReady(1) [Bundle shop-web: Deployment shop/web: 0/2 available]; WaitApplied(1) [Bundle shop-web]";
    assert.equal(gitRepoError(repo([{ type: "Ready", status: "False", message: summary }])), undefined);
    assert.equal(gitRepoError(repo([{ type: "Ready", status: "True" }])), undefined);
  });
});
