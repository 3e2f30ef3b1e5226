// `npm run generate`: turns the CRD schemas in crds/ into
// - operators/api/<kind>.generated.ts — TypeScript types of each kind (json-schema-to-typescript);
// - operators/api/resources.generated.ts — where each kind is served (ResourceType);
// - operators/api/schemas.generated.json — the schemas for ajv (operators/api/validate.ts);
// - docs/api-reference.md — every field with its description and rules.
// `npm run generate -- --check` fails when the committed files differ (CI runs it).
import { readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile, type JSONSchema } from "json-schema-to-typescript";
import { format, resolveConfig } from "prettier";
import { parse } from "yaml";

const root = fileURLToPath(new URL("..", import.meta.url));
const crdDir = join(root, "crds");
const outDir = join(root, "operators", "api");

type Schema = Record<string, unknown> & {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  anyOf?: Schema[];
};

interface CRD {
  spec: {
    group: string;
    scope: "Namespaced" | "Cluster";
    names: { kind: string; plural: string; shortNames?: string[] };
    versions: { name: string; storage: boolean; schema: { openAPIV3Schema: Schema } }[];
  };
}

/**
 * Rewrites Kubernetes schema extensions into plain JSON Schema for the generator:
 * int-or-string → number | string, preserve-unknown-fields → an open object,
 * nullable → | null, metadata → ObjectMeta; closed objects elsewhere.
 */
export function prepare(schema: Schema, path: string[] = []): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    // Bounds stay in the CRD (the API server enforces them); types use plain arrays.
    if (key.startsWith("x-kubernetes-") || key === "default" || key === "minItems" || key === "maxItems")
      continue;
    out[key] = value;
  }
  if (schema["x-kubernetes-int-or-string"]) {
    return { description: schema.description, tsType: "number | string" };
  }
  if (path.length === 1 && path[0] === "metadata") {
    return { tsType: "ObjectMeta" };
  }
  if (schema.properties) {
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([k, v]) => [k, prepare(v, [...path, k])]),
    );
    if (!schema["x-kubernetes-preserve-unknown-fields"]) out.additionalProperties = false;
  } else if (schema.type === "object" && schema["x-kubernetes-preserve-unknown-fields"]) {
    out.tsType = "Record<string, unknown>";
  }
  if (schema.items) out.items = prepare(schema.items, [...path, "[]"]);
  if (typeof schema.additionalProperties === "object") {
    out.additionalProperties = prepare(schema.additionalProperties, [...path, "{}"]);
  }
  if (schema.anyOf) out.anyOf = schema.anyOf.map((s) => prepare(s, path));
  if (schema.nullable) {
    delete out.nullable;
    return { anyOf: [out, { type: "null" }], description: schema.description };
  }
  return out;
}

/** The schema for ajv: unknown fields are errors (as with kubectl's strict validation). */
export function forAjv(schema: Schema): Schema {
  const out: Schema = { ...schema };
  if (schema.properties) {
    out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, forAjv(v)]));
    if (!schema["x-kubernetes-preserve-unknown-fields"] && schema.additionalProperties === undefined) {
      out.additionalProperties = false;
    }
  }
  if (schema.items) out.items = forAjv(schema.items);
  if (typeof schema.additionalProperties === "object")
    out.additionalProperties = forAjv(schema.additionalProperties);
  return out;
}

function readCRDs(): CRD[] {
  return readdirSync(crdDir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => parse(readFileSync(join(crdDir, f), "utf8")) as CRD);
}

const cell = (s: string): string => s.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");

function typeOf(s: Schema): string {
  if (s["x-kubernetes-int-or-string"]) return "integer or string";
  if (s.type === "array") return `[]${s.items ? typeOf(s.items) : "any"}`;
  if (s.type === "object" && typeof s.additionalProperties === "object")
    return `map[string]${typeOf(s.additionalProperties)}`;
  return s.type ?? "any";
}

/** Rows of the field table, and the CEL rules met on the way. */
function fields(s: Schema, path: string, rows: string[], rules: string[], required: string[] = []): void {
  for (const v of (s["x-kubernetes-validations"] as { rule: string; message?: string }[] | undefined) ?? []) {
    rules.push(`- \`${path || "(object)"}\`: ${v.message ?? v.rule}`);
  }
  for (const [name, child] of Object.entries(s.properties ?? {})) {
    const p = path ? `${path}.${name}` : name;
    if (p === "apiVersion" || p === "kind" || p === "metadata") continue;
    const notes: string[] = [];
    if (Array.isArray(child.enum))
      notes.push(`One of: ${(child.enum as string[]).map((e) => `\`${e}\``).join(", ")}.`);
    if (child.default !== undefined) notes.push(`Default: \`${JSON.stringify(child.default)}\`.`);
    rows.push(
      `| \`${p}\` | ${typeOf(child)} | ${required.includes(name) ? "yes" : ""} | ${cell([child.description ?? "", ...notes].join(" "))} |`,
    );
    fields(child, p, rows, rules, (child.required as string[] | undefined) ?? []);
  }
  if (s.items) fields(s.items, `${path}[]`, rows, rules, (s.items.required as string[] | undefined) ?? []);
}

function reference(crds: CRD[]): string {
  const out = [
    "# API reference",
    "",
    "Generated by `npm run generate` from the CRDs in `crds/`; `kubectl explain <kind>.<field>` shows the same text.",
    "Every kind is in the `outpost` category (`kubectl get outpost`) and reports kstatus conditions (`Ready`, `Reconciling`, `Stalled`) with `status.observedGeneration`.",
    "",
  ];
  for (const crd of crds) {
    const { group, names, scope } = crd.spec;
    const version = crd.spec.versions.find((v) => v.storage) ?? crd.spec.versions[0];
    if (!version) continue;
    const schema = version.schema.openAPIV3Schema;
    const rows: string[] = [];
    const rules: string[] = [];
    fields(schema, "", rows, rules, (schema.required as string[] | undefined) ?? []);
    const ext = names as { shortNames?: string[] };
    out.push(
      `## ${names.kind}`,
      "",
      `\`${group}/${version.name}\`, ${scope === "Namespaced" ? "namespaced" : "cluster-scoped"}; \`kubectl get ${names.plural}\`${ext.shortNames?.length ? ` (short: ${ext.shortNames.map((s) => `\`${s}\``).join(", ")})` : ""}.`,
      "",
      schema.description ?? "",
      "",
      "| field | type | required | description |",
      "| --- | --- | --- | --- |",
      ...rows,
      "",
      ...(rules.length > 0 ? ["Rules the API server enforces:", "", ...rules, ""] : []),
    );
  }
  return `${out.join("\n").trimEnd()}\n`;
}

const kebab = (s: string): string => s.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase();
const banner = "// Generated by `npm run generate` from crds/. Do not edit.\n";

export async function generate(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const prettier = { ...(await resolveConfig(join(outDir, "x.ts"))), parser: "typescript" };
  const resources: string[] = [];
  const schemas: Record<string, unknown> = {};
  for (const crd of readCRDs()) {
    const { group, names, scope } = crd.spec;
    const version = crd.spec.versions.find((v) => v.storage) ?? crd.spec.versions[0];
    if (!version) continue;
    const raw = version.schema.openAPIV3Schema;
    const prepared = prepare(raw);
    // Objects read from the API always have metadata.
    prepared.required = [...new Set(["metadata", ...((raw.required as string[] | undefined) ?? [])])];
    const ts = await compile({ ...prepared, title: names.kind } as JSONSchema, names.kind, {
      bannerComment: "",
      additionalProperties: false,
      strictIndexSignatures: true,
      maxItems: -1,
      format: false,
    });
    const body = `${banner}import type { ObjectMeta } from "../runtime/client.ts";\n\n${ts}`;
    files.set(`${kebab(names.kind)}.generated.ts`, await format(body, prettier));
    resources.push(
      `export const ${names.kind}Resource: ResourceType = ${JSON.stringify({
        group,
        version: version.name,
        kind: names.kind,
        plural: names.plural,
        namespaced: scope === "Namespaced",
      })};`,
    );
    schemas[`${group}/${version.name}/${names.kind}`] = forAjv(raw);
  }
  const index = `${banner}import type { ResourceType } from "../runtime/client.ts";\n\n${resources.join("\n")}\n`;
  files.set("resources.generated.ts", await format(index, prettier));
  files.set("schemas.generated.json", `${JSON.stringify(schemas, null, 1)}\n`);
  files.set("../../docs/api-reference.md", reference(readCRDs()));
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes("--check");
  const files = await generate();
  const stale: string[] = [];
  for (const [name, content] of files) {
    const path = join(outDir, name);
    const current = existsSync(path) ? readFileSync(path, "utf8") : undefined;
    if (current === content) continue;
    if (check) stale.push(name);
    else writeFileSync(path, content);
  }
  const known = new Set(files.keys());
  const orphans = readdirSync(outDir).filter((f) => f.includes(".generated.") && !known.has(f));
  if (check && (stale.length > 0 || orphans.length > 0)) {
    console.error(
      `generated files are out of date: ${[...stale, ...orphans].join(", ")}\nrun: npm run generate`,
    );
    process.exit(1);
  }
  if (!check) console.log(`wrote ${files.size} files to operators/api/`);
}
