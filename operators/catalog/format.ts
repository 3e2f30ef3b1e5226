// The Edge Orchestrator catalog file format (specSchema Registry | Application |
// DeploymentPackage | Artifact, schemaVersion "0.1", values in separate files) mapped to
// and from Outpost objects. Pure functions: the CLI does the I/O.
import { Ajv, type ErrorObject } from "ajv";
import { parse, stringify } from "yaml";
import type { Application } from "../api/application.generated.ts";
import type { Artifact } from "../api/artifact.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import type { KubeObject } from "../runtime/client.ts";
import { findCycle } from "./graph.ts";
import { mimeMismatch } from "./mime.ts";

export interface CatalogFile {
  /** Where it came from (path, or path inside a bundle), for messages. */
  path: string;
  content: Buffer;
}

export class CatalogError extends Error {
  override name = "CatalogError";
}

const name40 = { type: "string", minLength: 1, maxLength: 40, pattern: "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$" };
const version = { type: "string", minLength: 1, maxLength: 40, pattern: "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$" };
const common = {
  specSchema: { type: "string" },
  schemaVersion: { const: "0.1" },
  $schema: { type: "string" },
  name: name40,
  displayName: { type: "string", maxLength: 128 },
  description: { type: "string", maxLength: 4096 },
};

/** JSON Schemas of the file format, per specSchema (from its documentation). */
const schemas: Record<string, object> = {
  Registry: {
    type: "object",
    required: ["specSchema", "schemaVersion", "name", "rootUrl"],
    additionalProperties: false,
    properties: {
      ...common,
      rootUrl: { type: "string", pattern: "^(https?|oci)://" },
      userName: { type: "string" },
      authToken: { type: "string" },
      caCerts: { type: "string" },
      type: { enum: ["HELM", "IMAGE"] },
      registryType: { enum: ["HELM", "IMAGE"] },
      apiType: { type: "string" },
      inventoryUrl: { type: "string" },
    },
  },
  Application: {
    type: "object",
    required: ["specSchema", "schemaVersion", "name", "version", "chartName", "chartVersion"],
    additionalProperties: false,
    properties: {
      ...common,
      version,
      kind: { enum: ["normal", "extension", "addon"] },
      chartName: { type: "string", minLength: 1 },
      chartVersion: { type: "string", minLength: 1 },
      helmRegistry: { type: "string" },
      registry: { type: "string" },
      imageRegistry: { type: "string" },
      defaultProfile: { type: "string" },
      profiles: {
        type: "array",
        items: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: {
            name: { type: "string" },
            displayName: { type: "string" },
            description: { type: "string" },
            valuesFileName: { type: "string" },
            parameterTemplates: {
              type: "array",
              items: {
                type: "object",
                required: ["name", "type"],
                additionalProperties: false,
                properties: {
                  name: { type: "string", pattern: "^[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*$" },
                  displayName: { type: "string" },
                  type: { enum: ["string", "number", "boolean"] },
                  default: { type: ["string", "number", "boolean"] },
                  suggestedValues: {
                    type: "array",
                    maxItems: 100,
                    uniqueItems: true,
                    items: { type: ["string", "number", "boolean"] },
                  },
                  secret: { type: "boolean" },
                  mandatory: { type: "boolean" },
                },
              },
            },
            deploymentRequirements: { type: "array" },
          },
        },
      },
      ignoredResources: {
        type: "array",
        items: {
          type: "object",
          required: ["name", "kind"],
          additionalProperties: false,
          properties: { name: { type: "string" }, kind: { type: "string" }, namespace: { type: "string" } },
        },
      },
    },
  },
  DeploymentPackage: {
    type: "object",
    required: ["specSchema", "schemaVersion", "name", "version", "applications"],
    additionalProperties: false,
    properties: {
      ...common,
      version,
      kind: { enum: ["normal", "extension", "addon"] },
      applications: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          required: ["name", "version"],
          additionalProperties: false,
          properties: { name: { type: "string" }, version: { type: "string" } },
        },
      },
      applicationDependencies: {
        type: "array",
        items: {
          type: "object",
          required: ["name", "requires"],
          additionalProperties: false,
          properties: { name: { type: "string" }, requires: { type: "string" } },
        },
      },
      deploymentProfiles: {
        type: "array",
        items: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: {
            name: { type: "string" },
            displayName: { type: "string" },
            description: { type: "string" },
            applicationProfiles: {
              type: "array",
              items: {
                type: "object",
                required: ["application", "profile"],
                additionalProperties: false,
                properties: { application: { type: "string" }, profile: { type: "string" } },
              },
            },
          },
        },
      },
      defaultProfile: { type: "string" },
      defaultNamespaces: { type: "object", additionalProperties: { type: "string" } },
      namespaces: {
        type: "array",
        items: {
          type: "object",
          required: ["name"],
          properties: {
            name: { type: "string" },
            labels: { type: "object", additionalProperties: { type: "string" } },
            annotations: { type: "object", additionalProperties: { type: "string" } },
          },
        },
      },
      extensions: { type: "array" },
      artifacts: { type: "array", items: { type: "object", required: ["name", "purpose"] } },
      artifactReferences: { type: "array", items: { type: "object", required: ["name", "purpose"] } },
      isVisible: { type: "boolean" },
      forbidsMultipleDeployments: { type: "boolean" },
    },
  },
  Artifact: {
    type: "object",
    required: ["specSchema", "schemaVersion", "name", "mimeType", "artifact"],
    additionalProperties: false,
    properties: {
      ...common,
      name: { type: "string", minLength: 1, maxLength: 253, pattern: "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$" },
      mimeType: { enum: ["text/plain", "application/json", "application/yaml", "image/png", "image/jpeg"] },
      artifact: { type: "string", minLength: 4 },
    },
  },
};

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, ajv.compile(s)]));

function describe(e: ErrorObject): string {
  const where =
    e.instancePath
      .replace(/^\//, "")
      .replace(/\/(\d+)(?=\/|$)/g, "[$1]")
      .replace(/\//g, ".") || "(file)";
  if (e.keyword === "additionalProperties") {
    return `${where}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  }
  if (e.keyword === "required")
    return `${where}: missing field "${(e.params as { missingProperty: string }).missingProperty}"`;
  return `${where}: ${e.message ?? "invalid"}`;
}

/** A parsed spec file of the format. */
export interface CatalogSpec {
  path: string;
  specSchema: "Registry" | "Application" | "DeploymentPackage" | "Artifact";
  doc: Record<string, unknown>;
}

/**
 * Parses and validates the spec files among `files` (YAML with specSchema). Files
 * without specSchema are data (values files). Templated files (Helm `{{ }}`) that are
 * not YAML are data too. Throws a CatalogError listing every problem with its file.
 */
export function parseCatalog(files: CatalogFile[]): { specs: CatalogSpec[]; data: Map<string, CatalogFile> } {
  const specs: CatalogSpec[] = [];
  const data = new Map<string, CatalogFile>();
  const problems: string[] = [];
  for (const file of files) {
    if (!/\.ya?ml$/i.test(file.path)) {
      data.set(file.path, file);
      continue;
    }
    const text = file.content.toString("utf8");
    let doc: unknown;
    try {
      doc = parse(text);
    } catch (err) {
      if (text.includes("{{")) {
        data.set(file.path, file);
        continue;
      }
      problems.push(`${file.path}: not valid YAML: ${(err as Error).message.split("\n")[0] ?? ""}`);
      continue;
    }
    const record =
      doc && typeof doc === "object" && !Array.isArray(doc) ? (doc as Record<string, unknown>) : undefined;
    if (record?.specSchema === undefined) {
      data.set(file.path, file);
      continue;
    }
    const raw = scalar(record.specSchema);
    const kind = raw === "Deployment-Package" ? "DeploymentPackage" : raw;
    const validate = validators[kind];
    if (!validate) {
      problems.push(
        `${file.path}: unknown specSchema "${raw}"; expected Registry, Application, DeploymentPackage or Artifact`,
      );
      continue;
    }
    if (!validate(record)) {
      problems.push(...(validate.errors ?? []).map((e) => `${file.path}: ${describe(e)}`));
      continue;
    }
    specs.push({ path: file.path, specSchema: kind as CatalogSpec["specSchema"], doc: record });
  }
  if (problems.length > 0) throw new CatalogError(problems.join("\n"));
  return { specs, data };
}

const dirOf = (path: string): string => (path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "");

/** Finds a values file by name: next to the spec file first, then anywhere by base name. */
function valuesFile(
  name: string,
  spec: CatalogSpec,
  data: Map<string, CatalogFile>,
): CatalogFile | undefined {
  const near = data.get(`${dirOf(spec.path)}${name}`) ?? data.get(name);
  if (near) return near;
  const base = name.split("/").pop() ?? name;
  return [...data.values()].find((f) => (f.path.split("/").pop() ?? "") === base);
}

/** A scalar of a validated file as text (ajv has checked the types). */
const scalar = (v: unknown): string =>
  typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? `${v}` : "";
const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : scalar(v));

export interface ImportedObjects {
  /** In apply order: Secrets and ConfigMaps, registries, applications and artifacts, packages. */
  objects: (KubeObject & { apiVersion: string; kind: string })[];
  /** The file each object came from. */
  sources: Map<KubeObject, string>;
}

/** Maps the specs to Outpost objects in `namespace`. Throws a CatalogError naming file and field. */
export function toObjects(
  specs: CatalogSpec[],
  data: Map<string, CatalogFile>,
  namespace: string,
): ImportedObjects {
  const out: ImportedObjects["objects"] = [];
  const support: ImportedObjects["objects"] = [];
  const sources = new Map<KubeObject, string>();
  const problems: string[] = [];
  const meta = (name: string): { name: string; namespace: string; labels: Record<string, string> } => ({
    name,
    namespace,
    labels: { "app.kubernetes.io/managed-by": "kubectl-outpost" },
  });
  const order = { Registry: 0, Application: 1, Artifact: 1, DeploymentPackage: 2 };
  for (const spec of [...specs].sort((a, b) => order[a.specSchema] - order[b.specSchema])) {
    const d = spec.doc;
    const before = [out.length, support.length];
    const text = { displayName: str(d.displayName), description: str(d.description) };
    if (spec.specSchema === "Registry") {
      const rootUrl = scalar(d.rootUrl);
      const kind = scalar(d.type ?? d.registryType ?? "HELM");
      const registry: Registry & { apiVersion: string; kind: string } = {
        apiVersion: "catalog.outpost.dev/v1alpha1",
        kind: "Registry",
        metadata: meta(scalar(d.name)),
        spec: {
          type: kind === "IMAGE" ? "image" : rootUrl.startsWith("oci://") ? "oci" : "helm",
          url: rootUrl,
          ...text,
        },
      };
      if (d.userName !== undefined || d.authToken !== undefined) {
        const secret = `${scalar(d.name)}-credentials`;
        support.push({
          apiVersion: "v1",
          kind: "Secret",
          metadata: meta(secret),
          type: "Opaque",
          stringData:
            d.userName !== undefined
              ? { username: scalar(d.userName), password: scalar(d.authToken ?? "") }
              : { token: scalar(d.authToken) },
        } as KubeObject & { apiVersion: string; kind: string });
        registry.spec.credentialsSecretRef = { name: secret };
      }
      if (d.caCerts !== undefined) {
        const secret = `${scalar(d.name)}-ca`;
        support.push({
          apiVersion: "v1",
          kind: "Secret",
          metadata: meta(secret),
          type: "Opaque",
          stringData: { "ca.crt": scalar(d.caCerts) },
        } as KubeObject & { apiVersion: string; kind: string });
        registry.spec.caSecretRef = { name: secret };
      }
      out.push(registry);
    } else if (spec.specSchema === "Application") {
      const profiles = ((d.profiles ?? []) as Record<string, unknown>[]).map((p, i) => {
        let values: Record<string, unknown> | undefined;
        if (p.valuesFileName !== undefined) {
          const file = valuesFile(scalar(p.valuesFileName), spec, data);
          if (!file) {
            problems.push(
              `${spec.path}: profiles[${i}].valuesFileName: file ${scalar(p.valuesFileName)} is not among the imported files`,
            );
          } else {
            try {
              const parsed: unknown = parse(file.content.toString("utf8"));
              if (parsed === null || parsed === undefined) values = {};
              else if (typeof parsed !== "object" || Array.isArray(parsed))
                problems.push(`${file.path}: the values of profile ${scalar(p.name)} are not a map`);
              else values = parsed as Record<string, unknown>;
            } catch (err) {
              problems.push(`${file.path}: not valid YAML: ${(err as Error).message.split("\n")[0] ?? ""}`);
            }
          }
        }
        const parameters = ((p.parameterTemplates ?? []) as Record<string, unknown>[]).map((t) => ({
          name: scalar(t.name),
          type: t.type as "string" | "number" | "boolean",
          ...(t.displayName !== undefined ? { displayName: scalar(t.displayName) } : {}),
          ...(t.default !== undefined ? { default: scalar(t.default) } : {}),
          ...(t.suggestedValues !== undefined
            ? { suggestedValues: (t.suggestedValues as unknown[]).map(String) }
            : {}),
          ...(t.mandatory !== undefined ? { mandatory: Boolean(t.mandatory) } : {}),
          ...(t.secret !== undefined ? { secret: Boolean(t.secret) } : {}),
        }));
        return {
          name: scalar(p.name),
          ...(p.displayName !== undefined ? { displayName: scalar(p.displayName) } : {}),
          ...(p.description !== undefined ? { description: scalar(p.description) } : {}),
          ...(values !== undefined ? { values } : {}),
          ...(parameters.length ? { parameters } : {}),
        };
      });
      const registry = str(d.helmRegistry ?? d.registry);
      if (!registry) {
        problems.push(
          `${spec.path}: helmRegistry: missing; name the Registry holding chart ${scalar(d.chartName)}`,
        );
        continue;
      }
      const app: Application & { apiVersion: string; kind: string } = {
        apiVersion: "catalog.outpost.dev/v1alpha1",
        kind: "Application",
        metadata: meta(`${scalar(d.name)}-${scalar(d.version)}`),
        spec: {
          name: scalar(d.name),
          version: scalar(d.version),
          ...text,
          ...(d.kind !== undefined ? { kind: d.kind as "normal" } : {}),
          chart: {
            registryRef: { name: registry },
            name: scalar(d.chartName),
            version: scalar(d.chartVersion),
          },
          ...(d.imageRegistry !== undefined ? { imageRegistryRef: { name: scalar(d.imageRegistry) } } : {}),
          ...(profiles.length ? { profiles } : {}),
          ...(d.defaultProfile !== undefined
            ? { defaultProfile: scalar(d.defaultProfile) }
            : profiles.length
              ? { defaultProfile: profiles[0]?.name ?? "" }
              : {}),
          ...(d.ignoredResources !== undefined
            ? { ignoredResources: d.ignoredResources as NonNullable<Application["spec"]["ignoredResources"]> }
            : {}),
        },
      };
      out.push(app);
    } else if (spec.specSchema === "Artifact") {
      const bytes = Buffer.from(scalar(d.artifact), "base64");
      const mismatch = mimeMismatch(scalar(d.mimeType), bytes);
      if (mismatch) {
        problems.push(`${spec.path}: artifact: mimeType is ${scalar(d.mimeType)}, but ${mismatch}`);
        continue;
      }
      const cm = `artifact-${scalar(d.name)}`;
      support.push({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: meta(cm),
        binaryData: { content: bytes.toString("base64") },
      } as KubeObject & { apiVersion: string; kind: string });
      const artifact: Artifact & { apiVersion: string; kind: string } = {
        apiVersion: "catalog.outpost.dev/v1alpha1",
        kind: "Artifact",
        metadata: meta(scalar(d.name)),
        spec: {
          ...text,
          mimeType: d.mimeType as Artifact["spec"]["mimeType"],
          source: { configMapKeyRef: { name: cm, key: "content" } },
        },
      };
      out.push(artifact);
    } else {
      const apps = (d.applications as { name: string }[]).map((a) => a.name);
      const cycle = findCycle(
        apps,
        ((d.applicationDependencies ?? []) as { name: string; requires: string }[]).map((x) => ({
          application: x.name,
          requires: x.requires,
        })),
      );
      if (cycle) {
        problems.push(`${spec.path}: applicationDependencies: dependency cycle ${cycle.join(" → ")}`);
        continue;
      }
      const profiles = ((d.deploymentProfiles ?? []) as Record<string, unknown>[]).map((p) => ({
        name: scalar(p.name),
        ...(p.displayName !== undefined ? { displayName: scalar(p.displayName) } : {}),
        ...(p.description !== undefined ? { description: scalar(p.description) } : {}),
        applicationProfiles: Object.fromEntries(
          ((p.applicationProfiles ?? []) as { application: string; profile: string }[]).map((a) => [
            a.application,
            a.profile,
          ]),
        ),
      }));
      const pkg: DeploymentPackage & { apiVersion: string; kind: string } = {
        apiVersion: "catalog.outpost.dev/v1alpha1",
        kind: "DeploymentPackage",
        metadata: meta(`${scalar(d.name)}-${scalar(d.version)}`),
        spec: {
          name: scalar(d.name),
          version: scalar(d.version),
          ...text,
          ...(d.kind !== undefined ? { kind: d.kind as "normal" } : {}),
          applications: d.applications as { name: string; version: string }[],
          ...(d.applicationDependencies !== undefined
            ? {
                dependencies: (d.applicationDependencies as { name: string; requires: string }[]).map(
                  (x) => ({ application: x.name, requires: x.requires }),
                ),
              }
            : {}),
          ...(profiles.length ? { profiles } : {}),
          ...(d.defaultProfile !== undefined ? { defaultProfile: scalar(d.defaultProfile) } : {}),
          ...(d.defaultNamespaces !== undefined
            ? { defaultNamespaces: d.defaultNamespaces as Record<string, string> }
            : {}),
          ...(d.namespaces !== undefined
            ? { namespaces: d.namespaces as NonNullable<DeploymentPackage["spec"]["namespaces"]> }
            : {}),
          ...((d.artifacts ?? d.artifactReferences) !== undefined
            ? { artifacts: (d.artifacts ?? d.artifactReferences) as { name: string; purpose: string }[] }
            : {}),
          ...(d.isVisible !== undefined ? { visible: Boolean(d.isVisible) } : {}),
        },
      };
      out.push(pkg);
    }
    for (const o of [...out.slice(before[0]), ...support.slice(before[1])]) sources.set(o, spec.path);
  }
  if (problems.length > 0) throw new CatalogError(problems.join("\n"));
  return { objects: [...support, ...out], sources };
}

/**
 * Outpost objects back to catalog files (spec files and values files), by relative path.
 * Artifacts need their content, by artifact name.
 */
export function toCatalogFiles(
  objects: KubeObject[],
  artifactContent = new Map<string, Buffer>(),
): Map<string, string> {
  const files = new Map<string, string>();
  const head = (specSchema: string): Record<string, unknown> => ({ specSchema, schemaVersion: "0.1" });
  const opt = (k: string, v: unknown): Record<string, unknown> => (v === undefined ? {} : { [k]: v });
  for (const o of objects as (KubeObject & { kind?: string; spec: Record<string, unknown> })[]) {
    if (o.kind === "Registry") {
      const r = o as unknown as Registry;
      files.set(
        `registries/${r.metadata.name ?? ""}.yaml`,
        stringify({
          ...head("Registry"),
          name: r.metadata.name,
          ...opt("displayName", r.spec.displayName),
          ...opt("description", r.spec.description),
          rootUrl: r.spec.url,
          type: r.spec.type === "image" ? "IMAGE" : "HELM",
        }),
      );
    } else if (o.kind === "Application") {
      const a = o as unknown as Application;
      const base = `applications/${a.spec.name}-${a.spec.version}`;
      const profiles = (a.spec.profiles ?? []).map((p) => {
        if (p.values !== undefined) files.set(`${base}-${p.name}-values.yaml`, stringify(p.values));
        return {
          name: p.name,
          ...opt("displayName", p.displayName),
          ...opt("description", p.description),
          ...(p.values !== undefined
            ? { valuesFileName: `${a.spec.name}-${a.spec.version}-${p.name}-values.yaml` }
            : {}),
          ...(p.parameters?.length
            ? {
                parameterTemplates: p.parameters.map((t) => ({
                  name: t.name,
                  type: t.type,
                  ...opt("displayName", t.displayName),
                  ...opt("default", t.default),
                  ...opt("suggestedValues", t.suggestedValues),
                  ...opt("mandatory", t.mandatory),
                  ...opt("secret", t.secret),
                })),
              }
            : {}),
        };
      });
      files.set(
        `${base}.yaml`,
        stringify({
          ...head("Application"),
          name: a.spec.name,
          version: a.spec.version,
          ...opt("displayName", a.spec.displayName),
          ...opt("description", a.spec.description),
          ...opt("kind", a.spec.kind),
          helmRegistry: a.spec.chart.registryRef.name,
          chartName: a.spec.chart.name,
          chartVersion: a.spec.chart.version,
          ...opt("imageRegistry", a.spec.imageRegistryRef?.name),
          ...opt("defaultProfile", a.spec.defaultProfile),
          ...(profiles.length ? { profiles } : {}),
          ...opt("ignoredResources", a.spec.ignoredResources),
        }),
      );
    } else if (o.kind === "Artifact") {
      const a = o as unknown as Artifact;
      const content = artifactContent.get(a.metadata.name ?? "");
      if (!content) continue;
      files.set(
        `artifacts/${a.metadata.name ?? ""}.yaml`,
        stringify({
          ...head("Artifact"),
          name: a.metadata.name,
          ...opt("displayName", a.spec.displayName),
          ...opt("description", a.spec.description),
          mimeType: a.spec.mimeType,
          artifact: content.toString("base64"),
        }),
      );
    } else if (o.kind === "DeploymentPackage") {
      const p = o as unknown as DeploymentPackage;
      files.set(
        `packages/${p.spec.name}-${p.spec.version}.yaml`,
        stringify({
          ...head("DeploymentPackage"),
          name: p.spec.name,
          version: p.spec.version,
          ...opt("displayName", p.spec.displayName),
          ...opt("description", p.spec.description),
          ...opt("kind", p.spec.kind),
          applications: p.spec.applications,
          ...opt(
            "applicationDependencies",
            p.spec.dependencies?.map((x) => ({ name: x.application, requires: x.requires })),
          ),
          ...opt(
            "deploymentProfiles",
            p.spec.profiles?.map((x) => ({
              name: x.name,
              ...opt("displayName", x.displayName),
              ...opt("description", x.description),
              applicationProfiles: Object.entries(x.applicationProfiles ?? {}).map(
                ([application, profile]) => ({ application, profile }),
              ),
            })),
          ),
          ...opt("defaultProfile", p.spec.defaultProfile),
          ...opt("defaultNamespaces", p.spec.defaultNamespaces),
          ...opt("namespaces", p.spec.namespaces),
          ...opt("artifacts", p.spec.artifacts),
          ...opt("isVisible", p.spec.visible),
        }),
      );
    }
  }
  return files;
}
