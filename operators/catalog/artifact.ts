// Artifact reconciler: reads the content from its ConfigMap or Secret, checks size and
// MIME type against the bytes, and scans it.
import type { Artifact } from "../api/artifact.generated.ts";
import { ArtifactResource } from "../api/resources.generated.ts";
import type { KubeObject } from "../runtime/client.ts";
import { summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { ReconcileError, withStatus } from "../runtime/reconcile.ts";
import { mimeMismatch } from "./mime.ts";
import { recordScan, type Scanner } from "./scanner.ts";
import { secretData } from "./secrets.ts";
import { configMapsResource } from "../runtime/core.ts";

export const minArtifactBytes = 4;
export const maxArtifactBytes = 4 * 1024 * 1024;
/** Secrets cannot be watched cluster-wide (least privilege): look at them again this often. */
const secretRecheckMs = 10 * 60_000;

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

export class ArtifactReconciler {
  constructor(
    private readonly manager: Manager,
    private readonly scanner: Scanner,
  ) {}

  private async content(artifact: Artifact): Promise<Buffer> {
    const ns = artifact.metadata.namespace ?? "";
    const { configMapKeyRef: cm, secretKeyRef: secret } = artifact.spec.source;
    if (cm) {
      const map = this.manager.informer<ConfigMap>(configMapsResource).cache.get(`${ns}/${cm.name}`);
      if (!map)
        throw new ReconcileError(
          "SourceNotFound",
          `ConfigMap ${ns}/${cm.name} (spec.source.configMapKeyRef) does not exist`,
        );
      if (map.binaryData?.[cm.key] !== undefined) return Buffer.from(map.binaryData[cm.key] ?? "", "base64");
      if (map.data?.[cm.key] !== undefined) return Buffer.from(map.data[cm.key] ?? "", "utf8");
      throw new ReconcileError(
        "SourceNotFound",
        `ConfigMap ${ns}/${cm.name} has no key ${cm.key} in data or binaryData`,
      );
    }
    if (secret) {
      const data = await secretData(this.manager.client, ns, secret.name, "artifact content");
      const value = data[secret.key];
      if (value === undefined)
        throw new ReconcileError("SourceNotFound", `Secret ${ns}/${secret.name} has no key ${secret.key}`);
      return Buffer.from(value, "utf8");
    }
    throw new ReconcileError("InvalidSpec", "spec.source needs configMapKeyRef or secretKeyRef");
  }

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const artifact = this.manager.informer<Artifact>(ArtifactResource).cache.get(req.key);
    if (!artifact || artifact.metadata.deletionTimestamp) return undefined;
    const recheck = artifact.spec.source.secretKeyRef ? { requeueAfterMs: secretRecheckMs } : undefined;
    return withStatus(client, ArtifactResource, artifact, fieldManager, async (status) => {
      const generation = artifact.metadata.generation;
      status.lastHandledReconcileAt = artifact.metadata.annotations?.[requestedAtAnnotation];
      const stall = (reason: string, message: string): Result | undefined => {
        Object.assign(status, summarize(status, generation, { kind: "stalled", reason, message }));
        return recheck;
      };
      const bytes = await this.content(artifact);
      status.size = bytes.length;
      if (bytes.length < minArtifactBytes || bytes.length > maxArtifactBytes) {
        return stall(
          "InvalidSize",
          `the content has ${bytes.length} bytes; an artifact holds ${minArtifactBytes} bytes to 4 MiB`,
        );
      }
      const mismatch = mimeMismatch(artifact.spec.mimeType, bytes);
      if (mismatch)
        return stall("MimeTypeMismatch", `spec.mimeType is ${artifact.spec.mimeType}, but ${mismatch}`);
      const verdict = await this.scanner.scan(bytes);
      status.digest = verdict.digest;
      const infected = recordScan(status, verdict, this.scanner.mode, generation, "the content");
      if (infected) return stall("MalwareFound", infected);
      Object.assign(
        status,
        summarize(status, generation, {
          kind: "ready",
          reason: "Checked",
          message: `${bytes.length} bytes of ${artifact.spec.mimeType}`,
        }),
      );
      return recheck;
    }).catch((err: unknown) => {
      if (err instanceof ReconcileError) return { requeueAfterMs: 60_000 };
      throw err;
    });
  }
}

export function registerArtifacts(manager: Manager, scanner: Scanner): void {
  manager
    .controller("artifact", { workers: 2 })
    .for(ArtifactResource)
    .watches(configMapsResource, (o) => {
      const ns = o.metadata.namespace ?? "";
      return manager
        .informer<Artifact>(ArtifactResource)
        .cache.byNamespace(ns)
        .filter((a) => a.spec.source.configMapKeyRef?.name === o.metadata.name)
        .map((a) => `${ns}/${a.metadata.name ?? ""}`);
    })
    .complete(new ArtifactReconciler(manager, scanner));
}
