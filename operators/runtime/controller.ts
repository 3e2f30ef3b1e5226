// A controller: informers feed keys into a work queue; a bounded number of workers hand
// each key to the reconciler. Built with `for` (the reconciled kind), `owns` (children:
// their events enqueue the controlling owner) and `watches` (any kind, mapped to keys).
import type { Logger } from "pino";
import { ApiError, keyOf, splitKey, type KubeObject, type ResourceType } from "./client.ts";
import { Informer } from "./informer.ts";
import type { RuntimeMetrics } from "./metrics.ts";
import { WorkQueue, type RateLimiterOptions } from "./workqueue.ts";

/** Annotation a user (or `kubectl outpost reconcile`) sets to ask for a reconcile now. */
export const requestedAtAnnotation = "outpost.dev/requestedAt";

export interface Request {
  key: string;
  namespace?: string;
  name: string;
}

export interface Result {
  /** Reconcile again after this long (periodic checks), without counting as a failure. */
  requeueAfterMs?: number;
}

export interface Reconciler {
  reconcile(request: Request): Promise<Result | undefined>;
}

/** Whether an update of the reconciled kind should trigger a reconcile. */
export type UpdatePredicate<T> = (obj: T, old: T) => boolean;

/**
 * Reconcile on spec changes (generation), on a new requestedAt annotation and when
 * deletion starts — not on our own status writes.
 */
export function generationOrRequestChanged(obj: KubeObject, old: KubeObject): boolean {
  if (obj === old) return true; // periodic resync
  return (
    obj.metadata.generation !== old.metadata.generation ||
    obj.metadata.annotations?.[requestedAtAnnotation] !== old.metadata.annotations?.[requestedAtAnnotation] ||
    obj.metadata.deletionTimestamp !== old.metadata.deletionTimestamp
  );
}

/** An update that changed the spec (generation) or the Ready condition's status. */
export function specOrReadinessChanged(obj: KubeObject, old: KubeObject): boolean {
  const ready = (o: KubeObject): string | undefined =>
    (o as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions?.find(
      (c) => c.type === "Ready",
    )?.status;
  return obj === old || obj.metadata.generation !== old.metadata.generation || ready(obj) !== ready(old);
}

export interface ControllerOptions extends RateLimiterOptions {
  /** Workers, i.e. keys reconciled at once. Default 2. */
  workers?: number;
}

interface Source {
  informer: Informer<KubeObject>;
}

export class Controller {
  readonly queue: WorkQueue;
  private readonly sources: Source[] = [];
  private workers: Promise<void>[] = [];
  private reconciler: Reconciler | undefined;
  private forResource: ResourceType | undefined;

  constructor(
    readonly name: string,
    private readonly options: ControllerOptions,
    private readonly informerFor: (r: ResourceType) => Informer<KubeObject>,
    private readonly logger: Logger,
    private readonly metrics: RuntimeMetrics,
  ) {
    metrics.queueDepth.set({ controller: name }, 0);
    this.queue = new WorkQueue({
      ...options,
      metrics: {
        depth: (d) => {
          metrics.queueDepth.set({ controller: name }, d);
        },
        latency: (s) => {
          metrics.queueLatency.observe({ controller: name }, s);
        },
        retry: () => {
          metrics.queueRetries.inc({ controller: name });
        },
      },
    });
  }

  /** The kind this controller reconciles; its keys are `namespace/name`. */
  for(r: ResourceType, predicate: UpdatePredicate<KubeObject> = generationOrRequestChanged): this {
    this.forResource = r;
    const informer = this.informerFor(r);
    informer.addHandler({
      add: (o) => {
        this.queue.add(keyOf(o));
      },
      update: (o, old) => {
        if (predicate(o, old)) this.queue.add(keyOf(o));
      },
      delete: (o) => {
        this.queue.add(keyOf(o));
      },
    });
    this.sources.push({ informer });
    return this;
  }

  /** Children of kind `r`: any change enqueues the owner that controls them. */
  owns(r: ResourceType): this {
    const owner = this.forResource;
    if (!owner) throw new Error(`${this.name}: call for() before owns()`);
    const apiGroup = owner.group;
    return this.watches(r, (child) =>
      (child.metadata.ownerReferences ?? [])
        .filter(
          (ref) =>
            ref.controller && ref.kind === owner.kind && ref.apiVersion.split("/")[0] === (apiGroup || "v1"),
        )
        .map((ref) =>
          owner.namespaced && child.metadata.namespace ? `${child.metadata.namespace}/${ref.name}` : ref.name,
        ),
    );
  }

  /**
   * Any kind (or an informer the caller narrowed to a namespace or labels): `map` turns
   * an object into the keys to reconcile. `update` filters updates (default: every update
   * counts).
   */
  watches(
    source: ResourceType | Informer<KubeObject>,
    map: (obj: KubeObject) => string[],
    update?: UpdatePredicate<KubeObject>,
  ): this {
    const informer = source instanceof Informer ? source : this.informerFor(source);
    const enqueue = (o: KubeObject): void => {
      for (const key of map(o)) this.queue.add(key);
    };
    informer.addHandler({
      add: enqueue,
      update: (o, old) => {
        if (!update || update(o, old)) enqueue(o);
      },
      delete: enqueue,
    });
    this.sources.push({ informer });
    return this;
  }

  complete(reconciler: Reconciler): this {
    this.reconciler = reconciler;
    return this;
  }

  /** Waits for every informer's first list, then starts the workers. */
  async start(): Promise<void> {
    const reconciler = this.reconciler;
    if (!reconciler) throw new Error(`${this.name}: complete() was not called`);
    // Optional informers (kinds that may not be installed) start, but are not waited for.
    const required: Promise<void>[] = [];
    for (const s of this.sources) {
      if (s.informer.optional) void s.informer.start();
      else required.push(s.informer.start());
    }
    await Promise.all(required);
    const workers = this.options.workers ?? 2;
    this.workers = Array.from({ length: workers }, () => this.work(reconciler));
    this.logger.info({ workers }, "controller started");
  }

  private async work(reconciler: Reconciler): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const { namespace, name } = splitKey(key);
      const stopTimer = this.metrics.reconcileDuration.startTimer({ controller: this.name });
      let result = "success";
      try {
        const res = await reconciler.reconcile({ key, namespace, name });
        this.queue.forget(key);
        if (res?.requeueAfterMs !== undefined) {
          result = "requeue";
          this.queue.addAfter(key, res.requeueAfterMs);
        }
      } catch (err) {
        if (ApiError.isConflict(err)) {
          // Written from a copy that was no longer current (a lagging cache, another
          // writer): nothing was overwritten; reconcile again from the newer object.
          result = "conflict";
          this.logger.debug({ object: key, err }, "conflict; reconciling again");
        } else {
          result = "error";
          this.metrics.reconcileErrors.inc({ controller: this.name });
          this.logger.error({ object: key, retries: this.queue.retries(key), err }, "reconcile failed");
        }
        this.queue.addRateLimited(key);
      } finally {
        const seconds = stopTimer();
        this.logger.debug({ object: key, result, seconds }, "reconciled");
        this.metrics.reconcileTotal.inc({ controller: this.name, result });
        this.queue.done(key);
      }
    }
  }

  /** Stops handing out keys and waits for reconciles in flight (graceful shutdown). */
  async stop(): Promise<void> {
    await this.queue.shutDown();
    await Promise.all(this.workers);
  }

  /** Stops handing out keys at once (the lease is lost); reconciles in flight finish alone. */
  abort(): void {
    void this.queue.shutDown();
  }
}
