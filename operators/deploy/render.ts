// Renders an AppDeployment into Fleet bundles: per (deployment, application) a folder
// with fleet.yaml and values.yaml, the GitRepo targets of its placement, and the Secret
// holding its secret parameters (delivered by Fleet's downstreamResources + valuesFrom,
// never written to Git). Pure: the operator does the I/O.
//
// Values, lowest first: the chart's own defaults (Helm applies them) < the application
// profile's values < its typed parameters (defaults, then the deployment's) < the
// deployment's values for the application < per-cluster overrides (targetCustomizations).
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import { canonicalJson } from "../catalog/digest.ts";
import { effectiveProfiles } from "../catalog/package.ts";
import { mergeValues, parseParameter, setPath, type Values } from "./values.ts";
import { firstMatchPieces, type ClusterTarget } from "../inventory/selector.ts";
import { dnsName } from "../runtime/names.ts";

type Targets = AppDeployment["spec"]["targets"];
type LabelSelector = NonNullable<Targets["clusterSelector"]>;

export interface RenderInput {
  deployment: AppDeployment;
  pkg: DeploymentPackage;
  /** The package's applications, by spec.name. */
  applications: Map<string, Application>;
  /** Registries of this namespace, by name. */
  registries: Map<string, Registry>;
  /** Secret parameter values read from their Secrets: application → parameter → text. */
  secretValues: Map<string, Map<string, string>>;
  /**
   * Render without the secret values (for a preview such as `kubectl outpost diff`): a
   * placeholder of the declared type stands in for each. Git files never hold them anyway.
   */
  redactSecrets?: boolean;
}

const placeholders = { string: "(secret)", number: "0", boolean: "false" } as const;

export interface RenderedBundle {
  application: string;
  /** The Bundle's name (fleet.yaml `name`), also what dependsOn refers to. */
  bundleName: string;
  /** Folder in the repository: <deployment>/<application>. */
  path: string;
  /** Files of the folder, by name. */
  files: Record<string, string>;
  targets: ClusterTarget[];
  /** The namespace the application is installed in on its clusters. */
  namespace: string;
  /** The Helm release name it is installed as. */
  releaseName: string;
  /** The chart: its Registry (by name), name and version. */
  chart: { registry: string; name: string; version: string };
  /** Per-cluster overrides, in order (every matching one applies); index: in spec.overrides. */
  overrides: { clusterSelector: LabelSelector; values: Values; index: number }[];
  /** The secret parameters' values, never written to Git (a Secret for Fleet; Argo CD's valuesObject). */
  secret?: { name: string; valuesYaml: string; values: Values };
  /**
   * A hash of the bundle's content, also in fleet.yaml as label outpost.dev/content, which
   * Fleet copies to the Bundle and its BundleDeployments: a BundleDeployment runs this
   * revision of the bundle only when it carries this value.
   */
  contentHash: string;
}

/** The fleet.yaml label that tells which content a Bundle (and its BundleDeployments) has. */
export const contentLabel = "outpost.dev/content";

export class RenderError extends Error {
  override name = "RenderError";
  constructor(readonly problems: string[]) {
    super(problems.join("; "));
  }
}

const yaml = (v: unknown): string => stringify(v, { sortMapEntries: true, lineWidth: 0 });

function gitTargets(targets: Targets): ClusterTarget[] {
  if (targets.clusterSelector) return [{ name: "selected", clusterSelector: targets.clusterSelector }];
  return (targets.clusters ?? []).map((c) => ({ name: dnsName(`cluster-${c}`, 63), clusterName: c }));
}

/**
 * The name of a deployment's application in the engine (Bundle, GitRepo, ApplicationSet).
 * Not injective: deployment a-b's application c and deployment a's application b-c share
 * it, which the deployment reconciler refuses (NameConflict).
 */
export const bundleNameOf = (deployment: string, application: string): string =>
  dnsName(`${deployment}-${application}`);

/** Every top-level field of a resource's content that drift can change: all ignored. */
const driftPointers = [
  "/spec",
  "/data",
  "/binaryData",
  "/stringData",
  "/type",
  "/immutable",
  "/rules",
  "/subjects",
  "/roleRef",
  "/webhooks",
  "/metadata/labels",
  "/metadata/annotations",
];

/** Whether `values` sets the dotted path `path`, an ancestor of it or something below it. */
function touches(values: unknown, path: string[]): boolean {
  let at: unknown = values;
  for (const key of path) {
    if (at === null || typeof at !== "object" || Array.isArray(at)) return at !== values;
    if (!(key in at)) return false;
    at = (at as Record<string, unknown>)[key];
  }
  return true;
}

/** The chart reference fleet.yaml needs for a chart in `registry`. */
function chartRef(registry: Registry, chart: string): { chart: string; repo?: string } {
  if (registry.spec.type === "helm") return { repo: registry.spec.url, chart };
  const base = registry.spec.url.replace(/^(https?|oci):\/\//, "oci://").replace(/\/+$/, "");
  return { chart: `${base}/${chart}` };
}

/** At most this many Fleet partitions for a deployment's waves. */
export const maxWavePartitions = 50;

/**
 * Fleet partitions for `waves`, pairwise disjoint: a cluster is in its first wave's
 * partition(s), and in the last one ("remaining") when it is in no wave. A wave whose
 * clusters no single selector expresses (it excludes an earlier wave of several labels)
 * takes several partitions, named `<wave>`, `<wave>-2`, …
 */
export function partitionsOfWaves(
  waves: { name: string; clusterSelector: LabelSelector }[],
  problems: string[],
): { name: string; clusterSelector: LabelSelector }[] {
  if (waves.length === 0) return [];
  const pieces = firstMatchPieces(
    waves.map((w) => w.clusterSelector),
    maxWavePartitions,
  );
  if (!pieces) {
    problems.push(
      `spec.rollout.waves: keeping each cluster in one wave takes Fleet more than ${maxWavePartitions} partitions; give the waves fewer label requirements each (such as one ring label with a value per wave)`,
    );
    return [];
  }
  const seen = new Map<number, number>();
  return pieces.map((p) => {
    const n = (seen.get(p.index) ?? 0) + 1;
    seen.set(p.index, n);
    const base = waves[p.index]?.name ?? "remaining";
    return { name: n === 1 ? base : `${base}-${n}`, clusterSelector: p.selector };
  });
}

export function render(input: RenderInput): RenderedBundle[] {
  const { deployment: dep, pkg } = input;
  const depName = dep.metadata.name ?? "";
  const problems: string[] = [];
  const bundleName = (app: string): string => bundleNameOf(depName, app);
  const wavePartitions = partitionsOfWaves(dep.spec.rollout?.waves ?? [], problems);

  const byKey = new Map(
    pkg.spec.applications.map((a) => [`${a.name}-${a.version}`, input.applications.get(a.name)] as const),
  );
  const profiles = effectiveProfiles(pkg, byKey);
  const profileName = dep.spec.profile ?? pkg.spec.defaultProfile ?? profiles[0]?.name ?? "default";
  const profile = profiles.find((p) => p.name === profileName);
  if (!profile) {
    throw new RenderError([
      `spec.profile: ${profileName} is not a profile of package ${pkg.spec.name} ${pkg.spec.version} (it has ${profiles.map((p) => p.name).join(", ")})`,
    ]);
  }

  const known = new Set(pkg.spec.applications.map((a) => a.name));
  for (const a of dep.spec.applications ?? []) {
    if (!known.has(a.name))
      problems.push(`spec.applications: ${a.name} is not an application of package ${pkg.spec.name}`);
  }
  for (const p of dep.spec.parameters ?? []) {
    if (!known.has(p.application))
      problems.push(`spec.parameters: ${p.application} is not an application of package ${pkg.spec.name}`);
  }
  for (const o of dep.spec.overrides ?? []) {
    if (!known.has(o.application))
      problems.push(`spec.overrides: ${o.application} is not an application of package ${pkg.spec.name}`);
  }

  const bundles: RenderedBundle[] = [];
  for (const ref of pkg.spec.applications) {
    const app = input.applications.get(ref.name);
    if (!app) {
      problems.push(`application ${ref.name} ${ref.version} is missing`);
      continue;
    }
    const registry = input.registries.get(app.spec.chart.registryRef.name);
    if (!registry) {
      problems.push(`application ${ref.name}: Registry ${app.spec.chart.registryRef.name} is missing`);
      continue;
    }
    const placement = dep.spec.applications?.find((a) => a.name === ref.name);
    // Fleet's agent checks dependsOn on each cluster (deployer.go, checkDependency): the
    // required bundle must be deployed on that same cluster. A dependency on an application
    // placed on other clusters (the database at the central site, the web at the stores)
    // could never be met there, so it is only written where both target the same clusters.
    const targetsOf = (application: string): string =>
      canonicalJson(dep.spec.applications?.find((a) => a.name === application)?.targets ?? dep.spec.targets);
    const enforcedDependencies = (application: string): { requires: string }[] =>
      (pkg.spec.dependencies ?? []).filter(
        (d) => d.application === application && targetsOf(d.requires) === targetsOf(application),
      );
    const appProfileName = profile.applicationProfiles[ref.name];
    const appProfile = app.spec.profiles?.find((p) => p.name === appProfileName);
    if (appProfileName && !appProfile) {
      problems.push(`application ${ref.name} has no profile ${appProfileName}`);
      continue;
    }

    // Values: profile < parameter defaults < deployment parameters < deployment values.
    let values: Values = mergeValues({}, appProfile?.values ?? {});
    let secretValues: Values = {};
    const declared = appProfile?.parameters ?? [];
    for (const d of declared) {
      if (d.default === undefined) continue;
      const parsed = parseParameter(d.type, d.default);
      if ("value" in parsed) values = setPath(values, d.name, parsed.value);
    }
    const given = (dep.spec.parameters ?? []).filter((p) => p.application === ref.name);
    for (const p of given) {
      const decl = declared.find((d) => d.name === p.name);
      if (!decl) {
        const names = declared.map((d) => d.name);
        problems.push(
          `spec.parameters: ${p.name} is not a parameter of ${ref.name} (profile ${appProfileName ?? "none"}${names.length ? `; it has ${names.join(", ")}` : ""})`,
        );
        continue;
      }
      if (decl.secret && !p.secretKeyRef) {
        problems.push(
          `spec.parameters: ${ref.name} ${p.name} is secret; give it with secretKeyRef, not value, so it stays out of Git`,
        );
        continue;
      }
      const text = p.secretKeyRef
        ? input.redactSecrets
          ? placeholders[decl.type]
          : input.secretValues.get(ref.name)?.get(p.name)
        : p.value;
      if (text === undefined) {
        problems.push(
          `spec.parameters: ${ref.name} ${p.name}: Secret ${p.secretKeyRef?.name ?? ""} has no key ${p.secretKeyRef?.key ?? ""}`,
        );
        continue;
      }
      const parsed = parseParameter(decl.type, text);
      if ("error" in parsed) {
        // A secret's value is never echoed in a message.
        problems.push(
          `spec.parameters: ${ref.name} ${p.name}: ${p.secretKeyRef ? `the Secret's value is not a ${decl.type}` : parsed.error}`,
        );
        continue;
      }
      if (p.secretKeyRef) secretValues = setPath(secretValues, p.name, parsed.value);
      else values = setPath(values, p.name, parsed.value);
    }
    for (const d of declared) {
      if (d.mandatory && !given.some((p) => p.name === d.name)) {
        problems.push(
          `spec.parameters: ${ref.name} ${d.name} is mandatory${d.secret ? " (secret: use secretKeyRef)" : ""}`,
        );
      }
    }
    values = mergeValues(values, placement?.values ?? {});

    const name = bundleName(ref.name);
    const releaseName = dnsName(ref.name);
    const namespace = placement?.namespace ?? pkg.spec.defaultNamespaces?.[ref.name] ?? depName;
    const secretName =
      Object.keys(secretValues).length > 0 ? dnsName(`${name}-secret-values`, 253) : undefined;
    const overrides = (dep.spec.overrides ?? [])
      .map((o, index) => ({ ...o, index }))
      .filter((o) => o.application === ref.name);
    // Fleet merges valuesFrom (the secret values) after everything else, per-cluster
    // values included (helmdeployer/install.go getValues): an override of a secret
    // parameter would never take effect.
    (dep.spec.overrides ?? []).forEach((o, i) => {
      if (o.application !== ref.name) return;
      for (const p of dep.spec.parameters ?? []) {
        if (p.application !== ref.name || !p.secretKeyRef) continue;
        if (touches(o.values, p.name.split(".")))
          problems.push(
            `spec.overrides[${i}].values: sets ${p.name}, a secret parameter of ${ref.name}; secret values are applied after per-cluster overrides, so the override would never take effect: remove ${p.name} from the override (per-cluster secrets: give those clusters their own deployment)`,
          );
      }
    });
    const rollout = dep.spec.rollout;
    const fleet = {
      name,
      labels: { "outpost.dev/deployment": depName, "outpost.dev/application": ref.name } as Record<
        string,
        string
      >,
      defaultNamespace: namespace,
      helm: {
        ...chartRef(registry, app.spec.chart.name),
        version: app.spec.chart.version,
        releaseName,
        valuesFiles: ["values.yaml"],
        // Values reach Helm as written: Fleet otherwise runs every value through Go
        // templates with `${ }` delimiters whenever the cluster has labels
        // (internal/cmd/controller/target/builder.go preprocessHelmValues), so a value
        // such as "${HOME}" fails to deliver or is rewritten.
        disablePreProcess: true,
        ...(secretName ? { valuesFrom: [{ secretKeyRef: { name: secretName, key: "values.yaml" } }] } : {}),
      },
      ...(secretName ? { downstreamResources: [{ kind: "Secret", name: secretName }] } : {}),
      ...(enforcedDependencies(ref.name).length > 0
        ? { dependsOn: enforcedDependencies(ref.name).map((d) => ({ name: bundleName(d.requires) })) }
        : {}),
      ...(app.spec.ignoredResources?.length
        ? {
            diff: {
              comparePatches: app.spec.ignoredResources.map((r) => ({
                // Fleet's agent (agent/deployer/desiredset/diff.go newNormalizers) drops
                // jsonPointers from both sides before it compares, matching the group of
                // apiVersion by glob ("*": any group when none is given); `op: ignore`
                // only skips creating a missing object, and only with the exact apiVersion.
                apiVersion: r.apiVersion ?? "*/v1",
                kind: r.kind,
                name: r.name,
                ...(r.namespace ? { namespace: r.namespace } : {}),
                ...(r.apiVersion ? { operations: [{ op: "ignore" }] } : {}),
                jsonPointers: driftPointers,
              })),
            },
          }
        : {}),
      ...(rollout
        ? {
            rolloutStrategy: {
              ...(rollout.maxUnavailable !== undefined ? { maxUnavailable: rollout.maxUnavailable } : {}),
              ...(rollout.waves?.length
                ? {
                    // Fleet puts a cluster in every partition that selects it and
                    // deploys to none that no partition selects
                    // (internal/cmd/controller/target/rollout.go manualPartition), so
                    // each cluster gets one partition: its first wave's, or the last one
                    // for clusters in no wave.
                    partitions: wavePartitions,
                  }
                : {}),
            },
          }
        : {}),
      ...(overrides.length
        ? {
            // Every matching override applies, in order (Fleet ≥ 0.16).
            targetCustomizationMode: "AllMatches",
            targetCustomizations: overrides.map((o, i) => ({
              name: `override-${i}`,
              clusterSelector: o.clusterSelector,
              helm: { values: o.values },
            })),
          }
        : {}),
    };
    const valuesYaml = yaml(values);
    const secretYaml = secretName ? yaml(secretValues) : "";
    // Secret values stay out of it: not even their hash goes to Git.
    const contentHash = createHash("sha256")
      .update(`${yaml(fleet)}\0${valuesYaml}`)
      .digest("hex")
      .slice(0, 16);
    fleet.labels[contentLabel] = contentHash;
    bundles.push({
      application: ref.name,
      bundleName: name,
      contentHash,
      path: `${depName}/${ref.name}`,
      namespace,
      releaseName,
      files: { "fleet.yaml": yaml(fleet), "values.yaml": valuesYaml },
      targets: gitTargets(placement?.targets ?? dep.spec.targets),
      chart: {
        registry: registry.metadata.name ?? "",
        name: app.spec.chart.name,
        version: app.spec.chart.version,
      },
      overrides: overrides.map((o) => ({
        clusterSelector: o.clusterSelector,
        values: o.values,
        index: o.index,
      })),
      ...(secretName ? { secret: { name: secretName, valuesYaml: secretYaml, values: secretValues } } : {}),
    });
  }
  if (problems.length > 0) throw new RenderError(problems);
  return bundles;
}

/** The files of all bundles by repository path. */
export function treeOf(bundles: RenderedBundle[]): Map<string, string> {
  const tree = new Map<string, string>();
  for (const b of bundles)
    for (const [f, content] of Object.entries(b.files)) tree.set(`${b.path}/${f}`, content);
  return tree;
}

/**
 * A digest of a tree (paths and contents) and, when given, of the repository it goes to:
 * to tell whether a commit would change anything, and whether a commit holds it.
 */
export function treeDigest(tree: Map<string, string>, repository?: string): string {
  const h = createHash("sha256");
  if (repository !== undefined) h.update(`${repository}\0\0`);
  for (const path of [...tree.keys()].sort()) h.update(`${path}\0${tree.get(path) ?? ""}\0`);
  return `sha256:${h.digest("hex")}`;
}
