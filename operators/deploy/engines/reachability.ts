// Whether push-mode clusters answer. Fleet's agents check in (lastSeen); clusters Argo CD
// pushes to have no agent, and Argo CD keeps showing an Application's last Synced /
// Healthy state for hours after its cluster went away (its cluster cache is only
// invalidated on a watch error or a refresh of the cluster Secret). So Outpost asks each
// cluster it delivers to for /version, every `intervalMs`, and counts a cluster offline
// after `failuresToOffline` failed calls in a row — offline, not failed: it catches up
// when it answers again. Changes are told to `onChange`, so deployments are looked at
// again at once.
import { EdgeUnreachableError, type EdgeClusters } from "../../edge/edge-clusters.ts";
import { mapLimit } from "../../runtime/pool.ts";

interface Seen {
  failures: number;
  message?: string;
  /** When the cluster was last asked for (a cluster no deployment asks for is dropped). */
  wantedAt: number;
}

export interface ReachabilityOptions {
  intervalMs?: number;
  failuresToOffline?: number;
  concurrency?: number;
  now?: () => number;
}

export class Reachability {
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly intervalMs: number;
  private readonly failuresToOffline: number;
  private readonly concurrency: number;
  private readonly now: () => number;
  /** Called with (namespace, cluster, offline) when a cluster goes offline or comes back. */
  onChange: (namespace: string, cluster: string, offline: boolean) => void = () => undefined;

  constructor(
    private readonly edges: EdgeClusters,
    options: ReachabilityOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 15_000;
    this.failuresToOffline = options.failuresToOffline ?? 2;
    this.concurrency = options.concurrency ?? 32;
    this.now = options.now ?? Date.now;
  }

  /** Why cluster `name` of `namespace` counts as offline, or undefined; starts watching it. */
  offline(namespace: string, name: string): string | undefined {
    const key = `${namespace}/${name}`;
    let s = this.seen.get(key);
    if (!s) {
      s = { failures: 0, wantedAt: this.now() };
      this.seen.set(key, s);
      this.start();
    }
    s.wantedAt = this.now();
    return s.failures >= this.failuresToOffline ? s.message : undefined;
  }

  private start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running ??= this.probeAll().finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Asks every wanted cluster once (also what the timer does). */
  async probeAll(): Promise<void> {
    const stale = this.now() - 10 * this.intervalMs;
    for (const [key, s] of this.seen) if (s.wantedAt < stale) this.seen.delete(key);
    await mapLimit([...this.seen.keys()], this.concurrency, async (key) => {
      const [namespace = "", name = ""] = key.split("/");
      const s = this.seen.get(key);
      if (!s) return;
      const wasOffline = s.failures >= this.failuresToOffline;
      try {
        await this.edges.call(namespace, name, (c) => c.request("GET", "/version"));
        s.failures = 0;
        delete s.message;
      } catch (err) {
        s.failures++;
        s.message =
          err instanceof EdgeUnreachableError
            ? err.message
            : `cluster ${name} does not answer: ${err instanceof Error ? err.message : String(err)}`;
      }
      const isOffline = s.failures >= this.failuresToOffline;
      if (isOffline !== wasOffline) this.onChange(namespace, name, isOffline);
    });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
