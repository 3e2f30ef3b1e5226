// The CRDs of this repository (crds/*.yaml), for tests.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const crdDir = fileURLToPath(new URL("../../crds/", import.meta.url));

export function crdFiles(): string[] {
  return readdirSync(crdDir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => join(crdDir, f));
}
