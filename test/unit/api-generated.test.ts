// Generated API code is current, and the ajv validators built on the CRD schemas work.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { knownKinds, validate } from "../../operators/api/validate.ts";

const generator = fileURLToPath(new URL("../../scripts/generate.ts", import.meta.url));

describe("generated API code", () => {
  it("matches crds/ (run `npm run generate` after changing a CRD)", () => {
    const res = spawnSync(process.execPath, ["--import", "tsx", generator, "--check"], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
  });

  it("validates objects against the CRD schemas", () => {
    assert.equal(knownKinds().length, 10);
    const registry = {
      apiVersion: "catalog.outpost.dev/v1alpha1",
      kind: "Registry",
      metadata: { name: "charts" },
      spec: { type: "helm", url: "https://charts.example.com" },
    };
    assert.deepEqual(validate(registry), []);
    assert.deepEqual(validate({ ...registry, spec: { type: "git", url: 7, extra: true } }), [
      'spec: unknown field "extra"',
      "spec.type: must be one of helm, oci, image",
      "spec.url: must be string",
    ]);
    assert.deepEqual(validate({ apiVersion: "v1", kind: "ConfigMap" }), [
      "(object): v1 ConfigMap is not an Outpost kind",
    ]);
    const deployment = {
      apiVersion: "deploy.outpost.dev/v1alpha1",
      kind: "AppDeployment",
      metadata: { name: "shop" },
      spec: {
        packageRef: { name: "shop", version: "1.0.0" },
        targets: { clusters: ["a"] },
        rollout: { maxUnavailable: "25%" },
        applications: [{ name: "web", values: { any: { nested: [1, "x"] } } }],
      },
    };
    assert.deepEqual(validate(deployment), []);
    assert.deepEqual(
      validate({ ...deployment, spec: { ...deployment.spec, rollout: { maxUnavailable: true } } }),
      [
        "spec.rollout.maxUnavailable: must be integer",
        "spec.rollout.maxUnavailable: must be string",
        "spec.rollout.maxUnavailable: must match a schema in anyOf",
      ],
    );
  });
});
