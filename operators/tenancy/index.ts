// The tenancy operator: Projects.
import type { Manager } from "../runtime/manager.ts";
import { registerProjects } from "./project.ts";

export function registerTenancy(manager: Manager, options: { systemNamespace?: string } = {}): void {
  registerProjects(manager, options);
}
