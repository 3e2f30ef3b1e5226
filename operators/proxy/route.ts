// Pure parts of the service proxy: the route of a request, the edge API server path it
// maps to, and header hygiene both ways.
import { rewriteSetCookies } from "./cookies.ts";

//
// Route: /<project>/<cluster>/<namespace>/<service>:<port>/<path…>
//   → <edge API server>/api/v1/namespaces/<namespace>/services/<service>:<port>/proxy/<path…>
// The path may not leave the route: a "." or ".." segment, a backslash, a control
// character or an encoded slash — also once or twice percent-encoded — is refused,
// because the API server decodes the path again and would resolve it otherwise.

export interface Route {
  project: string;
  cluster: string;
  namespace: string;
  service: string;
  port: number;
  /** The path under the service, encoded as received (starts with "/", or is ""). */
  rest: string;
  /** The query string, with its "?" (or ""). */
  search: string;
  /** /<project>/<cluster>/<namespace>/<service>:<port> */
  prefix: string;
}

export class RouteError extends Error {
  override name = "RouteError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Fleet cluster names are object names: DNS subdomains. */
const subdomain = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** Decodes percent-escapes until nothing changes (at most 3 times); undefined if malformed. */
function fullyDecoded(segment: string): string | undefined {
  let s = segment;
  for (let i = 0; i < 3; i++) {
    let next: string;
    try {
      next = decodeURIComponent(s);
    } catch {
      return undefined;
    }
    if (next === s) return s;
    s = next;
  }
  return s;
}

export function parseRoute(url: string): Route {
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const search = q < 0 ? "" : url.slice(q);
  if (!path.startsWith("/")) throw new RouteError(400, "the path must start with /");
  const segments = path.slice(1).split("/");
  const [project = "", cluster = "", namespace = "", target = "", ...rest] = segments;
  const m = /^([a-z0-9-]+):(\d{1,5})$/.exec(target);
  if (!label.test(project) || !subdomain.test(cluster) || !label.test(namespace) || !m) {
    throw new RouteError(404, "expected /<project>/<cluster>/<namespace>/<service>:<port>/<path>");
  }
  const service = m[1] ?? "";
  const port = Number(m[2]);
  if (!label.test(service) || port < 1 || port > 65535) {
    throw new RouteError(404, "expected /<project>/<cluster>/<namespace>/<service>:<port>/<path>");
  }
  for (const seg of rest) {
    const decoded = fullyDecoded(seg);
    if (
      decoded === undefined ||
      decoded === "." ||
      decoded === ".." ||
      decoded.includes("/") ||
      decoded.includes("\\") ||
      // eslint-disable-next-line no-control-regex
      /[\u0000-\u001f\u007f]/.test(decoded)
    ) {
      throw new RouteError(
        400,
        "the path may not contain dot segments, encoded slashes, backslashes or control characters",
      );
    }
  }
  const prefix = `/${project}/${cluster}/${namespace}/${service}:${port}`;
  return {
    project,
    cluster,
    namespace,
    service,
    port,
    rest: rest.length > 0 ? `/${rest.join("/")}` : "",
    search,
    prefix,
  };
}

/** The edge API server's service proxy path for `route`. */
export function upstreamPath(route: Route): string {
  return `/api/v1/namespaces/${route.namespace}/services/${route.service}:${route.port}/proxy${route.rest || "/"}${route.search}`;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the ones a proxy must set itself. */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

/**
 * Request headers to send upstream: without hop-by-hop headers (and those `Connection`
 * names), the user's credentials (Authorization, our session cookie), and anything that
 * would make the edge API server treat the request as someone else's (Impersonate-*,
 * X-Remote-*). For a WebSocket upgrade the caller adds Connection/Upgrade itself.
 */
export function requestHeaders(
  incoming: Record<string, string | string[] | undefined>,
  sessionCookie: string,
): Record<string, string> {
  const named = new Set(
    String(incoming.connection ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(incoming)) {
    const k = key.toLowerCase();
    if (value === undefined || hopByHop.has(k) || named.has(k)) continue;
    if (k === "authorization" || k.startsWith("impersonate-") || k.startsWith("x-remote-")) continue;
    if (k === "cookie") {
      const kept = (Array.isArray(value) ? value.join("; ") : value)
        .split(";")
        .map((c) => c.trim())
        .filter((c) => c && !c.startsWith(`${sessionCookie}=`));
      if (kept.length > 0) out.cookie = kept.join("; ");
      continue;
    }
    out[k] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/**
 * Response headers to send back: without hop-by-hop headers, with a Location inside the
 * service mapped back under the route, an off-site Location dropped (no open redirect),
 * and cookies kept to the route (cookies.ts).
 */
export function responseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  route: Route,
  sessionCookie: string,
): Record<string, string | string[]> {
  const named = new Set(
    String(upstream.connection ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(upstream)) {
    const k = key.toLowerCase();
    if (value === undefined || (hopByHop.has(k) && k !== "content-length") || named.has(k)) continue;
    if (k === "location") {
      const mapped = mapLocation(String(value), route);
      if (mapped !== undefined) out.location = mapped;
      continue;
    }
    if (k === "set-cookie") {
      const cookies = rewriteSetCookies(value, route.prefix, sessionCookie);
      if (cookies.length > 0) out[k] = cookies;
      continue;
    }
    out[k] = value;
  }
  return out;
}

/** A Location from upstream, as a path under the route; undefined when it leaves the service. */
export function mapLocation(location: string, route: Route): string | undefined {
  // Absolute URLs point elsewhere (or at the edge API server itself): never followed.
  if (/^[a-z][a-z0-9+.-]*:|^[/\\]{2}/i.test(location) || location.includes("\\")) return undefined;
  const servicePrefix = `/api/v1/namespaces/${route.namespace}/services/${route.service}:${route.port}/proxy`;
  let u: URL;
  try {
    // Relative locations resolve against the proxied URL, as the browser will.
    u = new URL(location, `http://route.invalid${route.prefix}${route.rest || "/"}`);
  } catch {
    return undefined;
  }
  if (u.host !== "route.invalid") return undefined;
  const tail = `${u.search}${u.hash}`;
  if (location.startsWith("/")) {
    if (u.pathname.startsWith(servicePrefix))
      return `${route.prefix}${u.pathname.slice(servicePrefix.length) || "/"}${tail}`;
    // An absolute path of the service's own site: under the route.
    return `${route.prefix}${u.pathname}${tail}`;
  }
  return u.pathname === route.prefix || u.pathname.startsWith(`${route.prefix}/`)
    ? `${u.pathname}${tail}`
    : undefined;
}
