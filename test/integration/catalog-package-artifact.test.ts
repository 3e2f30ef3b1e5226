// DeploymentPackage and Artifact reconcile against a real API server, OCI registry and
// clamd: readiness follows the applications, cycles and bad profiles are reported with
// their path, content digests and usage counts are recorded; artifact bytes are checked
// against their MIME type and scanned.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Artifact } from "../../operators/api/artifact.generated.ts";
import type { DeploymentPackage } from "../../operators/api/deployment-package.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  ArtifactResource,
  DeploymentPackageResource,
  RegistryResource,
} from "../../operators/api/resources.generated.ts";
import { registerCatalog } from "../../operators/catalog/index.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition, kstatus } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import { crdFiles } from "../support/crds.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { startOperator } from "../support/operator.ts";
import {
  eicar,
  makeChart,
  pushChart,
  startClamd,
  startOciRegistry,
  type OciRegistry,
  type Service,
} from "../support/services.ts";
import { configMapsResource, secretsResource } from "../../operators/runtime/core.ts";

const controlPlane = useControlPlane();
const ns = "default";
let client: KubeClient;
let manager: Manager;
let oci: OciRegistry;
let clamd: Service;

const app = (name: string, chart: string, profiles: string[] = []): KubeObject =>
  ({
    metadata: { name: `${name}-1.0.0`, namespace: ns },
    spec: {
      name,
      version: "1.0.0",
      chart: { registryRef: { name: "charts" }, name: chart, version: "1.0.0" },
      ...(profiles.length
        ? { defaultProfile: profiles[0], profiles: profiles.map((p) => ({ name: p })) }
        : {}),
    },
  }) as KubeObject;

const pkg = (name: string, spec: Partial<DeploymentPackage["spec"]>): DeploymentPackage => ({
  metadata: { name: `${name}-1.0.0`, namespace: ns },
  spec: {
    name,
    version: "1.0.0",
    applications: [
      { name: "web", version: "1.0.0" },
      { name: "db", version: "1.0.0" },
    ],
    ...spec,
  },
});

function waitFor<T extends KubeObject & { status?: { conditions?: { type: string; reason: string }[] } }>(
  r: typeof ArtifactResource,
  name: string,
  test: (o: T) => boolean,
): Promise<T> {
  return eventually(`${r.kind} ${name}`, async () => {
    const o = await client.get<T>(r, name, ns);
    return o && test(o) ? o : undefined;
  });
}
const reasonOf = (o: { status?: { conditions?: { type: string; reason: string }[] } }): string | undefined =>
  o.status?.conditions?.find((c) => c.type === "Ready")?.reason;
const messageOf = (
  o: KubeObject & {
    status?: {
      conditions?: {
        type: string;
        reason: string;
        message: string;
        status: "True" | "False" | "Unknown";
        lastTransitionTime: string;
      }[];
    };
  },
): string => getCondition(o.status?.conditions, "Ready")?.message ?? "";

describe("DeploymentPackage and Artifact reconcile", () => {
  before(async () => {
    await installCRDs(controlPlane().management, crdFiles());
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    client = new KubeClient(kubeConfig);
    [oci, clamd] = await Promise.all([startOciRegistry(), startClamd()]);
    await pushChart(oci.url, "charts", await makeChart({ name: "web", version: "1.0.0" }));
    await pushChart(oci.url, "charts", await makeChart({ name: "db", version: "1.0.0" }));
    await pushChart(
      oci.url,
      "charts",
      await makeChart({ name: "evil", version: "1.0.0", files: { "files/x": eicar() } }),
    );
    await client.create(RegistryResource, {
      metadata: { name: "charts", namespace: ns },
      spec: { type: "oci", url: `${oci.url}/charts` },
    } as KubeObject);
    for (const a of [app("web", "web", ["standard", "kiosk"]), app("db", "db"), app("evil", "evil")])
      await client.create(ApplicationResource, a);
    manager = await startOperator("outpost-catalog", kubeConfig, (m) => {
      registerCatalog(m, { clamdAddress: `${clamd.host}:${clamd.port}` });
    });
  });
  after(async () => {
    await manager.stop();
    await client.close();
    await Promise.all([oci.stop(), clamd.stop()]);
  });

  it("is Ready with a content digest once its applications are", async () => {
    await client.create(
      DeploymentPackageResource,
      pkg("shop", {
        dependencies: [{ application: "web", requires: "db" }],
        profiles: [{ name: "edge", applicationProfiles: { web: "kiosk" } }],
        defaultProfile: "edge",
      }),
    );
    const p = await waitFor<DeploymentPackage>(
      DeploymentPackageResource,
      "shop-1.0.0",
      (x) => kstatus(x) === "Current",
    );
    assert.match(p.status?.contentDigest ?? "", /^sha256:[0-9a-f]{64}$/);
    assert.equal(p.status?.applicationCount, 2);
    assert.equal(p.status.deploymentCount, 0);
  });

  it("counts the AppDeployments that use it", async () => {
    await client.create(AppDeploymentResource, {
      metadata: { name: "shop-stores", namespace: ns },
      spec: { packageRef: { name: "shop", version: "1.0.0" }, targets: { clusters: ["store-1"] } },
    } as KubeObject);
    const p = await waitFor<DeploymentPackage>(
      DeploymentPackageResource,
      "shop-1.0.0",
      (x) => x.status?.deploymentCount === 1,
    );
    assert.deepEqual(p.status?.deployments, ["shop-stores"]);
  });

  it("reports a dependency cycle with its path", async () => {
    await client.create(
      DeploymentPackageResource,
      pkg("loop", {
        dependencies: [
          { application: "web", requires: "db" },
          { application: "db", requires: "web" },
        ],
      }),
    );
    const p = await waitFor<DeploymentPackage>(
      DeploymentPackageResource,
      "loop-1.0.0",
      (x) => kstatus(x) === "Failed",
    );
    assert.equal(reasonOf(p), "DependencyCycle");
    assert.match(messageOf(p), /dependency cycle: (db → web → db|web → db → web)/);
  });

  it("rejects a profile an application does not have", async () => {
    await client.create(
      DeploymentPackageResource,
      pkg("typo", { profiles: [{ name: "edge", applicationProfiles: { web: "tiny" } }] }),
    );
    const p = await waitFor<DeploymentPackage>(
      DeploymentPackageResource,
      "typo-1.0.0",
      (x) => kstatus(x) === "Failed",
    );
    assert.match(
      messageOf(p),
      /profile edge: application web has no profile tiny \(it has standard, kiosk\)/,
    );
  });

  it("is not Ready while an application is missing or infected, and says which", async () => {
    await client.create(
      DeploymentPackageResource,
      pkg("gaps", {
        applications: [
          { name: "web", version: "1.0.0" },
          { name: "cache", version: "2.0.0" },
        ],
      }),
    );
    const missing = await waitFor<DeploymentPackage>(
      DeploymentPackageResource,
      "gaps-1.0.0",
      (x) => reasonOf(x) === "ApplicationNotFound",
    );
    assert.match(messageOf(missing), /applications not found in this namespace: cache-2\.0\.0/);
    await client.create(
      DeploymentPackageResource,
      pkg("infected", { applications: [{ name: "evil", version: "1.0.0" }] }),
    );
    const infected = await waitFor<DeploymentPackage>(
      DeploymentPackageResource,
      "infected-1.0.0",
      (x) => reasonOf(x) === "ApplicationNotReady",
    );
    assert.match(messageOf(infected), /evil-1\.0\.0 is not ready \(MalwareFound: /);
  });

  it("checks artifacts: content found, MIME type matches, no malware", async () => {
    const artifact = (
      name: string,
      mimeType: Artifact["spec"]["mimeType"],
      source: Artifact["spec"]["source"],
    ): Artifact => ({
      metadata: { name, namespace: ns },
      spec: { mimeType, source },
    });
    await client.create(configMapsResource, {
      metadata: { name: "files", namespace: ns },
      data: { "readme.txt": "Storefront notes\n", "bad.txt": `notes ${eicar().toString("latin1")}` },
      binaryData: { "icon.png": Buffer.from("89504e470d0a1a0a0000000d49484452", "hex").toString("base64") },
    } as KubeObject);
    await client.create(
      ArtifactResource,
      artifact("readme", "text/plain", { configMapKeyRef: { name: "files", key: "readme.txt" } }),
    );
    await client.create(
      ArtifactResource,
      artifact("icon", "image/png", { configMapKeyRef: { name: "files", key: "icon.png" } }),
    );
    await client.create(
      ArtifactResource,
      artifact("fake-png", "image/png", { configMapKeyRef: { name: "files", key: "readme.txt" } }),
    );
    await client.create(
      ArtifactResource,
      artifact("bad", "text/plain", { configMapKeyRef: { name: "files", key: "bad.txt" } }),
    );

    const readme = await waitFor<Artifact>(ArtifactResource, "readme", (x) => kstatus(x) === "Current");
    assert.equal(readme.status?.size, 17);
    assert.equal(readme.status.scan?.result, "Clean");
    assert.equal(
      (await waitFor<Artifact>(ArtifactResource, "icon", (x) => kstatus(x) === "Current")).status?.size,
      16,
    );
    const fake = await waitFor<Artifact>(ArtifactResource, "fake-png", (x) => kstatus(x) === "Failed");
    assert.equal(reasonOf(fake), "MimeTypeMismatch");
    assert.match(messageOf(fake), /spec\.mimeType is image\/png, but the content is not a PNG image/);
    const bad = await waitFor<Artifact>(ArtifactResource, "bad", (x) => kstatus(x) === "Failed");
    assert.equal(reasonOf(bad), "MalwareFound");
  });

  it("waits for a missing source and picks it up when it appears", async () => {
    await client.create(ArtifactResource, {
      metadata: { name: "late", namespace: ns },
      spec: { mimeType: "application/json", source: { configMapKeyRef: { name: "later", key: "a.json" } } },
    } as KubeObject);
    const missing = await waitFor<Artifact>(
      ArtifactResource,
      "late",
      (x) => reasonOf(x) === "SourceNotFound",
    );
    assert.match(
      messageOf(missing),
      /ConfigMap default\/later \(spec\.source\.configMapKeyRef\) does not exist/,
    );
    await client.create(configMapsResource, {
      metadata: { name: "later", namespace: ns },
      data: { "a.json": '{"ok": true}' },
    } as KubeObject);
    await waitFor<Artifact>(ArtifactResource, "late", (x) => kstatus(x) === "Current");
    await client.create(secretsResource, {
      metadata: { name: "secret-notes", namespace: ns },
      stringData: { "notes.yaml": "a: 1\n" },
    } as KubeObject);
    await client.create(ArtifactResource, {
      metadata: { name: "from-secret", namespace: ns },
      spec: {
        mimeType: "application/yaml",
        source: { secretKeyRef: { name: "secret-notes", key: "notes.yaml" } },
      },
    } as KubeObject);
    await waitFor<Artifact>(ArtifactResource, "from-secret", (x) => kstatus(x) === "Current");
  });
});
