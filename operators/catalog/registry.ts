// Registry reconciler: checks that a registry is reachable with its credentials, on every
// spec change and then every checkInterval; counts the applications using it, and keeps
// it from being deleted while any does.
import type { Application } from "../api/application.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import { ApplicationResource, RegistryResource } from "../api/resources.generated.ts";
import { summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { addFinalizer, removeFinalizer, withStatus, ReconcileError } from "../runtime/reconcile.ts";
import { parseDuration } from "../options.ts";
import { RegistryClient, RegistryError } from "./registry-client.ts";
import { registryAccess } from "./secrets.ts";

export const registryFinalizer = "catalog.outpost.dev/registry-in-use";
const retryMs = 60_000;

/** Applications in `namespace` whose chart or images come from registry `name`. */
export function applicationsUsing(apps: Application[], namespace: string, name: string): string[] {
  return apps
    .filter(
      (a) =>
        a.metadata.namespace === namespace &&
        (a.spec.chart.registryRef.name === name || a.spec.imageRegistryRef?.name === name),
    )
    .map((a) => a.metadata.name ?? "")
    .sort();
}

export class RegistryReconciler {
  constructor(private readonly manager: Manager) {}

  private users(registry: Registry): string[] {
    const apps = this.manager.informer<Application>(ApplicationResource).cache.list();
    return applicationsUsing(apps, registry.metadata.namespace ?? "", registry.metadata.name ?? "");
  }

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const registry = this.manager.informer<Registry>(RegistryResource).cache.get(req.key);
    if (!registry) return undefined;

    if (registry.metadata.deletionTimestamp) {
      const users = this.users(registry);
      if (users.length > 0) {
        return withStatus(client, RegistryResource, registry, fieldManager, (status) => {
          const message = `still used by ${users.slice(0, 10).join(", ")}${users.length > 10 ? ` and ${users.length - 10} more` : ""}; delete those applications first`;
          Object.assign(
            status,
            summarize(status, registry.metadata.generation, { kind: "failed", reason: "InUse", message }),
          );
          return Promise.resolve({ requeueAfterMs: 30_000 });
        });
      }
      await removeFinalizer(client, RegistryResource, registry, registryFinalizer);
      return undefined;
    }
    const current = await addFinalizer(client, RegistryResource, registry, registryFinalizer);

    return withStatus(client, RegistryResource, current, fieldManager, async (status) => {
      status.applications = this.users(current).length;
      const interval = parseDuration(current.spec.checkInterval ?? "10m", "checkInterval");
      const generation = current.metadata.generation;
      // Application events only recount; the registry is checked on a spec change, a
      // requestedAt annotation, or when the check interval has passed.
      const requestedAt = current.metadata.annotations?.[requestedAtAnnotation];
      const since = status.lastCheckTime ? Date.now() - Date.parse(status.lastCheckTime) : Infinity;
      if (
        status.observedGeneration === generation &&
        requestedAt === status.lastHandledReconcileAt &&
        since < interval - 1000
      ) {
        return { requeueAfterMs: interval - since };
      }
      status.lastHandledReconcileAt = requestedAt;
      const access = await registryAccess(client, current);
      const registryClient = new RegistryClient(access);
      try {
        await registryClient.check();
        Object.assign(
          status,
          summarize(status, generation, {
            kind: "ready",
            reason: "Reachable",
            message: `${current.spec.url} is reachable`,
          }),
        );
        return { requeueAfterMs: interval };
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        // Reported and checked again later; not an error for the work queue's backoff.
        Object.assign(
          status,
          summarize(status, generation, { kind: "failed", reason: err.reason, message: err.message }),
        );
        return { requeueAfterMs: Math.min(interval, retryMs) };
      } finally {
        status.lastCheckTime = new Date().toISOString().replace(/\.\d+Z$/, "Z");
        await registryClient.close();
      }
    }).catch((err: unknown) => {
      // A missing Secret is the user's to fix: the status says so; check again in a minute.
      if (err instanceof ReconcileError) return { requeueAfterMs: retryMs };
      throw err;
    });
  }
}

export function registerRegistries(manager: Manager): void {
  manager
    .controller("registry", { workers: 4 })
    .for(RegistryResource)
    .watches(ApplicationResource, (o) => {
      const app = o as Application;
      const ns = app.metadata.namespace ?? "";
      return [app.spec.chart.registryRef.name, app.spec.imageRegistryRef?.name]
        .filter((n): n is string => Boolean(n))
        .map((n) => `${ns}/${n}`);
    })
    .complete(new RegistryReconciler(manager));
}
