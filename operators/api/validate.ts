// Schema validation of Outpost objects without an API server (for imported catalog files
// and the CLI), with ajv over the CRD schemas. CEL rules are not evaluated here: the API
// server checks them (a server-side dry run does so before anything is applied).
import { createRequire } from "node:module";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";

const require = createRequire(import.meta.url);
const schemas = require("./schemas.generated.json") as Record<string, object>;

// ajv-formats is CommonJS: its default export arrives as the module object under ESM.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const compiled = new Map<string, ValidateFunction>();

/** The kinds with a schema, as "group/version/Kind". */
export const knownKinds = (): string[] => Object.keys(schemas);

function validatorFor(apiVersion: string, kind: string): ValidateFunction | undefined {
  const key = `${apiVersion}/${kind}`;
  let fn = compiled.get(key);
  if (!fn) {
    const schema = schemas[key];
    if (!schema) return undefined;
    fn = ajv.compile(schema);
    compiled.set(key, fn);
  }
  return fn;
}

function describe(e: ErrorObject): string {
  const path = e.instancePath
    .replace(/^\//, "")
    .replace(/\/(\d+)(?=\/|$)/g, "[$1]")
    .replace(/\//g, ".");
  const where = path || "(object)";
  if (e.keyword === "additionalProperties") {
    return `${where}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  }
  if (e.keyword === "enum") {
    return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
  }
  return `${where}: ${e.message ?? "is invalid"}`;
}

/** Problems of `obj` against its kind's schema, as "path: message" lines; empty when valid. */
export function validate(obj: { apiVersion?: string; kind?: string } & Record<string, unknown>): string[] {
  if (!obj.apiVersion || !obj.kind) return ["(object): apiVersion and kind are required"];
  const fn = validatorFor(obj.apiVersion, obj.kind);
  if (!fn) return [`(object): ${obj.apiVersion} ${obj.kind} is not an Outpost kind`];
  if (fn(obj)) return [];
  return (fn.errors ?? []).map(describe);
}
