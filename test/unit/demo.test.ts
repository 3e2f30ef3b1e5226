// The demo's pure parts: reading examples/, cluster registrations, readiness.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  delivered,
  deploymentStall,
  exampleObjects,
  readExamples,
  readiness,
} from "../../scripts/demo/deliver.ts";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import { registrationObjects } from "../../operators/inventory/register.ts";

const condition = (type: string, status: string, reason = "R", message = "m") => ({
  type,
  status: status as "True" | "False",
  reason,
  message,
  lastTransitionTime: "2026-01-01T00:00:00Z",
});

describe("demo: examples", () => {
  it("reads every example in file order, the Project first", () => {
    const objects = readExamples();
    assert.equal(objects[0]?.kind, "Project");
    const kinds = new Set(objects.map((o) => o.kind));
    for (const k of ["Registry", "Application", "DeploymentPackage", "Network", "AppDeployment", "Secret"])
      assert.ok(kinds.has(k), k);
    assert.equal(objects.at(-1)?.kind, "AppDeployment");
  });

  it("points Registry bitnami at the local charts only when asked", () => {
    const registry = (url?: string) => readExamples(url).find((o) => o.kind === "Registry");
    assert.equal(registry()?.spec?.url, "oci://registry-1.docker.io/bitnamicharts");
    assert.equal(
      registry("http://127.0.0.1:5000/bitnamicharts")?.spec?.url,
      "http://127.0.0.1:5000/bitnamicharts",
    );
    assert.equal(registry("http://127.0.0.1:5000/bitnamicharts")?.spec?.type, "oci");
  });

  it("sorts files by name and refuses kinds it does not know, naming the file", () => {
    const objects = exampleObjects([
      { name: "20-b.yaml", text: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n" },
      { name: "10-a.yaml", text: "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\n" },
    ]);
    assert.deepEqual(
      objects.map((o) => o.metadata.name),
      ["a", "b"],
    );
    assert.throws(
      () => exampleObjects([{ name: "x.yaml", text: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n" }]),
      /x\.yaml: kind Pod is not one the demo applies/,
    );
    assert.throws(() => exampleObjects([{ name: "bad.yaml", text: "a: [" }]), /bad\.yaml/);
  });
});

describe("cluster registration with Fleet", () => {
  const kubeconfig = (token: string): string =>
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]
users: [{name: u, user: {token: ${token}}}]
`;
  it("gives Fleet the engine's kubeconfig and Outpost its own, with the labels on the Cluster", () => {
    const objects = registrationObjects({
      namespace: "retail",
      name: "store-1",
      labels: { ring: "pilot" },
      engine: "fleet",
      engineKubeconfig: kubeconfig("admin"),
      outpostKubeconfig: kubeconfig("edge"),
    }).map(
      (o) =>
        o.object as {
          kind?: string;
          metadata: { name?: string; namespace?: string; labels?: object };
          data?: Record<string, string>;
          spec?: object;
        },
    );
    const value = (o: { data?: Record<string, string> }) =>
      Buffer.from(o.data?.value ?? "", "base64").toString();
    const secrets = objects.filter((o) => o.kind === "Secret");
    // Where no project role reaches: outpost-edges for Outpost, Fleet's own namespace for
    // Fleet (one Fleet v0.16 reads kubeconfigs from).
    assert.deepEqual(
      secrets.map((s) => [s.metadata.namespace, s.metadata.name, value(s)]),
      [
        ["outpost-edges", "retail.store-1", kubeconfig("edge")],
        ["cattle-fleet-system", "retail.store-1", kubeconfig("admin")],
      ],
    );
    const cluster = objects.find((o) => o.kind === "Cluster");
    assert.deepEqual(cluster?.metadata.labels, { ring: "pilot" });
    assert.deepEqual(cluster.spec, {
      kubeConfigSecret: "retail.store-1",
      kubeConfigSecretNamespace: "cattle-fleet-system",
    });
  });
});

describe("demo: readiness", () => {
  const obj = (
    generation: number,
    observed: number | undefined,
    conditions: ReturnType<typeof condition>[],
  ) => ({
    metadata: { name: "x", generation },
    status: { observedGeneration: observed, conditions },
  });

  it("is ready only for the current generation's Ready=True", () => {
    assert.deepEqual(readiness(undefined), { ready: false, text: "not created yet" });
    assert.equal(readiness(obj(2, 1, [condition("Ready", "True")])).ready, false);
    assert.equal(readiness(obj(2, 2, [condition("Ready", "True", "Ok", "fine")])).text, "Ready: fine");
  });

  it("says why not, and whether the operator stalled", () => {
    const r = readiness(
      obj(1, 1, [condition("Ready", "False", "ChartNotFound", "no chart x"), condition("Stalled", "True")]),
    );
    assert.deepEqual(r, { ready: false, stalled: true, text: "ChartNotFound: no chart x" });
    assert.equal(readiness(obj(1, 1, [condition("Ready", "False")])).stalled, false);
  });

  it("stops on a stalled deployment, except one awaiting the approval the demo gives", () => {
    const dep = (phase: string, stalled: boolean): AppDeployment =>
      ({
        metadata: { name: "d", generation: 1 },
        spec: { packageRef: { name: "p", version: "1" } },
        status: {
          observedGeneration: 1,
          phase,
          conditions: [
            condition("Ready", "False", phase, "why"),
            ...(stalled ? [condition("Stalled", "True", phase, "why")] : []),
          ],
        },
      }) as AppDeployment;
    assert.equal(deploymentStall(dep("AwaitingApproval", true)), undefined);
    assert.equal(deploymentStall(dep("Error", true)), "Error: why");
    assert.equal(deploymentStall(dep("Deploying", false)), undefined);
    assert.equal(deploymentStall(undefined), undefined);
  });

  it("calls a deployment delivered when its current spec is committed", () => {
    const dep = (observed: number, commit: string | undefined, status: string): AppDeployment =>
      ({
        metadata: { name: "d", generation: 3 },
        spec: { packageRef: { name: "p", version: "1" } },
        status: { observedGeneration: observed, commit, conditions: [condition("Delivered", status)] },
      }) as AppDeployment;
    assert.equal(delivered(dep(3, "abc", "True")), true);
    assert.equal(delivered(dep(2, "abc", "True")), false);
    assert.equal(delivered(dep(3, undefined, "True")), false);
    assert.equal(delivered(dep(3, "abc", "False")), false);
    assert.equal(delivered(undefined), false);
  });
});
