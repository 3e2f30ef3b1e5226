// The controllers `outpost-operator --controllers=…` can run, by name. Each operator
// folder registers its controllers with the manager here.
import type { Manager } from "./runtime/manager.ts";

export const registry: Record<string, (manager: Manager) => void> = {};
