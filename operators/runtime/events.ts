// Kubernetes Events (events.k8s.io/v1) with deduplication: the same (object, type,
// reason, note) within `dedupWindowMs` updates the first event's series (count and last
// observed time) instead of creating another Event, as client-go's recorder does.
import { randomBytes } from "node:crypto";
import { apiVersionOf, type KubeClient, type KubeObject, type ResourceType } from "./client.ts";
import { trimMessage } from "./conditions.ts";

export const eventsResource: ResourceType = {
  group: "events.k8s.io",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
};

interface Series {
  name: string;
  namespace: string;
  count: number;
  first: number;
}

export interface EventRecorderOptions {
  /** `reportingController`, e.g. outpost.dev/catalog-operator. */
  controller: string;
  /** `reportingInstance`, e.g. the pod name. */
  instance: string;
  dedupWindowMs?: number;
  maxTracked?: number;
  /** Told about failed writes; events are best effort and never fail a reconcile. */
  onError?: (err: unknown) => void;
}

const microTime = (d: Date): string => d.toISOString().replace("Z", "000Z");

export class EventRecorder {
  private readonly series = new Map<string, Series>();

  constructor(
    private readonly client: KubeClient,
    private readonly options: EventRecorderOptions,
  ) {}

  /** Records an event about `obj` of kind `r`. Resolves when written (or failed silently). */
  async record(
    r: ResourceType,
    obj: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    note: string,
    action = reason,
  ): Promise<void> {
    const { uid, name, namespace, resourceVersion } = obj.metadata;
    const ns = namespace ?? "default";
    const message = trimMessage(note);
    const key = [uid, type, reason, message].join("\u0000");
    const now = Date.now();
    const window = this.options.dedupWindowMs ?? 10 * 60_000;
    try {
      const existing = this.series.get(key);
      if (existing && now - existing.first < window) {
        existing.count++;
        this.series.delete(key); // keep the map in LRU order
        this.series.set(key, existing);
        await this.client.mergePatch(eventsResource, existing.name, existing.namespace, {
          series: { count: existing.count, lastObservedTime: microTime(new Date(now)) },
        });
        return;
      }
      const eventName = `${name ?? "object"}.${now.toString(16)}${randomBytes(2).toString("hex")}`;
      await this.client.create(eventsResource, {
        metadata: { name: eventName, namespace: ns },
        eventTime: microTime(new Date(now)),
        reportingController: this.options.controller,
        reportingInstance: this.options.instance,
        action,
        reason,
        note: message,
        type,
        regarding: { apiVersion: apiVersionOf(r), kind: r.kind, name, namespace, uid, resourceVersion },
      } as KubeObject);
      this.series.set(key, { name: eventName, namespace: ns, count: 1, first: now });
      const max = this.options.maxTracked ?? 4096;
      while (this.series.size > max) {
        const oldest = this.series.keys().next().value;
        if (oldest === undefined) break;
        this.series.delete(oldest);
      }
    } catch (err) {
      this.options.onError?.(err);
    }
  }
}
