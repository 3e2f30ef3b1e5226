// Every Outpost object in examples/ is valid against its CRD schema (offline check).
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { validate } from "../../operators/api/validate.ts";

const examples = fileURLToPath(new URL("../../examples/", import.meta.url));

describe("examples against the schemas", () => {
  for (const file of readdirSync(examples).filter((f) => f.endsWith(".yaml"))) {
    it(file, () => {
      for (const doc of parseAllDocuments(readFileSync(join(examples, file), "utf8"))) {
        const obj = doc.toJS() as { apiVersion: string; kind: string; metadata: { name: string } };
        if (!obj.apiVersion.includes("outpost.dev")) continue;
        assert.deepEqual(validate(obj), [], `${obj.kind} ${obj.metadata.name}`);
      }
    });
  }
});
