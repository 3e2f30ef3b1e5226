// Reading a Helm chart archive in memory: Chart.yaml, values.yaml, values.schema.json.
import { Readable } from "node:stream";
import * as tar from "tar";
import { parse } from "yaml";

export interface ChartFiles {
  chart?: Record<string, unknown>;
  values: Record<string, unknown>;
  hasSchema: boolean;
}

const maxEntries = 10_000;
const maxFileBytes = 4 * 1024 * 1024;

/** The chart's metadata and default values; fails with a sentence on a broken archive. */
export async function readChart(archive: Buffer): Promise<ChartFiles> {
  const wanted = new Map<string, Buffer[]>();
  let entries = 0;
  let failure: Error | undefined;
  const parser = new tar.Parser({
    onReadEntry: (entry) => {
      entries++;
      if (entries > maxEntries) failure = new Error(`the chart archive has more than ${maxEntries} files`);
      const parts = entry.path.split("/");
      const file = parts.length === 2 ? parts[1] : undefined;
      if (file === "Chart.yaml" || file === "values.yaml" || file === "values.schema.json") {
        if (entry.size > maxFileBytes) failure = new Error(`${entry.path} is larger than 4 MiB`);
        const chunks: Buffer[] = [];
        wanted.set(file, chunks);
        entry.on("data", (c: Buffer) => chunks.push(c));
      } else {
        entry.resume();
      }
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on("end", resolve);
    parser.on("error", reject);
    Readable.from([archive]).pipe(parser).on("error", reject);
  }).catch((err: unknown) => {
    throw new Error(`the chart archive cannot be read: ${(err as Error).message}`, { cause: err });
  });
  if (failure) throw failure;
  const text = (name: string): string | undefined => {
    const chunks = wanted.get(name);
    return chunks ? Buffer.concat(chunks).toString("utf8") : undefined;
  };
  const chartYaml = text("Chart.yaml");
  if (chartYaml === undefined) throw new Error("the archive has no Chart.yaml: it is not a Helm chart");
  let values: unknown;
  try {
    values = parse(text("values.yaml") ?? "") ?? {};
  } catch (err) {
    throw new Error(`the chart's values.yaml is not YAML: ${(err as Error).message.split("\n")[0] ?? ""}`, {
      cause: err,
    });
  }
  if (typeof values !== "object" || Array.isArray(values))
    throw new Error("the chart's values.yaml is not a map");
  return {
    chart: parse(chartYaml) as Record<string, unknown>,
    values: values as Record<string, unknown>,
    hasSchema: wanted.has("values.schema.json"),
  };
}

/** The value at a dotted path, and whether the path exists. */
export function lookup(values: unknown, path: string): { found: boolean; value?: unknown } {
  let cur: unknown = values;
  for (const key of path.split(".")) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur) || !(key in cur))
      return { found: false };
    cur = (cur as Record<string, unknown>)[key];
  }
  return { found: true, value: cur };
}
