// The demo's charts (scripts/demo/charts/<name>): packed into Helm chart archives
// (.tgz) for the demo's OCI registry.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { packChart, type Chart } from "../../test/support/services.ts";

const chartsDir = fileURLToPath(new URL("./charts/", import.meta.url));

/** scripts/demo/charts/<folder> as a chart archive, versioned by its Chart.yaml. */
export async function demoChart(folder: string): Promise<Chart> {
  const meta = parse(readFileSync(`${chartsDir}${folder}/Chart.yaml`, "utf8")) as { version: string };
  return packChart(chartsDir, folder, meta.version);
}
