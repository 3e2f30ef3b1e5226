// outpost-operator: runs the selected Outpost controllers in one process.
import { KubeConfig } from "@kubernetes/client-node";
import { createLogger, Manager } from "./runtime/manager.ts";
import { parseOptions, usage } from "./options.ts";
import { configureInventory } from "./inventory/inventory.ts";
import { registry } from "./registry.ts";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(usage);
  process.exit(0);
}

let options;
try {
  options = parseOptions(process.argv.slice(2), Object.keys(registry));
} catch (err) {
  console.error(`outpost-operator: ${err instanceof Error ? err.message : String(err)}\n\n${usage}`);
  process.exit(2);
}

const kubeConfig = new KubeConfig();
if (options.kubeconfig) kubeConfig.loadFromFile(options.kubeconfig);
else kubeConfig.loadFromDefault();

const manager = new Manager({
  name: "outpost-operator",
  kubeConfig,
  namespace: options.namespace,
  port: options.metricsPort,
  bindAddress: options.metricsBindAddress,
  logger: createLogger("outpost-operator", options.logLevel),
  leaderElection: options.leaderElect
    ? {
        namespace: options.leaderElectionNamespace,
        name: options.leaderElectionId,
        leaseDurationMs: options.leaseDurationMs,
        renewDeadlineMs: options.renewDeadlineMs,
        retryPeriodMs: options.retryPeriodMs,
      }
    : undefined,
});
// One cluster inventory for every controller of the process: Fleet Clusters, and Argo CD's
// cluster Secrets when Argo CD is one of the engines.
configureInventory(manager, {
  offlineAfterMs: options.offlineAfterMs,
  ...(options.engines.includes("argocd") ? { argocdNamespace: options.argocdNamespace } : {}),
});
for (const name of options.controllers) registry[name]?.(manager, options);
manager.stopOnSignals();
await manager.start();
manager.logger.info(
  { controllers: options.controllers, identity: manager.identity, port: manager.port },
  "started",
);
