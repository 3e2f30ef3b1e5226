// The catalog operator: registries, applications, deployment packages and artifacts.
import type { Manager } from "../runtime/manager.ts";
import { registerRegistries } from "./registry.ts";

export interface CatalogOptions {
  /** clamd address host:port. */
  clamdAddress?: string;
  scanMode?: "enforce" | "permissive" | "off";
}

export function registerCatalog(manager: Manager, _options: CatalogOptions = {}): void {
  registerRegistries(manager);
}
