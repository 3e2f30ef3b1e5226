// A rate-limited work queue with client-go semantics (util/workqueue):
// - a key waiting in the queue is held once, however often it is added (dedup);
// - a key is never handed to two workers at once;
// - a key added while it is processed is handed out again after `done`;
// - `addRateLimited` delays a key by its own exponential backoff (with jitter) and by an
//   overall token bucket; `forget` resets the key's backoff;
// - `addAfter` schedules a key (the earliest of several schedules wins).

export interface RateLimiterOptions {
  /** First per-key retry delay. Default 5 ms (client-go). */
  baseDelayMs?: number;
  /** Largest per-key retry delay. Default 1000 s (client-go). */
  maxDelayMs?: number;
  /** Overall retries per second. Default 10 (client-go). */
  qps?: number;
  /** Overall burst. Default 100 (client-go). */
  burst?: number;
  /** Fraction of random extra delay added to each backoff, 0…1. Default 0.1. */
  jitter?: number;
  random?: () => number;
}

/** Per-key exponential backoff combined with an overall token bucket: the larger delay wins. */
export class RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly base: number;
  private readonly max: number;
  private readonly qps: number;
  private readonly burst: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private tokens: number;
  private last: number;

  constructor(
    options: RateLimiterOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.base = options.baseDelayMs ?? 5;
    this.max = options.maxDelayMs ?? 1_000_000;
    this.qps = options.qps ?? 10;
    this.burst = options.burst ?? 100;
    this.jitter = options.jitter ?? 0.1;
    this.random = options.random ?? Math.random;
    this.tokens = this.burst;
    this.last = now();
  }

  /** The delay before `key` may be retried; each call counts as one more failure. */
  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const exp = Math.min(this.max, this.base * 2 ** n);
    const perKey = Math.min(this.max, exp * (1 + this.jitter * this.random()));
    return Math.max(perKey, this.reserve());
  }

  /** Takes a token from the bucket and returns how long to wait for it. */
  private reserve(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.qps;
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

export interface QueueMetrics {
  /** Called with the queue depth whenever it changes. */
  depth?(depth: number): void;
  /** Seconds a key waited in the queue before a worker took it. */
  latency?(seconds: number): void;
  retry?(): void;
}

export interface WorkQueueOptions extends RateLimiterOptions {
  metrics?: QueueMetrics;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly idle: (() => void)[] = [];
  private readonly limiter: RateLimiter;
  private readonly metrics: QueueMetrics;
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.limiter = new RateLimiter(options);
    this.metrics = options.metrics ?? {};
  }

  get length(): number {
    return this.queue.length;
  }

  get processingCount(): number {
    return this.processing.size;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (!this.addedAt.has(key)) this.addedAt.set(key, performance.now());
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.hand(key, waiter);
      return;
    }
    this.queue.push(key);
    this.metrics.depth?.(this.queue.length);
  }

  /** Adds `key` after `delayMs`; an earlier pending schedule of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  addRateLimited(key: string): void {
    this.metrics.retry?.();
    this.addAfter(key, this.limiter.when(key));
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  retries(key: string): number {
    return this.limiter.retries(key);
  }

  /** The next key to process, or undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.metrics.depth?.(this.queue.length);
      return new Promise((resolve) => {
        this.hand(key, resolve);
      });
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private hand(key: string, to: (key: string) => void): void {
    this.dirty.delete(key);
    this.processing.add(key);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.metrics.latency?.((performance.now() - added) / 1000);
    to(key);
  }

  /** Marks `key` processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) {
      const waiter = this.waiters.shift();
      if (waiter) this.hand(key, waiter);
      else {
        this.queue.push(key);
        this.metrics.depth?.(this.queue.length);
      }
    }
    if (this.processing.size === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Stops handing out keys; waiting workers get undefined. Resolves when in-flight keys are done. */
  async shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
    if (this.processing.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }
}
