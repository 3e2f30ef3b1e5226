// outpost-service-proxy: one door to the web UIs and APIs of applications on edge
// clusters. Route: /<project>/<cluster>/<namespace>/<service>:<port>/<path…>, forwarded
// to the edge API server's service proxy with the cluster's kubeconfig Secret.
//
// For each request:
//   1. route — parsed and checked (route.ts): nothing can leave it;
//   2. authentication — a bearer token (or the session cookie `POST /_login` sets from
//      one), checked with a TokenReview on the management cluster (reused 10 s, and up to
//      30 s while a fresh answer is fetched);
//   3. rate limit — a token bucket per user;
//   4. exposure — an AppDeployment of the project exports the service (Application
//      serviceExports) and runs it in that namespace on that cluster (exposure.ts);
//   5. authorization — a SubjectAccessReview in the project namespace: verb get (GET,
//      HEAD, OPTIONS) or create (anything else, and WebSockets) on
//      `appdeployments/proxy` named after that deployment (cached 10 s);
//   6. forwarding — headers cleaned both ways (no user credentials, impersonation or
//      hop-by-hop headers upstream; no off-site redirects back), bodies streamed both
//      ways, WebSocket upgrades joined byte for byte;
//   7. an access log line.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Dispatcher } from "undici";
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
} from "../api/resources.generated.ts";
import { Deliveries } from "../deploy/delivered.ts";
import { fromArgoClusterSecret, slimClusterSecret } from "../inventory/inventory.ts";
import { EdgeClusters, EdgeUnreachableError } from "../edge/edge-clusters.ts";
import { ApiError, type KubeClient, type KubeObject, type ResourceType } from "../runtime/client.ts";
import { secretsResource } from "../runtime/core.ts";
import { Informer, type InformerOptions } from "../runtime/informer.ts";
import { exposingDeployment } from "./exposure.ts";
import { RateLimiter } from "./ratelimit.ts";
import {
  parseRoute,
  requestHeaders,
  responseHeaders,
  RouteError,
  upstreamPath,
  type Route,
} from "./route.ts";
import { argoSecretTypeLabel, FleetClusterResource, projectLabel } from "../inventory/registrations.ts";

export const sessionCookie = "outpost_proxy_session";

export interface ServiceProxyOptions {
  management: KubeClient;
  logger: Logger;
  /** Requests a second per user, and the burst allowed. Default 50 and 100. */
  rate?: number;
  burst?: number;
  /**
   * How long TokenReview and SubjectAccessReview answers are reused: `cacheMs`, and up to
   * three times that while a fresh answer is fetched. Default 10 s.
   */
  cacheMs?: number;
  /** Set the session cookie Secure (the proxy is behind TLS). Default true. */
  secureCookie?: boolean;
  /** Argo CD's namespace, when projects deliver with Argo CD (its ApplicationSets and cluster Secrets). */
  argocdNamespace?: string;
}

interface User {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

const tokenReviews: ResourceType = {
  group: "authentication.k8s.io",
  version: "v1",
  kind: "TokenReview",
  plural: "tokenreviews",
  namespaced: false,
};
const accessReviews: ResourceType = {
  group: "authorization.k8s.io",
  version: "v1",
  kind: "SubjectAccessReview",
  plural: "subjectaccessreviews",
  namespaced: false,
};

class Denied extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const safeMethods = new Set(["GET", "HEAD", "OPTIONS"]);

export class ServiceProxy {
  private server: Server | undefined;
  private readonly edges: EdgeClusters;
  private readonly limiter: RateLimiter;
  private readonly cache = new Map<
    string,
    { at: number; value: Promise<unknown>; settled: boolean; refreshing: boolean }
  >();
  private readonly informers: {
    deployments: Informer<AppDeployment>;
    packages: Informer<DeploymentPackage>;
    applications: Informer<Application>;
    clusters: Informer<KubeObject>;
    /** With Argo CD: the cluster Secrets (credentials stripped). */
    argoClusters?: Informer<KubeObject>;
  };
  /** What deployments deliver, whichever engine delivers them. */
  private readonly deliveries: Deliveries;
  private readonly sockets = new Set<Duplex>();

  constructor(private readonly options: ServiceProxyOptions) {
    const m = options.management;
    const informer = <T extends KubeObject>(
      r: ResourceType,
      o: Partial<InformerOptions<T>> = {},
    ): Informer<T> => new Informer<T>(m, r, o);
    const argo = options.argocdNamespace;
    this.informers = {
      deployments: informer(AppDeploymentResource),
      packages: informer(DeploymentPackageResource),
      applications: informer(ApplicationResource),
      // Fleet's kinds are optional: a project may deliver with Argo CD only.
      clusters: informer(FleetClusterResource, { optional: true }),
      ...(argo
        ? {
            argoClusters: informer<KubeObject>(secretsResource, {
              namespace: argo,
              labelSelector: `${argoSecretTypeLabel}=cluster,${projectLabel}`,
              transform: slimClusterSecret,
            }),
          }
        : {}),
    };
    this.deliveries = new Deliveries(informer, argo);
    const argoClusters = this.informers.argoClusters;
    this.edges = new EdgeClusters({
      management: m,
      ...(argoClusters
        ? {
            argoCluster: (ns: string, name: string) => {
              const s = argoClusters.cache
                .byLabels({ [projectLabel]: ns })
                .find((x) => fromArgoClusterSecret(x).metadata.name === name);
              return s ? { name: s.metadata.name ?? "", namespace: s.metadata.namespace ?? "" } : undefined;
            },
          }
        : {}),
      userAgent: "outpost-service-proxy",
      requestTimeoutMs: 60_000,
      connections: 16,
    });
    this.limiter = new RateLimiter(options.rate ?? 50, options.burst ?? 100);
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  private allInformers(): Informer<KubeObject>[] {
    return [
      ...(Object.values(this.informers) as Informer<KubeObject>[]),
      ...this.deliveries.sources.map((d) => d.informer),
    ];
  }

  /** Starts the caches, then listens on `port` (0: any) of `host`. */
  async listen(port: number, host = "0.0.0.0"): Promise<void> {
    // Routes are resolved from the caches: serve only once each holds a complete list, or
    // (kinds that may not be installed) its kind is known not to be served. Otherwise the
    // first requests after a start get 404 for routes that exist.
    const informers = this.allInformers();
    await Promise.all(informers.map((i) => (i.optional ? (void i.start(), i.settled) : i.start())));
    const server = createServer((req, res) => {
      void this.handle(req, res);
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.upgrade(req, socket, head);
    });
    // Requests whose framing is ambiguous (Content-Length with Transfer-Encoding, bad
    // chunking) are refused by Node's parser before they reach a handler.
    server.on("clientError", (_err, socket: Duplex) => {
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(port, host, resolve));
  }

  /** Stops taking connections, lets requests in flight finish for `graceMs`, then cuts. */
  async close(graceMs = 5_000): Promise<void> {
    const server = this.server;
    if (server) {
      const closed = new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        server.closeAllConnections();
        for (const s of this.sockets) s.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    }
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.allInformers().map((i) => i.stop()));
    await this.edges.close();
  }

  // ---- the steps -------------------------------------------------------------------

  /**
   * `load()` once per `key` and `cacheMs`: concurrent callers share the call in flight.
   * For up to twice `cacheMs` more, the last answer is still served while one call
   * refreshes it in the background — so under load an expiring entry never holds
   * requests up. A failed load is not kept.
   */
  private cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.cache.get(key);
    const ttl = this.options.cacheMs ?? 10_000;
    const age = hit ? Date.now() - hit.at : Infinity;
    if (hit && (age < ttl || !hit.settled)) return hit.value as Promise<T>;
    if (hit && age < 3 * ttl) {
      // Stale but recent: answer with it, and refresh it once for everyone.
      if (!hit.refreshing) {
        hit.refreshing = true;
        load().then(
          (v) => {
            this.cache.set(key, {
              at: Date.now(),
              value: Promise.resolve(v),
              settled: true,
              refreshing: false,
            });
          },
          () => {
            hit.refreshing = false;
          },
        );
      }
      return hit.value as Promise<T>;
    }
    const value = load();
    if (this.cache.size > 10_000) this.cache.clear();
    const entry = { at: Date.now(), value, settled: false, refreshing: false };
    this.cache.set(key, entry);
    value.then(
      () => {
        entry.settled = true;
      },
      () => {
        if (this.cache.get(key) === entry) this.cache.delete(key);
      },
    );
    return value;
  }

  private tokenOf(req: IncomingMessage): string | undefined {
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      return m?.[1];
    }
    for (const part of (req.headers.cookie ?? "").split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === sessionCookie) return decodeURIComponent(v.join("="));
    }
    return undefined;
  }

  private async authenticate(token: string | undefined): Promise<User> {
    if (!token)
      throw new Denied(401, "a bearer token is required (Authorization: Bearer …, or log in at /_login)", {
        "www-authenticate": 'Bearer realm="outpost"',
      });
    const key = `tr:${createHash("sha256").update(token).digest("hex")}`;
    const user = await this.cached(key, async () => {
      const review = await this.options.management.create<
        KubeObject & { status?: { authenticated?: boolean; user?: User; error?: string } }
      >(tokenReviews, { metadata: {}, spec: { token } } as KubeObject);
      return review.status?.authenticated ? (review.status.user ?? null) : null;
    });
    if (!user)
      throw new Denied(401, "the token is not valid", {
        "www-authenticate": 'Bearer realm="outpost", error="invalid_token"',
      });
    return user;
  }

  private async authorize(user: User, route: Route, deployment: string, verb: string): Promise<void> {
    const key = `sar:${user.username}:${(user.groups ?? []).join(",")}:${route.project}:${deployment}:${verb}`;
    const allowed = await this.cached(key, async () => {
      const review = await this.options.management.create<KubeObject & { status?: { allowed?: boolean } }>(
        accessReviews,
        {
          metadata: {},
          spec: {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            resourceAttributes: {
              namespace: route.project,
              verb,
              group: "deploy.outpost.dev",
              resource: "appdeployments",
              subresource: "proxy",
              name: deployment,
            },
          },
        } as KubeObject,
      );
      return review.status?.allowed === true;
    });
    if (!allowed) {
      throw new Denied(
        403,
        `${user.username} may not ${verb} appdeployments/proxy of ${deployment} in project ${route.project}`,
      );
    }
  }

  private check(route: Route): { deployment: string } {
    const ns = route.project;
    const exposure = exposingDeployment(route, {
      deployments: this.informers.deployments.cache.byNamespace(ns),
      packages: this.informers.packages.cache.byNamespace(ns),
      applications: this.informers.applications.cache.byNamespace(ns),
      delivered: this.deliveries.apps(ns),
      clusters: [
        ...this.informers.clusters.cache.byNamespace(ns),
        ...(this.informers.argoClusters?.cache.byLabels({ [projectLabel]: ns }) ?? []).map(
          fromArgoClusterSecret,
        ),
      ],
    });
    if (!exposure) {
      throw new Denied(
        404,
        `no deployment of project ${route.project} exports service ${route.service}:${route.port} in namespace ${route.namespace} on cluster ${route.cluster}`,
      );
    }
    return exposure;
  }

  /** Steps 1–5; returns the route and the user, or throws Denied. */
  private async admit(req: IncomingMessage, verb: string): Promise<{ route: Route; user: User }> {
    let route: Route;
    try {
      route = parseRoute(req.url ?? "/");
    } catch (err) {
      if (err instanceof RouteError) throw new Denied(err.status, err.message);
      throw err;
    }
    const user = await this.authenticate(this.tokenOf(req));
    if (!this.limiter.take(user.username)) {
      throw new Denied(429, "too many requests", {
        "retry-after": String(this.limiter.retryAfter(user.username)),
      });
    }
    const { deployment } = this.check(route);
    await this.authorize(user, route, deployment, verb);
    return { route, user };
  }

  private log(req: IncomingMessage, fields: Record<string, unknown>): void {
    this.options.logger.info(
      { method: req.method, path: (req.url ?? "").split("?")[0], ...fields },
      "access",
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    let user: string | undefined;
    let status = 0;
    try {
      if (req.url === "/_login") {
        await this.login(req, res);
        status = res.statusCode;
        return;
      }
      if (req.url === "/healthz" || req.url === "/readyz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok");
        status = 200;
        return;
      }
      const admitted = await this.admit(req, safeMethods.has(req.method ?? "GET") ? "get" : "create");
      user = admitted.user.username;
      status = await this.forward(req, res, admitted.route);
    } catch (err) {
      status = this.fail(res, err);
    } finally {
      this.log(req, { user, status, ms: Date.now() - started });
    }
  }

  private fail(res: ServerResponse, err: unknown): number {
    let status = 502;
    let message: string;
    let headers: Record<string, string> = {};
    if (err instanceof Denied) {
      status = err.status;
      message = err.message;
      headers = err.headers;
    } else if (err instanceof EdgeUnreachableError) {
      status = 502;
      message = err.message;
    } else if (err instanceof ApiError) {
      status = 502;
      message = `the management API server failed: ${err.message}`;
    } else {
      message = `proxy error: ${err instanceof Error ? err.message : String(err)}`;
      this.options.logger.warn({ err }, "proxy error");
    }
    if (res.headersSent) {
      res.destroy();
      return status;
    }
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers }).end(`${message}\n`);
    return status;
  }

  /** POST /_login with a token (form field `token`, or Authorization): sets the session cookie. */
  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST") throw new Denied(405, "POST a token to /_login", { allow: "POST" });
    let body = "";
    for await (const chunk of req) {
      body += String(chunk);
      if (body.length > 16_384) throw new Denied(413, "the login body is too large");
    }
    const form = new URLSearchParams(body);
    const token = form.get("token") ?? this.tokenOf(req);
    const user = await this.authenticate(token ?? undefined);
    const secure = this.options.secureCookie ?? true;
    res.writeHead(204, {
      "set-cookie": `${sessionCookie}=${encodeURIComponent(token ?? "")}; Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`,
      "cache-control": "no-store",
    });
    res.end();
    this.options.logger.info({ user: user.username }, "login");
  }

  private async forward(req: IncomingMessage, res: ServerResponse, route: Route): Promise<number> {
    const edge = await this.edges.client(route.project, route.cluster);
    const { origin, headers: auth, dispatcher } = await edge.transport();
    const hasBody = !safeMethods.has(req.method ?? "GET") || req.headers["content-length"] !== undefined;
    let upstream;
    try {
      upstream = await dispatcher.request({
        origin,
        path: upstreamPath(route),
        method: req.method ?? "GET",
        headers: { ...requestHeaders(req.headers, sessionCookie), ...auth },
        body: hasBody ? req : null,
        headersTimeout: 30_000,
        bodyTimeout: 0,
      });
    } catch (err) {
      this.edges.invalidate(route.project, route.cluster);
      throw new Denied(
        502,
        `cluster ${route.cluster} did not answer: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    res.writeHead(upstream.statusCode, responseHeaders(upstream.headers, route));
    res.flushHeaders();
    try {
      // A client that goes away ends the pipeline, which destroys the upstream body and
      // with it the request to the edge.
      await pipeline(upstream.body, res);
    } catch {
      // The client went away, or the upstream broke mid-body: nothing more to send.
    }
    return upstream.statusCode;
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = Date.now();
    let user: string | undefined;
    let status = 101;
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    try {
      if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
        throw new Denied(400, "only WebSocket upgrades are proxied");
      }
      const admitted = await this.admit(req, "create");
      user = admitted.user.username;
      const route = admitted.route;
      const edge = await this.edges.client(route.project, route.cluster);
      const { origin, headers: auth, dispatcher } = await edge.upgradeTransport();
      // Agent dispatches by origin, which UpgradeOptions does not declare.
      const options = {
        origin,
        path: upstreamPath(route),
        method: "GET",
        protocol: "websocket",
        headers: { ...requestHeaders(req.headers, sessionCookie), ...auth },
      } as Dispatcher.UpgradeOptions;
      const up = await dispatcher.upgrade(options);
      const lines = [`HTTP/1.1 101 Switching Protocols`];
      const back = responseHeaders(up.headers, route);
      for (const [k, v] of Object.entries(back)) for (const one of [v].flat()) lines.push(`${k}: ${one}`);
      lines.push("connection: Upgrade", "upgrade: websocket");
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length > 0) up.socket.write(head);
      this.sockets.add(up.socket);
      up.socket.on("close", () => this.sockets.delete(up.socket));
      socket.pipe(up.socket).pipe(socket);
      const end = (): void => {
        socket.destroy();
        up.socket.destroy();
      };
      socket.on("close", end);
      up.socket.on("close", end);
      up.socket.on("error", end);
    } catch (err) {
      status = err instanceof Denied ? err.status : 502;
      const message = err instanceof Error ? err.message : String(err);
      const extra =
        err instanceof Denied
          ? Object.entries(err.headers)
              .map(([k, v]) => `${k}: ${v}\r\n`)
              .join("")
          : "";
      if (socket.writable) {
        socket.end(
          `HTTP/1.1 ${status} ${status === 101 ? "" : "Refused"}\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n${extra}content-length: ${Buffer.byteLength(message) + 1}\r\n\r\n${message}\n`,
        );
      }
    } finally {
      this.log(req, { user, status, ms: Date.now() - started, websocket: true });
    }
  }
}
