// The catalog API's invariants, enforced by the API server itself (CEL rules in crds/):
// each rule rejects an invalid object with its message, and the valid counterpart passes.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import { crdFiles } from "../support/crds.ts";
import { useControlPlane } from "../support/controlplane.ts";
import { rejected as rejectedBy } from "../support/api.ts";

const controlPlane = useControlPlane();
let client: KubeClient;

const catalog = (kind: string, plural: string): ResourceType => ({
  group: "catalog.outpost.dev",
  version: "v1alpha1",
  kind,
  plural,
  namespaced: true,
});
const registries = catalog("Registry", "registries");
const applications = catalog("Application", "applications");
const packages = catalog("DeploymentPackage", "deploymentpackages");
const artifacts = catalog("Artifact", "artifacts");

type Obj = KubeObject & { spec: Record<string, unknown> };
const ns = "default";

const rejected = (r: ResourceType, obj: Obj, message: string | RegExp, update = false): Promise<void> =>
  rejectedBy(client, r, obj, message, update);

const app = (name: string, version: string, spec: Record<string, unknown> = {}): Obj => ({
  metadata: { name: `${name}-${version}`, namespace: ns },
  spec: { name, version, chart: { registryRef: { name: "charts" }, name, version: "1.0.0" }, ...spec },
});

const pkg = (name: string, version: string, spec: Record<string, unknown> = {}): Obj => ({
  metadata: { name: `${name}-${version}`, namespace: ns },
  spec: {
    name,
    version,
    applications: [
      { name: "web", version: "1.2.0" },
      { name: "db", version: "2.0.0" },
    ],
    ...spec,
  },
});

describe("catalog API rules", () => {
  before(async () => {
    await installCRDs(controlPlane().management, crdFiles());
    client = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
  });

  it("Registry: url scheme fits the type, and the type never changes", async () => {
    const reg: Obj = {
      metadata: { name: "charts", namespace: ns },
      spec: { type: "helm", url: "https://charts.example.com" },
    };
    const created = await client.create(registries, reg);
    assert.equal((created.spec as { checkInterval?: string }).checkInterval, "10m", "defaulted");
    await rejected(
      registries,
      { metadata: { name: "bad", namespace: ns }, spec: { type: "helm", url: "oci://harbor.example.com/p" } },
      "a helm registry url must start with http:// or https://",
    );
    await rejected(
      registries,
      { ...created, spec: { ...created.spec, type: "oci" } },
      "type cannot change",
      true,
    );
  });

  it("Application: release name, profiles and typed parameters", async () => {
    const valid = app("web", "1.2.0", {
      defaultProfile: "default",
      profiles: [
        {
          name: "default",
          values: { replicas: 2, image: { tag: "1.2.0" } },
          parameters: [
            { name: "image.tag", type: "string", default: "1.2.0", suggestedValues: ["1.2.0", "1.2.1"] },
            { name: "service.port", type: "number", default: "8080" },
            { name: "debug", type: "boolean", default: "false" },
            { name: "admin.password", type: "string", secret: true, mandatory: true },
          ],
        },
      ],
    });
    await client.create(applications, valid);
    await rejected(
      applications,
      { ...app("web", "1.3.0"), metadata: { name: "web-latest", namespace: ns } },
      "metadata.name must be <spec.name>-<spec.version>",
    );
    const param = (p: Record<string, unknown>): Obj =>
      app("p", "1.0.0", { defaultProfile: "d", profiles: [{ name: "d", parameters: [p] }] });
    await rejected(
      applications,
      param({ name: "a.b", type: "string", mandatory: true, default: "x" }),
      "a mandatory or secret parameter cannot have a default",
    );
    await rejected(
      applications,
      param({ name: "a.b", type: "string", secret: true, default: "x" }),
      "a mandatory or secret parameter cannot have a default",
    );
    await rejected(
      applications,
      param({ name: "port", type: "number", default: "eighty" }),
      "the default of a number parameter must be a number",
    );
    await rejected(
      applications,
      param({ name: "on", type: "boolean", default: "yes" }),
      "the default of a boolean parameter must be true or false",
    );
    await rejected(
      applications,
      param({ name: "n", type: "number", suggestedValues: ["1", "x"] }),
      "suggested values of a number parameter must be numbers",
    );
    await rejected(
      applications,
      param({ name: "bad_name", type: "string" }),
      /spec\.profiles\[0\]\.parameters\[0\]\.name/,
    );
    await rejected(
      applications,
      app("q", "1.0.0", { defaultProfile: "missing", profiles: [{ name: "d" }] }),
      "defaultProfile must name one of the profiles",
    );
    await rejected(
      applications,
      app("q", "1.0.0", { profiles: [{ name: "d" }] }),
      "defaultProfile is required when profiles are given",
    );
    await rejected(
      applications,
      app("q", "1.0.0", { defaultProfile: "d", profiles: [{ name: "d" }, { name: "d" }] }),
      "profile names must be unique",
    );
  });

  it("Application: a released spec is immutable, a draft is not", async () => {
    const released = await client.get<Obj>(applications, "web-1.2.0", ns);
    assert.ok(released);
    await rejected(
      applications,
      { ...released, spec: { ...released.spec, description: "changed" } },
      "a released Application cannot change",
      true,
    );
    const draft = await client.create(applications, app("draft", "0.1.0", { draft: true }));
    const edited = await client.replace(applications, {
      ...draft,
      spec: { ...draft.spec, description: "edited", draft: false },
    });
    assert.equal((edited.spec as { description?: string }).description, "edited");
    await rejected(
      applications,
      { ...edited, spec: { ...edited.spec, description: "again" } },
      "a released Application cannot change",
      true,
    );
  });

  it("DeploymentPackage: apps once, dependencies and profiles inside the package", async () => {
    const created = await client.create(
      packages,
      pkg("shop", "1.0.0", {
        dependencies: [{ application: "web", requires: "db" }],
        defaultProfile: "edge",
        profiles: [{ name: "edge", applicationProfiles: { web: "small" } }],
        defaultNamespaces: { web: "shop", db: "shop-data" },
      }),
    );
    assert.equal((created.spec as { visible?: boolean }).visible, true);
    await rejected(
      packages,
      { ...pkg("p", "1.0.0"), metadata: { name: "p", namespace: ns } },
      "metadata.name must be <spec.name>-<spec.version>",
    );
    await rejected(
      packages,
      pkg("p", "1.0.0", {
        applications: [
          { name: "web", version: "1.2.0" },
          { name: "web", version: "1.3.0" },
        ],
      }),
      "each application may be listed only once",
    );
    await rejected(
      packages,
      pkg("p", "1.0.0", { dependencies: [{ application: "web", requires: "cache" }] }),
      "dependencies may only name applications of this package",
    );
    await rejected(
      packages,
      pkg("p", "1.0.0", { dependencies: [{ application: "web", requires: "web" }] }),
      "an application cannot require itself",
    );
    await rejected(
      packages,
      pkg("p", "1.0.0", { profiles: [{ name: "x", applicationProfiles: { cache: "small" } }] }),
      "profiles may only name applications of this package",
    );
    await rejected(
      packages,
      pkg("p", "1.0.0", { defaultProfile: "none" }),
      "defaultProfile must name one of the profiles",
    );
    await rejected(
      packages,
      pkg("p", "1.0.0", { defaultNamespaces: { cache: "x" } }),
      "defaultNamespaces may only name applications of this package",
    );
    await rejected(packages, pkg("p", "1.0.0", { applications: [] }), /spec\.applications/);
    await rejected(
      packages,
      { ...created, spec: { ...created.spec, version: "1.0.1" } },
      "a released DeploymentPackage cannot change",
      true,
    );
  });

  it("Artifact: exactly one content source", async () => {
    const source = { configMapKeyRef: { name: "icons", key: "shop.png" } };
    await client.create(artifacts, {
      metadata: { name: "shop-icon", namespace: ns },
      spec: { mimeType: "image/png", source },
    });
    await rejected(
      artifacts,
      {
        metadata: { name: "both", namespace: ns },
        spec: { mimeType: "image/png", source: { ...source, secretKeyRef: { name: "s", key: "k" } } },
      },
      "set exactly one of configMapKeyRef and secretKeyRef",
    );
    await rejected(
      artifacts,
      { metadata: { name: "none", namespace: ns }, spec: { mimeType: "image/png", source: {} } },
      "set exactly one of configMapKeyRef and secretKeyRef",
    );
    await rejected(
      artifacts,
      { metadata: { name: "gif", namespace: ns }, spec: { mimeType: "image/gif", source } },
      /spec\.mimeType/,
    );
  });
});
