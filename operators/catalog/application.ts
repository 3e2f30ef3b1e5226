// Application reconciler: resolves the chart version in its registry and records its
// digest, scans the chart archive, and checks the profiles against the chart's values.
// Conditions: Ready (the summary) and Scanned (the malware scan).
import type { Application } from "../api/application.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import { ApplicationResource, RegistryResource } from "../api/resources.generated.ts";
import { removeCondition, summarize } from "../runtime/conditions.ts";
import {
  requestedAtAnnotation,
  specOrReadinessChanged,
  type Request,
  type Result,
} from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { ReconcileError, withStatus } from "../runtime/reconcile.ts";
import { readChart, type ChartFiles } from "./chart.ts";
import { checkProfiles } from "./profiles.ts";
import { RegistryClient, RegistryError } from "./registry-client.ts";
import { recordScan, type Scanner, type ScanVerdict } from "./scanner.ts";
import { registryAccess } from "./secrets.ts";

const retryMs = 60_000;
/** A version tag can be pushed again: resolve it again this often, and record a new digest. */
const chartRecheckMs = 30 * 60_000;
type Status = NonNullable<Application["status"]>;

/** What a chart archive held: its scan verdict and its files (or why they are unreadable). */
interface Inspected {
  verdict: ScanVerdict;
  files: ChartFiles | Error;
}

const inspectedCacheSize = 1024;

export class ApplicationReconciler {
  /** By chart digest: many applications share a chart, which is fetched and read once. */
  private readonly inspected = new Map<string, Inspected>();

  /** The verdict and files of the archive with `digest`, fetching it only when not known. */
  private async inspect(digest: string, fetch: () => Promise<Buffer>): Promise<Inspected> {
    const known = this.inspected.get(digest);
    // A failed scan is retried; a verdict and the files are facts of the digest.
    if (known && known.verdict.result !== "Error") return known;
    const archive = await fetch();
    const verdict = await this.scanner.scan(archive);
    const files = await readChart(archive).catch((err: unknown) =>
      err instanceof Error ? err : new Error(String(err)),
    );
    const result = { verdict, files };
    this.inspected.set(digest, result);
    while (this.inspected.size > inspectedCacheSize) {
      const oldest = this.inspected.keys().next().value;
      if (oldest === undefined) break;
      this.inspected.delete(oldest);
    }
    return result;
  }

  constructor(
    private readonly manager: Manager,
    private readonly scanner: Scanner,
  ) {}

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const app = this.manager.informer<Application>(ApplicationResource).cache.get(req.key);
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
    const chartName = `chart ${app.spec.chart.name} ${app.spec.chart.version}`;
    let inspected: Inspected | undefined;
    try {
      const chart = await registryClient.resolveChart(app.spec.chart.name, app.spec.chart.version);
      const changed = status.chartDigest !== chart.digest;
      status.chartDigest = chart.digest;
      const rescan = this.scanner.mode !== "off" && status.scan?.result !== "Clean";
      // Same chart, same spec, already scanned clean: the last verdict stands.
      if (!changed && !rescan && status.observedGeneration === generation)
        return { requeueAfterMs: chartRecheckMs };
      inspected = await this.inspect(chart.digest, () => chart.fetch());
    } catch (err) {
      if (err instanceof RegistryError) {
        throw new ReconcileError(
          err.reason === "NotFound" ? "ChartNotFound" : `Registry${err.reason}`,
          err.message,
        );
      }
      throw err;
    } finally {
      await registryClient.close();
    }

    const infected = recordScan(status, inspected.verdict, this.scanner.mode, generation, chartName);
    if (infected) return stall("MalwareFound", infected);
    if (inspected.files instanceof Error)
      return stall("InvalidChart", `${chartName}: ${inspected.files.message}`);
    const problems = checkProfiles(
      app.spec.profiles ?? [],
      inspected.files.values,
      inspected.files.hasSchema,
    );
    if (problems.length > 0) return stall("InvalidProfile", problems.slice(0, 5).join("; "));

    status.conditions = removeCondition(status.conditions, "Stalled");
    Object.assign(
      status,
      summarize(status, generation, {
        kind: "ready",
        reason: "Resolved",
        message: `chart ${app.spec.chart.name} ${app.spec.chart.version} resolved in ${registryName} (${status.chartDigest ?? ""})${app.spec.draft ? "; a draft cannot be deployed until released" : ""}`,
      }),
    );
    return { requeueAfterMs: chartRecheckMs };
  }
}

export function registerApplications(manager: Manager, scanner: Scanner): void {
  manager
    .controller("application", { workers: 4 })
    .for(ApplicationResource)
    .watches(
      RegistryResource,
      (o) => {
        const ns = o.metadata.namespace ?? "";
        return manager
          .informer<Application>(ApplicationResource)
          .cache.byNamespace(ns)
          .filter((a) => a.spec.chart.registryRef.name === o.metadata.name)
          .map((a) => `${ns}/${a.metadata.name ?? ""}`);
        // Registry status is rewritten at every check; only a change that matters counts.
      },
      specOrReadinessChanged,
    )
    .complete(new ApplicationReconciler(manager, scanner));
}
