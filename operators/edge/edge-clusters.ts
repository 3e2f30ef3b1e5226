// Clients for edge clusters, from the kubeconfig Secrets the management cluster holds:
// the Cluster API convention (Secret `<cluster>-kubeconfig`, key `value`, in the cluster's
// namespace) or, failing that, the Fleet Cluster's `spec.kubeConfigSecret` (key `value`,
// in `spec.kubeConfigSecretNamespace` or the cluster's namespace).
//
// One client per cluster is kept and reused. Its Secret is looked at again after
// `revalidateMs` (a new resourceVersion builds a new client), and at once after a call
// fails for want of a connection or with 401 — so a rotated kubeconfig is picked up
// within that time, or on the first failure. Every call has a connect and a response
// timeout; a call that cannot reach the cluster fails with EdgeUnreachableError, which
// reconcilers report as the cluster being unreachable rather than as their own failure.
import { KubeConfig } from "@kubernetes/client-node";
import { ApiError, KubeClient, type KubeObject } from "../runtime/client.ts";
import { secretsResource } from "../runtime/core.ts";
import type { Manager } from "../runtime/manager.ts";
import { FleetClusterResource } from "../deploy/fleet.ts";

/** The key of a kubeconfig Secret that holds the kubeconfig (Cluster API and Fleet). */
export const kubeconfigKey = "value";

/** The Fleet Cluster fields this module reads. */
export interface EdgeClusterRef extends KubeObject {
  spec?: { kubeConfigSecret?: string; kubeConfigSecretNamespace?: string };
}

export interface EdgeClustersOptions {
  /** The management cluster's client (reads the kubeconfig Secrets). */
  management: KubeClient;
  /** The Fleet Cluster `name` of `namespace`, if there is one (from an informer cache). */
  fleetCluster?: (namespace: string, name: string) => EdgeClusterRef | undefined;
  /** Time for each edge call's response. Default 10 s. */
  requestTimeoutMs?: number;
  /** Time to connect to an edge API server. Default 5 s. */
  connectTimeoutMs?: number;
  /** Connections per edge API server. Default 4 (the service proxy uses more). */
  connections?: number;
  /** How long a cached client is used before its Secret is checked again. Default 30 s. */
  revalidateMs?: number;
  userAgent?: string;
  now?: () => number;
}

/** An edge cluster cannot be reached, or Outpost has no usable kubeconfig for it. */
export class EdgeUnreachableError extends Error {
  override name = "EdgeUnreachableError";
  constructor(
    readonly cluster: string,
    /** NoKubeconfig, InvalidKubeconfig, Unauthorized or ConnectionFailed. */
    readonly reason: "NoKubeconfig" | "InvalidKubeconfig" | "Unauthorized" | "ConnectionFailed",
    message: string,
  ) {
    super(message);
  }
}

interface Entry {
  client: KubeClient;
  /** namespace/name@resourceVersion of the Secret it was built from. */
  source: string;
  checkedAt: number;
}

interface Secret extends KubeObject {
  data?: Record<string, string>;
}

/**
 * Whether `err` means the cluster did not answer: a system error (refused, reset, no
 * route, DNS), an undici timeout or socket error, or a TLS failure — not an HTTP status.
 */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof ApiError) return false;
  const codes = [
    (err as { code?: unknown }).code,
    ((err as { cause?: unknown }).cause as { code?: unknown } | undefined)?.code,
  ];
  return codes.some(
    (c) =>
      typeof c === "string" &&
      /^(E[A-Z]+|UND_ERR_[A-Z_]+|ERR_TLS_[A-Z_]+|ERR_SSL_[A-Z_]+|CERT_[A-Z_]+|UNABLE_TO_[A-Z_]+|[A-Z_]*SELF_SIGNED[A-Z_]*|HOSTNAME_MISMATCH)$/.test(
        c,
      ),
  );
}

export class EdgeClusters {
  private readonly entries = new Map<string, Entry>();
  private readonly building = new Map<string, Promise<Entry>>();
  private readonly now: () => number;

  constructor(private readonly options: EdgeClustersOptions) {
    this.now = options.now ?? Date.now;
  }

  /** A client for cluster `name` of `namespace` (the Fleet workspace that registers it). */
  async client(namespace: string, name: string): Promise<KubeClient> {
    return (await this.entry(namespace, name)).client;
  }

  /**
   * Runs `fn` with the cluster's client. A connection failure, timeout or 401 becomes an
   * EdgeUnreachableError (and the kubeconfig is read again next time); API errors with a
   * response (404, 409, 422…) pass through unchanged.
   */
  async call<T>(namespace: string, name: string, fn: (client: KubeClient) => Promise<T>): Promise<T> {
    const client = await this.client(namespace, name);
    try {
      return await fn(client);
    } catch (err) {
      if (err instanceof ApiError && err.code === 401) {
        this.invalidate(namespace, name);
        throw new EdgeUnreachableError(
          name,
          "Unauthorized",
          `cluster ${name}: its API server refused the credentials of its kubeconfig Secret (401); renew the Secret`,
        );
      }
      if (isConnectionError(err)) {
        this.invalidate(namespace, name);
        const detail = describe(err);
        throw new EdgeUnreachableError(name, "ConnectionFailed", `cluster ${name} is unreachable: ${detail}`);
      }
      throw err;
    }
  }

  /** Forgets the cached client: the next call reads the kubeconfig Secret again. */
  invalidate(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const entry = this.entries.get(key);
    this.entries.delete(key);
    if (entry) void entry.client.close(0);
  }

  /** Closes every client. */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.client.close(0)));
  }

  private async entry(namespace: string, name: string): Promise<Entry> {
    const key = `${namespace}/${name}`;
    const cached = this.entries.get(key);
    if (cached && this.now() - cached.checkedAt < (this.options.revalidateMs ?? 30_000)) return cached;
    // One Secret read per cluster at a time, however many reconciles ask.
    let pending = this.building.get(key);
    if (!pending) {
      pending = this.load(namespace, name, cached).finally(() => this.building.delete(key));
      this.building.set(key, pending);
    }
    return pending;
  }

  private async load(namespace: string, name: string, cached: Entry | undefined): Promise<Entry> {
    const key = `${namespace}/${name}`;
    const { secret, where } = await this.findSecret(namespace, name);
    const source = `${where}@${secret.metadata.resourceVersion ?? ""}`;
    if (cached?.source === source) {
      cached.checkedAt = this.now();
      return cached;
    }
    const encoded = secret.data?.[kubeconfigKey];
    if (!encoded) {
      throw new EdgeUnreachableError(
        name,
        "InvalidKubeconfig",
        `cluster ${name}: Secret ${where} has no key "${kubeconfigKey}"; put the cluster's kubeconfig under that key`,
      );
    }
    const kc = new KubeConfig();
    try {
      kc.loadFromString(Buffer.from(encoded, "base64").toString("utf8"));
      if (!kc.getCurrentCluster()) throw new Error("it has no current context with a cluster");
    } catch (err) {
      throw new EdgeUnreachableError(
        name,
        "InvalidKubeconfig",
        `cluster ${name}: the kubeconfig in Secret ${where} cannot be used: ${describe(err)}`,
      );
    }
    const client = new KubeClient(kc, {
      userAgent: this.options.userAgent,
      connections: this.options.connections ?? 4,
      requestTimeoutMs: this.options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: this.options.connectTimeoutMs ?? 5_000,
    });
    if (cached) void cached.client.close(0);
    const entry = { client, source, checkedAt: this.now() };
    this.entries.set(key, entry);
    return entry;
  }

  private async findSecret(namespace: string, name: string): Promise<{ secret: Secret; where: string }> {
    const m = this.options.management;
    const capi = await m.get<Secret>(secretsResource, `${name}-kubeconfig`, namespace);
    if (capi) return { secret: capi, where: `${namespace}/${name}-kubeconfig` };
    const fleet = this.options.fleetCluster?.(namespace, name);
    const ref = fleet?.spec?.kubeConfigSecret;
    if (ref) {
      const given = fleet.spec?.kubeConfigSecretNamespace;
      const ns = given !== undefined && given !== "" ? given : namespace;
      const secret = await m.get<Secret>(secretsResource, ref, ns);
      if (secret) return { secret, where: `${ns}/${ref}` };
      throw new EdgeUnreachableError(
        name,
        "NoKubeconfig",
        `cluster ${name}: its Fleet Cluster names kubeConfigSecret ${ns}/${ref}, which does not exist`,
      );
    }
    throw new EdgeUnreachableError(
      name,
      "NoKubeconfig",
      `cluster ${name}: no kubeconfig; create Secret ${namespace}/${name}-kubeconfig with the kubeconfig under key "${kubeconfigKey}" (or set the Fleet Cluster's kubeConfigSecret)`,
    );
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  const code = (err as { code?: string }).code ?? (cause as { code?: string } | undefined)?.code;
  const msg = cause instanceof Error && cause.message ? cause.message : err.message;
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

const perManager = new WeakMap<Manager, EdgeClusters>();

/**
 * The EdgeClusters of an operator process: one per manager, so the controllers in it
 * (interconnect, ops) share clients and Secret reads; Fleet Clusters come from the
 * manager's informer.
 */
export function edgeClustersOf(manager: Manager): EdgeClusters {
  let edges = perManager.get(manager);
  if (!edges) {
    const clusters = manager.informer<EdgeClusterRef>(FleetClusterResource);
    edges = new EdgeClusters({
      management: manager.client,
      fleetCluster: (ns, name) => clusters.cache.get(`${ns}/${name}`),
      userAgent: `${manager.fieldManager}/${manager.identity}`,
    });
    perManager.set(manager, edges);
  }
  return edges;
}
