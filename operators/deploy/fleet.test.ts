// The helm Secret and URL regex a GitRepo needs for Fleet's gitjob to fetch its chart
// (Fleet v0.16.1 gitops/reconciler/gitjob.go, bundlereader/resources.go), Bundle errors,
// and the values Fleet would not pass to Helm as written (target/builder.go).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Registry } from "../api/registry.generated.ts";
import { fleetValueProblems, gitRepoError, helmAccessFor, type GitRepo } from "./fleet.ts";
import type { RenderedBundle } from "./render.ts";

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
    // A Bundle's Ready summarizes its clusters (summary.SetReadyConditions with "Cluster");
    // Fleet's status controller copies it over the GitRepo's (setReadyStatusFromBundle).
    const fromBundle =
      "ErrApplied(1) [Cluster fleet-default/store-1: dependent bundle(s) are not ready: [shop-db]]; service.v1 shop/db modified {}";
    assert.equal(gitRepoError(repo([{ type: "Ready", status: "False", message: fromBundle }])), undefined);
  });
});

describe("fleetValueProblems", () => {
  const bundle = (valuesYaml: string, overrides: RenderedBundle["overrides"] = []): RenderedBundle => ({
    application: "web",
    bundleName: "shop-web",
    path: "shop/web",
    files: { "fleet.yaml": "", "values.yaml": valuesYaml },
    targets: [],
    namespace: "shop",
    releaseName: "web",
    chart: { registry: "charts", name: "web", version: "1.0.0" },
    overrides,
    contentHash: "",
  });
  const nested = (depth: number): Record<string, unknown> => {
    let v: Record<string, unknown> = { leaf: "x" };
    for (let i = 0; i < depth; i++) v = { n: v };
    return v;
  };

  it("accepts values Fleet passes through, templates and look-alikes included", () => {
    const values = [
      'home: "${HOME}"',
      'label: "see global.fleet.clusterLabels.zone"',
      "list: [global.fleet.clusterLabels.zone]", // a string directly in a list is not replaced
    ].join("\n");
    assert.deepEqual(fleetValueProblems(bundle(values)), []);
  });

  it("names each value Fleet replaces by a cluster label, in maps, lists of maps and overrides", () => {
    const values =
      "image:\n  tag: global.fleet.clusterLabels.version\nsites:\n  - name: global.fleet.clusterLabels.site\n";
    const problems = fleetValueProblems(
      bundle(values, [
        { clusterSelector: {}, values: {}, index: 0 },
        { clusterSelector: {}, values: { zone: "global.fleet.clusterLabels.zone" }, index: 3 },
      ]),
    );
    assert.equal(problems.length, 3);
    assert.match(
      problems[0] ?? "",
      /^values of application web: image\.tag is "global\.fleet\.clusterLabels\.version", which Fleet replaces by the cluster's label version/,
    );
    assert.match(
      problems[1] ?? "",
      /^values of application web: sites\.name is "global\.fleet\.clusterLabels\.site"/,
    );
    assert.match(problems[2] ?? "", /^spec\.overrides\[3\]\.values: zone is /);
  });

  it("refuses values nested deeper than Fleet's limit of 50 nested maps below the top", () => {
    // processLabelValues starts at depth 0 and fails when called with a depth over 50.
    const ok = bundle("", [{ clusterSelector: {}, values: nested(50), index: 0 }]);
    assert.deepEqual(fleetValueProblems(ok), []);
    const deep = bundle("", [{ clusterSelector: {}, values: nested(51), index: 0 }]);
    assert.equal(fleetValueProblems(deep).length, 1);
    assert.match(fleetValueProblems(deep)[0] ?? "", /nested deeper than/);
  });
});
