// Runs operator controllers in the test process: a Manager with quiet logs (LOG_LEVEL to
// see them), the controllers `register` adds, started.
import type { KubeConfig } from "@kubernetes/client-node";
import { Manager, type ManagerOptions } from "../../operators/runtime/manager.ts";

export async function startOperator(
  name: string,
  kubeConfig: KubeConfig,
  register: (manager: Manager) => void,
  options: Partial<ManagerOptions> = {},
): Promise<Manager> {
  const manager = new Manager({ name, kubeConfig, ...options });
  manager.logger.level = process.env.LOG_LEVEL ?? "silent";
  register(manager);
  await manager.start();
  return manager;
}
