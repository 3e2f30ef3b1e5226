// Choosing the delivery engine per Project, when it cannot deliver: an engine this
// installation does not run, or one that is not installed on the management cluster
// (Argo CD's CRDs absent) — the AppDeployment says which engine and what is missing, and
// nothing is committed or applied; set back to an engine that works, it delivers.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import { AppDeploymentResource, ProjectResource } from "../../operators/api/resources.generated.ts";
import { GitRepoResource } from "../../operators/deploy/fleet.ts";
import { registerDeploy } from "../../operators/deploy/index.ts";
import type { EngineName } from "../../operators/deploy/engines/engine.ts";
import type { KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { useControlPlane } from "../support/controlplane.ts";
import {
  shopDeployment,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";
import { startOperator } from "../support/operator.ts";

const controlPlane = useControlPlane();
const ns = "kiosks";
let fx: DeployFixture;

const startDeploy = (engines: EngineName[]): Promise<Manager> =>
  startOperator("outpost-deploy", kubeConfigFromFile(controlPlane().management.kubeconfig), (m) => {
    registerDeploy(m, { engines, defaultEngine: "fleet", offlineAfterMs: 4_000 });
  });

describe("delivery engine choice", () => {
  before(async () => {
    fx = await startDeployFixture(controlPlane(), ns);
    await fx.client.create(ProjectResource, {
      metadata: { name: ns },
      spec: { delivery: { engine: "argocd" }, harbor: { enabled: false }, git: { enabled: false } },
    } as KubeObject);
    await fx.client.create(AppDeploymentResource, shopDeployment(ns, "shop"));
  });
  after(async () => {
    await fx.stop();
  });

  it("says so when the project's engine is not one this installation runs", async () => {
    const deploy = await startDeploy(["fleet"]);
    try {
      const d = await waitForDeployment(
        fx.client,
        ns,
        "shop",
        "EngineNotEnabled",
        (x) => getCondition(x.status?.conditions, "Stalled")?.reason === "EngineNotEnabled",
      );
      assert.match(
        getCondition(d.status?.conditions, "Ready")?.message ?? "",
        /delivers with Argo CD, which this Outpost installation does not run: start outpost-operator with --engines=fleet,argocd/,
      );
      assert.deepEqual(fx.git.log(fx.repo), [], "nothing committed");
    } finally {
      await deploy.stop();
    }
  });

  it("says Argo CD is not installed, and commits and applies nothing", async () => {
    const deploy = await startDeploy(["fleet", "argocd"]);
    try {
      const d = await waitForDeployment(
        fx.client,
        ns,
        "shop",
        "EngineUnavailable",
        (x) => getCondition(x.status?.conditions, "Delivered")?.reason === "EngineUnavailable",
      );
      const message = getCondition(d.status?.conditions, "Delivered")?.message ?? "";
      assert.match(message, /Argo CD is not installed on the management cluster/);
      assert.match(message, /applicationsets\.argoproj\.io\/v1alpha1/);
      assert.equal(getCondition(d.status?.conditions, "Ready")?.status, "False");
      assert.deepEqual(fx.git.log(fx.repo), [], "nothing committed");
      assert.deepEqual((await fx.client.list(GitRepoResource, { namespace: ns })).items, []);

      // The witness that this operator delivers at all: back on Fleet, it does.
      await fx.client.mergePatch(ProjectResource, ns, undefined, { spec: { delivery: { engine: "fleet" } } });
      const fleet = await waitForDeployment(
        fx.client,
        ns,
        "shop",
        "Running with Fleet",
        (x: AppDeployment) => x.status?.phase === "Running",
      );
      assert.equal(fleet.status?.engine, "fleet");
      assert.equal(fx.git.log(fx.repo).length, 1);
    } finally {
      await deploy.stop();
    }
  });
});
