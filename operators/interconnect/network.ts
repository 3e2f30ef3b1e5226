// The Network reconciler: Skupper v2 sites on every member cluster and the links its
// topology asks for, each made the way Skupper links sites across clusters — an
// AccessGrant on the accepting site, then (once Skupper has filled in the grant's URL,
// code and CA) an AccessToken on the initiating site, which Skupper redeems into a Link.
//
// Everything on an edge has a fixed name (site = cluster name, grant `outpost-from-<A>`,
// token `outpost-to-<B>`), so a restart or a crash mid-link never makes a second grant
// or token. Skupper reports progress only on the edges, so the operator polls them: soon
// after it changed something, every few seconds while anything is pending, and once a
// minute when everything is up (a dropped link is noticed then).
//
// Clusters holding the network's namespace are recorded in status.provisioned *before*
// anything is created there. A cluster that leaves the member selector, or every cluster
// when the Network is deleted, has that namespace removed — later, if the cluster is
// unreachable at the time; the finalizer waits for it.
import { isDeepStrictEqual } from "node:util";
import type { Network } from "../api/network.generated.ts";
import { NetworkResource } from "../api/resources.generated.ts";
import { EdgeUnreachableError, type EdgeClusters } from "../edge/edge-clusters.ts";
import { inventoryOf, type InventoryCluster } from "../inventory/inventory.ts";
import { ApiError, type KubeClient, type KubeObject, type ResourceType } from "../runtime/client.ts";
import { summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import { namespacesResource, secretsResource } from "../runtime/core.ts";
import type { Manager } from "../runtime/manager.ts";
import { mapLimit } from "../runtime/pool.ts";
import { addFinalizer, patchStatus, removeFinalizer, withStatus } from "../runtime/reconcile.ts";
import {
  AccessGrantResource,
  AccessTokenResource,
  AttachedConnectorBindingResource,
  AttachedConnectorResource,
  ConnectorResource,
  LinkResource,
  ListenerResource,
  SiteResource,
  skupperError,
  skupperReady,
  type AccessGrant,
  type AccessToken,
  type Link,
  type Site,
} from "./skupper.ts";
import { nextLinkStep } from "./link.ts";
import { networkHealth, withUnreachable, type LinkObservation, type MemberObservation } from "./status.ts";
import {
  edgeLabels,
  edgeSelector,
  grantName,
  isLinkOfToken,
  networkAnnotation,
  networkLabel,
  planTopology,
  projectLabel,
  siteName,
  siteNamespace,
  tokenName,
  type PlannedLink,
  type Topology,
} from "./topology.ts";

export const networkFinalizer = "interconnect.outpost.dev/cleanup";

export interface InterconnectOptions {
  /** Poll edges this often while anything is pending. Default 5 s. */
  pendingPollMs?: number;
  /** Poll edges this often when everything is up. Default 60 s. */
  readyPollMs?: number;
  /** The expirationWindow of the AccessGrants (a Go duration). Default 30m. */
  grantExpiration?: string;
  /** Edge calls in flight per reconcile. Default 16. */
  edgeConcurrency?: number;
}

type Status = NonNullable<Network["status"]>;

/** What one reconcile found on a reachable member, for the link phase. */
interface MemberState {
  client: KubeClient;
  site?: Site;
  grants: Map<string, AccessGrant>;
  tokens: Map<string, AccessToken>;
  links: Link[];
}

interface Pass {
  network: Network;
  namespace: string;
  /** Something was created or deleted on an edge: look again soon. */
  changed: boolean;
}

export class NetworkReconciler {
  private readonly options: Required<InterconnectOptions>;

  constructor(
    private readonly manager: Manager,
    private readonly edges: EdgeClusters,
    options: InterconnectOptions = {},
  ) {
    this.options = {
      pendingPollMs: options.pendingPollMs ?? 5_000,
      readyPollMs: options.readyPollMs ?? 60_000,
      grantExpiration: options.grantExpiration ?? "30m",
      edgeConcurrency: options.edgeConcurrency ?? 16,
    };
  }

  private clusters(namespace: string): InventoryCluster[] {
    return inventoryOf(this.manager).clusters(namespace);
  }

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const network = await client.get<Network>(NetworkResource, req.name, req.namespace);
    if (!network) return undefined;
    if (network.metadata.deletionTimestamp) return this.finalize(network);
    const current = await addFinalizer(client, NetworkResource, network, networkFinalizer);
    const workspace = current.metadata.namespace ?? "";
    let requeueAfterMs = this.options.pendingPollMs;

    await withStatus(client, NetworkResource, current, fieldManager, async (status: Status) => {
      const generation = current.metadata.generation;
      status.lastHandledReconcileAt = current.metadata.annotations?.[requestedAtAnnotation];
      const topology = planTopology(current, this.clusters(workspace));
      if (topology.problem) {
        Object.assign(
          status,
          summarize(status, generation, { kind: "stalled", reason: "NoHub", message: topology.problem }),
        );
        return;
      }
      const pass: Pass = { network: current, namespace: siteNamespace(current), changed: false };

      // Write-ahead: a cluster is recorded before anything is created on it.
      const provisioned = [...new Set([...(status.provisioned ?? []), ...topology.members])].sort();
      if (!isDeepStrictEqual(provisioned, current.status?.provisioned ?? [])) {
        await client.mergePatch(
          NetworkResource,
          current.metadata.name ?? "",
          workspace,
          // On the object read: a stale copy must not shorten a newer list.
          { metadata: { resourceVersion: current.metadata.resourceVersion }, status: { provisioned } },
          { subresource: "status", fieldManager },
        );
      }
      status.provisioned = provisioned;

      const limit = this.options.edgeConcurrency;
      const members = await mapLimit(topology.members, limit, (m) => this.member(pass, m, topology));
      const states = new Map<string, MemberState>();
      for (const m of members) if (m.state) states.set(m.observation.name, m.state);
      const links = await mapLimit(topology.links, limit, (l) => this.link(pass, l, states));
      await mapLimit([...states], limit, ([name, state]) => this.prune(pass, name, state, topology));

      const leaving = provisioned.filter((c) => !topology.members.includes(c));
      const removed = await mapLimit(leaving, limit, (c) => this.removeFrom(pass, c));
      status.provisioned = provisioned.filter((c) => !leaving.includes(c) || !removed[leaving.indexOf(c)]);

      const health = networkHealth(
        members.map((m) => m.observation),
        links,
      );
      status.summary = health.summary;
      status.clusters = health.clusters;
      status.conditions = withUnreachable(status.conditions, health.unreachable, generation);
      const waitingToRemove = status.provisioned.filter((c) => leaving.includes(c));
      const message =
        waitingToRemove.length > 0
          ? `${health.message}; waiting to remove the site from ${waitingToRemove.join(", ")}`
          : health.message;
      if (health.ready && waitingToRemove.length === 0) {
        Object.assign(status, summarize(status, generation, { kind: "ready", reason: "Connected", message }));
        requeueAfterMs = this.options.readyPollMs;
      } else {
        const reason = health.summary?.linksFailed ? "LinksFailed" : "Linking";
        Object.assign(status, summarize(status, generation, { kind: "progressing", reason, message }));
      }
      if (pass.changed) requeueAfterMs = Math.min(requeueAfterMs, 1_000);
    });
    return { requeueAfterMs };
  }

  // ---- one member: namespace, site, and what is there ------------------------------

  private async member(
    pass: Pass,
    cluster: string,
    topology: Topology,
  ): Promise<{ observation: MemberObservation; state?: MemberState }> {
    const { network, namespace } = pass;
    const workspace = network.metadata.namespace ?? "";
    const fieldManager = this.manager.fieldManager;
    const labels = edgeLabels(network);
    const annotations = { [networkAnnotation]: `${workspace}/${network.metadata.name ?? ""}` };
    try {
      return await this.edges.call(workspace, cluster, async (client) => {
        const existing = await client.get<KubeObject>(namespacesResource, namespace);
        if (
          existing &&
          existing.metadata.annotations?.[networkAnnotation] !== annotations[networkAnnotation]
        ) {
          return {
            observation: {
              name: cluster,
              siteReady: false,
              servicesBound: 0,
              problem: `namespace ${namespace} exists there and does not belong to this Network; remove it or set spec.namespace`,
            },
          };
        }
        if (existing?.metadata.deletionTimestamp) {
          return {
            observation: {
              name: cluster,
              siteReady: false,
              servicesBound: 0,
              siteMessage: `namespace ${namespace} is still being deleted`,
            },
          };
        }
        if (!existing) {
          await client.apply(
            namespacesResource,
            { metadata: { name: namespace, labels, annotations } },
            { fieldManager },
          );
          pass.changed = true;
        }
        const linkAccess = topology.accepting.has(cluster) ? (network.spec.linkAccess ?? "default") : "none";
        let site = await client.get<Site>(SiteResource, siteName(cluster), namespace);
        if (site?.spec.linkAccess !== linkAccess) {
          site = await client.apply<Site>(
            SiteResource,
            {
              metadata: { name: siteName(cluster), namespace, labels, annotations },
              spec: { linkAccess },
            },
            { fieldManager },
          );
          pass.changed = true;
        }
        const [grants, tokens, links, listeners, connectors, bindings] = await Promise.all([
          client.list<AccessGrant>(AccessGrantResource, { namespace }),
          client.list<AccessToken>(AccessTokenResource, { namespace }),
          client.list<Link>(LinkResource, { namespace }),
          client.list<KubeObject>(ListenerResource, { namespace }),
          client.list<KubeObject>(ConnectorResource, { namespace }),
          client.list<KubeObject>(AttachedConnectorBindingResource, { namespace }),
        ]);
        const bound = [...listeners.items, ...connectors.items, ...bindings.items].filter((o) =>
          skupperReady(o as { status?: never }),
        ).length;
        return {
          observation: {
            name: cluster,
            siteReady: skupperReady(site),
            ...(skupperReady(site) ? {} : { siteMessage: skupperError(site) ?? site.status?.message }),
            servicesBound: bound,
          },
          state: {
            client,
            site,
            grants: new Map(grants.items.map((g) => [g.metadata.name ?? "", g])),
            tokens: new Map(tokens.items.map((t) => [t.metadata.name ?? "", t])),
            links: links.items,
          },
        };
      });
    } catch (err) {
      if (err instanceof EdgeUnreachableError) {
        return {
          observation: { name: cluster, siteReady: false, servicesBound: 0, unreachable: err.message },
        };
      }
      if (err instanceof ApiError) {
        return {
          observation: {
            name: cluster,
            siteReady: false,
            servicesBound: 0,
            problem: `API error on the cluster: ${err.message}`,
          },
        };
      }
      throw err;
    }
  }

  // ---- one link: grant → token → Link -------------------------------------------

  private async link(
    pass: Pass,
    planned: PlannedLink,
    states: Map<string, MemberState>,
  ): Promise<LinkObservation> {
    const { from, to } = planned;
    const result = (state: LinkObservation["state"], message?: string): LinkObservation => ({
      ...planned,
      state,
      ...(message ? { message } : {}),
    });
    const a = states.get(from);
    const b = states.get(to);
    if (!a || !b) return result("pending", `${!a ? from : to} cannot be reached or is not set up`);
    try {
      return await this.linkSteps(pass, planned, a, b, result);
    } catch (err) {
      if (err instanceof ApiError || err instanceof EdgeUnreachableError)
        return result("pending", err.message);
      throw err;
    }
  }

  private async linkSteps(
    pass: Pass,
    { from, to }: PlannedLink,
    a: MemberState,
    b: MemberState,
    result: (state: LinkObservation["state"], message?: string) => LinkObservation,
  ): Promise<LinkObservation> {
    const { network, namespace } = pass;
    const token = tokenName(to);
    const grant = grantName(from);
    const step = nextLinkStep({
      from,
      to,
      links: a.links.filter((l) => isLinkOfToken(l.metadata.name ?? "", token)),
      token: a.tokens.get(token),
      grant: b.grants.get(grant),
      site: b.site,
      now: new Date(),
    });
    const metadata = (name: string, extra: Record<string, string> = {}): KubeObject["metadata"] => ({
      name,
      namespace,
      labels: edgeLabels(network),
      annotations: {
        [networkAnnotation]: `${network.metadata.namespace ?? ""}/${network.metadata.name ?? ""}`,
        ...extra,
      },
    });
    const action = step.action;
    switch (action.kind) {
      case "none":
        break;
      case "createGrant":
        await createOrExisting(b.client, AccessGrantResource, {
          metadata: metadata(grant),
          spec: { redemptionsAllowed: 1, expirationWindow: this.options.grantExpiration },
        });
        break;
      case "createToken":
        await createOrExisting(a.client, AccessTokenResource, {
          metadata: metadata(token, { "interconnect.outpost.dev/grant-uid": action.grantUid }),
          spec: { url: action.url, code: action.code, ca: action.ca },
        });
        break;
      case "deleteToken":
        await a.client.delete(AccessTokenResource, token, namespace);
        break;
      case "deleteGrant":
        await b.client.delete(AccessGrantResource, grant, namespace);
        break;
      case "restart":
        await this.deleteLinkObjects(a.client, namespace, token, a.links);
        await b.client.delete(AccessGrantResource, grant, namespace);
        break;
    }
    if (action.kind !== "none") pass.changed = true;
    return result(step.state, step.message);
  }

  /** Removes a token and what Skupper made of it: its Links and their credentials Secret. */
  private async deleteLinkObjects(
    client: KubeClient,
    namespace: string,
    token: string,
    links: Link[],
  ): Promise<void> {
    await client.delete(AccessTokenResource, token, namespace);
    for (const l of links) {
      if (isLinkOfToken(l.metadata.name ?? "", token))
        await client.delete(LinkResource, l.metadata.name ?? "", namespace);
    }
    await client.delete(secretsResource, token, namespace);
  }

  // ---- what is no longer wanted on a member ------------------------------------------

  private async prune(pass: Pass, cluster: string, state: MemberState, topology: Topology): Promise<void> {
    const { namespace } = pass;
    const wantedGrants = new Set(
      topology.links.filter((l) => l.to === cluster).map((l) => grantName(l.from)),
    );
    const wantedTokens = new Set(
      topology.links.filter((l) => l.from === cluster).map((l) => tokenName(l.to)),
    );
    const ours = (o: KubeObject): boolean =>
      o.metadata.labels?.[networkLabel] === edgeLabels(pass.network)[networkLabel] &&
      o.metadata.labels?.[projectLabel] === edgeLabels(pass.network)[projectLabel];
    try {
      for (const [name, g] of state.grants) {
        if (ours(g) && !wantedGrants.has(name)) {
          await state.client.delete(AccessGrantResource, name, namespace);
          pass.changed = true;
        }
      }
      for (const [name, t] of state.tokens) {
        if (ours(t) && !wantedTokens.has(name)) {
          await this.deleteLinkObjects(state.client, namespace, name, state.links);
          pass.changed = true;
        }
      }
      // Links of tokens already gone (a crash between deleting the token and its links).
      for (const l of state.links) {
        const name = l.metadata.name ?? "";
        const fromToken = [...state.tokens.keys(), ...[...wantedTokens]].some((t) => isLinkOfToken(name, t));
        if (name.startsWith("outpost-to-") && !fromToken) {
          await state.client.delete(LinkResource, name, namespace);
          await state.client.delete(secretsResource, name.replace(/-\d+$/, ""), namespace);
          pass.changed = true;
        }
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      this.manager.logger.warn({ cluster, err }, "could not remove an unused grant, token or link");
    }
  }

  /**
   * Removes the network's namespace (and so its Site, grants, tokens, links, listeners
   * and connectors) and its AttachedConnectors elsewhere from `cluster`. True when done,
   * false when the cluster cannot be reached now.
   */
  private async removeFrom(pass: Pass, cluster: string): Promise<boolean> {
    const { network, namespace } = pass;
    const workspace = network.metadata.namespace ?? "";
    try {
      await this.edges.call(workspace, cluster, async (client) => {
        const ns = await client.get<KubeObject>(namespacesResource, namespace);
        if (
          ns &&
          ns.metadata.annotations?.[networkAnnotation] === `${workspace}/${network.metadata.name ?? ""}`
        ) {
          if (!ns.metadata.deletionTimestamp)
            await client.delete(namespacesResource, namespace, undefined, {
              propagationPolicy: "Background",
            });
        }
        const attached = await client.list<KubeObject>(AttachedConnectorResource, {
          labelSelector: edgeSelector(network),
        });
        for (const a of attached.items) {
          await client.delete(AttachedConnectorResource, a.metadata.name ?? "", a.metadata.namespace);
        }
      });
      pass.changed = true;
      return true;
    } catch (err) {
      if (!(err instanceof EdgeUnreachableError)) throw err;
      const registered = this.clusters(workspace).some((c) => c.metadata.name === cluster);
      if (!registered && err.reason === "NoKubeconfig") {
        // The cluster is gone from the fleet and Outpost can no longer reach it: nothing to wait for.
        void this.manager.events.record(
          NetworkResource,
          network,
          "Warning",
          "ClusterGone",
          `cluster ${cluster} was unregistered before its site namespace ${namespace} could be removed; remove it there by hand if the cluster comes back`,
        );
        return true;
      }
      return false;
    }
  }

  // ---- deletion ----------------------------------------------------------------------

  private async finalize(network: Network): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    if (!network.metadata.finalizers?.includes(networkFinalizer)) return undefined;
    const workspace = network.metadata.namespace ?? "";
    const pass: Pass = { network, namespace: siteNamespace(network), changed: false };
    const members = planTopology(network, this.clusters(workspace)).members;
    const targets = [...new Set([...(network.status?.provisioned ?? []), ...members])].sort();
    const removed = await mapLimit(targets, this.options.edgeConcurrency, (c) => this.removeFrom(pass, c));
    const left = targets.filter((_, i) => !removed[i]);
    if (left.length === 0) {
      await removeFinalizer(client, NetworkResource, network, networkFinalizer);
      return undefined;
    }
    const status: Status = structuredClone(network.status ?? {});
    status.provisioned = left;
    Object.assign(
      status,
      summarize(status, network.metadata.generation, {
        kind: "progressing",
        reason: "Deleting",
        message: `waiting to remove the site from ${left.length} unreachable cluster(s): ${left.slice(0, 10).join(", ")}`,
      }),
    );
    try {
      await patchStatus(client, NetworkResource, network, status, fieldManager);
    } catch (err) {
      if (!ApiError.isNotFound(err)) throw err;
    }
    return { requeueAfterMs: this.options.pendingPollMs };
  }
}

/** Creates `obj`; one that exists already (a retry after a crash) is fine. */
async function createOrExisting(
  client: KubeClient,
  r: ResourceType,
  obj: KubeObject & { spec: unknown },
): Promise<void> {
  try {
    await client.create(r, obj);
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 409)) throw err;
  }
}
