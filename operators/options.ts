// Command-line options of `outpost-operator`, parsed and checked as a pure function.
import { parseArgs } from "node:util";

export interface OperatorOptions {
  controllers: string[];
  kubeconfig?: string;
  namespace?: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  metricsBindAddress: string;
  metricsPort: number;
  logLevel: string;
  /** Catalog: clamd's host:port. */
  clamdAddress?: string;
  /** Catalog: enforce, permissive or off. */
  scanMode: "enforce" | "permissive" | "off";
  /** Deploy: a cluster whose Fleet agent is silent this long is offline. */
  offlineAfterMs: number;
  /** Deploy: how long a drop of more than half the targeted clusters is held. */
  dropHoldMs: number;
  /** Deploy: the delivery engines this installation runs. */
  engines: ("fleet" | "argocd")[];
  /** Deploy: the engine of projects that name none. */
  defaultEngine: "fleet" | "argocd";
  /** Deploy (and ops, interconnect): Argo CD's namespace. */
  argocdNamespace: string;
  /** Interconnect: how often edges are polled while links or bindings are pending. */
  edgePollMs: number;
  /** Interconnect: how often edges are checked when everything is up. */
  edgeResyncMs: number;
  /** Interconnect: the expirationWindow of AccessGrants (a Go duration). */
  grantExpiration: string;
}

export const usage = `usage: outpost-operator --controllers=NAME[,NAME…] [options]

  --controllers=LIST              controllers to run (comma separated), or "all"
  --kubeconfig=PATH               kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --namespace=NS                  watch one namespace only (default: all)
  --leader-elect[=false]          elect a leader with a Lease (default: true)
  --leader-election-namespace=NS  namespace of the Lease (default: outpost-system)
  --leader-election-id=NAME       name of the Lease (default: outpost-operator)
  --lease-duration=DURATION       how long a lease holds without renewal (default: 15s)
  --renew-deadline=DURATION       the leader gives up after failing to renew this long (default: 10s)
  --retry-period=DURATION         time between lease attempts (default: 2s)
  --metrics-bind-address=ADDR     host:port for /metrics, /healthz, /readyz (default: :8080)
  --log-level=LEVEL               trace, debug, info, warn, error (default: info)

catalog:
  --clamd-address=HOST:PORT       clamd for malware scanning
  --scan-mode=MODE                enforce (unscanned content is not Ready), permissive
                                  (it is, with a warning) or off (air-gapped labs) (default: enforce)

deploy:
  --offline-after=DURATION        a cluster whose Fleet agent has not checked in for this long
                                  counts as offline, not failed (default: 30m; Fleet agents
                                  check in every 15m by default)
  --drop-hold=DURATION            when the targeted clusters drop by more than half at once,
                                  keep the old targets until the drop lasts this long (default: 5m)
  --engines=LIST                  delivery engines to run: fleet, argocd or both (default: fleet)
  --default-engine=NAME           the engine of projects whose spec.delivery.engine is unset
                                  (default: fleet)
  --argocd-namespace=NS           Argo CD's namespace: its ApplicationSets, AppProjects and
                                  cluster Secrets (default: argocd)

interconnect:
  --edge-poll=DURATION            how often edge clusters are polled while links or services
                                  are being set up (default: 5s)
  --edge-resync=DURATION          how often they are checked when everything is up; a dropped
                                  link shows within this time (default: 60s)
  --grant-expiration=DURATION     how long an AccessGrant can be redeemed (default: 30m)`;

/** "1.5s", "500ms", "2m", "1h" → milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`--${flag}: "${text}" is not a duration; write it like 500ms, 15s, 2m or 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * unit;
}

export function parseOptions(argv: string[], known: string[]): OperatorOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      controllers: { type: "string" },
      kubeconfig: { type: "string" },
      namespace: { type: "string" },
      "leader-elect": { type: "string", default: "true" },
      "leader-election-namespace": { type: "string", default: "outpost-system" },
      "leader-election-id": { type: "string", default: "outpost-operator" },
      "lease-duration": { type: "string", default: "15s" },
      "renew-deadline": { type: "string", default: "10s" },
      "retry-period": { type: "string", default: "2s" },
      "metrics-bind-address": { type: "string", default: ":8080" },
      "log-level": { type: "string", default: "info" },
      "clamd-address": { type: "string" },
      "scan-mode": { type: "string", default: "enforce" },
      "offline-after": { type: "string", default: "30m" },
      "drop-hold": { type: "string", default: "5m" },
      engines: { type: "string", default: "fleet" },
      "default-engine": { type: "string", default: "fleet" },
      "argocd-namespace": { type: "string", default: "argocd" },
      "edge-poll": { type: "string", default: "5s" },
      "edge-resync": { type: "string", default: "60s" },
      "grant-expiration": { type: "string", default: "30m" },
    },
    strict: true,
  });
  if (!values.controllers)
    throw new Error(`--controllers is required; available: ${known.join(", ") || "none"}`);
  const controllers =
    values.controllers === "all" ? known : values.controllers.split(",").map((s) => s.trim());
  const unknown = controllers.filter((c) => !known.includes(c));
  if (unknown.length > 0) {
    throw new Error(`--controllers: unknown ${unknown.join(", ")}; available: ${known.join(", ") || "none"}`);
  }
  if (!["true", "false"].includes(values["leader-elect"])) {
    throw new Error(`--leader-elect must be true or false, not "${values["leader-elect"]}"`);
  }
  const leaseDurationMs = parseDuration(values["lease-duration"], "lease-duration");
  const renewDeadlineMs = parseDuration(values["renew-deadline"], "renew-deadline");
  const retryPeriodMs = parseDuration(values["retry-period"], "retry-period");
  if (!(retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
    throw new Error("leader election needs --retry-period < --renew-deadline < --lease-duration");
  }
  const scanMode = values["scan-mode"];
  if (scanMode !== "enforce" && scanMode !== "permissive" && scanMode !== "off") {
    throw new Error(`--scan-mode must be enforce, permissive or off, not "${scanMode}"`);
  }
  if (controllers.includes("catalog") && scanMode !== "off" && !values["clamd-address"]) {
    throw new Error("--clamd-address=host:port is required for the catalog unless --scan-mode=off");
  }
  const engineNames = ["fleet", "argocd"] as const;
  const isEngine = (e: string): e is (typeof engineNames)[number] =>
    (engineNames as readonly string[]).includes(e);
  const engines = values.engines.split(",").map((e) => e.trim());
  const unknownEngines = engines.filter((e) => !isEngine(e));
  if (unknownEngines.length > 0 || engines.length === 0) {
    throw new Error(`--engines: unknown ${unknownEngines.join(", ") || "(none)"}; available: fleet, argocd`);
  }
  const defaultEngine = values["default-engine"];
  if (!isEngine(defaultEngine) || !engines.includes(defaultEngine)) {
    throw new Error(
      `--default-engine must be one of the --engines (${engines.join(", ")}), not "${defaultEngine}"`,
    );
  }
  const bind = /^(.*):(\d+)$/.exec(values["metrics-bind-address"]);
  if (!bind) throw new Error(`--metrics-bind-address: "${values["metrics-bind-address"]}" is not host:port`);
  return {
    controllers,
    kubeconfig: values.kubeconfig,
    namespace: values.namespace,
    leaderElect: values["leader-elect"] === "true",
    leaderElectionNamespace: values["leader-election-namespace"],
    leaderElectionId: values["leader-election-id"],
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    metricsBindAddress: bind[1] === "" || bind[1] === undefined ? "0.0.0.0" : bind[1],
    metricsPort: Number(bind[2]),
    logLevel: values["log-level"],
    clamdAddress: values["clamd-address"],
    scanMode,
    offlineAfterMs: parseDuration(values["offline-after"], "offline-after"),
    dropHoldMs: parseDuration(values["drop-hold"], "drop-hold"),
    engines: engines.filter(isEngine),
    defaultEngine,
    argocdNamespace: values["argocd-namespace"],
    edgePollMs: parseDuration(values["edge-poll"], "edge-poll"),
    edgeResyncMs: parseDuration(values["edge-resync"], "edge-resync"),
    // Checked here, passed on as Skupper reads it (a Go duration such as 30m or 1h).
    grantExpiration: `${parseDuration(values["grant-expiration"], "grant-expiration") / 1000}s`,
  };
}
