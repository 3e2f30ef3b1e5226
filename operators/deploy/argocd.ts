// Argo CD's objects as Outpost uses them (argoproj.io/v1alpha1, Argo CD ≥ 3.x): the kinds,
// the labels and Secret keys of its cluster and repository registrations, and the parts
// of an Application's status the deploy operator reads. The shapes follow Argo CD's
// types in pkg/apis/application/v1alpha1 (types.go, applicationset_types.go,
// app_project_types.go) and util/db (cluster.go, repository_secrets.go) at v3.6.1.
import { stringify } from "yaml";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import type { KubeObject, ResourceType } from "../runtime/client.ts";
import { plainHttp } from "../catalog/registry-client.ts";
import type { DeliveredApp } from "./delivered.ts";
import { namespaceAnnotation, releaseAnnotation, type GitTargetRepo } from "./fleet.ts";
import { contentLabel, type RenderedBundle } from "./render.ts";
import type { ClusterState } from "./status.ts";
import { dnsName } from "../runtime/names.ts";
import type { ClusterTarget, LabelSelector } from "../inventory/selector.ts";
import {
  appProjectName,
  argoSecretTypeLabel,
  clusterLabel,
  projectLabel,
} from "../inventory/registrations.ts";

const argo = (kind: string, plural: string): ResourceType => ({
  group: "argoproj.io",
  version: "v1alpha1",
  kind,
  plural,
  namespaced: true,
});

export const ApplicationSetResource = argo("ApplicationSet", "applicationsets");
export const ArgoApplicationResource = argo("Application", "applications");
export const AppProjectResource = argo("AppProject", "appprojects");

/** The finalizer that makes Argo CD delete an Application's resources with it. */
export const resourcesFinalizer = "resources-finalizer.argocd.argoproj.io";
/** The annotation that asks Argo CD to compare an Application again now (normal | hard). */
export const refreshAnnotation = "argocd.argoproj.io/refresh";

export interface ArgoApplication extends KubeObject {
  spec?: {
    project?: string;
    destination?: { server?: string; name?: string; namespace?: string };
    sources?: { repoURL?: string; targetRevision?: string; ref?: string; chart?: string }[];
  };
  status?: {
    sync?: { status?: string; revision?: string; revisions?: string[] };
    health?: { status?: string; message?: string };
    operationState?: {
      phase?: string;
      message?: string;
      syncResult?: { revision?: string; revisions?: string[] };
    };
    conditions?: { type: string; message?: string }[];
    resources?: {
      kind?: string;
      name?: string;
      namespace?: string;
      status?: string;
      health?: { status?: string; message?: string };
    }[];
  };
}

export interface ApplicationSet extends KubeObject {
  spec: Record<string, unknown>;
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

// ---------------------------------------------------------------------------------------
// Rendering (pure): the ApplicationSet of one bundle, the AppProject and repository
// Secrets of a project, and per-cluster state from the generated Applications.

/** Annotations on an ApplicationSet: what ops, interconnect and the proxy read back. */
export const targetsAnnotation = "outpost.dev/targets";

/**
 * Argo CD renders every string of an ApplicationSet's template, and its templatePatch as
 * a whole, as Go templates: text that comes from tenants (URLs, names, values) has each
 * `{{` written as a template action printing it, so it is never run.
 */
export const escapeTemplate = (v: string): string => v.replaceAll("{{", '{{"{{"}}');

/** A JSON string is a YAML scalar too: every tenant value written into templatePatch is one. */
const q = (v: string): string => escapeTemplate(JSON.stringify(v));

/**
 * Go-template text (text/template, as Argo CD's ApplicationSet controller renders
 * templatePatch) that sets `$<name>` to whether the cluster generator's
 * `.metadata.labels` (the cluster Secret's labels, map[string]string) satisfy `selector`,
 * with the API server's semantics: a key is present or absent (a range over the map
 * tells, since `index` gives "" for both a missing key and an empty value).
 */
export function selectorTemplate(selector: LabelSelector, name: string): string {
  const parts: string[] = [`{{- $${name} := true }}`];
  const keys = [
    ...Object.keys(selector.matchLabels ?? {}),
    ...(selector.matchExpressions ?? []).map((e) => e.key),
  ];
  const has = new Map<string, string>();
  for (const key of new Set(keys)) {
    const v = `$${name}_${has.size}`;
    has.set(key, v);
    parts.push(
      `{{- ${v} := false }}{{- range $k, $_ := .metadata.labels }}{{- if eq $k ${q(key)} }}{{- ${v} = true }}{{- end }}{{- end }}`,
    );
  }
  const value = (key: string): string => `(index .metadata.labels ${q(key)})`;
  const fail = (test: string): string => `{{- if ${test} }}{{- $${name} = false }}{{- end }}`;
  for (const [key, want] of Object.entries(selector.matchLabels ?? {})) {
    if (want === undefined) continue;
    parts.push(fail(`not (and ${has.get(key) ?? ""} (eq ${value(key)} ${q(want)}))`));
  }
  for (const e of selector.matchExpressions ?? []) {
    const h = has.get(e.key) ?? "";
    const values = (e.values ?? []).map(q).join(" ");
    const inValues = values ? `(eq ${value(e.key)} ${values})` : "false";
    if (e.operator === "In") parts.push(fail(`not (and ${h} ${inValues})`));
    else if (e.operator === "NotIn") parts.push(fail(`and ${h} ${inValues}`));
    else if (e.operator === "Exists") parts.push(fail(`not ${h}`));
    else parts.push(fail(h));
  }
  return parts.join("\n");
}

/** What the chart of a bundle is, as an Argo CD source: Helm repository or OCI registry. */
export function chartSource(
  registry: Registry,
  chart: string,
): { repoURL: string; chart: string; oci: boolean; plainHttp: boolean } {
  const url = registry.spec.url.replace(/\/+$/, "");
  if (registry.spec.type === "helm") return { repoURL: url, chart, oci: false, plainHttp: plainHttp(url) };
  // Argo CD names Helm charts in OCI registries by host/path, without a scheme
  // (util/helm/client.go; the repository Secret says enableOCI).
  return {
    repoURL: url.replace(/^(https?|oci):\/\//, ""),
    chart,
    oci: true,
    plainHttp: plainHttp(url),
  };
}

export interface ApplicationSetInput {
  deployment: AppDeployment;
  bundle: RenderedBundle;
  git: GitTargetRepo;
  commit: string;
  registry: Registry;
  /** Argo CD's namespace. */
  namespace: string;
  /** The project's Argo CD clusters by Outpost name: their server and labels (for clusterName targets). */
  clusters: Map<string, { server: string; labels: Record<string, string> }>;
  paused: boolean;
}

/**
 * The Application an ApplicationSet generates for a cluster (its template's name): Argo
 * CD's tracking annotation on what it applies names it.
 */
export const argoApplicationName = (applicationSet: string, cluster: string): string =>
  `${applicationSet}-${cluster}`;

/** The ApplicationSet's name: one per (project, deployment, application). */
export const applicationSetName = (namespace: string, bundleName: string): string =>
  dnsName(`${namespace}-${bundleName}`, 63);

/**
 * The ApplicationSet of one bundle: a cluster generator per target selector (ANDed with
 * the project label, so a tenant's selector never reaches another project's clusters) or
 * a list generator of the clusters named; the chart from its registry and the values
 * files from Git at the delivered commit (a multi-source Application); secret values in
 * `helm.valuesObject` (never in Git); overrides as extra values files chosen per cluster
 * by templatePatch; automated sync with prune and self-heal, unless paused.
 */
export function applicationSetFor(input: ApplicationSetInput): ApplicationSet {
  const { deployment: dep, bundle, git, commit, registry } = input;
  const ns = dep.metadata.namespace ?? "";
  const name = applicationSetName(ns, bundle.bundleName);
  const labels = {
    [projectLabel]: ns,
    "outpost.dev/deployment": dep.metadata.name ?? "",
    "outpost.dev/application": bundle.application,
    "app.kubernetes.io/managed-by": "outpost",
  };
  const generators: Record<string, unknown>[] = [];
  for (const t of bundle.targets) {
    if (t.clusterName !== undefined) {
      const c = input.clusters.get(t.clusterName);
      // A named cluster that is not registered yet generates nothing until it is. The
      // element has the cluster generator's parameters, labels included.
      if (c) {
        generators.push({
          list: {
            elements: [
              {
                name: `${ns}.${t.clusterName}`,
                nameNormalized: dnsName(`${ns}-${t.clusterName}`, 63),
                server: c.server,
                metadata: { labels: { ...c.labels, [clusterLabel]: t.clusterName } },
              },
            ],
          },
        });
      }
      continue;
    }
    const sel = t.clusterSelector ?? {};
    generators.push({
      clusters: {
        selector: {
          matchLabels: {
            ...Object.fromEntries(Object.entries(sel.matchLabels ?? {}).filter(([, v]) => v !== undefined)),
            [projectLabel]: ns,
          },
          ...(sel.matchExpressions?.length ? { matchExpressions: sel.matchExpressions } : {}),
        },
      },
    });
  }
  const src = chartSource(registry, bundle.chart.name);
  const values = `$values/${bundle.path}/values.yaml`;
  const e = escapeTemplate;
  const chartSourceOf = (valueFiles: string[]): Record<string, unknown> => ({
    repoURL: e(src.repoURL),
    chart: e(src.chart),
    targetRevision: e(bundle.chart.version),
    helm: {
      releaseName: e(bundle.releaseName),
      valueFiles: valueFiles.map(e),
      // An object, not text: Argo CD does not template it.
      ...(bundle.secret ? { valuesObject: bundle.secret.values } : {}),
    },
  });
  const gitSource = { repoURL: e(git.url), targetRevision: e(commit), ref: "values" };
  const overrideFiles = bundle.overrides.map((_, i) => `$values/${bundle.path}/overrides/${i}.yaml`);
  const templatePatch =
    bundle.overrides.length > 0
      ? [
          ...bundle.overrides.map((o, i) => selectorTemplate(o.clusterSelector, `o${i}`)),
          "spec:",
          "  sources:",
          `  - repoURL: ${q(src.repoURL)}`,
          `    chart: ${q(src.chart)}`,
          `    targetRevision: ${q(bundle.chart.version)}`,
          "    helm:",
          `      releaseName: ${q(bundle.releaseName)}`,
          ...(bundle.secret
            ? [`      valuesObject: ${escapeTemplate(JSON.stringify(bundle.secret.values))}`]
            : []),
          "      valueFiles:",
          `      - ${q(values)}`,
          ...overrideFiles.map((f, i) => `{{- if $o${i} }}\n      - ${q(f)}\n{{- end }}`),
          `  - repoURL: ${q(git.url)}`,
          `    targetRevision: ${q(commit)}`,
          "    ref: values",
          "",
        ].join("\n")
      : undefined;
  return {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "ApplicationSet",
    metadata: {
      name,
      namespace: input.namespace,
      labels,
      annotations: {
        [namespaceAnnotation]: bundle.namespace,
        [releaseAnnotation]: bundle.releaseName,
        [targetsAnnotation]: JSON.stringify(bundle.targets),
        [contentLabel]: bundle.contentHash,
      },
    },
    spec: {
      goTemplate: true,
      goTemplateOptions: ["missingkey=error"],
      generators,
      // Applications of clusters that leave the placement are deleted, with what they
      // deployed (the resources finalizer below).
      syncPolicy: { applicationsSync: "sync" },
      template: {
        metadata: {
          name: `${name}-{{ or (index .metadata.labels "${clusterLabel}") .nameNormalized }}`,
          labels: { ...labels, [clusterLabel]: `{{ or (index .metadata.labels "${clusterLabel}") .name }}` },
          finalizers: [resourcesFinalizer],
        },
        spec: {
          project: appProjectName(ns),
          destination: { server: "{{ .server }}", namespace: e(bundle.namespace) },
          sources: [chartSourceOf([values]), gitSource],
          syncPolicy: {
            automated: { enabled: !input.paused, prune: true, selfHeal: true },
            syncOptions: ["CreateNamespace=true"],
            retry: { limit: -1, backoff: { duration: "5s", factor: 2, maxDuration: "3m" } },
          },
        },
      },
      ...(templatePatch ? { templatePatch } : {}),
    },
  };
}

/** Files Argo CD reads besides values.yaml: one values file per override. */
export function overrideFiles(bundle: RenderedBundle): Record<string, string> {
  return Object.fromEntries(
    bundle.overrides.map((o, i) => [
      `overrides/${i}.yaml`,
      stringify(o.values, { sortMapEntries: true, lineWidth: 0 }),
    ]),
  );
}

/**
 * The AppProject of an Outpost project: only its own repositories, only clusters scoped
 * to it (cluster Secrets with project outpost-<namespace>), and of cluster-scoped kinds
 * only Namespaces (CreateNamespace).
 */
export function appProjectFor(namespace: string, argoNamespace: string, sourceRepos: string[]): KubeObject {
  return {
    apiVersion: "argoproj.io/v1alpha1",
    kind: "AppProject",
    metadata: {
      name: appProjectName(namespace),
      namespace: argoNamespace,
      labels: { [projectLabel]: namespace, "app.kubernetes.io/managed-by": "outpost" },
    },
    spec: {
      description: `Outpost project ${namespace}: its deployments, on its own clusters only`,
      sourceRepos: [...new Set(sourceRepos)].sort(),
      // Never the management cluster itself (Argo CD's in-cluster destination).
      destinations: [
        { server: "*", namespace: "*" },
        { server: "https://kubernetes.default.svc", namespace: "!*" },
      ],
      permitOnlyProjectScopedClusters: true,
      clusterResourceWhitelist: [{ group: "", kind: "Namespace" }],
    },
  } as KubeObject;
}

/** The name of a repository Secret Outpost writes for a project. */
export const repositorySecretName = (namespace: string, what: string): string =>
  dnsName(`outpost-repo-${namespace}-${what}`, 253);

/** An Argo CD repository Secret, scoped to the project's AppProject (util/db/repository_secrets.go). */
export function repositorySecretFor(input: {
  namespace: string;
  argoNamespace: string;
  what: string;
  url: string;
  type: "git" | "helm";
  oci?: boolean;
  plainHttp?: boolean;
  username?: string;
  password?: string;
}): KubeObject & { data: Record<string, string> } {
  const fields: Record<string, string> = {
    url: input.url,
    type: input.type,
    project: appProjectName(input.namespace),
    ...(input.oci ? { enableOCI: "true" } : {}),
    ...(input.oci && input.plainHttp ? { insecureOCIForceHttp: "true" } : {}),
    ...(input.username !== undefined ? { username: input.username } : {}),
    ...(input.password !== undefined ? { password: input.password } : {}),
  };
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: repositorySecretName(input.namespace, input.what),
      namespace: input.argoNamespace,
      labels: {
        [argoSecretTypeLabel]: "repository",
        [projectLabel]: input.namespace,
        "app.kubernetes.io/managed-by": "outpost",
      },
    },
    type: "Opaque",
    data: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  } as KubeObject & { data: Record<string, string> };
}

/** Whether an Application's message says its cluster could not be reached. */
const unreachable = (message: string): boolean =>
  /connection refused|no route to host|i\/o timeout|context deadline exceeded|dial tcp|connection reset|the server is currently unable|Unable to connect|failed to get cluster info|timed out/i.test(
    message,
  );

/**
 * Argo CD's per-cluster state, from the Applications of the deployment (label
 * outpost.dev/cluster): the current revision runs on a cluster when its Application is
 * synced to the delivered commit (the Git source's revision) and no sync is failing; it
 * is ready when Argo CD says Healthy. Argo CD's own words are the message.
 */
export function argoStates(
  applications: ArgoApplication[],
  commit: string | undefined,
): (app: { application: string }, cluster: string) => { state: ClusterState; message: string } {
  const byAppCluster = new Map<string, ArgoApplication>();
  for (const a of applications) {
    const l = a.metadata.labels ?? {};
    byAppCluster.set(`${l["outpost.dev/application"] ?? ""}/${l[clusterLabel] ?? ""}`, a);
  }
  return (app, cluster) => {
    const a = byAppCluster.get(`${app.application}/${cluster}`);
    if (!a) return { state: "Pending", message: "Argo CD has not generated its Application yet" };
    const st = a.status ?? {};
    const problem = st.conditions?.find((c) => c.type.endsWith("Error") && c.message);
    if (
      problem &&
      (st.sync?.status === "Unknown" || st.health?.status === "Unknown") &&
      unreachable(problem.message ?? "")
    ) {
      return { state: "Offline", message: `Argo CD cannot reach the cluster: ${problem.message ?? ""}` };
    }
    const revisions = st.sync?.revisions ?? (st.sync?.revision ? [st.sync.revision] : []);
    const op = st.operationState;
    if (commit !== undefined && !revisions.includes(commit)) {
      if (problem) return { state: "NotReady", message: `Argo CD: ${problem.message ?? problem.type}` };
      return { state: "Pending", message: `Argo CD has not compared commit ${commit.slice(0, 12)} yet` };
    }
    if (op && (op.phase === "Failed" || op.phase === "Error")) {
      return { state: "NotReady", message: `Argo CD sync ${op.phase.toLowerCase()}: ${op.message ?? ""}` };
    }
    if (problem) return { state: "NotReady", message: `Argo CD: ${problem.message ?? problem.type}` };
    if (st.sync?.status !== "Synced") {
      return {
        state: "Pending",
        message: `Argo CD: ${st.sync?.status ?? "not compared"}${op?.message ? `: ${op.message}` : ""}`,
      };
    }
    const health = st.health?.status;
    if (health === "Healthy") return { state: "Ready", message: "" };
    const detail =
      st.health?.message ??
      st.resources?.find((r) => r.health?.status && r.health.status !== "Healthy")?.health?.message;
    const resource = st.resources?.find((r) => r.health?.status && r.health.status !== "Healthy");
    const why = `${health ?? "Unknown"}${resource ? ` (${resource.kind ?? ""} ${resource.name ?? ""})` : ""}${detail ? `: ${detail}` : ""}`;
    if (health === "Progressing" || health === "Missing")
      return { state: "Pending", message: `Argo CD: ${why}` };
    return { state: "NotReady", message: `Argo CD: ${why}` };
  };
}

/** What an Outpost ApplicationSet delivers, read back (ops, interconnect, the proxy). */
export function deliveredFromApplicationSet(a: ApplicationSet): DeliveredApp | undefined {
  const l = a.metadata.labels ?? {};
  const ann = a.metadata.annotations ?? {};
  const deployment = l["outpost.dev/deployment"];
  const application = l["outpost.dev/application"];
  if (!deployment || !application || !ann[namespaceAnnotation] || !ann[releaseAnnotation]) return undefined;
  let targets: ClusterTarget[];
  try {
    targets = JSON.parse(ann[targetsAnnotation] ?? "[]") as ClusterTarget[];
  } catch {
    targets = [];
  }
  return {
    deployment,
    application,
    namespace: ann[namespaceAnnotation],
    releaseName: ann[releaseAnnotation],
    targets,
    argoApplicationSet: a.metadata.name ?? "",
  };
}
