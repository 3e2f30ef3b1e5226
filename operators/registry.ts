// The controllers `outpost-operator --controllers=…` can run, by name.
import { registerCatalog } from "./catalog/index.ts";
import { registerDeploy } from "./deploy/index.ts";
import { registerInterconnect } from "./interconnect/index.ts";
import { registerOps } from "./ops/index.ts";
import { registerTenancy } from "./tenancy/index.ts";
import type { OperatorOptions } from "./options.ts";
import type { Manager } from "./runtime/manager.ts";

export const registry: Record<string, (manager: Manager, options: OperatorOptions) => void> = {
  catalog: (manager, options) => {
    registerCatalog(manager, { clamdAddress: options.clamdAddress, scanMode: options.scanMode });
  },
  deploy: (manager, options) => {
    registerDeploy(manager, {
      offlineAfterMs: options.offlineAfterMs,
      dropHoldMs: options.dropHoldMs,
      engines: options.engines,
      defaultEngine: options.defaultEngine,
      argocdNamespace: options.argocdNamespace,
    });
  },
  interconnect: (manager, options) => {
    registerInterconnect(manager, {
      pendingPollMs: options.edgePollMs,
      readyPollMs: options.edgeResyncMs,
      grantExpiration: options.grantExpiration,
    });
  },
  ops: (manager) => {
    registerOps(manager);
  },
  tenancy: (manager, options) => {
    registerTenancy(manager, { systemNamespace: options.leaderElectionNamespace });
  },
};
