// A small REST client for the Kubernetes API, used by every operator.
//
// Authentication comes from @kubernetes/client-node's KubeConfig, but the connection pool
// is ours: client-node builds a new undici Agent - a new TLS connection - for every
// request, which an operator making thousands of writes cannot afford. Custom resources
// are sent as JSON with the content type of the operation (server-side apply, merge
// patch), never through client-node's model serializer, which drops unknown fields.
import { KubeConfig, RequestContext, HttpMethod } from "@kubernetes/client-node";
import { Agent, request, type Dispatcher } from "undici";

/** Where a kind is served. Declared, not discovered: operators know what they manage. */
export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: unknown[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface ObjectList<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export const apiVersionOf = (r: ResourceType): string => (r.group ? `${r.group}/${r.version}` : r.version);

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  static isNotFound = (err: unknown): boolean => err instanceof ApiError && err.code === 404;
  static isConflict = (err: unknown): boolean => err instanceof ApiError && err.code === 409;
  static isGone = (err: unknown): boolean => err instanceof ApiError && err.code === 410;
}

/** Request headers; a list is sent as repeated header lines (Impersonate-Group). */
type Headers = Record<string, string | string[]>;

type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  timeoutSeconds?: number;
  signal?: AbortSignal;
}

const headerRefreshMs = 30_000;

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  private dispatcher: Dispatcher | undefined;
  private http1: Dispatcher | undefined;
  private connect: Agent.Options["connect"];
  private headers: Headers = {};
  private headersAt = 0;

  constructor(
    kubeConfig: KubeConfig,
    readonly options: {
      userAgent?: string;
      connections?: number;
      /** Default time for a response (headers, then each body chunk). Default 60 s. */
      requestTimeoutMs?: number;
      /** Time to establish a connection (TCP and TLS). Default 10 s. */
      connectTimeoutMs?: number;
      /** Act as this user and groups (Impersonate-* headers; the caller needs `impersonate` rights). */
      impersonate?: { user: string; groups?: string[] };
    } = {},
  ) {
    this.kubeConfig = kubeConfig;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster");
    this.server = cluster.server.replace(/\/$/, "");
  }

  /** Auth headers (refreshed: exec and token credentials expire) and the shared connection pool. */
  private async auth(): Promise<{ headers: Headers; dispatcher: Dispatcher | undefined }> {
    const now = Date.now();
    if (now - this.headersAt > headerRefreshMs) {
      const ctx = new RequestContext(this.server, HttpMethod.GET);
      await this.kubeConfig.applySecurityAuthentication(ctx);
      this.headers = ctx.getHeaders();
      const as = this.options.impersonate;
      if (as) {
        this.headers["Impersonate-User"] = as.user;
        // One header line per group: undici sends an array as repeated header lines.
        if (as.groups?.length) this.headers["Impersonate-Group"] = as.groups;
      }
      if (!this.dispatcher) {
        // Reuse the TLS settings client-node derived, in one pooled agent of our own.
        const opts: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean } = {};
        await this.kubeConfig.applyToHTTPSOptions(opts);
        this.connect = {
          timeout: this.options.connectTimeoutMs ?? 10_000,
          ca: opts.ca,
          cert: opts.cert,
          key: opts.key,
          rejectUnauthorized: opts.rejectUnauthorized ?? true,
        };
        this.dispatcher = new Agent({
          connections: this.options.connections ?? 16,
          pipelining: 1,
          keepAliveTimeout: 30_000,
          connect: this.connect,
        });
      }
      this.headersAt = now;
    }
    return { headers: this.headers, dispatcher: this.dispatcher };
  }

  /**
   * What a proxy needs to send its own requests to this API server: the origin, the
   * authentication headers and the pooled, TLS-configured dispatcher.
   */
  async transport(): Promise<{ origin: string; headers: Headers; dispatcher: Dispatcher }> {
    const { headers, dispatcher } = await this.auth();
    if (!dispatcher) throw new Error("no dispatcher");
    return { origin: this.server, headers, dispatcher };
  }

  /**
   * Like transport(), with a dispatcher that speaks HTTP/1.1 only: an upgrade (WebSocket)
   * needs it, since the API server does not offer HTTP/2's extended CONNECT.
   */
  async upgradeTransport(): Promise<{
    origin: string;
    headers: Headers;
    dispatcher: Dispatcher;
  }> {
    const { headers } = await this.auth();
    this.http1 ??= new Agent({ allowH2: false, keepAliveTimeout: 30_000, connect: this.connect });
    return { origin: this.server, headers, dispatcher: this.http1 };
  }

  /** Closes pooled connections; requests still open after `graceMs` (watches) are cut. */
  async close(graceMs = 2000): Promise<void> {
    const dispatcher = this.dispatcher;
    this.dispatcher = undefined;
    const http1 = this.http1;
    this.http1 = undefined;
    if (http1) void http1.destroy();
    this.headersAt = 0;
    if (!dispatcher) return;
    const closed = dispatcher.close().then(() => true);
    const timer = new Promise<boolean>((resolve) => setTimeout(resolve, graceMs, false).unref());
    if (!(await Promise.race([closed, timer]))) await dispatcher.destroy();
  }

  path(r: ResourceType, namespace?: string, name?: string, subresource?: string): string {
    const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
    const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
    const n = name ? `/${encodeURIComponent(name)}` : "";
    const sub = subresource ? `/${subresource}` : "";
    return `${base}${ns}/${r.plural}${n}${sub}`;
  }

  private url(path: string, query?: Query): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return `${this.server}${path}${qs ? `?${qs}` : ""}`;
  }

  /**
   * One API call. A 429 (the API server's flow control, or a watch cache still
   * initializing) is retried after its Retry-After, as client-go does, up to 5 times.
   */
  async request<T>(method: Dispatcher.HttpMethod, path: string, options: RequestOptions = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.requestOnce<T>(method, path, options);
      } catch (err) {
        if (!(err instanceof ApiError) || err.code !== 429 || attempt >= 5 || options.signal?.aborted)
          throw err;
        const retryAfter =
          (err.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds ?? 1;
        await new Promise((r) => setTimeout(r, Math.min(10, Math.max(0.1, retryAfter)) * 1000));
      }
    }
  }

  private async requestOnce<T>(
    method: Dispatcher.HttpMethod,
    path: string,
    options: RequestOptions,
  ): Promise<T> {
    const { headers, dispatcher } = await this.auth();
    const res = await request(this.url(path, options.query), {
      method,
      dispatcher,
      headers: {
        ...headers,
        accept: "application/json",
        ...(this.options.userAgent ? { "user-agent": this.options.userAgent } : {}),
        ...(options.body !== undefined ? { "content-type": options.contentType ?? "application/json" } : {}),
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      headersTimeout: options.timeoutMs ?? this.options.requestTimeoutMs ?? 60_000,
      bodyTimeout: options.timeoutMs ?? this.options.requestTimeoutMs ?? 60_000,
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw toApiError(res.statusCode, text, `${method} ${path}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async get<T extends KubeObject>(r: ResourceType, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.request<T>("GET", this.path(r, namespace, name));
    } catch (err) {
      if (ApiError.isNotFound(err)) return undefined;
      throw err;
    }
  }

  list<T extends KubeObject>(r: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    const { namespace, ...query } = options;
    return this.request<ObjectList<T>>("GET", this.path(r, namespace), { query: { ...query } });
  }

  /** Creates `obj`; `dryRun` runs authorization, admission and validation only. */
  create<T extends KubeObject>(r: ResourceType, obj: T, options: { dryRun?: boolean } = {}): Promise<T> {
    return this.request<T>("POST", this.path(r, obj.metadata.namespace), {
      body: { apiVersion: apiVersionOf(r), kind: r.kind, ...obj },
      ...(options.dryRun ? { query: { dryRun: "All" } } : {}),
    });
  }

  /**
   * Server-side apply of `obj` (the fields this manager owns) with `fieldManager`.
   * `subresource: "status"` applies status.
   */
  apply<T extends KubeObject>(
    r: ResourceType,
    obj: T,
    options: { fieldManager: string; force?: boolean; subresource?: string; dryRun?: boolean },
  ): Promise<T> {
    const { name, namespace } = obj.metadata;
    if (!name) throw new Error(`apply of ${r.kind} needs metadata.name`);
    return this.request<T>("PATCH", this.path(r, namespace, name, options.subresource), {
      body: { apiVersion: apiVersionOf(r), kind: r.kind, ...obj },
      contentType: "application/apply-patch+yaml",
      query: {
        fieldManager: options.fieldManager,
        force: options.force ?? true,
        dryRun: options.dryRun ? "All" : undefined,
      },
    });
  }

  /** JSON merge patch (RFC 7386), optionally of a subresource. */
  mergePatch<T extends KubeObject>(
    r: ResourceType,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    options: { subresource?: string; fieldManager?: string } = {},
  ): Promise<T> {
    return this.request<T>("PATCH", this.path(r, namespace, name, options.subresource), {
      body: patch,
      contentType: "application/merge-patch+json",
      query: { fieldManager: options.fieldManager },
    });
  }

  /** JSON patch (RFC 6902): use a `test` op for optimistic concurrency. */
  jsonPatch<T extends KubeObject>(
    r: ResourceType,
    name: string,
    namespace: string | undefined,
    ops: unknown[],
    options: { subresource?: string; fieldManager?: string } = {},
  ): Promise<T> {
    return this.request<T>("PATCH", this.path(r, namespace, name, options.subresource), {
      body: ops,
      contentType: "application/json-patch+json",
      query: { fieldManager: options.fieldManager },
    });
  }

  replace<T extends KubeObject>(r: ResourceType, obj: T, subresource?: string): Promise<T> {
    const { name, namespace } = obj.metadata;
    if (!name) throw new Error(`replace of ${r.kind} needs metadata.name`);
    return this.request<T>("PUT", this.path(r, namespace, name, subresource), {
      body: { apiVersion: apiVersionOf(r), kind: r.kind, ...obj },
    });
  }

  /** Deletes; a missing object is not an error (returns false). */
  async delete(
    r: ResourceType,
    name: string,
    namespace?: string,
    options: { propagationPolicy?: "Foreground" | "Background" | "Orphan"; uid?: string } = {},
  ): Promise<boolean> {
    try {
      await this.request("DELETE", this.path(r, namespace, name), {
        body: {
          kind: "DeleteOptions",
          apiVersion: "v1",
          propagationPolicy: options.propagationPolicy,
          preconditions: options.uid ? { uid: options.uid } : undefined,
        },
      });
      return true;
    } catch (err) {
      if (ApiError.isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Streams watch events to `onEvent` until the server ends the watch, `signal` aborts,
   * or no byte arrives for `idleTimeoutMs` (the caller's watchdog). An ERROR event with a
   * Status (such as 410 Gone) is thrown as an ApiError.
   */
  async watch<T>(
    r: ResourceType,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
    idleTimeoutMs = 300_000,
  ): Promise<void> {
    const { headers, dispatcher } = await this.auth();
    const { namespace, signal, ...query } = options;
    const res = await request(
      this.url(this.path(r, namespace), { ...query, watch: true, allowWatchBookmarks: true }),
      {
        method: "GET",
        dispatcher,
        headers: { ...headers, accept: "application/json" },
        signal,
        headersTimeout: idleTimeoutMs,
        bodyTimeout: idleTimeoutMs,
      },
    );
    if (res.statusCode >= 400) throw toApiError(res.statusCode, await res.body.text(), `watch ${r.plural}`);
    // One JSON event per line. Iterating the body (not readline, which swallows stream
    // errors) makes an abort or a broken connection end the watch with an error.
    let buffered = "";
    res.body.setEncoding("utf8");
    for await (const chunk of res.body as AsyncIterable<string>) {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        const event = JSON.parse(line) as WatchEvent<T>;
        if (event.type === "ERROR") {
          const status = event.object as { code?: number; reason?: string; message?: string };
          throw new ApiError(
            status.code ?? 500,
            status.reason ?? "",
            status.message ?? "watch error",
            status,
          );
        }
        onEvent(event);
      }
    }
  }
}

function toApiError(code: number, text: string, what: string): ApiError {
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string; details?: unknown };
    return new ApiError(code, status.reason ?? "", status.message ?? `${what}: HTTP ${code}`, status.details);
  } catch {
    return new ApiError(code, "", `${what}: HTTP ${code} ${text.slice(0, 200)}`);
  }
}

/** `namespace/name`, or `name` for cluster-scoped objects: the work-queue key. */
export function keyOf(obj: { metadata: ObjectMeta }): string {
  const { namespace, name } = obj.metadata;
  return namespace ? `${namespace}/${name ?? ""}` : (name ?? "");
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
