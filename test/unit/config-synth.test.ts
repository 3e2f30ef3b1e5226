// config/ is what cdk8s/main.ts synthesizes (run `npm run synth` after changing it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";

const program = fileURLToPath(new URL("../../cdk8s/main.ts", import.meta.url));
const install = fileURLToPath(new URL("../../config/install.yaml", import.meta.url));

describe("install manifests", () => {
  it("match their cdk8s program", () => {
    const res = spawnSync(process.execPath, ["--import", "tsx", program, "--check"], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
  });

  it("run every container as non-root with a read-only root file system, probes and limits", () => {
    const docs = parseAllDocuments(readFileSync(install, "utf8")).map(
      (d) =>
        d.toJS() as {
          kind: string;
          metadata: { name: string };
          spec?: { template?: { spec?: { containers?: Record<string, unknown>[] } } };
        },
    );
    const deployments = docs.filter((d) => d.kind === "Deployment");
    // One per operator, and the service proxy.
    assert.deepEqual(deployments.map((d) => d.metadata.name).sort(), [
      "outpost-catalog",
      "outpost-deploy",
      "outpost-interconnect",
      "outpost-ops",
      "outpost-service-proxy",
      "outpost-tenancy",
    ]);
    for (const d of deployments) {
      for (const c of d.spec?.template?.spec?.containers ?? []) {
        const sc = c.securityContext as Record<string, unknown>;
        assert.equal(sc.runAsNonRoot, true, d.metadata.name);
        assert.equal(sc.readOnlyRootFilesystem, true, d.metadata.name);
        assert.equal(sc.allowPrivilegeEscalation, false, d.metadata.name);
        assert.deepEqual((sc.capabilities as { drop: string[] }).drop, ["ALL"]);
        assert.ok(c.livenessProbe && c.readinessProbe, d.metadata.name);
        assert.ok((c.resources as { limits?: object }).limits, d.metadata.name);
      }
    }
  });
});
