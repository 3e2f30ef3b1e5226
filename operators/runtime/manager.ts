// The manager runs controllers in one process: shared informers (one per kind), leader
// election, JSON logs, Prometheus metrics and health endpoints, and graceful shutdown
// (SIGTERM: stop taking work, finish reconciles in flight, release the lease).
import { createServer, type Server } from "node:http";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import { pino, type Logger } from "pino";
import { ApiError, KubeClient, type KubeObject, type ResourceType } from "./client.ts";
import { Controller, type ControllerOptions } from "./controller.ts";
import { EventRecorder } from "./events.ts";
import { Informer, type InformerOptions } from "./informer.ts";
import { LeaderElector } from "./leader.ts";
import { RuntimeMetrics } from "./metrics.ts";

export interface ManagerOptions {
  /** Process name, e.g. "outpost-operator": used for the field manager, events and logs. */
  name: string;
  kubeConfig: KubeConfig;
  /** Leader election; omit to run without (a single replica). */
  leaderElection?: {
    namespace: string;
    name: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** Port for /metrics, /healthz and /readyz on `bindAddress`; 0 picks a free one; omit for none. */
  port?: number;
  bindAddress?: string;
  /** Only watch this namespace (default: all). */
  namespace?: string;
  informer?: Pick<InformerOptions<KubeObject>, "watchdogMs" | "resyncMs" | "backoff" | "pageSize">;
  logger?: Logger;
  /** Called when the lease is lost after reconciling stopped. Default: exit with code 1. */
  onLeaseLost?: () => void;
}

export function createLogger(
  name: string,
  level = process.env.LOG_LEVEL ?? "info",
  destination?: pino.DestinationStream,
): Logger {
  const options = {
    name,
    level,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

export class Manager {
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly metrics = new RuntimeMetrics();
  readonly events: EventRecorder;
  readonly identity: string;
  readonly fieldManager: string;
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly controllers: Controller[] = [];
  private elector: LeaderElector | undefined;
  private server: Server | undefined;
  private started = false;
  private controllersRunning = false;
  private stopping: Promise<void> | undefined;
  private readonly stopHooks: (() => void | Promise<void>)[] = [];

  constructor(private readonly options: ManagerOptions) {
    this.identity = `${hostname()}_${process.pid}_${randomBytes(3).toString("hex")}`;
    this.fieldManager = options.name;
    this.logger = options.logger ?? createLogger(options.name);
    this.client = new KubeClient(options.kubeConfig, { userAgent: `${options.name}/${this.identity}` });
    this.events = new EventRecorder(this.client, {
      controller: `outpost.dev/${options.name}`,
      instance: this.identity,
      onError: (err) => {
        this.logger.warn({ err }, "could not record an event");
      },
    });
  }

  /**
   * The shared informer for `r` (one per kind, namespace and label selector, per
   * process). `transform` slims objects before they are cached (fields no reconciler
   * reads); it applies only when this call creates the informer, so give it before any
   * controller watches the kind. `namespace` and `labelSelector` narrow what is listed
   * and watched (the manager's own namespace, if set, wins for namespaced kinds when no
   * namespace is given). An `optional` informer is for a kind that may not be installed
   * (another project's CRDs): controllers start without waiting for it and readiness
   * does not count it; callers check `hasSynced` / `notServed` before using its cache.
   */
  informer<T extends KubeObject>(
    r: ResourceType,
    options: {
      transform?: (obj: T) => T;
      namespace?: string;
      labelSelector?: string;
      optional?: boolean;
    } = {},
  ): Informer<T> {
    const namespace = r.namespaced ? (options.namespace ?? this.options.namespace) : undefined;
    const id = `${r.group}/${r.version}/${r.plural}${options.namespace !== undefined ? `?ns=${options.namespace}` : ""}${options.labelSelector ? `?l=${options.labelSelector}` : ""}`;
    let informer = this.informers.get(id);
    if (!informer) {
      informer = new Informer<KubeObject>(this.client, r, {
        ...this.options.informer,
        ...(options.transform
          ? { transform: options.transform as unknown as (o: KubeObject) => KubeObject }
          : {}),
        namespace,
        ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
        optional: options.optional ?? false,
        onRestart: (reason, err) => {
          this.metrics.watchRestarts.inc({ resource: r.plural, reason });
          if (ApiError.isNotFound(err)) {
            // Not served at all: a CRD this operator needs is not installed (Fleet, Skupper…).
            const log = options.optional
              ? this.logger.debug.bind(this.logger)
              : this.logger.warn.bind(this.logger);
            log(
              { resource: `${r.plural}.${r.group}`, version: r.version },
              options.optional
                ? `the API server does not serve ${r.plural}.${r.group}/${r.version}; what needs it reports so`
                : `the API server does not serve ${r.plural}.${r.group}/${r.version}; install its CRDs — the operator is not ready until it can watch them`,
            );
          } else {
            this.logger.debug({ resource: r.plural, reason, err }, "watch restarted");
          }
        },
      });
      this.informers.set(id, informer);
    }
    return informer as unknown as Informer<T>;
  }

  controller(name: string, options: ControllerOptions = {}): Controller {
    const c = new Controller(
      name,
      options,
      (r) => this.informer(r),
      this.logger.child({ controller: name }),
      this.metrics,
    );
    this.controllers.push(c);
    return c;
  }

  get isLeader(): boolean {
    return this.elector ? this.elector.isLeader : this.controllersRunning;
  }

  /** Starts the endpoints, then (once leader, if electing) the informers and controllers. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.options.port !== undefined) await this.listen(this.options.port);
    const election = this.options.leaderElection;
    if (!election) {
      await this.startControllers();
      return;
    }
    this.elector = new LeaderElector(this.client, {
      ...election,
      identity: this.identity,
      onStartedLeading: () => {
        this.metrics.leader.set(1);
        this.logger.info({ lease: `${election.namespace}/${election.name}` }, "became leader");
        this.startControllers().catch((err: unknown) => {
          this.logger.error({ err }, "controllers failed to start");
        });
      },
      onLost: () => {
        this.metrics.leader.set(0);
        // Stop reconciling at once: another process may already be leading.
        for (const c of this.controllers) c.abort();
        this.controllersRunning = false;
        this.logger.error(
          { lease: `${election.namespace}/${election.name}` },
          "leader lease lost; stopped reconciling",
        );
        (this.options.onLeaseLost ?? (() => process.exit(1)))();
      },
      onError: (err) => {
        this.logger.warn({ err }, "leader election request failed");
      },
    });
    this.elector.start();
  }

  private async startControllers(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.start()));
    this.controllersRunning = true;
  }

  /** Informers synced and, when electing, either leading or standing by. */
  get ready(): boolean {
    if (this.stopping) return false;
    if (this.elector && !this.elector.isLeader) return true;
    return [...this.informers.values()].every((i) => i.hasSynced || i.optional);
  }

  private async listen(port: number): Promise<void> {
    this.server = createServer((req, res) => {
      const url = req.url ?? "/";
      if (url === "/healthz" || url === "/livez") {
        res.writeHead(200).end("ok");
      } else if (url === "/readyz") {
        const ok = this.ready;
        res.writeHead(ok ? 200 : 503).end(ok ? "ok" : "not ready");
      } else if (url === "/metrics") {
        this.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      } else {
        res.writeHead(404).end();
      }
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, this.options.bindAddress ?? "0.0.0.0", resolve);
    });
  }

  /** The port of the endpoints, once listening. */
  get port(): number | undefined {
    const address = this.server?.address();
    return typeof address === "object" && address ? address.port : undefined;
  }

  /** Runs `hook` at shutdown, after the controllers stopped (background loops end there). */
  onStop(hook: () => void | Promise<void>): void {
    this.stopHooks.push(hook);
  }

  /** Graceful shutdown: no new work, reconciles in flight finish, lease released. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info("shutting down");
      await Promise.all(this.controllers.map((c) => c.stop()));
      for (const hook of this.stopHooks) await hook();
      await Promise.all([...this.informers.values()].map((i) => i.stop()));
      await this.elector?.stop({ release: true });
      this.metrics.leader.set(0);
      await new Promise<void>((resolve) => {
        if (this.server)
          this.server.close(() => {
            resolve();
          });
        else resolve();
      });
      await this.client.close();
      this.logger.info("stopped");
    })();
    return this.stopping;
  }

  /** Stops gracefully on SIGTERM or SIGINT, then exits. */
  stopOnSignals(): void {
    const handler = (signal: NodeJS.Signals): void => {
      this.logger.info({ signal }, "signal received");
      this.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          this.logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.once("SIGTERM", handler);
    process.once("SIGINT", handler);
  }
}
