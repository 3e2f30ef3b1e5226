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
