// Helpers every reconciler uses: finalizers (with optimistic concurrency) and status
// writes through the status subresource, skipped when nothing changed.
import { isDeepStrictEqual } from "node:util";
import { ApiError, type KubeClient, type KubeObject, type ResourceType } from "./client.ts";
import { summarize, type ConditionedStatus } from "./conditions.ts";

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata.finalizers?.includes(finalizer) ?? false;
}

/** Adds `finalizer`; fails with 409 if the object changed since it was read. */
export async function addFinalizer<T extends KubeObject>(
  client: KubeClient,
  r: ResourceType,
  obj: T,
  finalizer: string,
): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  return client.mergePatch<T>(r, obj.metadata.name ?? "", obj.metadata.namespace, {
    metadata: {
      finalizers: [...(obj.metadata.finalizers ?? []), finalizer],
      resourceVersion: obj.metadata.resourceVersion,
    },
  });
}

/** Removes `finalizer`; fails with 409 if the object changed since it was read. */
export async function removeFinalizer<T extends KubeObject>(
  client: KubeClient,
  r: ResourceType,
  obj: T,
  finalizer: string,
): Promise<T> {
  if (!hasFinalizer(obj, finalizer)) return obj;
  return client.mergePatch<T>(r, obj.metadata.name ?? "", obj.metadata.namespace, {
    metadata: {
      finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer),
      resourceVersion: obj.metadata.resourceVersion,
    },
  });
}

/**
 * Writes `status` through the status subresource unless it equals what the object has,
 * on the condition that the object is still the one read (its resourceVersion): a status
 * computed from a stale copy (a lagging informer cache, another writer in between) fails
 * with 409 Conflict instead of overwriting newer status, and the controller reconciles
 * again from the newer object (`obj` is not changed: it may be an informer's). Returns
 * whether a write happened.
 */
export async function patchStatus<S>(
  client: KubeClient,
  r: ResourceType,
  obj: KubeObject & { status?: S },
  status: S,
  fieldManager?: string,
): Promise<boolean> {
  if (isDeepStrictEqual(obj.status, status)) return false;
  const version = obj.metadata.resourceVersion;
  // Status is ours alone: replace it whole (a merge patch with null would keep stale keys).
  // The object's resourceVersion set in the patch is the update's precondition.
  await client.jsonPatch(
    r,
    obj.metadata.name ?? "",
    obj.metadata.namespace,
    [
      ...(version ? [{ op: "replace" as const, path: "/metadata/resourceVersion", value: version }] : []),
      { op: "add", path: "/status", value: status },
    ],
    {
      subresource: "status",
      fieldManager,
    },
  );
  return true;
}

/** A failure whose CamelCase reason belongs in the Ready condition. */
export class ReconcileError extends Error {
  override name = "ReconcileError";
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Runs `work` on a draft of the object's status, then writes the draft through the
 * status subresource on every path, errors included — the deferred step of a Flux
 * reconciler. A failure is recorded as Ready=False (reason from a ReconcileError) and
 * rethrown after the write, so the work queue retries it with backoff.
 */
export async function withStatus<S extends ConditionedStatus, R>(
  client: KubeClient,
  r: ResourceType,
  obj: KubeObject & { status?: S },
  fieldManager: string,
  work: (status: S) => Promise<R>,
): Promise<R> {
  const status = structuredClone(obj.status ?? {}) as S;
  let result: R | undefined;
  let failure: Error | undefined;
  try {
    result = await work(status);
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    const reason = failure instanceof ReconcileError ? failure.reason : "ReconcileFailed";
    Object.assign(
      status,
      summarize(status, obj.metadata.generation, { kind: "failed", reason, message: failure.message }),
    );
  }
  try {
    await patchStatus(client, r, obj, status, fieldManager);
  } catch (err) {
    if (!ApiError.isNotFound(err)) throw err;
  }
  if (failure) throw failure;
  return result as R;
}
