// Rendering AppDeployments into Fleet bundles: fleet.yaml fields, the values merge
// order, secret parameters kept out of Git, placement, errors a user can act on.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import { render, RenderError, treeDigest, treeOf, type RenderInput } from "./render.ts";
import { mergeValues, parseParameter, setPath } from "./values.ts";
import { dnsName } from "../runtime/names.ts";

const registries = new Map<string, Registry>([
  ["oci", { metadata: { name: "oci" }, spec: { type: "oci", url: "oci://harbor.example.com/retail" } }],
  ["helm", { metadata: { name: "helm" }, spec: { type: "helm", url: "https://charts.example.com" } }],
]);

const web: Application = {
  metadata: { name: "web-1.0.0" },
  spec: {
    name: "web",
    version: "1.0.0",
    chart: { registryRef: { name: "oci" }, name: "nginx", version: "18.2.4" },
    defaultProfile: "standard",
    profiles: [
      {
        name: "standard",
        values: { replicaCount: 1, service: { type: "ClusterIP", port: 80 } },
        parameters: [
          { name: "replicaCount", type: "number", default: "2" },
          { name: "debug", type: "boolean" },
        ],
      },
      { name: "kiosk", values: { replicaCount: 1 } },
    ],
    ignoredResources: [{ kind: "Secret", name: "web-tls", namespace: "shop" }],
  },
};
const db: Application = {
  metadata: { name: "db-2.0.0" },
  spec: {
    name: "db",
    version: "2.0.0",
    chart: { registryRef: { name: "helm" }, name: "postgresql", version: "16.4.1" },
    defaultProfile: "standard",
    profiles: [
      {
        name: "standard",
        values: { auth: { database: "shop" } },
        parameters: [{ name: "auth.password", type: "string", secret: true, mandatory: true }],
      },
    ],
  },
};
const pkg: DeploymentPackage = {
  metadata: { name: "shop-1.0.0" },
  spec: {
    name: "shop",
    version: "1.0.0",
    applications: [
      { name: "web", version: "1.0.0" },
      { name: "db", version: "2.0.0" },
    ],
    dependencies: [{ application: "web", requires: "db" }],
    defaultNamespaces: { db: "shop-data" },
  },
};
const deployment = (spec: Partial<AppDeployment["spec"]> = {}): AppDeployment => ({
  metadata: { name: "storefront", namespace: "retail" },
  spec: {
    packageRef: { name: "shop", version: "1.0.0" },
    targets: { clusterSelector: { matchLabels: { "site-type": "store" } } },
    parameters: [{ application: "db", name: "auth.password", secretKeyRef: { name: "db", key: "password" } }],
    ...spec,
  },
});
const input = (spec: Partial<AppDeployment["spec"]> = {}, secret = "s3cret"): RenderInput => ({
  deployment: deployment(spec),
  pkg,
  applications: new Map([
    ["web", web],
    ["db", db],
  ]),
  registries,
  secretValues: new Map([["db", new Map([["auth.password", secret]])]]),
});

interface FleetYaml {
  name: string;
  defaultNamespace: string;
  labels: Record<string, string>;
  helm: { chart: string; repo?: string; version: string; valuesFrom?: unknown[] } & Record<string, unknown>;
  dependsOn?: { name: string }[];
  diff: { comparePatches: unknown[] };
  downstreamResources?: unknown[];
  targetCustomizationMode?: string;
  targetCustomizations?: unknown[];
  rolloutStrategy?: unknown;
}
const fleetYaml = (b: { files: Record<string, string> }): FleetYaml =>
  parse(b.files["fleet.yaml"] ?? "") as FleetYaml;
const valuesYaml = (b: { files: Record<string, string> }): unknown => parse(b.files["values.yaml"] ?? "");

describe("render", () => {
  it("writes fleet.yaml with chart, namespace, release, dependencies and ignored resources", () => {
    const [w, d] = render(input());
    assert.ok(w && d);
    assert.equal(w.path, "storefront/web");
    assert.equal(w.bundleName, "storefront-web");
    const fw = fleetYaml(w);
    assert.equal(fw.name, "storefront-web");
    assert.equal(fw.defaultNamespace, "storefront", "deployment name when nothing else says");
    assert.deepEqual(fw.helm, {
      chart: "oci://harbor.example.com/retail/nginx",
      version: "18.2.4",
      releaseName: "web",
      valuesFiles: ["values.yaml"],
      disablePreProcess: true,
    });
    assert.deepEqual(fw.dependsOn, [{ name: "storefront-db" }]);
    assert.deepEqual(fw.diff.comparePatches, [
      {
        // Fleet compares with these removed on both sides (drift ignored); without an
        // apiVersion the group is matched by glob, and `op: ignore` (which needs the exact
        // apiVersion, and only skips creating missing objects) is left out.
        apiVersion: "*/v1",
        kind: "Secret",
        name: "web-tls",
        namespace: "shop",
        jsonPointers: [
          "/spec",
          "/data",
          "/binaryData",
          "/stringData",
          "/type",
          "/immutable",
          "/rules",
          "/subjects",
          "/roleRef",
          "/webhooks",
          "/metadata/labels",
          "/metadata/annotations",
        ],
      },
    ]);
    assert.deepEqual(fw.labels, {
      "outpost.dev/deployment": "storefront",
      "outpost.dev/application": "web",
      "outpost.dev/content": w.contentHash,
    });
    assert.match(w.contentHash, /^[0-9a-f]{16}$/);
    const fd = fleetYaml(d);
    assert.equal(fd.defaultNamespace, "shop-data", "the package's default namespace");
    assert.equal(fd.helm.repo, "https://charts.example.com");
    assert.equal(fd.helm.chart, "postgresql");
    assert.equal(fd.dependsOn, undefined);
  });

  it("writes a dependency only where both applications target the same clusters", () => {
    const central = { clusterSelector: { matchLabels: { "site-type": "central" } } };
    // Fleet checks dependsOn per cluster: web at the stores cannot wait for db at the central site.
    const [apart] = render(input({ applications: [{ name: "db", targets: central }] }));
    assert.ok(apart);
    assert.equal(fleetYaml(apart).dependsOn, undefined);
    // Placed together (each explicitly, with equal selectors), it is written.
    const together = {
      clusterSelector: { matchLabels: { "site-type": "store" } },
    };
    const [both] = render(
      input({
        applications: [
          { name: "web", targets: together },
          { name: "db", targets: { clusterSelector: { matchLabels: { "site-type": "store" } } } },
        ],
      }),
    );
    assert.ok(both);
    assert.deepEqual(fleetYaml(both).dependsOn, [{ name: "storefront-db" }]);
  });

  it("merges values: profile < parameter defaults < parameters < deployment values", () => {
    const [w] = render(
      input({
        parameters: [
          { application: "web", name: "debug", value: "true" },
          { application: "db", name: "auth.password", secretKeyRef: { name: "db", key: "password" } },
        ],
        applications: [
          { name: "web", namespace: "shop", values: { service: { port: 8080 }, extra: [1, 2] } },
        ],
      }),
    );
    assert.ok(w);
    assert.deepEqual(valuesYaml(w), {
      replicaCount: 2,
      debug: true,
      service: { type: "ClusterIP", port: 8080 },
      extra: [1, 2],
    });
    assert.equal(fleetYaml(w).defaultNamespace, "shop", "the deployment's namespace wins");
  });

  it("keeps secret parameters out of Git and delivers them with downstreamResources", () => {
    const [, d] = render(input());
    assert.ok(d);
    const tree = [...treeOf(render(input())).values()].join("\n");
    assert.ok(!tree.includes("s3cret"), "the secret is in no file");
    assert.deepEqual(d.secret, {
      name: "storefront-db-secret-values",
      valuesYaml: "auth:\n  password: s3cret\n",
      values: { auth: { password: "s3cret" } },
    });
    const fd = fleetYaml(d);
    assert.deepEqual(fd.downstreamResources, [{ kind: "Secret", name: "storefront-db-secret-values" }]);
    assert.deepEqual(fd.helm.valuesFrom, [
      { secretKeyRef: { name: "storefront-db-secret-values", key: "values.yaml" } },
    ]);
  });

  it("turns overrides into target customizations and waves into partitions", () => {
    const [w] = render(
      input({
        overrides: [
          {
            clusterSelector: { matchLabels: { size: "large" } },
            application: "web",
            values: { replicaCount: 4 },
          },
          {
            clusterSelector: { matchLabels: { region: "eu" } },
            application: "web",
            values: { locale: "de" },
          },
        ],
        rollout: {
          maxUnavailable: "25%",
          waves: [{ name: "pilot", clusterSelector: { matchLabels: { ring: "0" } }, pauseAfter: true }],
        },
      }),
    );
    assert.ok(w);
    const fw = fleetYaml(w);
    assert.equal(fw.targetCustomizationMode, "AllMatches");
    assert.deepEqual(fw.targetCustomizations, [
      {
        name: "override-0",
        clusterSelector: { matchLabels: { size: "large" } },
        helm: { values: { replicaCount: 4 } },
      },
      {
        name: "override-1",
        clusterSelector: { matchLabels: { region: "eu" } },
        helm: { values: { locale: "de" } },
      },
    ]);
    assert.deepEqual(fw.rolloutStrategy, {
      maxUnavailable: "25%",
      partitions: [
        { name: "pilot", clusterSelector: { matchLabels: { ring: "0" } } },
        {
          name: "remaining",
          clusterSelector: { matchExpressions: [{ key: "ring", operator: "NotIn", values: ["0"] }] },
        },
      ],
    });
  });

  it("keeps a cluster in its first wave only, and refuses waves that need too many partitions", () => {
    const [w] = render(
      input({
        rollout: {
          maxUnavailable: 1,
          waves: [
            { name: "canary", clusterSelector: { matchLabels: { ring: "0", region: "eu" } } },
            { name: "eu", clusterSelector: { matchLabels: { region: "eu" } } },
          ],
        },
      }),
    );
    // eu: in eu and not the canary (not ring 0); the rest: outside eu.
    assert.deepEqual(fleetYaml(w ?? { files: {} }).rolloutStrategy, {
      maxUnavailable: 1,
      partitions: [
        { name: "canary", clusterSelector: { matchLabels: { region: "eu", ring: "0" } } },
        {
          name: "eu",
          clusterSelector: {
            matchLabels: { region: "eu" },
            matchExpressions: [{ key: "ring", operator: "NotIn", values: ["0"] }],
          },
        },
        {
          name: "remaining",
          clusterSelector: { matchExpressions: [{ key: "region", operator: "NotIn", values: ["eu"] }] },
        },
      ],
    });
    const wide = (n: number) => ({
      name: `w${n}`,
      clusterSelector: { matchLabels: { [`a${n}`]: "x", [`b${n}`]: "x", [`c${n}`]: "x" } },
    });
    assert.throws(
      () => render(input({ rollout: { maxUnavailable: 1, waves: [1, 2, 3, 4].map(wide) } })),
      /spec\.rollout\.waves: keeping each cluster in one wave takes Fleet more than 50 partitions/,
    );
  });

  it("targets by selector or by name, per application", () => {
    const [w, d] = render(
      input({ applications: [{ name: "db", targets: { clusters: ["central-1", "Central_2"] } }] }),
    );
    assert.deepEqual(w?.targets, [
      { name: "selected", clusterSelector: { matchLabels: { "site-type": "store" } } },
    ]);
    assert.deepEqual(
      d?.targets.map((t) => t.clusterName),
      ["central-1", "Central_2"],
    );
    assert.ok(d.targets.every((t) => /^[a-z0-9-]+$/.test(t.name)));
  });

  it("uses the profile the deployment names", () => {
    const kioskPkg = {
      ...pkg,
      spec: { ...pkg.spec, profiles: [{ name: "kiosk", applicationProfiles: { web: "kiosk" } }] },
    };
    const [w] = render({ ...input({ profile: "kiosk" }), pkg: kioskPkg });
    assert.deepEqual(valuesYaml(w ?? { files: {} }), { replicaCount: 1 });
    assert.throws(
      () => render({ ...input({ profile: "huge" }), pkg: kioskPkg }),
      /spec\.profile: huge is not a profile of package shop 1\.0\.0 \(it has kiosk\)/,
    );
  });

  it("reports every problem a user must fix", () => {
    try {
      render(
        input({
          parameters: [
            { application: "web", name: "replicas", value: "2" },
            { application: "web", name: "replicaCount", value: "many" },
            { application: "db", name: "auth.password", value: "plain" },
            { application: "cache", name: "x", value: "1" },
          ],
          overrides: [{ clusterSelector: { matchLabels: { a: "b" } }, application: "api", values: {} }],
        }),
      );
      assert.fail("expected a RenderError");
    } catch (err) {
      assert.ok(err instanceof RenderError);
      assert.deepEqual(err.problems, [
        "spec.parameters: cache is not an application of package shop",
        "spec.overrides: api is not an application of package shop",
        "spec.parameters: replicas is not a parameter of web (profile standard; it has replicaCount, debug)",
        'spec.parameters: web replicaCount: "many" is not a number',
        "spec.parameters: db auth.password is secret; give it with secretKeyRef, not value, so it stays out of Git",
      ]);
    }
    assert.throws(
      () => render(input({ parameters: [] })),
      /spec\.parameters: db auth\.password is mandatory \(secret: use secretKeyRef\)/,
    );
    assert.doesNotThrow(() => render(input({}, "any text: strings take anything")));
  });

  it("refuses a per-cluster override of a secret parameter, which Fleet's valuesFrom would overwrite", () => {
    const secretParam = [
      { application: "db", name: "auth.password", secretKeyRef: { name: "db", key: "password" } },
    ];
    const at = { clusterSelector: { matchLabels: { site: "big" } }, application: "db" };
    for (const values of [{ auth: { password: "x" } }, { auth: "none" }]) {
      assert.throws(
        () => render(input({ parameters: secretParam, overrides: [{ ...at, values }] })),
        (err: unknown) =>
          err instanceof RenderError &&
          err.problems.some((p) =>
            p.startsWith("spec.overrides[0].values: sets auth.password, a secret parameter of db;"),
          ),
      );
    }
    // Next to it, or on another application: fine.
    assert.doesNotThrow(() =>
      render(
        input({
          parameters: secretParam,
          overrides: [
            { ...at, values: { auth: { username: "big" } } },
            { ...at, application: "web", values: { auth: { password: "not a secret of web" } } },
          ],
        }),
      ),
    );
  });

  it("is deterministic: the same input gives the same tree digest", () => {
    const a = treeDigest(treeOf(render(input())));
    assert.equal(treeDigest(treeOf(render(input()))), a);
    assert.notEqual(
      treeDigest(treeOf(render(input({ applications: [{ name: "web", values: { x: 1 } }] })))),
      a,
    );
    assert.equal(treeDigest(treeOf(render(input({}, "other-secret")))), a, "secrets are not in the tree");
  });
});

describe("values", () => {
  it("merge maps deeply, replace lists and scalars, delete with null", () => {
    assert.deepEqual(mergeValues({ a: { b: 1, c: [1] }, d: 1 }, { a: { c: [2], e: 3 }, d: null }), {
      a: { b: 1, c: [2], e: 3 },
    });
    assert.deepEqual(setPath({ image: { repo: "x" } }, "image.tag", "1.2"), {
      image: { repo: "x", tag: "1.2" },
    });
    assert.deepEqual(setPath({ image: "x" }, "image.tag", "1.2"), { image: { tag: "1.2" } });
  });
  it("parse typed parameters", () => {
    assert.deepEqual(parseParameter("number", "8080"), { value: 8080 });
    assert.deepEqual(parseParameter("boolean", "false"), { value: false });
    assert.ok("error" in parseParameter("number", ""));
    assert.ok("error" in parseParameter("boolean", "yes"));
  });
  it("make DNS names, cut with a hash", () => {
    assert.equal(dnsName("storefront-web"), "storefront-web");
    const long = dnsName(`${"x".repeat(60)}-web`);
    assert.equal(long.length, 53);
    assert.match(long, /-[0-9a-f]{8}$/);
    assert.match(dnsName("Web_UI"), /^web-ui-[0-9a-f]{8}$/);
  });
});
