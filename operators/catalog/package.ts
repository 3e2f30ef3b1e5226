// DeploymentPackage reconciler: every application it names exists and is Ready, the
// dependency graph has no cycle, deployment profiles name real application profiles;
// records a content digest over the spec and the resolved applications and charts, and
// the AppDeployments that use the package.
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
} from "../api/resources.generated.ts";
import { kstatus, summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { withStatus } from "../runtime/reconcile.ts";
import { sha256 } from "./digest.ts";
import { findCycle } from "./graph.ts";

const maxListed = 50;

export interface PackageCheck {
  /** "stalled": the package must change; "waiting": an application is not ready yet. */
  kind: "ok" | "stalled" | "waiting";
  reason?: string;
  message?: string;
}

/** The package against its applications (pure: the reconciler and tests share it). */
export function checkPackage(
  pkg: DeploymentPackage,
  apps: Map<string, Application | undefined>,
): PackageCheck {
  const names = pkg.spec.applications.map((a) => a.name);
  const cycle = findCycle(names, pkg.spec.dependencies ?? []);
  if (cycle)
    return { kind: "stalled", reason: "DependencyCycle", message: `dependency cycle: ${cycle.join(" → ")}` };

  for (const profile of pkg.spec.profiles ?? []) {
    for (const [appName, profileName] of Object.entries(profile.applicationProfiles ?? {})) {
      const ref = pkg.spec.applications.find((a) => a.name === appName);
      const app = ref ? apps.get(`${appName}-${ref.version}`) : undefined;
      if (!app) continue; // reported below
      const known = (app.spec.profiles ?? []).map((p) => p.name);
      if (profileName !== undefined && !known.includes(profileName)) {
        return {
          kind: "stalled",
          reason: "InvalidProfile",
          message: `profile ${profile.name}: application ${appName} has no profile ${profileName}${known.length ? ` (it has ${known.join(", ")})` : " (it has no profiles)"}`,
        };
      }
    }
  }

  const missing: string[] = [];
  const notReady: string[] = [];
  for (const ref of pkg.spec.applications) {
    const key = `${ref.name}-${ref.version}`;
    const app = apps.get(key);
    if (!app) missing.push(key);
    else if (app.spec.draft) notReady.push(`${key} is a draft`);
    else if (kstatus(app) !== "Current") {
      const ready = app.status?.conditions?.find((c) => c.type === "Ready");
      notReady.push(`${key} is not ready${ready ? ` (${ready.reason}: ${ready.message})` : ""}`);
    }
  }
  if (missing.length > 0) {
    return {
      kind: "waiting",
      reason: "ApplicationNotFound",
      message: `applications not found in this namespace: ${missing.join(", ")}`,
    };
  }
  if (notReady.length > 0)
    return { kind: "waiting", reason: "ApplicationNotReady", message: notReady.join("; ") };
  return { kind: "ok" };
}

/**
 * The package's deployment profiles as application → application profile, with each
 * application's default filled in. Without profiles a package has one implicit profile,
 * "default", that uses every application's default profile.
 */
export function effectiveProfiles(
  pkg: DeploymentPackage,
  apps: Map<string, Application | undefined>,
): { name: string; applicationProfiles: Record<string, string | undefined> }[] {
  const defaults = Object.fromEntries(
    pkg.spec.applications.map((a) => [a.name, apps.get(`${a.name}-${a.version}`)?.spec.defaultProfile]),
  );
  const profiles = pkg.spec.profiles ?? [];
  if (profiles.length === 0) return [{ name: "default", applicationProfiles: defaults }];
  return profiles.map((p) => ({
    name: p.name,
    applicationProfiles: { ...defaults, ...(p.applicationProfiles ?? {}) },
  }));
}

/** sha256 of the canonical spec and of what each application resolved to. */
export function contentDigest(pkg: DeploymentPackage, apps: Application[]): string {
  return sha256({
    spec: pkg.spec,
    applications: apps
      .map((a) => ({
        name: a.spec.name,
        version: a.spec.version,
        spec: sha256(a.spec),
        chartDigest: a.status?.chartDigest,
      }))
      .sort((x, y) => x.name.localeCompare(y.name)),
  });
}

export class PackageReconciler {
  constructor(private readonly manager: Manager) {}

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const pkg = this.manager.informer<DeploymentPackage>(DeploymentPackageResource).cache.get(req.key);
    if (!pkg || pkg.metadata.deletionTimestamp) return undefined;
    const ns = pkg.metadata.namespace ?? "";
    const appCache = this.manager.informer<Application>(ApplicationResource).cache;
    const apps = new Map(
      pkg.spec.applications.map((a) => [
        `${a.name}-${a.version}`,
        appCache.get(`${ns}/${a.name}-${a.version}`),
      ]),
    );
    const users = this.manager
      .informer<AppDeployment>(AppDeploymentResource)
      .cache.byNamespace(ns)
      .filter(
        (d) => d.spec.packageRef.name === pkg.spec.name && d.spec.packageRef.version === pkg.spec.version,
      )
      .map((d) => d.metadata.name ?? "")
      .sort();

    return withStatus(client, DeploymentPackageResource, pkg, fieldManager, (status) => {
      const generation = pkg.metadata.generation;
      status.lastHandledReconcileAt = pkg.metadata.annotations?.[requestedAtAnnotation];
      status.applicationCount = pkg.spec.applications.length;
      status.deploymentCount = users.length;
      status.deployments = users.slice(0, maxListed);
      const check = checkPackage(pkg, apps);
      if (check.kind === "stalled") {
        Object.assign(
          status,
          summarize(status, generation, {
            kind: "stalled",
            reason: check.reason ?? "Invalid",
            message: check.message ?? "",
          }),
        );
      } else if (check.kind === "waiting") {
        delete status.contentDigest;
        Object.assign(
          status,
          summarize(status, generation, {
            kind: "failed",
            reason: check.reason ?? "NotReady",
            message: check.message ?? "",
          }),
        );
      } else {
        const resolved = [...apps.values()].filter((a): a is Application => a !== undefined);
        status.contentDigest = contentDigest(pkg, resolved);
        Object.assign(
          status,
          summarize(status, generation, {
            kind: "ready",
            reason: "Resolved",
            message: `${resolved.length} application${resolved.length === 1 ? "" : "s"} ready${pkg.spec.draft ? "; a draft cannot be deployed until released" : ""}`,
          }),
        );
      }
      return Promise.resolve(undefined);
    });
  }
}

export function registerPackages(manager: Manager): void {
  const packagesUsing = (ns: string, test: (p: DeploymentPackage) => boolean): string[] =>
    manager
      .informer<DeploymentPackage>(DeploymentPackageResource)
      .cache.byNamespace(ns)
      .filter(test)
      .map((p) => `${ns}/${p.metadata.name ?? ""}`);
  manager
    .controller("deploymentpackage", { workers: 4 })
    .for(DeploymentPackageResource)
    .watches(ApplicationResource, (o) => {
      const app = o as Application;
      return packagesUsing(app.metadata.namespace ?? "", (p) =>
        p.spec.applications.some((a) => a.name === app.spec.name && a.version === app.spec.version),
      );
    })
    .watches(AppDeploymentResource, (o) => {
      const d = o as AppDeployment;
      // Every version: an upgrade moves the deployment from one to another.
      return packagesUsing(d.metadata.namespace ?? "", (p) => p.spec.name === d.spec.packageRef.name);
    })
    .complete(new PackageReconciler(manager));
}
