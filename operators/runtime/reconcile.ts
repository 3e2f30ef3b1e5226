// Helpers every reconciler uses: finalizers (with optimistic concurrency) and status
// writes through the status subresource, skipped when nothing changed.
import { isDeepStrictEqual } from "node:util";
import type { KubeClient, KubeObject, ResourceType } from "./client.ts";

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
 * Writes `status` through the status subresource unless it equals what the object has.
 * Returns whether a write happened.
 */
export async function patchStatus<S>(
  client: KubeClient,
  r: ResourceType,
  obj: KubeObject & { status?: S },
  status: S,
  fieldManager?: string,
): Promise<boolean> {
  if (isDeepStrictEqual(obj.status, status)) return false;
  // Status is ours alone: replace it whole (a merge patch with null would keep stale keys).
  await client.jsonPatch(
    r,
    obj.metadata.name ?? "",
    obj.metadata.namespace,
    [{ op: "add", path: "/status", value: status }],
    {
      subresource: "status",
      fieldManager,
    },
  );
  return true;
}
