// Prometheus metrics of the runtime (one registry per manager).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly reconcileDuration: Histogram<"controller">;
  readonly queueDepth: Gauge<"controller">;
  readonly queueLatency: Histogram<"controller">;
  readonly queueRetries: Counter<"controller">;
  readonly watchRestarts: Counter<"resource" | "reason">;
  readonly leader: Gauge;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.reconcileTotal = new Counter({
      name: "outpost_reconcile_total",
      help: "Reconciles by controller and result (success, requeue, conflict, error).",
      labelNames: ["controller", "result"],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: "outpost_reconcile_errors_total",
      help: "Reconciles that ended with an error.",
      labelNames: ["controller"],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: "outpost_reconcile_duration_seconds",
      help: "Time spent in one reconcile.",
      labelNames: ["controller"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.queueDepth = new Gauge({
      name: "outpost_workqueue_depth",
      help: "Keys waiting in the work queue.",
      labelNames: ["controller"],
      registers,
    });
    this.queueLatency = new Histogram({
      name: "outpost_workqueue_queue_duration_seconds",
      help: "Time a key waited in the queue before a worker took it.",
      labelNames: ["controller"],
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60, 300],
      registers,
    });
    this.queueRetries = new Counter({
      name: "outpost_workqueue_retries_total",
      help: "Keys re-queued with backoff after an error.",
      labelNames: ["controller"],
      registers,
    });
    this.watchRestarts = new Counter({
      name: "outpost_watch_restarts_total",
      help: "Watch restarts by resource and reason (error, gone, watchdog).",
      labelNames: ["resource", "reason"],
      registers,
    });
    this.leader = new Gauge({
      name: "outpost_leader",
      help: "1 while this process holds the leader lease.",
      registers,
    });
  }
}
