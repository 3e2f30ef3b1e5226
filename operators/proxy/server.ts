// outpost-service-proxy: one door to the web UIs and APIs of applications on edge
// clusters. Route: https://<label>.<base domain>/<project>/<cluster>/<namespace>/<service>:<port>/<path…>,
// forwarded to the edge API server's service proxy with the cluster's kubeconfig Secret.
// Each route has a host of its own (origin.ts): `label` is derived from the route.
//
// For each request:
//   1. route and host — the path parsed and checked (route.ts): nothing can leave it;
//      the Host must be the route's own (a GET on the base domain is redirected there);
//   2. rate limit per client address — before a token unknown to the caches costs a
//      TokenReview (the socket's address: no forwarding header is trusted);
//   3. authentication — a bearer token (or the session cookie `POST /_login` sets from
//      one), checked with a TokenReview on the management cluster (reused 10 s, and up to
//      30 s while a fresh answer is fetched; invalid tokens remembered 3 s); a request
//      the session cookie authenticates that writes or opens a WebSocket must come from
//      the route's own origin;
//   4. rate limit — a token bucket per user;
//   5. exposure — an AppDeployment of the project exports the service (Application
//      serviceExports) and runs it in that namespace on that cluster (exposure.ts);
//   6. authorization — a SubjectAccessReview in the project namespace: verb get (GET,
//      HEAD, OPTIONS) or create (anything else, and WebSockets) on
//      `appdeployments/proxy` named after that deployment (cached as TokenReviews are).
//      A route that is not exposed and one the user may not open get the same answer;
//   7. forwarding — headers cleaned both ways (no user credentials, impersonation or
//      hop-by-hop headers upstream; no off-site redirects, no cookie for another host or
//      route and none named like the session cookie back), bodies streamed both ways,
//      WebSocket upgrades joined byte for byte;
//   8. an access log line.
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
import { parseBaseDomain, parseHost, routeLabel } from "./origin.ts";
import { RateLimiter } from "./ratelimit.ts";
import { accessReviewKey, ReviewCache, tokenKey, userKey, type ReviewedUser } from "./reviews.ts";
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
  /**
   * The domain whose subdomains the routes are served on: route R on
   * `<routeLabel(R)>.<baseDomain>` (a wildcard DNS name and certificate point at the proxy).
   */
  baseDomain: string;
  /** Requests a second per user, and the burst allowed. Default 50 and 100. */
  rate?: number;
  burst?: number;
  /**
   * Per client address: TokenReviews a second (requests whose token the caches do not
   * know), and the burst allowed. Default 20 and 40.
   */
  clientRate?: number;
  clientBurst?: number;
  /**
   * How long TokenReview and SubjectAccessReview answers are reused: `cacheMs`, and up to
   * three times that while a fresh answer is fetched. Default 10 s.
   */
  cacheMs?: number;
  /** How long negative answers (invalid tokens, denials) are reused. Default 3 s. */
  negativeCacheMs?: number;
  /** Answers kept, each of the four caches (valid and invalid tokens, allowed and denied). Default 10,000. */
  cacheEntries?: number;
  /** Set the session cookie Secure and redirect to https (the proxy is behind TLS). Default true. */
  secureCookie?: boolean;
  /** Argo CD's namespace, when projects deliver with Argo CD (its ApplicationSets and cluster Secrets). */
  argocdNamespace?: string;
}

/** A reviewed user, with the hash of all of it (`userKey`) the SubjectAccessReview cache uses. */
type User = ReviewedUser & { key: string };

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
    /** For the access log only (never sent to the client). */
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const safeMethods = new Set(["GET", "HEAD", "OPTIONS"]);

/** One answer for "not exposed" and "not allowed": no user learns which routes exist. */
const noRoute = "no such route, or you may not open it";

export class ServiceProxy {
  private server: Server | undefined;
  private readonly edges: EdgeClusters;
  private readonly limiter: RateLimiter;
  private readonly clientLimiter: RateLimiter;
  private readonly baseDomain: string;
  private readonly tokens: ReviewCache<User, string>;
  private readonly access: ReviewCache<true, object>;
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
    this.clientLimiter = new RateLimiter(options.clientRate ?? 20, options.clientBurst ?? 40);
    this.baseDomain = parseBaseDomain(options.baseDomain);
    const caches = {
      ttlMs: options.cacheMs ?? 10_000,
      negativeTtlMs: options.negativeCacheMs ?? 3_000,
      max: options.cacheEntries ?? 10_000,
      negativeMax: options.cacheEntries ?? 10_000,
    };
    this.tokens = new ReviewCache<User, string>({
      ...caches,
      review: async (token) => {
        const review = await m.create<
          KubeObject & { status?: { authenticated?: boolean; user?: ReviewedUser; error?: string } }
        >(tokenReviews, { metadata: {}, spec: { token } } as KubeObject);
        const user = review.status?.authenticated ? review.status.user : undefined;
        return user ? { ...user, key: userKey(user) } : undefined;
      },
    });
    this.access = new ReviewCache<true, object>({
      ...caches,
      review: async (spec) => {
        const review = await m.create<KubeObject & { status?: { allowed?: boolean } }>(accessReviews, {
          metadata: {},
          spec,
        } as KubeObject);
        return review.status?.allowed === true ? true : undefined;
      },
    });
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

  /** The caller's token, and whether it came from the session cookie. */
  private tokenOf(req: IncomingMessage): { token?: string; cookie: boolean } {
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      return { ...(m?.[1] ? { token: m[1] } : {}), cookie: false };
    }
    for (const part of (req.headers.cookie ?? "").split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === sessionCookie) {
        try {
          return { token: decodeURIComponent(v.join("=")), cookie: true };
        } catch {
          return { cookie: true };
        }
      }
    }
    return { cookie: false };
  }

  /**
   * The user of `token`. A token the caches do not know costs a TokenReview: it takes a
   * token from the bucket of `client` (the socket's address) first.
   */
  private async authenticate(token: string | undefined, client: string): Promise<User> {
    if (!token)
      throw new Denied(401, "a bearer token is required (Authorization: Bearer …, or log in at /_login)", {
        "www-authenticate": 'Bearer realm="outpost"',
      });
    const key = tokenKey(token);
    if (!this.tokens.known(key) && !this.clientLimiter.take(client)) {
      throw new Denied(429, "too many new tokens from this address", {
        "retry-after": String(Math.max(1, this.clientLimiter.retryAfter(client))),
      });
    }
    const user = await this.tokens.get(key, token);
    if (!user)
      throw new Denied(401, "the token is not valid", {
        "www-authenticate": 'Bearer realm="outpost", error="invalid_token"',
      });
    return user;
  }

  /** Whether `user` may `verb` appdeployments/proxy `deployment` of the route's project. */
  private async allowed(user: User, route: Route, deployment: string, verb: string): Promise<boolean> {
    const attributes = {
      namespace: route.project,
      verb,
      group: "deploy.outpost.dev",
      resource: "appdeployments",
      subresource: "proxy",
      name: deployment,
    };
    const spec = {
      user: user.username,
      uid: user.uid,
      groups: user.groups,
      extra: user.extra,
      resourceAttributes: attributes,
    };
    return (await this.access.get(accessReviewKey(user.key, attributes), spec)) === true;
  }

  private check(route: Route): { deployment: string } | undefined {
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
    return exposure;
  }

  /** Step 1: the route of the request, on its own host; throws Denied otherwise. */
  private routeOf(req: IncomingMessage, upgrade: boolean): Route {
    let route: Route;
    try {
      route = parseRoute(req.url ?? "/");
    } catch (err) {
      if (err instanceof RouteError) throw new Denied(err.status, err.message);
      throw err;
    }
    const host = this.hostOf(req);
    const label = routeLabel(route);
    const own = `${label}.${this.baseDomain}${host.port ? `:${host.port}` : ""}`;
    if (host.kind === "route" && host.label === label) return route;
    if (host.kind === "base" && !upgrade && (req.method === "GET" || req.method === "HEAD")) {
      const scheme = (this.options.secureCookie ?? true) ? "https" : "http";
      throw new Denied(302, `this route is served at ${scheme}://${own}/`, {
        location: `${scheme}://${own}${req.url ?? "/"}`,
      });
    }
    throw new Denied(421, `this route is served on its own host, ${own}`);
  }

  private hostOf(req: IncomingMessage): NonNullable<ReturnType<typeof parseHost>> {
    const hosts = req.headersDistinct.host ?? [];
    const host = hosts.length === 1 ? parseHost(hosts[0], this.baseDomain) : undefined;
    if (!host) throw new Denied(400, `the Host must be ${this.baseDomain} or a route's host under it`);
    return host;
  }

  /** Steps 1–6; returns the route and the user, or throws Denied. */
  private async admit(
    req: IncomingMessage,
    verb: string,
    upgrade = false,
  ): Promise<{ route: Route; user: User }> {
    const route = this.routeOf(req, upgrade);
    const { token, cookie } = this.tokenOf(req);
    const user = await this.authenticate(token, req.socket.remoteAddress ?? "");
    // Routes are other hosts of the same site: SameSite lets a page of one route send
    // requests with the session cookie of another. Writes and WebSockets (which the
    // same-origin policy does not protect) must come from the route's own origin.
    if (cookie && (upgrade || verb !== "get")) {
      const origin = req.headers.origin;
      let from: string | undefined;
      try {
        from = origin === undefined ? undefined : new URL(origin).host;
      } catch {
        from = "";
      }
      if (from !== undefined && from !== (req.headers.host ?? "").toLowerCase()) {
        throw new Denied(403, "a request with the session cookie from another origin");
      }
    }
    if (!this.limiter.take(user.username)) {
      throw new Denied(429, "too many requests", {
        "retry-after": String(this.limiter.retryAfter(user.username)),
      });
    }
    const exposure = this.check(route);
    // Not exposed: the review is still made (and cached), so both answers cost the same.
    const allowed = await this.allowed(user, route, exposure?.deployment ?? "", verb);
    if (!exposure || !allowed) {
      const reason = !exposure
        ? "not exposed"
        : `may not ${verb} appdeployments/proxy of ${exposure.deployment}`;
      throw new Denied(404, noRoute, {}, { user: user.username, reason });
    }
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
    let detail: Record<string, unknown> = {};
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
      if (err instanceof Denied) detail = err.detail;
    } finally {
      this.log(req, { user, status, ms: Date.now() - started, ...detail });
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
    if (this.hostOf(req).kind !== "route") {
      throw new Denied(400, "log in on the host of the route you open: the session is that host's only");
    }
    // A form another page posts would sign the browser in as someone else.
    const origin = req.headers.origin;
    if (
      origin !== undefined &&
      origin !== "null" &&
      URL.parse(origin)?.host !== req.headers.host?.toLowerCase()
    ) {
      throw new Denied(403, "log in from the route's own origin");
    }
    let body = "";
    for await (const chunk of req) {
      body += String(chunk);
      if (body.length > 16_384) throw new Denied(413, "the login body is too large");
    }
    const form = new URLSearchParams(body);
    const token = form.get("token") ?? this.tokenOf(req).token;
    const user = await this.authenticate(token ?? undefined, req.socket.remoteAddress ?? "");
    const secure = this.options.secureCookie ?? true;
    // Host-only (no Domain): each route's host gets a session of its own. Strict: no
    // request another site starts carries it, so an edge application that changes state
    // on a GET cannot be driven from elsewhere.
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
    res.writeHead(upstream.statusCode, responseHeaders(upstream.headers, route, sessionCookie));
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
    let detail: Record<string, unknown> = {};
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    try {
      if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
        throw new Denied(400, "only WebSocket upgrades are proxied");
      }
      const admitted = await this.admit(req, "create", true);
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
      const back = responseHeaders(up.headers, route, sessionCookie);
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
      if (err instanceof Denied) detail = err.detail;
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
      this.log(req, { user, status, ms: Date.now() - started, websocket: true, ...detail });
    }
  }
}
