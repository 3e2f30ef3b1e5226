// `kubectl outpost reconcile KIND/NAME`: asks the operator to reconcile now (the
// outpost.dev/requestedAt annotation) and waits until it has (status.lastHandledReconcileAt).
import * as resources from "../operators/api/resources.generated.ts";
import { requestedAtAnnotation } from "../operators/runtime/controller.ts";
import type { KubeClient, KubeObject, ResourceType } from "../operators/runtime/client.ts";
import { CatalogError } from "../operators/catalog/format.ts";

const kinds: ResourceType[] = Object.values(resources);

/** A kind by its kind name, plural, singular or short name (case-insensitive). */
export function resolveKind(text: string): ResourceType {
  const t = text.toLowerCase();
  const found = kinds.find(
    (r) => r.kind.toLowerCase() === t || r.plural === t || `${r.plural}.${r.group}` === t,
  );
  if (!found) {
    throw new CatalogError(
      `unknown kind "${text}"; use one of ${kinds.map((k) => k.kind.toLowerCase()).join(", ")}`,
    );
  }
  return found;
}

export async function reconcileNow(
  client: KubeClient,
  ref: string,
  namespace: string,
  options: { timeoutMs?: number; progress?: (line: string) => void } = {},
): Promise<{ ready?: string }> {
  const [kindText, name] = ref.split("/");
  if (!kindText || !name) throw new CatalogError(`expected KIND/NAME, such as registry/charts, not "${ref}"`);
  const r = resolveKind(kindText);
  const ns = r.namespaced ? namespace : undefined;
  const stamp = new Date().toISOString();
  try {
    await client.mergePatch(r, name, ns, { metadata: { annotations: { [requestedAtAnnotation]: stamp } } });
  } catch (err) {
    throw new CatalogError(`${r.kind} ${name}${ns ? ` in namespace ${ns}` : ""}: ${(err as Error).message}`);
  }
  options.progress?.(`asked for a reconcile of ${r.kind.toLowerCase()}/${name} at ${stamp}`);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const obj = await client.get<
      KubeObject & {
        status?: {
          lastHandledReconcileAt?: string;
          conditions?: { type: string; status: string; message: string }[];
        };
      }
    >(r, name, ns);
    if (obj?.status?.lastHandledReconcileAt === stamp) {
      const ready = obj.status.conditions?.find((c) => c.type === "Ready");
      return { ready: ready ? `Ready=${ready.status}: ${ready.message}` : undefined };
    }
    if (Date.now() > deadline)
      throw new CatalogError(
        `${r.kind} ${name} was not reconciled within ${(options.timeoutMs ?? 60_000) / 1000}s; is its operator running?`,
      );
    await new Promise((res) => setTimeout(res, 500));
  }
}
