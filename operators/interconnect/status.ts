// Pure status aggregation of the interconnect operator: what the members and links of
// a Network look like, summed up for its status, with detail capped for large fleets.
import type { Network } from "../api/network.generated.ts";
import { removeCondition, setCondition, type Condition } from "../runtime/conditions.ts";
import type { PlannedLink } from "./topology.ts";

export type LinkState = "connected" | "pending" | "failed";

/** What the operator saw on one member cluster. */
export interface MemberObservation {
  name: string;
  /** Why the cluster could not be reached (kubeconfig missing, connection refused…). */
  unreachable?: string;
  /** A problem on the cluster that is not about links (namespace conflict, site error…). */
  problem?: string;
  siteReady: boolean;
  /** Why the site is not ready, when it is not. */
  siteMessage?: string;
  /** Ready Connectors and Listeners in the site namespace. */
  servicesBound: number;
}

export interface LinkObservation extends PlannedLink {
  state: LinkState;
  message?: string;
}

export type NetworkStatusCounts = Pick<NonNullable<Network["status"]>, "summary" | "clusters">;

export interface NetworkHealth extends NetworkStatusCounts {
  ready: boolean;
  /** One line for the Ready condition. */
  message: string;
  /** Members that could not be reached, for the Unreachable condition. */
  unreachable: string[];
}

const maxClusters = 20;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function networkHealth(members: MemberObservation[], links: LinkObservation[]): NetworkHealth {
  const perCluster = new Map(
    members.map((m) => [m.name, { connected: 0, pending: 0, failed: 0, messages: [] as string[] }]),
  );
  for (const l of links) {
    for (const end of [l.from, l.to]) {
      const c = perCluster.get(end);
      if (!c) continue;
      c[l.state]++;
      if (l.state !== "connected" && l.message) c.messages.push(`link ${l.from} → ${l.to}: ${l.message}`);
    }
  }
  const count = (s: LinkState): number => links.filter((l) => l.state === s).length;
  const summary = {
    members: members.length,
    sitesReady: members.filter((m) => m.siteReady).length,
    links: links.length,
    linksConnected: count("connected"),
    linksPending: count("pending"),
    linksFailed: count("failed"),
    unreachable: members.filter((m) => m.unreachable).length,
    servicesBound: members.reduce((n, m) => n + m.servicesBound, 0),
  };
  const problems = members
    .map((m) => {
      const c = perCluster.get(m.name) ?? { connected: 0, pending: 0, failed: 0, messages: [] };
      const message =
        m.unreachable ??
        m.problem ??
        (!m.siteReady ? `site not ready: ${m.siteMessage ?? "waiting for Skupper"}` : undefined) ??
        c.messages[0];
      return {
        entry: {
          name: m.name,
          siteReady: m.siteReady,
          linksConnected: c.connected,
          linksPending: c.pending,
          linksFailed: c.failed,
          servicesBound: m.servicesBound,
          ...(m.unreachable ? { unreachable: true } : {}),
          ...(message ? { message } : {}),
        },
        bad:
          m.unreachable !== undefined ||
          m.problem !== undefined ||
          !m.siteReady ||
          c.pending > 0 ||
          c.failed > 0,
        // Worst first: unreachable, failed links, other problems, pending.
        rank: m.unreachable ? 0 : c.failed ? 1 : m.problem !== undefined || !m.siteReady ? 2 : 3,
      };
    })
    .filter((p) => p.bad)
    .sort((a, b) => a.rank - b.rank || a.entry.name.localeCompare(b.entry.name));
  const ready =
    summary.sitesReady === summary.members &&
    summary.linksConnected === summary.links &&
    summary.unreachable === 0 &&
    members.every((m) => !m.problem);
  let message: string;
  if (members.length === 0) message = "no cluster matches the member selector";
  else if (ready)
    message = `${plural(summary.members, "member")}, ${summary.links === 0 ? "no links needed" : `all ${plural(summary.links, "link")} up`}`;
  else {
    const parts = [`${summary.linksConnected}/${summary.links} links up`];
    if (summary.linksFailed) parts.push(`${summary.linksFailed} failed`);
    if (summary.unreachable) parts.push(`${plural(summary.unreachable, "member")} unreachable`);
    if (summary.sitesReady < summary.members)
      parts.push(`${summary.sitesReady}/${summary.members} sites ready`);
    const first = problems[0]?.entry;
    message = `${parts.join(", ")}${first?.message ? `; ${first.name}: ${first.message}` : ""}`;
  }
  return {
    summary,
    clusters: problems.slice(0, maxClusters).map((p) => p.entry),
    ready: ready && members.length > 0,
    message,
    unreachable: members.filter((m) => m.unreachable).map((m) => m.name),
  };
}

/** The Unreachable condition (True naming the clusters, or gone) for a status's conditions. */
export function withUnreachable(
  conditions: Condition[] | undefined,
  clusters: string[],
  generation: number | undefined,
): Condition[] {
  if (clusters.length === 0) return removeCondition(conditions, "Unreachable");
  const more = clusters.length > 10 ? ` and ${clusters.length - 10} more` : "";
  return setCondition(conditions, {
    type: "Unreachable",
    status: "True",
    reason: "ClustersUnreachable",
    message: `cannot reach ${clusters.slice(0, 10).join(", ")}${more}`,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  });
}
