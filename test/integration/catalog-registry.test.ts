// Registry reconcile against a real API server and real registries: Ready with a check
// time when reachable, a condition naming the URL and error when not, credentials from
// Secrets, and deletion held while applications use the registry.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Registry } from "../../operators/api/registry.generated.ts";
import { ApplicationResource, RegistryResource } from "../../operators/api/resources.generated.ts";
import { registerCatalog } from "../../operators/catalog/index.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition, kstatus } from "../../operators/runtime/conditions.ts";
import { requestedAtAnnotation } from "../../operators/runtime/controller.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { reconcileNow } from "../../cli/reconcile.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import { freePort } from "../controlplane/ports.ts";
import { crdFiles } from "../support/crds.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { startOperator } from "../support/operator.ts";
import {
  makeChart,
  pushChart,
  startHelmRepo,
  startOciRegistry,
  type HelmRepo,
  type OciRegistry,
} from "../support/services.ts";
import { secretsResource } from "../../operators/runtime/core.ts";

const controlPlane = useControlPlane();
const ns = "default";
let client: KubeClient;
let manager: Manager;
let oci: OciRegistry;
let helm: HelmRepo;

const registry = (name: string, spec: Registry["spec"]): Registry => ({
  metadata: { name, namespace: ns },
  spec,
});
const ready = (name: string, test: (r: Registry) => boolean): Promise<Registry> =>
  eventually(`registry ${name}`, async () => {
    const r = await client.get<Registry>(RegistryResource, name, ns);
    return r && test(r) ? r : undefined;
  });

describe("Registry reconcile", () => {
  before(async () => {
    await installCRDs(controlPlane().management, crdFiles());
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    client = new KubeClient(kubeConfig);
    oci = await startOciRegistry();
    const chart = await makeChart({ name: "web", version: "1.0.0" });
    await pushChart(oci.url, "charts", chart);
    helm = await startHelmRepo([chart], { basicAuth: "robot:s3cret" });
    manager = await startOperator("outpost-catalog", kubeConfig, (m) => {
      registerCatalog(m, { scanMode: "off" });
    });
  });
  after(async () => {
    await manager.stop();
    await client.close();
    await Promise.all([oci.stop(), helm.stop()]);
  });

  it("is Ready (kstatus Current) when reachable, with the check time", async () => {
    await client.create(RegistryResource, registry("oci", { type: "oci", url: `${oci.url}/charts` }));
    const r = await ready("oci", (x) => kstatus(x) === "Current");
    assert.equal(getCondition(r.status?.conditions, "Ready")?.reason, "Reachable");
    assert.ok(r.status?.lastCheckTime);
    assert.deepEqual(r.metadata.finalizers, ["catalog.outpost.dev/registry-in-use"]);
  });

  it("names the URL and the error when unreachable, without a crash loop", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await client.create(RegistryResource, registry("down", { type: "oci", url }));
    const r = await ready("down", (x) => getCondition(x.status?.conditions, "Ready")?.status === "False");
    const cond = getCondition(r.status?.conditions, "Ready");
    assert.equal(cond?.reason, "Unreachable");
    assert.ok(cond.message.includes(`GET ${url}/v2/ failed`), cond.message);
    const errors = await manager.metrics.reconcileErrors.get();
    assert.equal(errors.values.find((v) => v.labels.controller === "registry")?.value ?? 0, 0);
  });

  it("uses credentials from a Secret and reports a missing or wrong one", async () => {
    await client.create(
      RegistryResource,
      registry("private", { type: "helm", url: helm.url, credentialsSecretRef: { name: "helm-creds" } }),
    );
    const missing = await ready(
      "private",
      (x) => getCondition(x.status?.conditions, "Ready")?.reason === "SecretNotFound",
    );
    assert.match(
      getCondition(missing.status?.conditions, "Ready")?.message ?? "",
      /Secret default\/helm-creds \(registry credentials\) does not exist/,
    );

    await client.create(secretsResource, {
      metadata: { name: "helm-creds", namespace: ns },
      stringData: { username: "robot", password: "wrong" },
    } as KubeObject);
    const stamp = (v: string): Promise<unknown> =>
      client.mergePatch(RegistryResource, "private", ns, {
        metadata: { annotations: { [requestedAtAnnotation]: v } },
      });
    await stamp("1");
    const refused = await ready(
      "private",
      (x) => getCondition(x.status?.conditions, "Ready")?.reason === "Unauthorized",
    );
    assert.match(getCondition(refused.status?.conditions, "Ready")?.message ?? "", /refused the credentials/);

    await client.mergePatch(secretsResource, "helm-creds", ns, { stringData: { password: "s3cret" } });
    await stamp("2");
    const ok = await ready("private", (x) => kstatus(x) === "Current");
    assert.equal(ok.status?.lastHandledReconcileAt, "2");
    assert.ok(
      helm.requests.some(
        (q) => q.authorization === `Basic ${Buffer.from("robot:s3cret").toString("base64")}`,
      ),
    );
  });

  it("reconciles on request from the CLI and waits for it", async () => {
    const lines: string[] = [];
    const result = await reconcileNow(client, "registry/private", ns, { progress: (l) => lines.push(l) });
    assert.match(result.ready ?? "", /^Ready=True: .* is reachable$/);
    assert.match(lines[0] ?? "", /asked for a reconcile of registry\/private/);
    await assert.rejects(reconcileNow(client, "widget/x", ns), /unknown kind "widget"/);
    await assert.rejects(
      reconcileNow(client, "registry/none", ns),
      /Registry none in namespace default: .*not found/,
    );
  });

  it("counts the applications using it and holds deletion while any does", async () => {
    await client.create(ApplicationResource, {
      metadata: { name: "web-1.0.0", namespace: ns },
      spec: {
        name: "web",
        version: "1.0.0",
        chart: { registryRef: { name: "oci" }, name: "web", version: "1.0.0" },
      },
    } as KubeObject);
    await ready("oci", (x) => x.status?.applications === 1);
    await client.delete(RegistryResource, "oci", ns);
    const held = await ready("oci", (x) => getCondition(x.status?.conditions, "Ready")?.reason === "InUse");
    assert.match(
      getCondition(held.status?.conditions, "Ready")?.message ?? "",
      /still used by web-1\.0\.0; delete those applications first/,
    );
    await client.delete(ApplicationResource, "web-1.0.0", ns);
    await eventually("the registry to be deleted", async () =>
      (await client.get(RegistryResource, "oci", ns)) ? undefined : true,
    );
  });
});
