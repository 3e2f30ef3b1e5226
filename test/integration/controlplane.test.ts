// The local control plane behaves like real clusters: version, CRDs and watches, RBAC,
// garbage collection and namespace deletion, isolation between clusters, upstream CRDs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
  VersionApi,
  Watch,
  type KubernetesObject,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import {
  installCRDs,
  kubeConfigFromFile,
  kubeconfigFor,
  upstream,
  upstreamCRDFiles,
  UpstreamUnavailableError,
} from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";

const controlPlane = useControlPlane({ edges: 2 });

const core = (kubeconfig: string): CoreV1Api => kubeConfigFromFile(kubeconfig).makeApiClient(CoreV1Api);

function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** Awaits a request that must fail; returns the HTTP status and the Status message. */
async function rejects(promise: Promise<unknown>): Promise<{ code: number | undefined; body: string }> {
  try {
    await promise;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body = String(err.body);
    try {
      return { code: err.code, body: (JSON.parse(body) as { message: string }).message };
    } catch {
      return { code: err.code, body };
    }
  }
  assert.fail("expected the API server to reject the request");
}

const widgetCRD: V1CustomResourceDefinition = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "widgets.test.outpost.dev" },
  spec: {
    group: "test.outpost.dev",
    scope: "Namespaced",
    names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: {
                type: "object",
                required: ["size"],
                properties: { size: { type: "integer", minimum: 1 } },
              },
            },
          },
        },
      },
    ],
  },
};

describe("local control plane", () => {
  it("serves Kubernetes v1.34 on every cluster", async () => {
    const cp = controlPlane();
    assert.equal(cp.clusters.length, 3);
    assert.deepEqual(
      cp.clusters.map((c) => c.name),
      ["management", "edge-1", "edge-2"],
    );
    for (const cluster of cp.clusters) {
      const info = await kubeConfigFromFile(cluster.kubeconfig).makeApiClient(VersionApi).getCode();
      assert.match(info.gitVersion, /^v1\.34\.\d+$/, `${cluster.name} reports ${info.gitVersion}`);
    }
  });

  it("installs a CRD and shows a created object through a watch", async () => {
    const cluster = controlPlane().management;
    assert.deepEqual(await installCRDs(cluster, [widgetCRD]), ["widgets.test.outpost.dev"]);
    const kc = kubeConfigFromFile(cluster.kubeconfig);
    const seen = new Promise<KubernetesObject>((resolve, reject) => {
      void new Watch(kc)
        .watch(
          "/apis/test.outpost.dev/v1/namespaces/default/widgets",
          {},
          (type: string, obj: KubernetesObject) => {
            if (type === "ADDED" && obj.metadata?.name === "w1") resolve(obj);
          },
          (err: unknown) => {
            if (err) reject(err instanceof Error ? err : new Error("watch failed"));
          },
        )
        .then((req) => {
          void seen.finally(() => {
            req.abort();
          });
        }, reject);
    });
    // Let the watch open before the create so the event comes from the watch, not a list.
    await new Promise((r) => setTimeout(r, 300));
    const objects = kc.makeApiClient(CustomObjectsApi);
    await objects.createNamespacedCustomObject({
      group: "test.outpost.dev",
      version: "v1",
      namespace: "default",
      plural: "widgets",
      body: {
        apiVersion: "test.outpost.dev/v1",
        kind: "Widget",
        metadata: { name: "w1" },
        spec: { size: 3 },
      },
    });
    const obj = (await seen) as KubernetesObject & { spec: { size: number } };
    assert.equal(obj.spec.size, 3);

    const invalid = await rejects(
      objects.createNamespacedCustomObject({
        group: "test.outpost.dev",
        version: "v1",
        namespace: "default",
        plural: "widgets",
        body: {
          apiVersion: "test.outpost.dev/v1",
          kind: "Widget",
          metadata: { name: "w2" },
          spec: { size: 0 },
        },
      }),
    );
    assert.equal(invalid.code, 422);
    assert.match(invalid.body, /spec\.size/);
  });

  it("forbids an unprivileged user until a RoleBinding allows it", async () => {
    const cluster = controlPlane().management;
    const admin = core(cluster.kubeconfig);
    await admin.createNamespace({ body: { metadata: { name: "team-a" } } });
    const alice = core(await kubeconfigFor(cluster, "alice", ["developers"]));

    const denied = await rejects(alice.listNamespacedConfigMap({ namespace: "team-a" }));
    assert.equal(denied.code, 403);
    assert.match(denied.body, /User "alice" cannot list resource "configmaps"/);

    const rbac = kubeConfigFromFile(cluster.kubeconfig).makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: "team-a",
      body: {
        metadata: { name: "configmap-reader" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: "team-a",
      body: {
        metadata: { name: "developers-read" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "configmap-reader" },
        subjects: [{ kind: "Group", name: "developers", apiGroup: "rbac.authorization.k8s.io" }],
      },
    });
    const list = await eventually("alice to be allowed", () =>
      alice.listNamespacedConfigMap({ namespace: "team-a" }),
    );
    assert.ok(Array.isArray(list.items));
    // Still nothing beyond the binding: other namespaces stay forbidden.
    assert.equal((await rejects(alice.listNamespacedConfigMap({ namespace: "default" }))).code, 403);
  });

  it("deletes a namespace with objects in it and garbage-collects owned objects", async () => {
    const cluster = controlPlane().management;
    const api = core(cluster.kubeconfig);
    await api.createNamespace({ body: { metadata: { name: "doomed" } } });
    const owner = await api.createNamespacedConfigMap({
      namespace: "doomed",
      body: { metadata: { name: "owner" }, data: { a: "1" } },
    });
    await api.createNamespacedSecret({
      namespace: "doomed",
      body: {
        metadata: {
          name: "owned",
          ownerReferences: [
            { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata?.uid ?? "" },
          ],
        },
        stringData: { b: "2" },
      },
    });
    await api.deleteNamespacedConfigMap({ namespace: "doomed", name: "owner" });
    await eventually("the owned Secret to be garbage-collected", async () => {
      const code = await api.readNamespacedSecret({ namespace: "doomed", name: "owned" }).then(
        () => 200,
        (err: unknown) => statusOf(err),
      );
      return code === 404 ? true : undefined;
    });

    await api.createNamespacedConfigMap({ namespace: "doomed", body: { metadata: { name: "left" } } });
    await api.deleteNamespace({ name: "doomed" });
    await eventually(
      "the namespace to disappear",
      async () => {
        const code = await api.readNamespace({ name: "doomed" }).then(
          () => 200,
          (err: unknown) => statusOf(err),
        );
        return code === 404 ? true : undefined;
      },
      60_000,
    );
  });

  it("keeps clusters isolated from each other", async () => {
    const [edge1, edge2] = controlPlane().edges;
    assert.ok(edge1 && edge2);
    await core(edge1.kubeconfig).createNamespacedConfigMap({
      namespace: "default",
      body: { metadata: { name: "only-on-edge-1" } },
    });
    const found = await core(edge1.kubeconfig).readNamespacedConfigMap({
      namespace: "default",
      name: "only-on-edge-1",
    });
    assert.equal(found.metadata?.name, "only-on-edge-1");
    for (const other of [edge2, controlPlane().management]) {
      const missing = await rejects(
        core(other.kubeconfig).readNamespacedConfigMap({ namespace: "default", name: "only-on-edge-1" }),
      );
      assert.equal(missing.code, 404, `${other.name} must not see edge-1's ConfigMap`);
    }
    // Credentials of one cluster are not accepted by another (separate CAs).
    const crossed = kubeConfigFromFile(edge1.kubeconfig);
    const cluster = crossed.getCurrentCluster();
    assert.ok(cluster);
    crossed.clusters = [{ ...cluster, server: edge2.server, skipTLSVerify: true, caData: undefined }];
    const res = await rejects(crossed.makeApiClient(CoreV1Api).listNamespace());
    assert.equal(res.code, 401);
  });
});

describe("upstream CRDs", () => {
  for (const [name, source] of Object.entries(upstream)) {
    it(`loads the ${name} CRDs from ${source.module}@${source.version}`, async (t) => {
      let files: string[];
      try {
        files = upstreamCRDFiles(source);
      } catch (err) {
        if (err instanceof UpstreamUnavailableError) {
          t.skip(err.message);
          return;
        }
        throw err;
      }
      const names = await installCRDs(controlPlane().management, files);
      assert.ok(names.every((n) => n.endsWith(`.${source.group}`)));
      const objects = kubeConfigFromFile(controlPlane().management.kubeconfig).makeApiClient(
        CustomObjectsApi,
      );
      const create = (
        plural: string,
        body: { apiVersion: string } & Record<string, unknown>,
      ): Promise<unknown> =>
        objects.createNamespacedCustomObject({
          group: source.group,
          version: body.apiVersion.split("/")[1] ?? "",
          namespace: "default",
          plural,
          body,
        });
      if (name === "fleet") {
        assert.ok(names.includes("gitrepos.fleet.cattle.io"));
        const gitRepo = { apiVersion: "fleet.cattle.io/v1alpha1", kind: "GitRepo" };
        await create("gitrepos", {
          ...gitRepo,
          metadata: { name: "valid" },
          spec: { repo: "https://git.example/apps.git", branch: "main", paths: ["web"] },
        });
        const bad = await rejects(
          create("gitrepos", { ...gitRepo, metadata: { name: "invalid" }, spec: { repo: 42, paths: "web" } }),
        );
        assert.equal(bad.code, 422);
      } else {
        assert.ok(names.includes("sites.skupper.io"));
        await create("sites", {
          apiVersion: "skupper.io/v2alpha1",
          kind: "Site",
          metadata: { name: "valid" },
          spec: { linkAccess: "default" },
        });
        const bad = await rejects(
          create("sites", {
            apiVersion: "skupper.io/v2alpha1",
            kind: "Site",
            metadata: { name: "invalid" },
            spec: { ha: "yes please" },
          }),
        );
        assert.equal(bad.code, 422);
      }
    });
  }
});
