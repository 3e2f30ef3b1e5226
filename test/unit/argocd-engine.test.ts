// The Argo CD engine's pure parts: the ApplicationSet of a bundle (placement confined to
// the project, pinned commit, secret values outside Git, tenant text never run as a
// template), per-cluster state from Applications, the strict reading of cluster Secrets,
// and cluster registration.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import type { Registry } from "../../operators/api/registry.generated.ts";
import {
  applicationSetFor,
  appProjectFor,
  argoStates,
  chartSource,
  deliveredFromApplicationSet,
  escapeTemplate,
  type ArgoApplication,
} from "../../operators/deploy/argocd.ts";
import type { RenderedBundle } from "../../operators/deploy/render.ts";
import { fromArgoClusterSecret } from "../../operators/inventory/inventory.ts";
import { argoClusterConfig, registrationObjects } from "../../operators/inventory/register.ts";

const dep: AppDeployment = {
  metadata: { name: "shop", namespace: "retail", uid: "u1" },
  spec: { packageRef: { name: "shop", version: "1.0.0" }, targets: {} },
};
const registry = (url: string, type: "oci" | "helm" = "oci"): Registry => ({
  metadata: { name: "charts", namespace: "retail" },
  spec: { type, url },
});
const bundle = (over: Partial<RenderedBundle> = {}): RenderedBundle => ({
  application: "web",
  bundleName: "shop-web",
  path: "shop/web",
  files: {},
  targets: [{ name: "selected", clusterSelector: { matchLabels: { tier: "store" } } }],
  namespace: "shop",
  releaseName: "web",
  chart: { registry: "charts", name: "web", version: "1.0.0" },
  overrides: [],
  contentHash: "c1",
  ...over,
});
const commit = "a".repeat(40);
const appSet = (b: RenderedBundle, url = "http://127.0.0.1:5000/charts", paused = false) =>
  applicationSetFor({
    deployment: dep,
    bundle: b,
    git: { url: "http://git.example/retail.git", branch: "main" },
    commit,
    registry: registry(url),
    namespace: "argocd",
    clusters: new Map([["central", { server: "https://10.0.0.9:6443", labels: { tier: "central" } }]]),
    paused,
  });
interface Spec {
  generators: Record<string, { selector?: { matchLabels?: Record<string, string> }; elements?: unknown[] }>[];
  template: {
    spec: {
      project: string;
      sources: { repoURL: string; targetRevision: string; chart?: string; helm?: Record<string, unknown> }[];
      syncPolicy: { automated: { enabled: boolean } };
      destination: { server: string; namespace: string };
    };
  };
  templatePatch?: string;
}

describe("the ApplicationSet of a bundle", () => {
  it("selects only the project's clusters, whatever the tenant's selector says", () => {
    const a = appSet(
      bundle({
        targets: [
          {
            name: "selected",
            clusterSelector: { matchLabels: { tier: "store", "outpost.dev/project": "another-tenant" } },
          },
        ],
      }),
    );
    const spec = a.spec as unknown as Spec;
    assert.deepEqual(spec.generators[0]?.clusters?.selector?.matchLabels, {
      tier: "store",
      "outpost.dev/project": "retail",
    });
    assert.equal(spec.template.spec.project, "outpost-retail");
    assert.equal(spec.template.spec.destination.server, "{{ .server }}");
  });

  it("pins the values to the delivered commit and takes the chart from its registry", () => {
    const spec = appSet(bundle()).spec as unknown as Spec;
    const [chart, values] = spec.template.spec.sources;
    assert.deepEqual(
      { repoURL: chart?.repoURL, chart: chart?.chart, targetRevision: chart?.targetRevision },
      { repoURL: "127.0.0.1:5000/charts", chart: "web", targetRevision: "1.0.0" },
    );
    assert.deepEqual(chart?.helm?.valueFiles, ["$values/shop/web/values.yaml"]);
    assert.equal(chart.helm.releaseName, "web");
    assert.deepEqual(values, {
      repoURL: "http://git.example/retail.git",
      targetRevision: commit,
      ref: "values",
    });
    assert.equal(spec.template.spec.syncPolicy.automated.enabled, true);
    assert.equal(
      (appSet(bundle(), undefined, true).spec as unknown as Spec).template.spec.syncPolicy.automated.enabled,
      false,
    );
  });

  it("gives secret values as an object, never as text in Git or a template", () => {
    const b = bundle({
      secret: { name: "s", valuesYaml: "auth:\n  password: pw\n", values: { auth: { password: "pw" } } },
    });
    const spec = appSet(b).spec as unknown as Spec;
    assert.deepEqual(spec.template.spec.sources[0]?.helm?.valuesObject, { auth: { password: "pw" } });
  });

  it("never lets tenant text run as a Go template", () => {
    assert.equal(escapeTemplate('a{{ env "HOME" }}b'), 'a{{"{{"}} env "HOME" }}b');
    const spec = appSet(
      bundle({
        releaseName: "web",
        overrides: [{ clusterSelector: { matchLabels: { tier: "store" } }, values: {}, index: 0 }],
        secret: { name: "s", valuesYaml: "", values: { x: "{{ .server }}" } },
      }),
      "http://127.0.0.1:5000/{{.name}}",
    ).spec as unknown as Spec;
    assert.equal(spec.template.spec.sources[0]?.repoURL, '127.0.0.1:5000/{{"{{"}}.name}}');
    assert.ok(spec.templatePatch?.includes('127.0.0.1:5000/{{"{{"}}.name}}'));
    assert.ok(spec.templatePatch?.includes('{"x":"{{"{{"}} .server }}"}'));
    assert.ok(!spec.templatePatch?.includes("{{.name}}"));
  });

  it("lists a named cluster with its server and labels, and generates nothing for an unknown one", () => {
    const spec = appSet(
      bundle({
        targets: [
          { name: "cluster-central", clusterName: "central" },
          { name: "cluster-gone", clusterName: "gone" },
        ],
      }),
    ).spec as unknown as Spec;
    assert.equal(spec.generators.length, 1);
    assert.deepEqual(spec.generators[0]?.list?.elements, [
      {
        name: "retail.central",
        nameNormalized: "retail-central",
        server: "https://10.0.0.9:6443",
        metadata: { labels: { tier: "central", "outpost.dev/cluster": "central" } },
      },
    ]);
  });

  it("chooses override values files per cluster in templatePatch, in order", () => {
    const spec = appSet(
      bundle({
        overrides: [
          { clusterSelector: { matchLabels: { size: "large" } }, values: { replicaCount: 4 }, index: 0 },
          {
            clusterSelector: { matchExpressions: [{ key: "gpu", operator: "Exists" }] },
            values: {},
            index: 1,
          },
        ],
      }),
    ).spec as unknown as Spec;
    const patch = spec.templatePatch ?? "";
    const first = patch.indexOf('"$values/shop/web/overrides/0.yaml"');
    const second = patch.indexOf('"$values/shop/web/overrides/1.yaml"');
    assert.ok(first > 0 && second > first, patch);
    assert.match(patch, /\{\{- if \$o0 \}\}/);
  });

  it("reads back what it delivers", () => {
    const b = bundle();
    assert.deepEqual(deliveredFromApplicationSet(appSet(b)), {
      deployment: "shop",
      application: "web",
      namespace: "shop",
      releaseName: "web",
      targets: b.targets,
      argoApplicationSet: "retail-shop-web",
    });
  });

  it("names Helm repositories by URL and OCI registries without a scheme", () => {
    assert.deepEqual(chartSource(registry("https://charts.example/stable/", "helm"), "web"), {
      repoURL: "https://charts.example/stable",
      chart: "web",
      oci: false,
      plainHttp: false,
    });
    assert.equal(
      chartSource(registry("oci://registry.example/charts"), "web").repoURL,
      "registry.example/charts",
    );
  });

  it("confines the project's AppProject to its clusters, never the management cluster", () => {
    const p = appProjectFor("retail", "argocd", ["b", "a", "a"]) as unknown as {
      spec: { sourceRepos: string[]; permitOnlyProjectScopedClusters: boolean; destinations: unknown[] };
    };
    assert.deepEqual(p.spec.sourceRepos, ["a", "b"]);
    assert.equal(p.spec.permitOnlyProjectScopedClusters, true);
    assert.deepEqual(p.spec.destinations[1], { server: "https://kubernetes.default.svc", namespace: "!*" });
  });
});

describe("per-cluster state from Argo CD's Applications", () => {
  const app = (status: ArgoApplication["status"], cluster = "store-1"): ArgoApplication => ({
    metadata: { labels: { "outpost.dev/application": "web", "outpost.dev/cluster": cluster } },
    status,
  });
  const state = (a: ArgoApplication | undefined) =>
    argoStates(a ? [a] : [], commit)({ application: "web" }, "store-1");
  const synced = { status: "Synced", revisions: ["1.0.0", commit] };

  it("is Ready only when synced to the delivered commit and Healthy", () => {
    assert.equal(state(app({ sync: synced, health: { status: "Healthy" } })).state, "Ready");
    assert.equal(
      state(
        app({
          sync: { status: "Synced", revisions: ["1.0.0", "b".repeat(40)] },
          health: { status: "Healthy" },
        }),
      ).state,
      "Pending",
      "an older commit is not the current revision",
    );
    assert.equal(state(undefined).state, "Pending");
  });

  it("says NotReady with Argo CD's words for Degraded and failed syncs", () => {
    const degraded = state(
      app({
        sync: synced,
        health: { status: "Degraded", message: 'Deployment "web" exceeded its progress deadline' },
      }),
    );
    assert.deepEqual(degraded, {
      state: "NotReady",
      message: 'Argo CD: Degraded: Deployment "web" exceeded its progress deadline',
    });
    const failed = state(
      app({
        sync: { ...synced, status: "OutOfSync" },
        operationState: { phase: "Failed", message: "one or more objects failed" },
      }),
    );
    assert.equal(failed.state, "NotReady");
    assert.match(failed.message, /one or more objects failed/);
  });

  it("counts Progressing as pending and an unreachable cluster as offline", () => {
    assert.equal(state(app({ sync: synced, health: { status: "Progressing" } })).state, "Pending");
    const gone = state(
      app({
        sync: { status: "Unknown" },
        health: { status: "Unknown" },
        conditions: [
          { type: "ComparisonError", message: "dial tcp 127.0.0.1:1: connect: connection refused" },
        ],
      }),
    );
    assert.equal(gone.state, "Offline");
  });
});

describe("registering a cluster", () => {
  const kubeconfig = (user: string): string => `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: Y2E=}}]
users: [{name: u, user: ${user}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
  it("writes an Argo CD cluster Secret scoped to the project, with an instance-wide unique name", () => {
    const objects = registrationObjects({
      namespace: "retail",
      name: "store-1",
      labels: { tier: "store" },
      engine: "argocd",
      engineKubeconfig: kubeconfig("{token: t0k}"),
      outpostKubeconfig: kubeconfig("{token: edge}"),
    });
    const secret = objects[1]?.object as {
      metadata: { namespace?: string; labels?: Record<string, string> };
      data: Record<string, string>;
    };
    const data = Object.fromEntries(
      Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]),
    );
    assert.equal(secret.metadata.namespace, "argocd");
    assert.deepEqual(
      {
        name: data.name,
        server: data.server,
        project: data.project,
        config: JSON.parse(data.config ?? "{}") as unknown,
      },
      {
        name: "retail.store-1",
        server: "https://10.0.0.1:6443",
        project: "outpost-retail",
        config: { bearerToken: "t0k", tlsClientConfig: { caData: "Y2E=" } },
      },
    );
    assert.equal(fromArgoClusterSecret(secret as never).metadata.name, "store-1");
    assert.deepEqual(fromArgoClusterSecret(secret as never).metadata.labels, { tier: "store" });
  });
  it("refuses kubeconfigs with exec plugins or files, and labels Outpost sets", () => {
    assert.throws(
      () =>
        registrationObjects({
          namespace: "retail",
          name: "store-1",
          labels: {},
          engine: "argocd",
          engineKubeconfig: kubeconfig("{token: t0k}"),
          outpostKubeconfig: kubeconfig("{tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}"),
        }),
      /the Outpost kubeconfig is refused: users\[0\]\.user\.tokenFile/,
    );
    assert.throws(
      () =>
        argoClusterConfig(
          kubeconfig("{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}}"),
        ),
      /exec/,
    );
    assert.throws(
      () => argoClusterConfig(kubeconfig("{client-certificate: /etc/x, client-key: /etc/y}")),
      /client-certificate: is a file path/,
    );
    assert.throws(
      () =>
        registrationObjects({
          namespace: "retail",
          name: "store-1",
          labels: { "outpost.dev/project": "other" },
          engine: "fleet",
          engineKubeconfig: "",
          outpostKubeconfig: "",
        }),
      /set by Outpost/,
    );
  });
});
