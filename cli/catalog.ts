// `kubectl outpost import` and `kubectl outpost export`: the Edge Orchestrator catalog
// format in and out. Import is all or nothing: every file is validated and scanned, every
// object passes a server-side dry run, and only then is anything applied.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ArtifactResource } from "../operators/api/resources.generated.ts";
import {
  ApplicationResource,
  DeploymentPackageResource,
  RegistryResource,
} from "../operators/api/resources.generated.ts";
import type { Artifact } from "../operators/api/artifact.generated.ts";
import {
  CatalogError,
  parseCatalog,
  toCatalogFiles,
  toObjects,
  type CatalogFile,
} from "../operators/catalog/format.ts";
import type { Scanner } from "../operators/catalog/scanner.ts";
import { secretData } from "../operators/catalog/secrets.ts";
import {
  ApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from "../operators/runtime/client.ts";
import { configMapsResource } from "../operators/runtime/core.ts";

const fieldManager = "kubectl-outpost";

const resources: Record<string, ResourceType> = {
  Secret: { group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true },
  ConfigMap: configMapsResource,
  Registry: RegistryResource,
  Application: ApplicationResource,
  DeploymentPackage: DeploymentPackageResource,
  Artifact: ArtifactResource,
};

/** Runs `task` over `items` with at most `concurrency` at a time, in order of start. */
async function pool<T>(items: T[], concurrency: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

/** Apply order: what others refer to first. */
const tiers = [["Secret", "ConfigMap"], ["Registry"], ["Application", "Artifact"], ["DeploymentPackage"]];

export interface ImportResult {
  applied: string[];
}

/** Validates, scans, dry-runs and applies; throws a CatalogError listing every problem. */
export async function importCatalog(
  client: KubeClient,
  files: CatalogFile[],
  namespace: string,
  options: { scanner?: Scanner; progress?: (line: string) => void } = {},
): Promise<ImportResult> {
  const progress = options.progress ?? (() => undefined);
  const { specs, data } = parseCatalog(files);
  if (specs.length === 0) throw new CatalogError("no catalog files found (YAML files with specSchema)");
  progress(
    `read ${specs.length} catalog file${specs.length === 1 ? "" : "s"} and ${data.size} data file${data.size === 1 ? "" : "s"}`,
  );

  if (options.scanner) {
    const infected: string[] = [];
    const scanner = options.scanner;
    await pool(files, 4, async (f) => {
      const verdict = await scanner.scan(f.content);
      if (verdict.result === "Infected")
        infected.push(`${f.path}: contains ${verdict.signature ?? "malware"}`);
      else if (verdict.result === "Error")
        infected.push(`${f.path}: could not be scanned: ${verdict.message ?? ""}`);
    });
    infected.sort();
    if (infected.length > 0) throw new CatalogError(infected.join("\n"));
    progress(`scanned ${files.length} file${files.length === 1 ? "" : "s"}: clean`);
  }

  const { objects, sources } = toObjects(specs, data, namespace);
  const source = (o: KubeObject): string => sources.get(o) ?? "(generated)";
  const problems: string[] = [];
  // References must resolve within the import or to objects already in the namespace.
  const imported = new Set(objects.map((o) => `${o.kind}/${o.metadata.name ?? ""}`));
  const found = new Map<string, Promise<boolean>>();
  const has = (r: ResourceType, name: string): Promise<boolean> => {
    const key = `${r.kind}/${name}`;
    if (imported.has(key)) return Promise.resolve(true);
    let p = found.get(key);
    if (!p) {
      p = client.get(r, name, namespace).then((o) => o !== undefined);
      found.set(key, p);
    }
    return p;
  };
  await pool(objects, 16, async (o) => {
    const spec = (o as { spec?: Record<string, unknown> }).spec;
    if (o.kind === "Application") {
      const reg = (spec?.chart as { registryRef: { name: string } }).registryRef.name;
      if (!(await has(RegistryResource, reg))) {
        problems.push(
          `${source(o)}: helmRegistry: Registry ${reg} is neither imported nor in namespace ${namespace}`,
        );
      }
    }
    if (o.kind === "DeploymentPackage") {
      for (const a of (spec?.applications ?? []) as { name: string; version: string }[]) {
        if (!(await has(ApplicationResource, `${a.name}-${a.version}`))) {
          problems.push(
            `${source(o)}: applications: Application ${a.name} ${a.version} is neither imported nor in namespace ${namespace}`,
          );
        }
      }
    }
  });
  await pool(objects, 16, async (o) => {
    const r = resources[o.kind];
    if (!r) throw new Error(`no resource for ${o.kind}`);
    try {
      await client.apply(r, o, { fieldManager, dryRun: true });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      problems.push(`${source(o)}: ${o.kind} ${o.metadata.name ?? ""}: ${err.message}`);
    }
  });
  problems.sort();
  if (problems.length > 0) throw new CatalogError(`nothing was applied:\n${problems.join("\n")}`);
  progress(`${objects.length} objects passed the server-side dry run`);

  const applied: string[] = [];
  for (const tier of tiers) {
    await pool(
      objects.filter((o) => tier.includes(o.kind)),
      16,
      async (o) => {
        const r = resources[o.kind];
        if (!r) return;
        await client.apply(r, o, { fieldManager });
        applied.push(`${o.kind.toLowerCase()}/${o.metadata.name ?? ""}`);
      },
    );
  }
  progress(`applied ${applied.length} objects to namespace ${namespace}`);
  return { applied };
}

/** Writes the namespace's catalog as catalog files under `dir`; returns their paths. */
export async function exportCatalog(client: KubeClient, namespace: string, dir: string): Promise<string[]> {
  const objects: KubeObject[] = [];
  for (const r of [RegistryResource, ApplicationResource, DeploymentPackageResource, ArtifactResource]) {
    const list = await client.list<KubeObject>(r, { namespace });
    objects.push(...list.items.map((o) => ({ ...o, kind: r.kind })));
  }
  const contents = new Map<string, Buffer>();
  for (const a of objects.filter((o) => o.kind === "Artifact") as Artifact[]) {
    const { configMapKeyRef: cm, secretKeyRef: secret } = a.spec.source;
    if (cm) {
      const map = await client.get<
        KubeObject & { data?: Record<string, string>; binaryData?: Record<string, string> }
      >(configMapsResource, cm.name, namespace);
      const b64 = map?.binaryData?.[cm.key];
      const text = map?.data?.[cm.key];
      if (b64 !== undefined) contents.set(a.metadata.name ?? "", Buffer.from(b64, "base64"));
      else if (text !== undefined) contents.set(a.metadata.name ?? "", Buffer.from(text));
    } else if (secret) {
      const data = await secretData(client, namespace, secret.name, "artifact content");
      if (data[secret.key] !== undefined)
        contents.set(a.metadata.name ?? "", Buffer.from(data[secret.key] ?? ""));
    }
  }
  const written: string[] = [];
  for (const [path, content] of toCatalogFiles(objects, contents)) {
    const full = join(dir, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    written.push(path);
  }
  return written.sort();
}
