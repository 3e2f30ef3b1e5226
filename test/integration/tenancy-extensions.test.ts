// Base extensions: packages of kind `extension` in outpost-system are copied into projects
// with their Applications and Registries; auto-deploy ones get an AppDeployment to every
// cluster of the project; a project can choose which; problems are named.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import type { Project } from "../../operators/api/project.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
  ProjectResource,
  RegistryResource,
} from "../../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { autoDeployAnnotation } from "../../operators/tenancy/extensions.ts";
import { registerTenancy } from "../../operators/tenancy/index.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { installOutpost } from "../support/install.ts";
import { startOperator } from "../support/operator.ts";

const controlPlane = useControlPlane();
const system = "outpost-system";
let client: KubeClient;
let manager: Manager;

const registry = (name: string, credentials = false): KubeObject =>
  ({
    metadata: { name, namespace: system },
    spec: {
      type: "oci",
      url: `oci://charts.example.com/${name}`,
      ...(credentials ? { credentialsSecretRef: { name: `${name}-creds` } } : {}),
    },
  }) as KubeObject;
const app = (name: string, registryName: string): KubeObject =>
  ({
    metadata: { name: `${name}-1.0.0`, namespace: system },
    spec: { name, version: "1.0.0", chart: { registryRef: { name: registryName }, name, version: "1.0.0" } },
  }) as KubeObject;
const pkg = (name: string, kind: string, autoDeploy = false): KubeObject =>
  ({
    metadata: {
      name: `${name}-1.0.0`,
      namespace: system,
      ...(autoDeploy ? { annotations: { [autoDeployAnnotation]: "true" } } : {}),
    },
    spec: { name, version: "1.0.0", kind, applications: [{ name, version: "1.0.0" }] },
  }) as KubeObject;

function waitForCondition(name: string, status: "True" | "False"): Promise<Project> {
  return eventually(`${name}: ExtensionsReady=${status}`, async () => {
    const p = await client.get<Project>(ProjectResource, name);
    return getCondition(p?.status?.conditions, "ExtensionsReady")?.status === status ? p : undefined;
  });
}

describe("base extensions", () => {
  before(async () => {
    installOutpost(controlPlane());
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    client = new KubeClient(kubeConfig);
    await client.create(RegistryResource, registry("public"));
    await client.create(RegistryResource, registry("private", true));
    for (const [name, reg] of [
      ["metrics", "public"],
      ["logging", "public"],
      ["shop", "public"],
      ["vault", "private"],
    ] as const) {
      await client.create(ApplicationResource, app(name, reg));
    }
    await client.create(DeploymentPackageResource, pkg("metrics", "extension", true));
    await client.create(DeploymentPackageResource, pkg("logging", "extension"));
    await client.create(DeploymentPackageResource, pkg("shop", "normal"));
    await client.create(DeploymentPackageResource, pkg("vault", "extension"));
    manager = await startOperator("outpost-tenancy", kubeConfig, (m) => {
      registerTenancy(m, { systemNamespace: system });
    });
  });
  after(async () => {
    await manager.stop();
    await client.close();
  });

  it("copies the chosen extensions and deploys the auto-deploy ones to every cluster", async () => {
    await client.create(ProjectResource, {
      metadata: { name: "team" },
      spec: { extensions: ["metrics", "logging"] },
    } as KubeObject);
    const p = await waitForCondition("team", "True");
    assert.match(
      getCondition(p.status?.conditions, "ExtensionsReady")?.message ?? "",
      /2 extension\(s\): logging, metrics; deployed: metrics/,
    );
    const names = async (r: typeof RegistryResource): Promise<string[]> =>
      (await client.list(r, { namespace: "team" })).items.map((o) => o.metadata.name ?? "").sort();
    assert.deepEqual(await names(DeploymentPackageResource), ["logging-1.0.0", "metrics-1.0.0"]);
    assert.deepEqual(await names(ApplicationResource), ["logging-1.0.0", "metrics-1.0.0"]);
    assert.deepEqual(await names(RegistryResource), ["public"]);
    const d = await client.get<AppDeployment>(AppDeploymentResource, "metrics", "team");
    assert.ok(d);
    assert.deepEqual(d.spec.packageRef, { name: "metrics", version: "1.0.0" });
    assert.deepEqual(d.spec.targets, { clusterSelector: {} });
    assert.equal(await client.get(AppDeploymentResource, "logging", "team"), undefined);

    // The deployment is the project's afterwards: a change is kept.
    await client.mergePatch(AppDeploymentResource, "metrics", "team", { spec: { suspend: true } });
    await client.mergePatch(ProjectResource, "team", undefined, {
      metadata: { annotations: { "outpost.dev/requestedAt": "again" } },
    });
    await eventually("reconciled again", async () => {
      const again = await client.get<Project>(ProjectResource, "team");
      return again?.status?.lastHandledReconcileAt === "again" ? true : undefined;
    });
    assert.equal(
      (await client.get<AppDeployment>(AppDeploymentResource, "metrics", "team"))?.spec.suspend,
      true,
    );
  });

  it("names extensions that cannot be copied, and copies the others", async () => {
    await client.create(ProjectResource, { metadata: { name: "everyone" }, spec: {} } as KubeObject);
    const p = await waitForCondition("everyone", "False");
    assert.match(
      getCondition(p.status?.conditions, "ExtensionsReady")?.message ?? "",
      /extension vault 1.0.0: Registry private uses Secrets, which are not copied into projects/,
    );
    const packages = (await client.list(DeploymentPackageResource, { namespace: "everyone" })).items
      .map((o) => o.metadata.name)
      .sort();
    assert.deepEqual(
      packages,
      ["logging-1.0.0", "metrics-1.0.0"],
      "normal packages and the broken one are not copied",
    );

    await client.create(ProjectResource, {
      metadata: { name: "picky" },
      spec: { extensions: ["nope"] },
    } as KubeObject);
    const picky = await waitForCondition("picky", "False");
    assert.match(
      getCondition(picky.status?.conditions, "ExtensionsReady")?.message ?? "",
      /spec.extensions: nope is not a released extension package/,
    );
  });
});
