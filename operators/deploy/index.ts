// The deployment operator: AppDeployments (and the Approvals they wait for).
import type { Manager } from "../runtime/manager.ts";
import { registerAppDeployments, type DeployOptions } from "./app-deployment.ts";

export type { DeployOptions };

export function registerDeploy(manager: Manager, options: DeployOptions = {}): void {
  registerAppDeployments(manager, options);
}
