// Every CRD teaches its API through `kubectl explain`: each property has a description,
// and each kind follows the project's conventions.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { crdFiles } from "../support/crds.ts";

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

interface CRD {
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; plural: string; shortNames?: string[]; categories?: string[] };
    versions: {
      name: string;
      subresources?: { status?: object };
      additionalPrinterColumns?: { name: string }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

/** Paths of properties that have no description. */
function undocumented(schema: Schema, path: string): string[] {
  const missing: string[] = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const p = `${path}.${name}`;
    if (name === "metadata" && path === "") continue;
    if (!child.description?.trim()) missing.push(p);
    missing.push(...undocumented(child, p));
  }
  if (schema.items) missing.push(...undocumented(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === "object")
    missing.push(...undocumented(schema.additionalProperties, `${path}{}`));
  return missing;
}

// Short names of built-in kinds and of tools users run beside Outpost (Argo CD, Flux, Fleet).
const taken = new Set(
  "po svc deploy ds sts rs rc ns no pv pvc cm sa ep ing netpol pdb hpa cj csr crd crds pc sc quota limits ev app apps appproj gitrepo hr ks".split(
    " ",
  ),
);

const files = crdFiles();

describe("CRD schemas", () => {
  it("exist", () => {
    assert.ok(files.length > 0);
  });
  for (const file of files) {
    const crd = parse(readFileSync(file, "utf8")) as CRD;
    it(`${basename(file)} documents every property`, () => {
      for (const v of crd.spec.versions) {
        assert.deepEqual(undocumented(v.schema.openAPIV3Schema, ""), [], `${crd.metadata.name} ${v.name}`);
      }
    });
    it(`${basename(file)} follows the conventions`, () => {
      assert.equal(basename(file), `${crd.spec.group}_${crd.spec.names.plural}.yaml`);
      assert.ok(crd.spec.group.endsWith(".outpost.dev"));
      assert.ok(crd.spec.names.categories?.includes("outpost"), "category outpost");
      for (const s of crd.spec.names.shortNames ?? []) assert.ok(!taken.has(s), `short name ${s} is taken`);
      for (const v of crd.spec.versions) {
        assert.equal(v.name, "v1alpha1");
        assert.ok(v.subresources?.status, "status subresource");
        const status = v.schema.openAPIV3Schema.properties?.status?.properties ?? {};
        assert.ok(status.observedGeneration && status.conditions, "status.observedGeneration and conditions");
        const columns = (v.additionalPrinterColumns ?? []).map((c) => c.name);
        assert.ok(
          columns.includes("Ready") && columns.includes("Age"),
          `printer columns: ${columns.join(", ")}`,
        );
      }
    });
  }
});
