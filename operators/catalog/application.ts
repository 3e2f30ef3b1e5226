// Application reconciler: resolves the chart version in its registry and records its
// digest, scans the chart archive, and checks the profiles against the chart's values.
// Conditions: Ready (the summary) and Scanned (the malware scan).
import type { Application } from "../api/application.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import { ApplicationResource, RegistryResource } from "../api/resources.generated.ts";
import { removeCondition, setCondition, summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { ReconcileError, withStatus } from "../runtime/reconcile.ts";
import { readChart } from "./chart.ts";
import { checkProfiles } from "./profiles.ts";
import { RegistryClient, RegistryError } from "./registry-client.ts";
import type { Scanner } from "./scanner.ts";
import { registryAccess } from "./secrets.ts";

const retryMs = 60_000;
type Status = NonNullable<Application["status"]>;

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, "Z");

export class ApplicationReconciler {
  constructor(
    private readonly manager: Manager,
    private readonly scanner: Scanner,
  ) {}

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const app = await client.get<Application>(ApplicationResource, req.name, req.namespace);
    if (!app || app.metadata.deletionTimestamp) return undefined;
    return withStatus(client, ApplicationResource, app, fieldManager, (status) =>
      this.work(app, status),
    ).catch((err: unknown) => {
      // What the user must fix is in the status; look again later without backoff noise.
      if (err instanceof ReconcileError) return { requeueAfterMs: retryMs };
      throw err;
    });
  }

  private async work(app: Application, status: Status): Promise<Result | undefined> {
    const generation = app.metadata.generation;
    const ns = app.metadata.namespace ?? "";
    status.lastHandledReconcileAt = app.metadata.annotations?.[requestedAtAnnotation];
    const stall = (reason: string, message: string): Result | undefined => {
      Object.assign(status, summarize(status, generation, { kind: "stalled", reason, message }));
      return undefined;
    };

    const registryName = app.spec.chart.registryRef.name;
    const registry = this.manager.informer<Registry>(RegistryResource).cache.get(`${ns}/${registryName}`);
    if (!registry) {
      throw new ReconcileError(
        "RegistryNotFound",
        `Registry ${ns}/${registryName} (spec.chart.registryRef) does not exist`,
      );
    }
    if (registry.spec.type === "image") {
      return stall(
        "InvalidRegistry",
        `Registry ${registryName} holds images, not charts; spec.chart.registryRef must name a helm or oci registry`,
      );
    }

    const registryClient = new RegistryClient(await registryAccess(this.manager.client, registry));
    let archive: Buffer | undefined;
    try {
      const chart = await registryClient.resolveChart(app.spec.chart.name, app.spec.chart.version);
      const changed = status.chartDigest !== chart.digest;
      status.chartDigest = chart.digest;
      const needsScan = this.scanner.mode !== "off" && (changed || status.scan?.result !== "Clean");
      if (needsScan || changed || status.observedGeneration !== generation) archive = await chart.fetch();
    } catch (err) {
      if (err instanceof RegistryError)
        throw new ReconcileError(
          err.reason === "NotFound" ? "ChartNotFound" : `Registry${err.reason}`,
          err.message,
        );
      throw err;
    } finally {
      await registryClient.close();
    }

    // Same chart, same spec, already scanned clean: the last verdict stands.
    if (!archive) return undefined;
    {
      const verdict = await this.scanner.scan(archive);
      status.scan = {
        result: verdict.result,
        time: now(),
        ...(verdict.signature ? { signature: verdict.signature } : {}),
      };
      const g = generation !== undefined ? { observedGeneration: generation } : {};
      if (verdict.result === "Infected") {
        status.conditions = setCondition(status.conditions, {
          type: "Scanned",
          status: "False",
          reason: "MalwareFound",
          message: `the chart archive contains ${verdict.signature ?? "malware"}`,
          ...g,
        });
        return stall(
          "MalwareFound",
          `chart ${app.spec.chart.name} ${app.spec.chart.version} contains ${verdict.signature ?? "malware"}; it cannot be deployed`,
        );
      }
      if (verdict.result === "Error") {
        status.conditions = setCondition(status.conditions, {
          type: "Scanned",
          status: "Unknown",
          reason: "ScannerUnavailable",
          message: verdict.message ?? "the scanner is unavailable",
          ...g,
        });
        if (this.scanner.mode === "enforce") {
          throw new ReconcileError(
            "ScannerUnavailable",
            `the chart could not be scanned: ${verdict.message ?? ""}`,
          );
        }
      } else if (verdict.result === "Skipped") {
        status.conditions = setCondition(status.conditions, {
          type: "Scanned",
          status: "Unknown",
          reason: "ScanningDisabled",
          message: "malware scanning is turned off",
          ...g,
        });
      } else {
        status.conditions = setCondition(status.conditions, {
          type: "Scanned",
          status: "True",
          reason: "Clean",
          message: "no malware found",
          ...g,
        });
      }

      let files;
      try {
        files = await readChart(archive);
      } catch (err) {
        return stall(
          "InvalidChart",
          `chart ${app.spec.chart.name} ${app.spec.chart.version}: ${(err as Error).message}`,
        );
      }
      const problems = checkProfiles(app.spec.profiles ?? [], files.values, files.hasSchema);
      if (problems.length > 0) return stall("InvalidProfile", problems.slice(0, 5).join("; "));
    }

    status.conditions = removeCondition(status.conditions, "Stalled");
    Object.assign(
      status,
      summarize(status, generation, {
        kind: "ready",
        reason: "Resolved",
        message: `chart ${app.spec.chart.name} ${app.spec.chart.version} resolved in ${registryName} (${status.chartDigest ?? ""})${app.spec.draft ? "; a draft cannot be deployed until released" : ""}`,
      }),
    );
    return undefined;
  }
}

export function registerApplications(manager: Manager, scanner: Scanner): void {
  manager
    .controller("application", { workers: 4 })
    .for(ApplicationResource)
    .watches(RegistryResource, (o) => {
      const ns = o.metadata.namespace ?? "";
      return manager
        .informer<Application>(ApplicationResource)
        .cache.byNamespace(ns)
        .filter((a) => a.spec.chart.registryRef.name === o.metadata.name)
        .map((a) => `${ns}/${a.metadata.name ?? ""}`);
    })
    .complete(new ApplicationReconciler(manager, scanner));
}
