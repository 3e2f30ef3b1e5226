// The demo's charts (scripts/demo/charts/<name>): packed into Helm chart archives
// (.tgz) for the demo's OCI registry.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as tar from "tar";
import { parse } from "yaml";
import type { Chart } from "../../test/support/services.ts";

const chartsDir = fileURLToPath(new URL("./charts/", import.meta.url));

/** scripts/demo/charts/<name> as a chart archive, named and versioned by its Chart.yaml. */
export async function packChart(name: string): Promise<Chart> {
  const meta = parse(readFileSync(`${chartsDir}${name}/Chart.yaml`, "utf8")) as {
    name: string;
    version: string;
  };
  const chunks: Buffer[] = [];
  const stream = tar.c({ gzip: true, cwd: chartsDir, portable: true }, [name]);
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  const archive = Buffer.concat(chunks);
  return {
    name: meta.name,
    version: meta.version,
    archive,
    digest: `sha256:${createHash("sha256").update(archive).digest("hex")}`,
  };
}
