// Port checks and the upstream CRD loader of the local control plane.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { assertPortsFree, freePort } from "../controlplane/ports.ts";
import { upstreamCRDFiles, UpstreamUnavailableError } from "../controlplane/upstream.ts";

describe("ports", () => {
  it("names every busy port and what needed it", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const address = blocker.address();
    const busy = typeof address === "object" && address ? address.port : 0;
    const free = await freePort();
    try {
      await assert.rejects(
        assertPortsFree([free, busy], (p) => (p === busy ? "etcd" : "other")),
        new RegExp(`^Error: port already in use: 127\\.0\\.0\\.1:${busy} \\(for etcd\\)\\.`),
      );
      await assertPortsFree([free], () => "other");
    } finally {
      blocker.close();
    }
  });
});

describe("upstream CRDs", () => {
  const saved = process.env.OUTPOST_UPSTREAM_CRDS;
  afterEach(() => {
    if (saved === undefined) delete process.env.OUTPOST_UPSTREAM_CRDS;
    else process.env.OUTPOST_UPSTREAM_CRDS = saved;
  });
  const crd = (group: string): string =>
    `apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: things.${group}\nspec:\n  group: ${group}\n`;
  const source = { group: "example.io", module: "example.invalid/none", version: "v0.0.0", paths: [] };

  it("reads the CRDs of the group from OUTPOST_UPSTREAM_CRDS folders", () => {
    const dir = mkdtempSync(join(tmpdir(), "crds-"));
    try {
      mkdirSync(join(dir, "nested"));
      writeFileSync(join(dir, "nested", "a.yaml"), crd("example.io"));
      writeFileSync(join(dir, "b.yaml"), crd("other.io"));
      writeFileSync(join(dir, "c.txt"), crd("example.io"));
      process.env.OUTPOST_UPSTREAM_CRDS = dir;
      assert.deepEqual(upstreamCRDFiles(source), [join(dir, "nested", "a.yaml")]);
      process.env.OUTPOST_UPSTREAM_CRDS = join(dir, "missing");
      assert.throws(() => upstreamCRDFiles(source), UpstreamUnavailableError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
