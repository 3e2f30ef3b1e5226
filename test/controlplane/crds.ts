// Installs CustomResourceDefinitions into a cluster and waits until they are served.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiextensionsV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
  loadAllYaml,
  type KubernetesObject,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";

const noop = (): void => undefined;

/**
 * Reads every CustomResourceDefinition from multi-document YAML files, as client-node
 * models: its serializer drops wire-format keys such as `x-kubernetes-int-or-string`
 * from plain objects, so they must go through its deserializer (loadAllYaml).
 */
export function readCRDs(paths: string[]): V1CustomResourceDefinition[] {
  const crds: V1CustomResourceDefinition[] = [];
  for (const path of paths) {
    let docs: unknown[];
    try {
      docs = loadAllYaml(readFileSync(path, "utf8"));
    } catch (err) {
      throw new Error(`${path}: ${err instanceof Error ? err.message : "invalid YAML"}`, { cause: err });
    }
    for (const obj of docs as (KubernetesObject | null)[]) {
      if (obj?.kind === "CustomResourceDefinition") crds.push(obj as V1CustomResourceDefinition);
    }
  }
  return crds;
}

export function kubeConfigFromFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/**
 * Applies CRDs (files, or objects) with server-side apply to the cluster whose admin
 * kubeconfig is given, then waits until each is Established. Returns the CRD names.
 */
export async function installCRDs(
  cluster: { kubeconfig: string },
  sources: (string | V1CustomResourceDefinition)[],
  timeoutMs = 30_000,
): Promise<string[]> {
  const kc = kubeConfigFromFile(cluster.kubeconfig);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const crds = sources.flatMap((s) => (typeof s === "string" ? readCRDs([s]) : [s]));
  if (crds.length === 0) throw new Error("no CustomResourceDefinition in the given sources");
  for (const crd of crds) {
    // Status is server-owned; apply only what a user would.
    const { status: _status, ...desired } = crd;
    await objects.patch(
      { ...desired, apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition" },
      undefined,
      undefined,
      "outpost-test",
      true,
      PatchStrategy.ServerSideApply,
    );
  }
  const names = crds.map((c) => c.metadata?.name ?? "");
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata?.name ?? "";
    for (;;) {
      const crd = await api.readCustomResourceDefinition({ name });
      const conditions = crd.status?.conditions ?? [];
      if (conditions.some((c) => c.type === "Established" && c.status === "True")) break;
      const rejected = conditions.find((c) => c.type === "NamesAccepted" && c.status === "False");
      if (rejected)
        throw new Error(`CRD ${name} was not accepted: ${rejected.message ?? rejected.reason ?? ""}`);
      if (Date.now() > deadline)
        throw new Error(`CRD ${name} was not Established after ${timeoutMs / 1000}s`);
      await sleep(50);
    }
    // Established precedes the watch cache: until it is ready, watches answer 429.
    const version = crd.spec.versions.find((v) => v.storage)?.name ?? "";
    const path = `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}`;
    for (;;) {
      try {
        const req = await new Watch(kc).watch(path, { timeoutSeconds: 1 }, noop, noop);
        req.abort();
        break;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`CRD ${name} serves no watch after ${timeoutMs / 1000}s`, { cause: err });
        await sleep(50);
      }
    }
  }
  return names;
}
