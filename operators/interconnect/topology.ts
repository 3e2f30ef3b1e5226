// Pure functions of the interconnect operator: which clusters are members of a Network,
// which links its topology asks for, and the names of what it creates on each member.
import type { Network } from "../api/network.generated.ts";
import { dnsName } from "../runtime/names.ts";
import { type LabelSelector, matches } from "../inventory/selector.ts";

/** The cluster fields topology reads (Fleet Clusters of the Network's namespace). */
export interface ClusterInfo {
  metadata: { name?: string; labels?: Record<string, string> };
}

/** A link: `from` initiates it (AccessToken there), `to` accepts it (AccessGrant there). */
export interface PlannedLink {
  from: string;
  to: string;
}

export interface Topology {
  members: string[];
  links: PlannedLink[];
  /** Members that accept links (their Site gets the Network's linkAccess). */
  accepting: Set<string>;
  /** Why the topology cannot be built (hub-and-spoke without a hub among the members). */
  problem?: string;
}

/** Names of the member clusters, sorted. */
export function memberNames(selector: LabelSelector, clusters: ClusterInfo[]): string[] {
  return clusters
    .filter((c) => matches(selector, c.metadata.labels))
    .map((c) => c.metadata.name ?? "")
    .sort();
}

/**
 * The links of a Network over `clusters` (its namespace's Fleet Clusters).
 * - mesh: one link per pair; the later member (by name) initiates to the earlier one, so
 *   every member but the last accepts links;
 * - hub-and-spoke: every spoke links to every hub, and the hubs form a mesh among
 *   themselves; only hubs accept links.
 * Links depend on member names only, so a member joining or leaving adds or removes
 * exactly the links that touch it.
 */
export function planTopology(network: Network, clusters: ClusterInfo[]): Topology {
  const members = memberNames(network.spec.members.clusterSelector, clusters);
  const links: PlannedLink[] = [];
  const meshOf = (names: string[]): void => {
    for (let j = 1; j < names.length; j++) {
      for (let i = 0; i < j; i++) links.push({ from: names[j] ?? "", to: names[i] ?? "" });
    }
  };
  if (network.spec.topology?.type === "hub-and-spoke") {
    const hubSelector = network.spec.topology.hubSelector ?? {};
    const isHub = new Set(memberNames(hubSelector, clusters).filter((n) => members.includes(n)));
    const hubs = members.filter((m) => isHub.has(m));
    const spokes = members.filter((m) => !isHub.has(m));
    if (members.length > 0 && hubs.length === 0) {
      return {
        members,
        links: [],
        accepting: new Set(),
        problem: `no member cluster matches hubSelector ${JSON.stringify(hubSelector)}; label a member as hub or change hubSelector`,
      };
    }
    meshOf(hubs);
    for (const s of spokes) for (const h of hubs) links.push({ from: s, to: h });
    return { members, links, accepting: new Set(hubs) };
  }
  meshOf(members);
  return { members, links, accepting: new Set(links.map((l) => l.to)) };
}

/** The namespace of the Network's Skupper site on every member. */
export function siteNamespace(network: Network): string {
  return network.spec.namespace ?? dnsName(`outpost-network-${network.metadata.name ?? ""}`, 63);
}

/** The Site on a member is named after the cluster, so peers see who they link to. */
export const siteName = (cluster: string): string => dnsName(cluster, 63);
/** The AccessGrant on the accepting member for a link from `from`. */
export const grantName = (from: string): string => dnsName(`outpost-from-${from}`, 63);
/** The AccessToken on the initiating member for a link to `to`. */
export const tokenName = (to: string): string => dnsName(`outpost-to-${to}`, 63);

/**
 * Whether `linkName` is one of the Links Skupper made from token `token`: named after
 * the token, with `-1`, `-2`… when the accepting site has several endpoint groups.
 */
export function isLinkOfToken(linkName: string, token: string): boolean {
  return (
    linkName === token || (linkName.startsWith(`${token}-`) && /^\d+$/.test(linkName.slice(token.length + 1)))
  );
}

export const managedByLabel = "app.kubernetes.io/managed-by";
export const networkLabel = "interconnect.outpost.dev/network";
export const projectLabel = "interconnect.outpost.dev/project";
export const serviceLabel = "interconnect.outpost.dev/service";
/** On edge objects: `<namespace>/<name>` of the Network (labels cannot hold a slash). */
export const networkAnnotation = "interconnect.outpost.dev/network";

/** Labels of everything the operator creates on an edge for `network`. */
export function edgeLabels(network: Network): Record<string, string> {
  return {
    [managedByLabel]: "outpost",
    [networkLabel]: dnsName(network.metadata.name ?? "", 63),
    [projectLabel]: dnsName(network.metadata.namespace ?? "", 63),
  };
}

/** The label selector that finds the operator's objects for `network` on an edge. */
export function edgeSelector(network: Network): string {
  return Object.entries(edgeLabels(network))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
