// Every example applies, in order, to a real API server with the Outpost CRDs installed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { before, describe, it } from "node:test";
import { installCRDs } from "../controlplane/index.ts";
import { crdFiles } from "../support/crds.ts";
import { useControlPlane } from "../support/controlplane.ts";

const controlPlane = useControlPlane();
const examples = fileURLToPath(new URL("../../examples/", import.meta.url));
const files = readdirSync(examples)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

function kubectl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const cp = controlPlane();
  return spawnSync(cp.binaries.kubectl, ["--kubeconfig", cp.management.kubeconfig, ...args], {
    encoding: "utf8",
  });
}

describe("examples", () => {
  before(async () => {
    await installCRDs(controlPlane().management, crdFiles());
  });

  it("exist", () => {
    assert.ok(files.length >= 5);
  });

  for (const file of files) {
    it(`${file} applies`, () => {
      const res = kubectl("apply", "--server-side", "--field-manager=examples", "-f", join(examples, file));
      assert.equal(res.status, 0, res.stderr);
      if (file === "00-project.yaml") {
        // The tenancy operator creates the project namespace; here the test stands in for it.
        const ns = kubectl("create", "namespace", "retail");
        assert.equal(ns.status, 0, ns.stderr);
      }
    });
  }

  it("shows up in the outpost category", () => {
    const res = kubectl("get", "outpost", "-n", "retail", "-o", "name");
    assert.equal(res.status, 0, res.stderr);
    for (const name of [
      "registry.catalog.outpost.dev/bitnami",
      "application.catalog.outpost.dev/storefront-web-1.0.0",
      "deploymentpackage.catalog.outpost.dev/storefront-1.0.0",
      "network.interconnect.outpost.dev/retail",
      "appdeployment.deploy.outpost.dev/storefront",
    ]) {
      assert.ok(res.stdout.includes(name), `${name} in:\n${res.stdout}`);
    }
  });
});
