// Deployment commands of kubectl-outpost: status (summary, per application, per cluster
// from the delivery engine's objects), approve, history, rollback and diff (what the next
// delivery changes, per application and per cluster group, rendered locally with the
// operator's own render function and secrets redacted).
import { createTwoFilesPatch } from "diff";
import type { AppDeployment } from "../operators/api/app-deployment.generated.ts";
import type { Application } from "../operators/api/application.generated.ts";
import type { DeploymentPackage } from "../operators/api/deployment-package.generated.ts";
import type { Registry } from "../operators/api/registry.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  ApprovalResource,
  DeploymentPackageResource,
  RegistryResource,
} from "../operators/api/resources.generated.ts";
import { CatalogError } from "../operators/catalog/format.ts";
import { ControllerRevisionResource, deploymentLabel } from "../operators/deploy/fleet.ts";
import { revisionHash } from "../operators/deploy/lifecycle.ts";
import { render, type RenderedBundle } from "../operators/deploy/render.ts";
import {
  commitAnnotation,
  deliveredSpec,
  revisionHashLabel,
  sortRevisions,
  type ControllerRevision,
} from "../operators/deploy/revisions.ts";
import { aggregate } from "../operators/deploy/status.ts";
import { targetedClusters } from "../operators/inventory/inventory.ts";
import { ApiError, type KubeClient, type KubeObject } from "../operators/runtime/client.ts";
import { getCondition } from "../operators/runtime/conditions.ts";
import { deliveryStates, deliveryView, type Progress } from "./delivery.ts";

export type { Progress };

/** Rows as an aligned table with a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

async function getDeployment(client: KubeClient, ns: string, name: string): Promise<AppDeployment> {
  const dep = await client.get<AppDeployment>(AppDeploymentResource, name, ns);
  if (!dep) throw new CatalogError(`AppDeployment ${name} not found in namespace ${ns}`);
  return dep;
}

export interface StatusReport {
  deployment: AppDeployment;
  /** Per (application, cluster) rows when asked for clusters. */
  clusters?: { cluster: string; application: string; state: string; message: string }[];
}

/** The deployment's status; with `clusters`, one row per (application, cluster) from its engine. */
export async function deploymentStatus(
  client: KubeClient,
  ns: string,
  name: string,
  options: { clusters?: boolean; app?: string; progress?: Progress; argocdNamespace?: string } = {},
): Promise<StatusReport> {
  const deployment = await getDeployment(client, ns, name);
  if (!options.clusters) return { deployment };
  const argo = options.argocdNamespace ?? "argocd";
  const [view, stateOf, bundles] = await Promise.all([
    deliveryView(client, deployment, argo, options.progress),
    deliveryStates(client, deployment, argo, options.progress),
    renderFor(client, deployment, deployment.spec),
  ]);
  const clusters = view.clusters;
  const rows: NonNullable<StatusReport["clusters"]> = [];
  for (const b of bundles) {
    if (options.app && b.application !== options.app) continue;
    const one = aggregate({
      apps: [
        {
          application: b.application,
          bundleName: b.bundleName,
          targets: b.targets,
          contentHash: b.contentHash,
        },
      ],
      clusters,
      stateOf,
      now: new Date(),
      offlineAfterMs: 30 * 60_000,
      maxListed: Number.MAX_SAFE_INTEGER,
    });
    const notReady = new Map(one.clusters.map((c) => [c.name, c]));
    for (const c of targetedClusters(b.targets, clusters)) {
      const cn = c.metadata.name ?? "";
      const bad = notReady.get(cn);
      rows.push({
        cluster: cn,
        application: b.application,
        state: bad?.state ?? "Ready",
        message: bad?.message.replace(`${b.application}: `, "") ?? "",
      });
    }
  }
  rows.sort((a, b) => a.cluster.localeCompare(b.cluster) || a.application.localeCompare(b.application));
  return { deployment, clusters: rows };
}

export function formatStatus(report: StatusReport): string {
  const d = report.deployment;
  const s = d.status;
  const ready = getCondition(s?.conditions, "Ready");
  const sum = s?.summary ?? {};
  const lines = [
    `Deployment:  ${d.metadata.namespace ?? ""}/${d.metadata.name ?? ""}`,
    `Package:     ${d.spec.packageRef.name} ${d.spec.packageRef.version}${d.spec.profile ? ` (profile ${d.spec.profile})` : ""}`,
    `Phase:       ${s?.phase ?? "Unknown"}${ready ? ` — ${ready.message}` : ""}`,
    `Revision:    ${s?.revision ?? "-"} (hash ${s?.revisionHash ?? "-"}, commit ${s?.commit?.slice(0, 12) ?? "-"})`,
    `Engine:      ${s?.engine === "argocd" ? "Argo CD" : s?.engine === "fleet" ? "Fleet" : "-"}`,
    `Clusters:    ${sum.targets ?? 0} targeted, ${sum.ready ?? 0} ready, ${sum.notReady ?? 0} not ready, ${sum.offline ?? 0} offline, ${sum.pending ?? 0} pending`,
    "",
    table(
      ["APPLICATION", "TARGETS", "READY", "MESSAGE"],
      (s?.applications ?? []).map((a) => [
        a.name ?? "",
        String(a.targets ?? 0),
        String(a.ready ?? 0),
        a.message ?? "",
      ]),
    ),
  ];
  if (report.clusters) {
    lines.push(
      "",
      table(
        ["CLUSTER", "APPLICATION", "STATE", "MESSAGE"],
        report.clusters.map((r) => [r.cluster, r.application, r.state, r.message]),
      ),
    );
  } else if ((s?.clusters ?? []).length > 0) {
    lines.push(
      "",
      "Not ready (first ones; --clusters lists all):",
      table(
        ["CLUSTER", "STATE", "MESSAGE"],
        (s?.clusters ?? []).map((c) => [c.name ?? "", c.state ?? "", c.message ?? ""]),
      ),
    );
  }
  return lines.join("\n");
}

/** Creates the Approval of the deployment's current spec. */
export async function approve(
  client: KubeClient,
  ns: string,
  name: string,
  comment?: string,
): Promise<{ name: string; revisionHash: string; created: boolean }> {
  const dep = await getDeployment(client, ns, name);
  const hash = revisionHash(dep.spec);
  const approvalName = `${name}-${hash}`.slice(0, 253);
  try {
    await client.create(ApprovalResource, {
      metadata: { name: approvalName, namespace: ns, labels: { [deploymentLabel]: name } },
      spec: { deploymentRef: { name }, revisionHash: hash, ...(comment ? { comment } : {}) },
    } as KubeObject);
    return { name: approvalName, revisionHash: hash, created: true };
  } catch (err) {
    if (ApiError.isConflict(err)) return { name: approvalName, revisionHash: hash, created: false };
    if (err instanceof ApiError && err.code === 403) {
      throw new CatalogError(
        `you may not approve deployments in namespace ${ns}: approving needs the project's approver role (create on approvals.deploy.outpost.dev)`,
      );
    }
    throw err;
  }
}

export interface HistoryRow {
  revision: number;
  hash: string;
  commit: string;
  packageVersion: string;
  created: string;
  current: boolean;
}

async function revisions(client: KubeClient, ns: string, name: string): Promise<ControllerRevision[]> {
  const list = await client.list<ControllerRevision>(ControllerRevisionResource, {
    namespace: ns,
    labelSelector: `${deploymentLabel}=${name}`,
  });
  return sortRevisions(list.items);
}

export async function history(client: KubeClient, ns: string, name: string): Promise<HistoryRow[]> {
  const dep = await getDeployment(client, ns, name);
  return (await revisions(client, ns, name)).map((r) => ({
    revision: r.revision,
    hash: r.metadata.labels?.[revisionHashLabel] ?? "",
    commit: (r.metadata.annotations?.[commitAnnotation] ?? "").slice(0, 12),
    packageVersion: `${r.data.spec.packageRef.name} ${r.data.spec.packageRef.version}`,
    created: r.metadata.creationTimestamp ?? "",
    current: r.revision === dep.status?.revision,
  }));
}

export function formatHistory(rows: HistoryRow[]): string {
  return table(
    ["REVISION", "HASH", "COMMIT", "PACKAGE", "CREATED", ""],
    rows.map((r) => [
      String(r.revision),
      r.hash,
      r.commit,
      r.packageVersion,
      r.created,
      r.current ? "current" : "",
    ]),
  );
}

/**
 * Restores the spec of revision `toRevision` (default: the one before the current) —
 * `suspend` stays as it is. With approval required, the restored spec needs approving.
 */
export async function rollback(
  client: KubeClient,
  ns: string,
  name: string,
  toRevision?: number,
): Promise<{ revision: number; hash: string }> {
  const all = await revisions(client, ns, name);
  for (let attempt = 1; ; attempt++) {
    const dep = await getDeployment(client, ns, name);
    const current = dep.status?.revision;
    const target =
      toRevision !== undefined
        ? all.find((r) => r.revision === toRevision)
        : all.filter((r) => r.revision !== current).at(-1);
    if (!target) {
      const have = all.map((r) => r.revision).join(", ") || "none";
      throw new CatalogError(
        toRevision !== undefined
          ? `${name} has no revision ${toRevision} (it has ${have}); see kubectl outpost history ${name}`
          : `${name} has no earlier revision to roll back to (revisions: ${have})`,
      );
    }
    const spec = {
      ...deliveredSpec(target.data.spec),
      ...(dep.spec.suspend !== undefined ? { suspend: dep.spec.suspend } : {}),
    };
    try {
      // Optimistic concurrency: a change made meanwhile (the operator writing status
      // included) makes the replace fail; read again and retry.
      await client.replace(AppDeploymentResource, { ...dep, spec });
      return { revision: target.revision, hash: revisionHash(spec) };
    } catch (err) {
      if (!ApiError.isConflict(err) || attempt >= 5) throw err;
    }
  }
}

/** Renders `spec` of `dep` with the catalog objects in the API, secret values redacted. */
export async function renderFor(
  client: KubeClient,
  dep: AppDeployment,
  spec: AppDeployment["spec"],
): Promise<RenderedBundle[]> {
  const ns = dep.metadata.namespace ?? "";
  const ref = spec.packageRef;
  const pkg = await client.get<DeploymentPackage>(
    DeploymentPackageResource,
    `${ref.name}-${ref.version}`,
    ns,
  );
  if (!pkg)
    throw new CatalogError(`DeploymentPackage ${ref.name} ${ref.version} not found in namespace ${ns}`);
  const applications = new Map<string, Application>();
  for (const a of pkg.spec.applications) {
    const app = await client.get<Application>(ApplicationResource, `${a.name}-${a.version}`, ns);
    if (app) applications.set(a.name, app);
  }
  const registries = new Map(
    (await client.list<Registry>(RegistryResource, { namespace: ns })).items.map((r) => [
      r.metadata.name ?? "",
      r,
    ]),
  );
  return render({
    deployment: { ...dep, spec },
    pkg,
    applications,
    registries,
    secretValues: new Map(),
    redactSecrets: true,
  });
}

export interface DiffResult {
  /** Unified diffs of the Git files, per application. */
  files: { application: string; patch: string }[];
  /** Target changes, per application: clusters added and removed. */
  targets: { application: string; added: string[]; removed: string[] }[];
  /** Whether anything would change. */
  changed: boolean;
}

/** What delivering the current spec changes compared with the delivered revision. */
export async function diff(
  client: KubeClient,
  ns: string,
  name: string,
  options: { argocdNamespace?: string } = {},
): Promise<DiffResult> {
  const dep = await getDeployment(client, ns, name);
  const all = await revisions(client, ns, name);
  const delivered = all.find((r) => r.revision === dep.status?.revision);
  const [next, prev, view] = await Promise.all([
    renderFor(client, dep, dep.spec),
    delivered ? renderFor(client, dep, delivered.data.spec) : Promise.resolve([] as RenderedBundle[]),
    deliveryView(client, dep, options.argocdNamespace ?? "argocd"),
  ]);
  const clusters = view.clusters;
  const apps = [...new Set([...prev, ...next].map((b) => b.application))].sort();
  const files: DiffResult["files"] = [];
  const targets: DiffResult["targets"] = [];
  for (const app of apps) {
    const a = prev.find((b) => b.application === app);
    const b = next.find((x) => x.application === app);
    for (const file of ["fleet.yaml", "values.yaml"]) {
      const before = a?.files[file] ?? "";
      const after = b?.files[file] ?? "";
      if (before === after) continue;
      const path = `${b?.path ?? a?.path ?? app}/${file}`;
      files.push({
        application: app,
        patch: createTwoFilesPatch(
          `a/${path}`,
          `b/${path}`,
          before,
          after,
          `revision ${delivered?.revision ?? "none"}`,
          "next",
        ),
      });
    }
    const was = new Set(targetedClusters(a?.targets ?? [], clusters).map((c) => c.metadata.name ?? ""));
    const will = new Set(targetedClusters(b?.targets ?? [], clusters).map((c) => c.metadata.name ?? ""));
    const added = [...will].filter((c) => !was.has(c)).sort();
    const removed = [...was].filter((c) => !will.has(c)).sort();
    if (added.length || removed.length) targets.push({ application: app, added, removed });
  }
  return { files, targets, changed: files.length > 0 || targets.length > 0 };
}

export function formatDiff(d: DiffResult): string {
  if (!d.changed) return "no changes: the next delivery is what runs now";
  const out: string[] = [];
  for (const t of d.targets) {
    const list = (xs: string[]): string =>
      xs.length > 10 ? `${xs.slice(0, 10).join(", ")} and ${xs.length - 10} more` : xs.join(", ");
    if (t.added.length) out.push(`${t.application}: +${t.added.length} cluster(s): ${list(t.added)}`);
    if (t.removed.length) out.push(`${t.application}: -${t.removed.length} cluster(s): ${list(t.removed)}`);
  }
  for (const f of d.files) out.push(f.patch.trimEnd());
  return out.join("\n");
}
