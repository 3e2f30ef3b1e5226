// Kubernetes label selectors (matchLabels + matchExpressions), as the API server and
// Fleet evaluate them.

export interface LabelSelector {
  matchLabels?: Record<string, string | undefined>;
  matchExpressions?: {
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values?: string[];
  }[];
}

/**
 * Where something goes: the clusters a label selector matches, or one cluster by name
 * (the shape of a Fleet GitRepo target; Argo CD's are rendered from it).
 */
export interface ClusterTarget {
  name: string;
  clusterSelector?: LabelSelector;
  clusterName?: string;
}

/** Whether `labels` satisfy `selector`. An empty selector matches everything. */
export function matches(selector: LabelSelector, labels: Record<string, string> = {}): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case "In":
        if (!has || !(e.values ?? []).includes(value ?? "")) return false;
        break;
      case "NotIn":
        if (has && (e.values ?? []).includes(value ?? "")) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/** One label requirement (matchLabels entries are `In` with one value). */
export type Requirement = NonNullable<LabelSelector["matchExpressions"]>[number];

/** A selector's requirements, matchLabels as `In` with one value. */
export function requirementsOf(s: LabelSelector): Requirement[] {
  return [
    ...Object.entries(s.matchLabels ?? {}).map(([key, v]) => ({
      key,
      operator: "In" as const,
      values: [v ?? ""],
    })),
    ...(s.matchExpressions ?? []),
  ];
}

/**
 * The conjunction of `reqs` with one requirement per key where one says it all (keys and
 * values sorted), or null when no label set satisfies it (`In` values all excluded, a key
 * both required and forbidden).
 */
export function conjoin(reqs: Requirement[]): Requirement[] | null {
  const keys = new Map<string, { in?: Set<string>; notIn: Set<string>; exists?: boolean }>();
  for (const r of reqs) {
    const k = keys.get(r.key) ?? { notIn: new Set<string>() };
    keys.set(r.key, k);
    const values = r.values ?? [];
    switch (r.operator) {
      case "In":
        k.in = new Set(k.in ? values.filter((v) => k.in?.has(v)) : values);
        break;
      case "NotIn":
        for (const v of values) k.notIn.add(v);
        break;
      case "Exists":
        if (k.exists === false) return null;
        k.exists = true;
        break;
      case "DoesNotExist":
        if (k.exists === true) return null;
        k.exists = false;
        break;
    }
  }
  const out: Requirement[] = [];
  for (const key of [...keys.keys()].sort()) {
    const k = keys.get(key);
    if (!k) continue;
    if (k.in) {
      const allowed = [...k.in].filter((v) => !k.notIn.has(v)).sort();
      if (allowed.length === 0 || k.exists === false) return null;
      out.push({ key, operator: "In", values: allowed });
    } else if (k.exists === false) {
      out.push({ key, operator: "DoesNotExist" });
    } else {
      if (k.notIn.size > 0) out.push({ key, operator: "NotIn", values: [...k.notIn].sort() });
      if (k.exists === true) out.push({ key, operator: "Exists" });
    }
  }
  return out;
}

/** The requirement met by exactly the label sets that do not meet `r`. */
function negation(r: Requirement): Requirement {
  switch (r.operator) {
    case "In":
      return { key: r.key, operator: "NotIn", values: r.values ?? [] };
    case "NotIn":
      return { key: r.key, operator: "In", values: r.values ?? [] };
    case "Exists":
      return { key: r.key, operator: "DoesNotExist" };
    case "DoesNotExist":
      return { key: r.key, operator: "Exists" };
  }
}

/** A conjunction as a selector: one-value `In` requirements as matchLabels. */
export function selectorOf(reqs: Requirement[]): LabelSelector {
  const labels = reqs.filter((r) => r.operator === "In" && r.values?.length === 1);
  const rest = reqs.filter((r) => !labels.includes(r));
  return {
    ...(labels.length ? { matchLabels: Object.fromEntries(labels.map((r) => [r.key, r.values?.[0]])) } : {}),
    ...(rest.length ? { matchExpressions: rest } : {}),
  };
}

/**
 * Disjoint selectors for "the first of `selectors` a label set meets": for each selector
 * in order, pieces (`index` = its position) that together match exactly the label sets it
 * matches and no earlier one does; then pieces (`index` = selectors.length) for the label
 * sets none matches. Every label set meets exactly one piece. The complement of
 * r1 ∧ … ∧ rn is split as ¬r1 ∨ (r1 ∧ ¬r2) ∨ … so the pieces never overlap. Stops and
 * returns undefined past `limit` pieces.
 */
export function firstMatchPieces(
  selectors: LabelSelector[],
  limit: number,
): { index: number; selector: LabelSelector }[] | undefined {
  const out: { index: number; selector: LabelSelector }[] = [];
  // The label sets no selector so far matched, as disjoint conjunctions.
  let unmatched: Requirement[][] = [[]];
  for (const [index, s] of [...selectors, undefined].entries()) {
    const reqs = s ? requirementsOf(s) : [];
    const next: Requirement[][] = [];
    const taken: Requirement[][] = [];
    for (const piece of unmatched) {
      const t = conjoin([...piece, ...reqs]);
      if (t) taken.push(t);
      if (!s) continue;
      reqs.forEach((r, i) => {
        const rest = conjoin([...piece, ...reqs.slice(0, i), negation(r)]);
        if (rest) next.push(rest);
      });
      if (out.length + taken.length + next.length > limit) return undefined;
    }
    for (const t of mergeComplements(taken)) out.push({ index, selector: selectorOf(t) });
    unmatched = mergeComplements(next);
  }
  return out;
}

/**
 * Fewer pieces for the same label sets: two conjunctions equal but for one requirement
 * and its negation (c ∧ r, c ∧ ¬r) are c.
 */
function mergeComplements(pieces: Requirement[][]): Requirement[][] {
  const key = (r: Requirement): string => JSON.stringify([r.key, r.operator, r.values ?? []]);
  const list = pieces.map((p) => p.map(key));
  const reqs = new Map(pieces.flat().map((r) => [key(r), r]));
  for (let merged = true; merged;) {
    merged = false;
    outer: for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i] ?? [];
        const b = list[j] ?? [];
        if (a.length !== b.length) continue;
        const onlyA = a.filter((k) => !b.includes(k));
        const onlyB = b.filter((k) => !a.includes(k));
        const ra = reqs.get(onlyA[0] ?? "");
        const rb = onlyB[0] ?? "";
        if (onlyA.length !== 1 || onlyB.length !== 1 || !ra || key(negation(ra)) !== rb) continue;
        list.splice(j, 1);
        list[i] = a.filter((k) => k !== onlyA[0]);
        merged = true;
        break outer;
      }
    }
  }
  return list.map((p) => p.map((k) => reqs.get(k)).filter((r) => r !== undefined));
}
