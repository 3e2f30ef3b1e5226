// The NetworkService reconciler: a Service of a deployed application made reachable on
// other members of a Network. Where the application runs (the clusters it is delivered
// targets, among the members) it binds the Service's pods to a routing key — a Skupper
// Connector when the application lives in the site's namespace, otherwise an
// AttachedConnector in the application's namespace with its AttachedConnectorBinding in
// the site's. Where it is consumed it creates a Listener, which gives the service a host
// name and port there.
//
// The pods are the Service's own: its selector, and the port its targetPort names, read
// from the cluster (spec.selector overrides both, with spec.port as the pods' port).
import { isDeepStrictEqual } from "node:util";
import type { NetworkService } from "../api/network-service.generated.ts";
import type { Network } from "../api/network.generated.ts";
import { NetworkResource, NetworkServiceResource } from "../api/resources.generated.ts";
import { deliveriesOf } from "../deploy/delivered.ts";
import { EdgeUnreachableError, type EdgeClusters } from "../edge/edge-clusters.ts";
import { inventoryOf, targetedClusters, type InventoryCluster } from "../inventory/inventory.ts";
import { ApiError, keyOf, type KubeClient, type KubeObject, type ResourceType } from "../runtime/client.ts";
import { summarize } from "../runtime/conditions.ts";
import { requestedAtAnnotation, type Request, type Result } from "../runtime/controller.ts";
import { withUnreachable } from "./status.ts";
import { namespacesResource, podsResource, servicesResource } from "../runtime/core.ts";
import type { Manager } from "../runtime/manager.ts";
import { mapLimit } from "../runtime/pool.ts";
import { addFinalizer, patchStatus, removeFinalizer, withStatus } from "../runtime/reconcile.ts";
import type { InterconnectOptions } from "./network.ts";
import {
  AttachedConnectorBindingResource,
  AttachedConnectorResource,
  ConnectorResource,
  ListenerResource,
  skupperError,
  skupperReady,
  type SkupperStatus,
} from "./skupper.ts";
import {
  edgeLabels,
  memberNames,
  networkAnnotation,
  projectLabel,
  serviceLabel,
  siteNamespace,
} from "./topology.ts";
import { dnsName } from "../runtime/names.ts";
import { matches } from "../inventory/selector.ts";

export const serviceFinalizer = "interconnect.outpost.dev/cleanup";

type Status = NonNullable<NetworkService["status"]>;

interface EdgeService extends KubeObject {
  spec?: {
    selector?: Record<string, string>;
    ports?: { name?: string; port: number; targetPort?: number | string }[];
  };
}

interface EdgePod extends KubeObject {
  spec?: { containers?: { ports?: { name?: string; containerPort: number }[] }[] };
}

/** One Skupper object the service wants on a cluster. */
interface Wanted {
  r: ResourceType;
  obj: KubeObject & { spec: Record<string, unknown> };
}

interface Binding {
  cluster: string;
  role: "connector" | "listener";
  ready: boolean;
  unreachable?: boolean;
  message?: string;
}

/** The routing key of a NetworkService: spec.routingKey, or `<namespace>-<name>`. */
export function routingKeyOf(svc: NetworkService): string {
  return svc.spec.routingKey ?? `${svc.metadata.namespace ?? ""}-${svc.metadata.name ?? ""}`;
}

/** The oldest NetworkService of `others` that uses `svc`'s routing key, if it is not `svc`. */
export function routingKeyOwner(svc: NetworkService, others: NetworkService[]): NetworkService | undefined {
  const key = routingKeyOf(svc);
  const order = (s: NetworkService): string =>
    `${s.metadata.creationTimestamp ?? ""}/${s.metadata.name ?? ""}`;
  const first = others
    .filter((o) => !o.metadata.deletionTimestamp && routingKeyOf(o) === key)
    .sort((a, b) => order(a).localeCompare(order(b)))[0];
  return first && first.metadata.name !== svc.metadata.name ? first : undefined;
}

/** The pod selector as Skupper writes it: `k=v,k2=v2`, keys sorted. */
export function selectorString(selector: Record<string, string | undefined>): string {
  return Object.entries(selector)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

export class NetworkServiceReconciler {
  private readonly pendingPollMs: number;
  private readonly readyPollMs: number;
  private readonly concurrency: number;

  constructor(
    private readonly manager: Manager,
    private readonly edges: EdgeClusters,
    options: InterconnectOptions = {},
  ) {
    this.pendingPollMs = options.pendingPollMs ?? 5_000;
    this.readyPollMs = options.readyPollMs ?? 60_000;
    this.concurrency = options.edgeConcurrency ?? 16;
  }

  private clusters(namespace: string): InventoryCluster[] {
    return inventoryOf(this.manager).clusters(namespace);
  }

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    const svc = await client.get<NetworkService>(NetworkServiceResource, req.name, req.namespace);
    if (!svc) return undefined;
    if (svc.metadata.deletionTimestamp) return this.finalize(svc);
    const current = await addFinalizer(client, NetworkServiceResource, svc, serviceFinalizer);
    const ns = current.metadata.namespace ?? "";
    let requeueAfterMs = this.pendingPollMs;

    await withStatus(client, NetworkServiceResource, current, fieldManager, async (status: Status) => {
      const generation = current.metadata.generation;
      status.lastHandledReconcileAt = current.metadata.annotations?.[requestedAtAnnotation];
      const routingKey = routingKeyOf(current);
      status.routingKey = routingKey;
      const waiting = (reason: string, message: string): void => {
        Object.assign(status, summarize(status, generation, { kind: "progressing", reason, message }));
      };

      const others = this.manager.informer<NetworkService>(NetworkServiceResource).cache.byNamespace(ns);
      const owner = routingKeyOwner(current, [
        ...others.filter((o) => o.metadata.name !== current.metadata.name),
        current,
      ]);
      if (owner) {
        Object.assign(
          status,
          summarize(status, generation, {
            kind: "stalled",
            reason: "RoutingKeyConflict",
            message: `routing key ${routingKey} is already used by NetworkService ${owner.metadata.name ?? ""}; set a different spec.routingKey`,
          }),
        );
        return;
      }
      const network = this.manager
        .informer<Network>(NetworkResource)
        .cache.get(`${ns}/${current.spec.networkRef.name}`);
      if (!network) {
        waiting(
          "NetworkNotFound",
          `Network ${current.spec.networkRef.name} does not exist in namespace ${ns}`,
        );
        return;
      }
      const delivered = deliveriesOf(this.manager)
        .apps(ns, current.spec.deploymentRef.name)
        .find((d) => d.application === current.spec.application);
      if (!delivered) {
        waiting(
          "ApplicationNotDelivered",
          `AppDeployment ${current.spec.deploymentRef.name} does not deliver application ${current.spec.application} to any cluster (yet)`,
        );
        return;
      }
      const appNamespace = delivered.namespace;
      const clusters = this.clusters(ns);
      const members = new Set(memberNames(network.spec.members.clusterSelector, clusters));
      const runs = new Set(targetedClusters(delivered.targets, clusters).map((c) => c.metadata.name ?? ""));
      const providers = [...members].filter((m) => runs.has(m)).sort();
      const consumerSelector = current.spec.consumers?.clusterSelector;
      const consumers = clusters
        .filter((c) =>
          consumerSelector ? matches(consumerSelector, c.metadata.labels) : !runs.has(c.metadata.name ?? ""),
        )
        .map((c) => c.metadata.name ?? "")
        .filter((c) => members.has(c))
        .sort();
      status.providers = providers.length;
      status.consumers = consumers.length;

      const siteNs = siteNamespace(network);
      const bindings = await mapLimit(
        [...new Set([...providers, ...consumers])].sort(),
        this.concurrency,
        (cluster) =>
          this.bind(current, network, cluster, {
            siteNs,
            appNamespace,
            routingKey,
            connector: providers.includes(cluster),
            listener: consumers.includes(cluster),
          }),
      );
      // Members that are neither any more lose what this service put there.
      const others2 = [...members].filter((m) => !providers.includes(m) && !consumers.includes(m));
      await mapLimit(others2, this.concurrency, (cluster) =>
        this.unbind(current, cluster).catch(() => false),
      );

      const all = bindings.flat();
      status.connectors = all.filter((b) => b.role === "connector" && b.ready).length;
      status.listeners = all.filter((b) => b.role === "listener" && b.ready).length;
      status.clusters = all
        .filter((b) => !b.ready)
        .slice(0, 20)
        .map((b) => ({ name: b.cluster, role: b.role, ...(b.message ? { message: b.message } : {}) }));
      const unreachable = [...new Set(all.filter((b) => b.unreachable).map((b) => b.cluster))];
      status.conditions = withUnreachable(status.conditions, unreachable, generation);

      if (providers.length === 0) {
        waiting(
          "NoProvider",
          `application ${current.spec.application} runs on no member of Network ${network.metadata.name ?? ""}`,
        );
        return;
      }
      const notReady = all.filter((b) => !b.ready);
      if (notReady.length === 0) {
        Object.assign(
          status,
          summarize(status, generation, {
            kind: "ready",
            reason: "Bound",
            message: `${routingKey}: ${status.connectors} connector(s), ${status.listeners} listener(s) bound${consumers.length === 0 ? "; no member consumes it" : ""}`,
          }),
        );
        requeueAfterMs = this.readyPollMs;
      } else {
        const first = notReady[0];
        waiting(
          "Binding",
          `${status.connectors}/${providers.length} connectors and ${status.listeners}/${consumers.length} listeners ready${first ? `; ${first.cluster} (${first.role}): ${first.message ?? "not ready"}` : ""}`,
        );
      }
    });
    return { requeueAfterMs };
  }

  // ---- one cluster -----------------------------------------------------------------

  private async bind(
    svc: NetworkService,
    network: Network,
    cluster: string,
    want: { siteNs: string; appNamespace: string; routingKey: string; connector: boolean; listener: boolean },
  ): Promise<Binding[]> {
    const roles: Binding["role"][] = [
      ...(want.connector ? ["connector" as const] : []),
      ...(want.listener ? ["listener" as const] : []),
    ];
    const fail = (message: string, unreachable = false): Binding[] =>
      roles.map((role) => ({
        cluster,
        role,
        ready: false,
        message,
        ...(unreachable ? { unreachable } : {}),
      }));
    try {
      return await this.edges.call(svc.metadata.namespace ?? "", cluster, async (client) => {
        const site = await client.get<KubeObject>(namespacesResource, want.siteNs);
        if (
          !site ||
          site.metadata.annotations?.[networkAnnotation] !==
            `${network.metadata.namespace ?? ""}/${network.metadata.name ?? ""}`
        ) {
          return fail(`waiting for the network's site namespace ${want.siteNs}`);
        }
        const labels = { ...edgeLabels(network), [serviceLabel]: dnsName(svc.metadata.name ?? "", 63) };
        const name = dnsName(svc.metadata.name ?? "", 63);
        const wanted: Wanted[] = [];
        const out: Binding[] = [];
        const problems: string[] = [];
        if (want.connector) {
          const target = await this.podTarget(client, svc, want.appNamespace);
          if ("problem" in target) {
            out.push({ cluster, role: "connector", ready: false, message: target.problem });
            problems.push(target.problem);
          } else if (want.appNamespace === want.siteNs) {
            wanted.push({
              r: ConnectorResource,
              obj: {
                metadata: { name, namespace: want.siteNs, labels },
                spec: { routingKey: want.routingKey, selector: target.selector, port: target.port },
              },
            });
          } else {
            wanted.push(
              {
                r: AttachedConnectorResource,
                obj: {
                  metadata: { name, namespace: want.appNamespace, labels },
                  spec: { siteNamespace: want.siteNs, selector: target.selector, port: target.port },
                },
              },
              {
                r: AttachedConnectorBindingResource,
                obj: {
                  metadata: { name, namespace: want.siteNs, labels },
                  spec: { connectorNamespace: want.appNamespace, routingKey: want.routingKey },
                },
              },
            );
          }
        }
        if (want.listener) {
          wanted.push({
            r: ListenerResource,
            obj: {
              metadata: { name, namespace: want.siteNs, labels },
              spec: {
                routingKey: want.routingKey,
                host: svc.spec.host ?? svc.spec.service,
                port: svc.spec.listenerPort ?? svc.spec.port,
              },
            },
          });
        }
        const applied = await this.sync(client, svc, wanted);
        const state = (kinds: string[]): { ready: boolean; message?: string } => {
          const objs = kinds.map((k) => applied.get(k));
          if (objs.some((o) => !o)) return { ready: false };
          const err = objs.map((o) => skupperError(o)).find(Boolean);
          if (err) return { ready: false, message: err };
          const notReady = objs.find((o) => !skupperReady(o));
          return notReady
            ? {
                ready: false,
                message:
                  notReady.status?.message !== undefined && notReady.status.message !== ""
                    ? notReady.status.message
                    : "waiting for Skupper",
              }
            : { ready: true };
        };
        if (want.connector && problems.length === 0) {
          const s = state(
            want.appNamespace === want.siteNs
              ? ["Connector"]
              : ["AttachedConnector", "AttachedConnectorBinding"],
          );
          out.push({ cluster, role: "connector", ...s });
        }
        if (want.listener) out.push({ cluster, role: "listener", ...state(["Listener"]) });
        return out;
      });
    } catch (err) {
      if (err instanceof EdgeUnreachableError) return fail(err.message, true);
      if (err instanceof ApiError) return fail(`API error on the cluster: ${err.message}`);
      throw err;
    }
  }

  /** The pods behind the service on a cluster: selector and port, or why they are not known. */
  private async podTarget(
    client: KubeClient,
    svc: NetworkService,
    appNamespace: string,
  ): Promise<{ selector: string; port: number } | { problem: string }> {
    if (svc.spec.selector && Object.keys(svc.spec.selector).length > 0) {
      return { selector: selectorString(svc.spec.selector), port: svc.spec.port };
    }
    const service = await client.get<EdgeService>(servicesResource, svc.spec.service, appNamespace);
    if (!service) {
      return {
        problem: `Service ${appNamespace}/${svc.spec.service} does not exist there (is the application installed yet?)`,
      };
    }
    const selector = service.spec?.selector ?? {};
    if (Object.keys(selector).length === 0) {
      return {
        problem: `Service ${appNamespace}/${svc.spec.service} has no pod selector; set spec.selector to the pods' labels`,
      };
    }
    const port = service.spec?.ports?.find((p) => p.port === svc.spec.port);
    if (!port) {
      const have = (service.spec?.ports ?? []).map((p) => p.port).join(", ");
      return {
        problem: `Service ${appNamespace}/${svc.spec.service} has no port ${svc.spec.port} (it has ${have || "none"})`,
      };
    }
    const target = port.targetPort ?? port.port;
    if (typeof target === "number") return { selector: selectorString(selector), port: target };
    if (/^\d+$/.test(target)) return { selector: selectorString(selector), port: Number(target) };
    // A named targetPort: the pods say which number it is.
    const pods = await client.list<EdgePod>(podsResource, {
      namespace: appNamespace,
      labelSelector: selectorString(selector),
      limit: 20,
    });
    for (const pod of pods.items) {
      for (const c of pod.spec?.containers ?? []) {
        const p = c.ports?.find((x) => x.name === target);
        if (p) return { selector: selectorString(selector), port: p.containerPort };
      }
    }
    return {
      problem: `Service ${appNamespace}/${svc.spec.service} targets port "${target}", which no pod names yet`,
    };
  }

  /**
   * Makes this service's Skupper objects on the cluster exactly `wanted`: one list per
   * kind finds what is there; only objects that differ are applied (an unchanged binding
   * costs no write on each poll) and the others deleted. Returns the objects, with their
   * status, by kind.
   */
  private async sync(
    client: KubeClient,
    svc: NetworkService,
    wanted: Wanted[],
  ): Promise<Map<string, KubeObject & { status?: SkupperStatus }>> {
    const selector = `${serviceLabel}=${dnsName(svc.metadata.name ?? "", 63)},${projectLabel}=${dnsName(svc.metadata.namespace ?? "", 63)}`;
    const out = new Map<string, KubeObject & { status?: SkupperStatus }>();
    for (const r of [
      ConnectorResource,
      ListenerResource,
      AttachedConnectorResource,
      AttachedConnectorBindingResource,
    ]) {
      const found = await client.list<
        KubeObject & { spec?: Record<string, unknown>; status?: SkupperStatus }
      >(r, {
        labelSelector: selector,
      });
      const want = wanted.filter((w) => w.r.kind === r.kind);
      for (const o of found.items) {
        if (!want.some((w) => keyOf(w.obj) === keyOf(o))) {
          await client.delete(r, o.metadata.name ?? "", o.metadata.namespace);
        }
      }
      for (const w of want) {
        const have = found.items.find((o) => keyOf(o) === keyOf(w.obj));
        const same =
          have !== undefined &&
          Object.entries(w.obj.spec).every(([k, v]) => isDeepStrictEqual(have.spec?.[k], v)) &&
          Object.entries(w.obj.metadata.labels ?? {}).every(([k, v]) => have.metadata.labels?.[k] === v);
        out.set(
          r.kind,
          same ? have : await client.apply(r, w.obj, { fieldManager: this.manager.fieldManager }),
        );
      }
    }
    return out;
  }

  /** Removes everything of this service from `cluster`; false when it cannot be reached. */
  private async unbind(svc: NetworkService, cluster: string): Promise<boolean> {
    try {
      await this.edges.call(svc.metadata.namespace ?? "", cluster, (client) => this.sync(client, svc, []));
      return true;
    } catch (err) {
      if (err instanceof EdgeUnreachableError) {
        const registered = this.clusters(svc.metadata.namespace ?? "").some(
          (c) => c.metadata.name === cluster,
        );
        return !registered && err.reason === "NoKubeconfig";
      }
      if (err instanceof ApiError && err.code === 404) return true; // Skupper's CRDs are gone there
      throw err;
    }
  }

  private async finalize(svc: NetworkService): Promise<Result | undefined> {
    const { client, fieldManager } = this.manager;
    if (!svc.metadata.finalizers?.includes(serviceFinalizer)) return undefined;
    const ns = svc.metadata.namespace ?? "";
    const network = this.manager
      .informer<Network>(NetworkResource)
      .cache.get(`${ns}/${svc.spec.networkRef.name}`);
    const targets = network
      ? [
          ...new Set([
            ...(network.status?.provisioned ?? []),
            ...memberNames(network.spec.members.clusterSelector, this.clusters(ns)),
          ]),
        ]
      : [];
    const done = await mapLimit(targets, this.concurrency, (c) => this.unbind(svc, c));
    const left = targets.filter((_, i) => !done[i]);
    if (left.length === 0) {
      await removeFinalizer(client, NetworkServiceResource, svc, serviceFinalizer);
      return undefined;
    }
    const status: Status = structuredClone(svc.status ?? {});
    Object.assign(
      status,
      summarize(status, svc.metadata.generation, {
        kind: "progressing",
        reason: "Deleting",
        message: `waiting to remove the service's connectors and listeners from unreachable cluster(s): ${left.slice(0, 10).join(", ")}`,
      }),
    );
    try {
      await patchStatus(client, NetworkServiceResource, svc, status, fieldManager);
    } catch (err) {
      if (!ApiError.isNotFound(err)) throw err;
    }
    return { requeueAfterMs: this.pendingPollMs };
  }
}
