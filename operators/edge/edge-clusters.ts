// Clients for edge clusters, from the credentials the management cluster holds where no
// project role reaches: the Secret `<project>.<cluster>` (key `value`, a kubeconfig) in
// the edge credentials namespace (outpost-edges), or else the Argo CD cluster Secret
// registering the cluster for the project, in Argo CD's namespace. Both are read strictly
// (kubeconfig.ts): a server URL, CA data and a token or client certificate, nothing that
// runs a program, reads a file or sends traffic elsewhere. Project namespaces, where
// deployers write Secrets, are never read for edge credentials.
//
// One client per cluster is kept and reused. Its Secret is looked at again after
// `revalidateMs` (a new resourceVersion builds a new client), and at once after a call
// fails for want of a connection or with 401 — so a rotated kubeconfig is picked up
// within that time, or on the first failure. Every call has a connect and a response
// timeout; a call that cannot reach the cluster fails with EdgeUnreachableError, which
// reconcilers report as the cluster being unreachable rather than as their own failure.
import type { KubeConfig } from "@kubernetes/client-node";
import { ApiError, KubeClient, type KubeObject } from "../runtime/client.ts";
import { secretsResource } from "../runtime/core.ts";
import type { Manager } from "../runtime/manager.ts";
import { argoClusterSecrets, fromArgoClusterSecret } from "../inventory/inventory.ts";
import { kubeConfigOf, KubeconfigRefused, strictArgoCluster, strictKubeconfig } from "./kubeconfig.ts";

/** Where the management cluster keeps edge credentials: platform administrators only. */
export const edgeCredentialsNamespace = "outpost-edges";

/** The Secret holding the kubeconfig of cluster `cluster` of project `project`. */
export function edgeSecretName(project: string, cluster: string): string {
  // A namespace has no dot: the first dot separates project and cluster.
  return `${project}.${cluster}`;
}

/** The key of a kubeconfig Secret that holds the kubeconfig. */
export const kubeconfigKey = "value";

export interface EdgeClustersOptions {
  /** The management cluster's client (reads the kubeconfig Secrets). */
  management: KubeClient;
  /** Where the kubeconfig Secrets are. Default outpost-edges. */
  credentialsNamespace?: string;
  /**
   * The Argo CD cluster Secret registering cluster `name` for project `namespace`, if
   * there is one: its name and namespace (Argo CD's); EdgeClusters reads it itself.
   */
  argoCluster?: (namespace: string, name: string) => { name: string; namespace: string } | undefined;
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
    let kc: KubeConfig;
    try {
      if (secret.metadata.labels?.["argocd.argoproj.io/secret-type"] === "cluster") {
        kc = kubeConfigOf(name, strictArgoCluster(decodeKey(secret, "server"), decodeKey(secret, "config")));
      } else {
        const encoded = secret.data?.[kubeconfigKey];
        if (!encoded)
          throw new KubeconfigRefused(kubeconfigKey, "is missing; put the cluster's kubeconfig under it");
        kc = kubeConfigOf(name, strictKubeconfig(Buffer.from(encoded, "base64").toString("utf8")));
      }
    } catch (err) {
      if (!(err instanceof KubeconfigRefused)) throw err;
      throw new EdgeUnreachableError(
        name,
        "InvalidKubeconfig",
        `cluster ${name}: the credentials in Secret ${where} are refused: ${err.message}`,
      );
    }
    return this.remember(key, kc, source, cached);
  }

  private remember(key: string, kc: KubeConfig, source: string, cached: Entry | undefined): Entry {
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
    const credentials = this.options.credentialsNamespace ?? edgeCredentialsNamespace;
    const secretName = edgeSecretName(namespace, name);
    const own = await m.get<Secret>(secretsResource, secretName, credentials);
    if (own) return { secret: own, where: `${credentials}/${secretName}` };
    const argo = this.options.argoCluster?.(namespace, name);
    if (argo) {
      const secret = await m.get<Secret>(secretsResource, argo.name, argo.namespace);
      if (secret) return { secret, where: `${argo.namespace}/${argo.name}` };
    }
    throw new EdgeUnreachableError(
      name,
      "NoKubeconfig",
      `cluster ${name}: no credentials; a platform administrator registers it (kubectl outpost register-cluster), which writes Secret ${credentials}/${secretName} with the cluster's kubeconfig under key "${kubeconfigKey}"`,
    );
  }
}

const decodeKey = (s: Secret, key: string): string =>
  s.data?.[key] === undefined ? "" : Buffer.from(s.data[key], "base64").toString("utf8");

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
 * (interconnect, ops) share clients and Secret reads.
 */
export function edgeClustersOf(manager: Manager): EdgeClusters {
  let edges = perManager.get(manager);
  if (!edges) {
    const argo = argoClusterSecrets(manager);
    edges = new EdgeClusters({
      management: manager.client,
      ...(argo
        ? {
            argoCluster: (ns: string, name: string) => {
              const s = argo.cache
                .byLabels({ "outpost.dev/project": ns })
                .find((x) => fromArgoClusterSecret(x).metadata.name === name);
              return s ? { name: s.metadata.name ?? "", namespace: s.metadata.namespace ?? "" } : undefined;
            },
          }
        : {}),
      userAgent: `${manager.fieldManager}/${manager.identity}`,
    });
    perManager.set(manager, edges);
  }
  return edges;
}
