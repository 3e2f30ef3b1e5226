// The dependency graph of a DeploymentPackage: cycle detection (reporting the cycle's
// path) and a start order.

export interface Dependency {
  application: string;
  requires: string;
}

/** A cycle as a path that ends where it starts (a → b → a), or undefined when there is none. */
export function findCycle(nodes: string[], edges: Dependency[]): string[] | undefined {
  const next = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const e of edges) next.get(e.application)?.push(e.requires);
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    state.set(n, "visiting");
    stack.push(n);
    for (const m of next.get(n) ?? []) {
      if (state.get(m) === "visiting") return [...stack.slice(stack.indexOf(m)), m];
      if (!state.has(m)) {
        const found = visit(m);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(n, "done");
    return undefined;
  };
  for (const n of [...nodes].sort()) {
    if (state.has(n)) continue;
    const found = visit(n);
    if (found) return found;
  }
  return undefined;
}

/** Applications in an order where each comes after what it requires (ties by name). */
export function startOrder(nodes: string[], edges: Dependency[]): string[] {
  const pending = new Map<string, Set<string>>(nodes.map((n) => [n, new Set<string>()]));
  for (const e of edges) pending.get(e.application)?.add(e.requires);
  const order: string[] = [];
  while (pending.size > 0) {
    const ready = [...pending]
      .filter(([, deps]) => [...deps].every((d) => !pending.has(d)))
      .map(([n]) => n)
      .sort();
    if (ready.length === 0)
      throw new Error(`dependency cycle: ${(findCycle(nodes, edges) ?? []).join(" → ")}`);
    for (const n of ready) {
      order.push(n);
      pending.delete(n);
    }
  }
  return order;
}
