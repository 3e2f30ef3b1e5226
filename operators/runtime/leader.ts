// Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection:
// - a candidate takes the lease when it is free or its holder stopped renewing for
//   leaseDuration, measured on our own clock from when we last saw the record change
//   (so clock skew between processes does not matter);
// - the leader renews every retryPeriod; if no renewal succeeds within renewDeadline it
//   has lost the lease and `onLost` is called at once — by a timer, so a call that hangs
//   cannot keep a deposed leader going. Every Lease call of the renew loop is bounded by
//   the time left to that deadline (client-go: the renew loop's context), and the
//   deadline counts from when the last successful attempt started (the renewTime it
//   wrote), so the leader stops before another candidate, which waits leaseDuration
//   from when it saw that renewTime, can take over;
// - `release` (graceful shutdown) empties holderIdentity so another candidate takes over
//   without waiting for the lease to expire.
import { setTimeout as sleep } from "node:timers/promises";
import { ApiError, apiVersionOf, type KubeClient, type KubeObject, type ResourceType } from "./client.ts";

export const leasesResource: ResourceType = {
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
};

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** How long a lease holds without renewal. Default 15 s. */
  leaseDurationMs?: number;
  /** The leader gives up if it could not renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Time between attempts. Default 2 s. */
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onLost: () => void;
  onError?: (err: unknown) => void;
}

const microTime = (ms: number): string => new Date(ms).toISOString().replace("Z", "000Z");

export class LeaderElector {
  private observed: { holder: string; renewTime: string; at: number } | undefined;
  private readonly stopController = new AbortController();
  /** Aborted when the renew deadline passes. */
  private readonly deposed = new AbortController();
  /** When the attempt that last took or kept the lease started. */
  private renewedAt = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private leading = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly options: LeaderElectionOptions,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  private isStopped(): boolean {
    return this.stopController.signal.aborted;
  }

  private get durationMs(): number {
    return this.options.leaseDurationMs ?? 15_000;
  }

  /** Campaigns, then renews, in the background until `stop`. */
  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const retry = this.options.retryPeriodMs ?? 2_000;
    const signal = this.stopController.signal;
    // Campaign. An attempt may take as long as a lease lasts: a candidate holds nothing.
    while (!signal.aborted && !this.leading) {
      const started = Date.now();
      if (await this.tryAcquireOrRenew(this.durationMs)) {
        this.leading = true;
        this.renewed(started);
        this.options.onStartedLeading();
        break;
      }
      await sleep(retry * (1 + Math.random() * 0.2), undefined, { signal }).catch(() => undefined);
    }
    // Renew, each attempt within the time left to the deadline.
    const renewing = AbortSignal.any([signal, this.deposed.signal]);
    const over = (): boolean => renewing.aborted || !this.leading;
    while (!over()) {
      await sleep(retry, undefined, { signal: renewing }).catch(() => undefined);
      if (over()) break;
      const started = Date.now();
      const left = this.renewedAt + this.deadlineMs - started;
      if (left > 0 && (await this.tryAcquireOrRenew(left))) this.renewed(started);
    }
    clearTimeout(this.watchdog);
  }

  private get deadlineMs(): number {
    return this.options.renewDeadlineMs ?? 10_000;
  }

  /** An attempt that started at `at` took or kept the lease: the deadline moves. */
  private renewed(at: number): void {
    this.renewedAt = at;
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(
      () => {
        this.depose();
      },
      Math.max(0, at + this.deadlineMs - Date.now()),
    );
  }

  /** The renew deadline passed: stop leading now, and cut the Lease call in flight. */
  private depose(): void {
    if (!this.leading || this.isStopped()) return;
    this.leading = false;
    this.deposed.abort();
    this.options.onLost();
  }

  /** A Lease call (GET, create or replace), aborted by `signal`. */
  private leaseCall<T>(method: "GET" | "POST" | "PUT", signal: AbortSignal, lease?: Lease): Promise<T> {
    const { namespace, name } = this.options;
    const path = this.client.path(leasesResource, namespace, method === "POST" ? undefined : name);
    const body = lease && { apiVersion: apiVersionOf(leasesResource), kind: leasesResource.kind, ...lease };
    return this.client.request<T>(method, path, { signal, ...(body ? { body } : {}) });
  }

  /**
   * One attempt to take or keep the lease, within `timeoutMs`; false on conflict, error,
   * timeout or a live other holder.
   */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const now = Date.now();
    const signal = AbortSignal.any([
      this.stopController.signal,
      this.deposed.signal,
      AbortSignal.timeout(Math.max(1, timeoutMs)),
    ]);
    try {
      const lease = await this.leaseCall<Lease>("GET", signal).catch((err: unknown) => {
        if (ApiError.isNotFound(err)) return undefined;
        throw err;
      });
      const spec = {
        holderIdentity: identity,
        leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
        renewTime: microTime(now),
      };
      if (!lease) {
        await this.leaseCall("POST", signal, {
          metadata: { name, namespace },
          spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 },
        });
        this.observe(identity, spec.renewTime, now);
        return true;
      }
      const holder = lease.spec?.holderIdentity ?? "";
      const renewTime = lease.spec?.renewTime ?? "";
      if (this.observed?.holder !== holder || this.observed.renewTime !== renewTime) {
        this.observe(holder, renewTime, now);
      }
      const observedAt = this.observed?.at ?? now;
      const heldByOther = holder !== "" && holder !== identity;
      if (heldByOther && observedAt + this.durationMs > now) return false;
      const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
      await this.leaseCall("PUT", signal, {
        metadata: { ...lease.metadata },
        spec: {
          ...spec,
          acquireTime: holder === identity ? lease.spec?.acquireTime : microTime(now),
          leaseTransitions: transitions,
        },
      });
      this.observe(identity, spec.renewTime, now);
      return true;
    } catch (err) {
      if (!ApiError.isConflict(err) && !this.deposed.signal.aborted && !this.isStopped()) {
        this.options.onError?.(err);
      }
      return false;
    }
  }

  private observe(holder: string, renewTime: string, at: number): void {
    this.observed = { holder, renewTime, at };
  }

  /** Stops campaigning or renewing; a leader releases the lease first. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    const wasLeading = this.leading;
    this.stopController.abort();
    clearTimeout(this.watchdog);
    await this.loop;
    this.leading = false;
    if (wasLeading && (options.release ?? true)) await this.release();
  }

  private async release(): Promise<void> {
    const { identity } = this.options;
    // Shutdown waits for this at most a renew deadline; the lease expires by itself anyway.
    const signal = AbortSignal.timeout(this.deadlineMs);
    try {
      const lease = await this.leaseCall<Lease>("GET", signal);
      if (lease.spec?.holderIdentity !== identity) return;
      await this.leaseCall("PUT", signal, {
        metadata: { ...lease.metadata },
        spec: {
          ...lease.spec,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          renewTime: microTime(Date.now()),
        },
      });
    } catch (err) {
      if (!ApiError.isNotFound(err) && !ApiError.isConflict(err)) this.options.onError?.(err);
    }
  }
}
