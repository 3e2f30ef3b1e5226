// Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection:
// - a candidate takes the lease when it is free or its holder stopped renewing for
//   leaseDuration, measured on our own clock from when we last saw the record change
//   (so clock skew between processes does not matter);
// - the leader renews every retryPeriod; if no renewal succeeds within renewDeadline it
//   has lost the lease and `onLost` is called at once;
// - `release` (graceful shutdown) empties holderIdentity so another candidate takes over
//   without waiting for the lease to expire.
import { setTimeout as sleep } from "node:timers/promises";
import { ApiError, type KubeClient, type KubeObject, type ResourceType } from "./client.ts";

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
    const deadline = this.options.renewDeadlineMs ?? 10_000;
    const signal = this.stopController.signal;
    // Campaign.
    while (!signal.aborted && !this.leading) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.options.onStartedLeading();
        break;
      }
      await sleep(retry * (1 + Math.random() * 0.2), undefined, { signal }).catch(() => undefined);
    }
    // Renew.
    let lastRenew = Date.now();
    while (!signal.aborted && this.leading) {
      await sleep(retry, undefined, { signal }).catch(() => undefined);
      if (this.isStopped()) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > deadline) {
        this.leading = false;
        this.options.onLost();
      }
    }
  }

  /** One attempt to take or keep the lease; false on conflict, error or a live other holder. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const now = Date.now();
    try {
      const lease = await this.client.get<Lease>(leasesResource, name, namespace);
      const spec = {
        holderIdentity: identity,
        leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
        renewTime: microTime(now),
      };
      if (!lease) {
        await this.client.create<Lease>(leasesResource, {
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
      await this.client.replace<Lease>(leasesResource, {
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
      if (!ApiError.isConflict(err)) this.options.onError?.(err);
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
    await this.loop;
    this.leading = false;
    if (wasLeading && (options.release ?? true)) await this.release();
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      const lease = await this.client.get<Lease>(leasesResource, name, namespace);
      if (lease?.spec?.holderIdentity !== identity) return;
      await this.client.replace<Lease>(leasesResource, {
        metadata: { ...lease.metadata },
        spec: {
          ...lease.spec,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          renewTime: microTime(Date.now()),
        },
      });
    } catch (err) {
      this.options.onError?.(err);
    }
  }
}
