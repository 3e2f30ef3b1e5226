// Cookies an edge application sets, made safe to pass on (pure): no Domain (a cookie
// stays on its route's own host), the Path put under the route, and none with the name
// of the proxy's session cookie (a backend could otherwise fix a victim's session, or
// shadow it with a longer Path, which browsers send first).
import { parseSetCookie, stringifySetCookie } from "cookie";

const raw = { decode: (s: string): string => s, encode: (s: string): string => s };

/**
 * The upstream `Set-Cookie` values to send back for a route whose path prefix is
 * `prefix` (`/<project>/<cluster>/<namespace>/<service>:<port>`). A cookie that cannot
 * be parsed or written again is dropped.
 */
export function rewriteSetCookies(
  values: string | string[],
  prefix: string,
  sessionCookie: string,
): string[] {
  const out: string[] = [];
  for (const value of [values].flat()) {
    try {
      const c = parseSetCookie(value, raw);
      if (!c.name || c.name.toLowerCase() === sessionCookie.toLowerCase()) continue;
      delete c.domain;
      // A Path that does not start with "/" is the default path (RFC 6265 §5.2.4): under
      // the request's, which is under the route already.
      if (c.path?.startsWith("/")) c.path = c.path === "/" ? prefix : `${prefix}${c.path}`;
      else delete c.path;
      out.push(stringifySetCookie(c, raw));
    } catch {
      // not a cookie we can pass on as it is
    }
  }
  return out;
}
