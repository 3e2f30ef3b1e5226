// Informer supervisor: list + watch of one kind into a Cache, kept alive whatever happens.
// - lists in pages, then watches from the list's resourceVersion with bookmarks;
// - a watch that ends normally is resumed from the last resourceVersion seen;
// - any error restarts the watch after an exponential backoff with jitter;
// - 410 Gone (the resourceVersion was compacted away) relists at once, and the relist
//   is diffed against the cache so that missed adds, updates and deletes are delivered;
// - a watchdog relists when a watch went silent (no event and no bookmark);
// - an optional periodic resync re-delivers every cached object as an update.
import { setTimeout as sleep } from "node:timers/promises";
import { Cache } from "./cache.ts";
import {
  ApiError,
  keyOf,
  type KubeClient,
  type KubeObject,
  type ResourceType,
  type WatchEvent,
} from "./client.ts";

export interface EventHandler<T> {
  add?(obj: T): void;
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions<T> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size of lists. Default 500. */
  pageSize?: number;
  /** Relist when a watch delivered nothing (not even a bookmark) for this long. Default 180 s. */
  watchdogMs?: number;
  /** Re-deliver every cached object as an update this often. Default: never. */
  resyncMs?: number;
  /** Watch restart backoff. Defaults 250 ms doubling to 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Applied to each object before it is cached. Default: drop managedFields. */
  transform?: (obj: T) => T;
  /** A kind that may not be installed: nobody waits for its first list (Manager.informer). */
  optional?: boolean;
  /** Told about each watch restart and its reason (metrics, logs). */
  onRestart?: (reason: "error" | "gone" | "watchdog", err?: unknown) => void;
}

const stripManagedFields = <T extends KubeObject>(obj: T): T => {
  if (obj.metadata.managedFields) delete obj.metadata.managedFields;
  return obj;
};

export class Informer<T extends KubeObject> {
  readonly cache = new Cache<T>();
  readonly resource: ResourceType;
  private readonly handlers: EventHandler<T>[] = [];
  private readonly controller = new AbortController();
  private resourceVersion: string | undefined;
  private syncedResolve!: () => void;
  private running: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private currentWatch: AbortController | undefined;
  private restartFrom: string | undefined;
  /** Resolves after the first complete list. */
  readonly synced: Promise<void>;
  /** Resolves after the first complete list, or once the kind is known not to be served. */
  readonly settled: Promise<void>;
  private settledResolve!: () => void;
  hasSynced = false;
  restarts = 0;
  /** The last list found the kind not served (404): its CRD is not installed. */
  notServed = false;
  readonly optional: boolean;

  constructor(
    private readonly client: KubeClient,
    resource: ResourceType,
    private readonly options: InformerOptions<T> = {},
  ) {
    this.resource = resource;
    this.optional = options.optional ?? false;
    this.synced = new Promise((resolve) => (this.syncedResolve = resolve));
    this.settled = new Promise((resolve) => (this.settledResolve = resolve));
    void this.synced.then(() => {
      this.settledResolve();
    });
  }

  addHandler(handler: EventHandler<T>): void {
    this.handlers.push(handler);
    if (this.hasSynced) for (const obj of this.cache.list()) handler.add?.(obj);
  }

  /** Starts the list/watch loop; resolves once the cache holds a complete list. */
  async start(): Promise<void> {
    this.running ??= this.loop();
    if (this.options.resyncMs) {
      this.resyncTimer = setInterval(() => {
        for (const obj of this.cache.list()) this.emit("update", obj, obj);
      }, this.options.resyncMs);
      this.resyncTimer.unref();
    }
    await Promise.race([this.synced, this.running]);
  }

  async stop(): Promise<void> {
    this.controller.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.running;
  }

  private isStopped(): boolean {
    return this.controller.signal.aborted;
  }

  private async loop(): Promise<void> {
    const initial = this.options.backoff?.initialMs ?? 250;
    const max = this.options.backoff?.maxMs ?? 30_000;
    let delay = initial;
    while (!this.isStopped()) {
      try {
        if (this.resourceVersion === undefined) await this.relist();
        await this.watchOnce();
        delay = initial; // a watch the server ended normally is healthy
      } catch (err) {
        if (this.isStopped()) break;
        this.restarts++;
        if (this.restartFrom !== undefined) {
          this.resourceVersion = this.restartFrom;
          this.restartFrom = undefined;
          continue;
        }
        this.notServed = ApiError.isNotFound(err) && this.resourceVersion === undefined;
        if (this.notServed) this.settledResolve();
        if (ApiError.isGone(err)) {
          this.options.onRestart?.("gone", err);
          this.resourceVersion = undefined;
          continue;
        }
        if (isTimeout(err)) {
          // A silent watch may have lost events on the way (a half-open connection, a
          // proxy): list again rather than trust the resourceVersion.
          this.options.onRestart?.("watchdog", err);
          this.resourceVersion = undefined;
          continue;
        }
        this.options.onRestart?.("error", err);
        await sleep(delay * (1 + Math.random() * 0.2), undefined, { signal: this.controller.signal }).catch(
          () => undefined,
        );
        delay = Math.min(max, delay * 2);
      }
    }
  }

  /** Lists every page and reconciles the cache with it, delivering the differences. */
  private async relist(): Promise<void> {
    const seen = new Set<string>();
    let continueToken: string | undefined;
    let listVersion: string | undefined;
    do {
      const page = await this.client.list<T>(this.resource, {
        namespace: this.options.namespace,
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
        limit: this.options.pageSize ?? 500,
        continue: continueToken,
      });
      for (const raw of page.items) {
        const obj = this.prepare(raw);
        const key = keyOf(obj);
        seen.add(key);
        const old = this.cache.upsert(obj);
        if (!old) this.emit("add", obj);
        else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit("update", obj, old);
      }
      continueToken = page.metadata.continue === "" ? undefined : page.metadata.continue;
      listVersion = page.metadata.resourceVersion;
    } while (continueToken && !this.isStopped());
    for (const key of this.cache.keys()) {
      if (seen.has(key)) continue;
      const old = this.cache.remove(key);
      if (old) this.emit("delete", old);
    }
    this.resourceVersion = listVersion;
    this.notServed = false;
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.syncedResolve();
    }
  }

  private async watchOnce(): Promise<void> {
    this.currentWatch = new AbortController();
    const signal = AbortSignal.any([this.controller.signal, this.currentWatch.signal]);
    await this.client.watch<T>(
      this.resource,
      {
        namespace: this.options.namespace,
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
        resourceVersion: this.resourceVersion,
        // Spread reconnects of many informers over time, as client-go does.
        timeoutSeconds: Math.floor(300 + Math.random() * 300),
        signal,
      },
      (event) => {
        this.onEvent(event);
      },
      this.options.watchdogMs ?? 180_000,
    );
  }

  private onEvent(event: WatchEvent<T>): void {
    const rv = event.object.metadata.resourceVersion;
    if (event.type === "BOOKMARK") {
      this.resourceVersion = rv;
      return;
    }
    const obj = this.prepare(event.object);
    if (event.type === "DELETED") {
      const old = this.cache.remove(keyOf(obj));
      this.emit("delete", old ?? obj);
    } else {
      const old = this.cache.upsert(obj);
      if (old) this.emit("update", obj, old);
      else this.emit("add", obj);
    }
    this.resourceVersion = rv;
  }

  private prepare(obj: T): T {
    obj.apiVersion ??= this.resource.group
      ? `${this.resource.group}/${this.resource.version}`
      : this.resource.version;
    obj.kind ??= this.resource.kind;
    return (this.options.transform ?? stripManagedFields)(obj);
  }

  private emit(type: "add" | "update" | "delete", obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        if (type === "add") h.add?.(obj);
        else if (type === "update") h.update?.(obj, old ?? obj);
        else h.delete?.(obj);
      } catch {
        // A handler must not break the informer; handlers only enqueue keys.
      }
    }
  }

  /** Ends the current watch and starts the next one from `rv` (tests use a compacted one). */
  resumeFrom(rv: string): void {
    this.restartFrom = rv;
    this.currentWatch?.abort();
  }
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === "UND_ERR_BODY_TIMEOUT" || code === "UND_ERR_HEADERS_TIMEOUT";
}
