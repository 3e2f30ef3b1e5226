// Application reconcile against a real API server, a real OCI registry and a real clamd:
// chart resolved with its digest, scanned (EICAR found inside a chart archive), profiles
// checked against the chart's values, and clear conditions for what a user must fix.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Application } from "../../operators/api/application.generated.ts";
import { ApplicationResource, RegistryResource } from "../../operators/api/resources.generated.ts";
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
  type Chart,
  type OciRegistry,
  type Service,
} from "../support/services.ts";

const controlPlane = useControlPlane();
const ns = "default";
let client: KubeClient;
let manager: Manager;
let oci: OciRegistry;
let clamd: Service;
let web: Chart;

function app(
  name: string,
  version: string,
  chart: { name: string; version: string },
  spec: Partial<Application["spec"]> = {},
): Application {
  return {
    metadata: { name: `${name}-${version}`, namespace: ns },
    spec: { name, version, chart: { registryRef: { name: "charts" }, ...chart }, ...spec },
  };
}

const status = (name: string, test: (a: Application) => boolean): Promise<Application> =>
  eventually(`application ${name}`, async () => {
    const a = await client.get<Application>(ApplicationResource, name, ns);
    return a && test(a) ? a : undefined;
  });
const reason = (a: Application, type = "Ready"): string | undefined =>
  getCondition(a.status?.conditions, type)?.reason;
const message = (a: Application): string => getCondition(a.status?.conditions, "Ready")?.message ?? "";

describe("Application reconcile", () => {
  before(async () => {
    await installCRDs(controlPlane().management, crdFiles());
    const kubeConfig = kubeConfigFromFile(controlPlane().management.kubeconfig);
    client = new KubeClient(kubeConfig);
    [oci, clamd] = await Promise.all([startOciRegistry(), startClamd()]);
    web = await makeChart({
      name: "web",
      version: "1.2.0",
      values: { replicaCount: 2, image: { tag: "1.2.0" }, debug: false },
    });
    await pushChart(oci.url, "charts", web);
    await pushChart(
      oci.url,
      "charts",
      await makeChart({ name: "bad", version: "1.0.0", files: { "files/x.txt": eicar() } }),
    );
    await client.create(RegistryResource, {
      metadata: { name: "charts", namespace: ns },
      spec: { type: "oci", url: `${oci.url}/charts` },
    } as KubeObject);
    manager = await startOperator("outpost-catalog", kubeConfig, (m) => {
      registerCatalog(m, { clamdAddress: `${clamd.host}:${clamd.port}` });
    });
  });
  after(async () => {
    await manager.stop();
    await client.close();
    await Promise.all([oci.stop(), clamd.stop()]);
  });

  it("resolves the chart, records its digest and scan, and is Ready", async () => {
    await client.create(
      ApplicationResource,
      app(
        "web",
        "1.2.0",
        { name: "web", version: "1.2.0" },
        {
          defaultProfile: "default",
          profiles: [
            {
              name: "default",
              values: { extra: { enabled: true } },
              parameters: [
                { name: "replicaCount", type: "number", default: "3" },
                { name: "image.tag", type: "string" },
                { name: "extra.enabled", type: "boolean" },
              ],
            },
          ],
        },
      ),
    );
    const a = await status("web-1.2.0", (x) => kstatus(x) === "Current");
    assert.equal(a.status?.chartDigest, web.digest);
    assert.equal(a.status.scan?.result, "Clean");
    assert.equal(reason(a, "Scanned"), "Clean");
    assert.match(message(a), /chart web 1\.2\.0 resolved in charts/);
  });

  it("finds malware inside a chart archive and blocks the application", async () => {
    await client.create(ApplicationResource, app("bad", "1.0.0", { name: "bad", version: "1.0.0" }));
    const a = await status("bad-1.0.0", (x) => kstatus(x) === "Failed");
    assert.equal(reason(a), "MalwareFound");
    assert.equal(reason(a, "Scanned"), "MalwareFound");
    assert.equal(a.status?.scan?.signature, "Outpost.Test.EICAR.UNOFFICIAL");
    assert.match(message(a), /contains Outpost\.Test\.EICAR\.UNOFFICIAL; it cannot be used/);
  });

  it("reports a chart version the registry does not have", async () => {
    await client.create(ApplicationResource, app("web", "9.0.0", { name: "web", version: "9.0.0" }));
    const a = await status("web-9.0.0", (x) => reason(x) === "ChartNotFound");
    assert.match(message(a), /chart web 9\.0\.0 is not in .* \(it has 1\.2\.0\)/);
  });

  it("rejects parameters the chart does not have or of the wrong type", async () => {
    await client.create(
      ApplicationResource,
      app(
        "typo",
        "1.0.0",
        { name: "web", version: "1.2.0" },
        {
          defaultProfile: "p",
          profiles: [
            {
              name: "p",
              parameters: [
                { name: "replicas", type: "number" },
                { name: "debug", type: "string" },
              ],
            },
          ],
        },
      ),
    );
    const a = await status("typo-1.0.0", (x) => kstatus(x) === "Failed");
    assert.equal(reason(a), "InvalidProfile");
    assert.match(message(a), /parameter replicas is not a value of the chart/);
    assert.match(message(a), /parameter debug is declared string but the chart's value is a boolean/);
  });

  it("names a missing registry", async () => {
    await client.create(ApplicationResource, {
      ...app("lost", "1.0.0", { name: "web", version: "1.2.0" }),
      spec: {
        ...app("lost", "1.0.0", { name: "web", version: "1.2.0" }).spec,
        chart: { registryRef: { name: "nowhere" }, name: "web", version: "1.2.0" },
      },
    });
    const a = await status("lost-1.0.0", (x) => reason(x) === "RegistryNotFound");
    assert.match(message(a), /Registry default\/nowhere \(spec\.chart\.registryRef\) does not exist/);
  });
});
