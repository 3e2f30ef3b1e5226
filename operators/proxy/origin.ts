// One origin per route (pure): each route is served on a host of its own,
// <label>.<base domain>, so a page of one edge application cannot read another route the
// same user may open (the browser's same-origin policy separates them), and its cookies
// stay on its own host. The label is derived from the route, so no table is needed.
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { Route } from "./route.ts";

const base32 = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * The DNS label of a route: RFC 4648 base32 (lowercase, unpadded) of the first 20 bytes
 * of sha256("<project>/<cluster>/<namespace>/<service>:<port>"), 32 characters.
 */
export function routeLabel(
  route: Pick<Route, "project" | "cluster" | "namespace" | "service" | "port">,
): string {
  const name = `${route.project}/${route.cluster}/${route.namespace}/${route.service}:${route.port}`;
  let label = labels.get(name);
  if (label === undefined) {
    label = base32Of(createHash("sha256").update(name).digest().subarray(0, 20));
    labels.set(name, label);
  }
  return label;
}

/** Labels already computed (a hash per request showed in profiles). */
const labels = new LRUCache<string, string>({ max: 10_000 });

function base32Of(digest: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += base32.charAt((value >>> (bits - 5)) & 31);
      bits -= 5;
    }
  }
  return out;
}

const dnsLabel = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The base domain, checked and lowercased; throws with a message for the flag. */
export function parseBaseDomain(domain: string): string {
  const d = domain.toLowerCase();
  const labels = d.split(".");
  if (d.length > 253 - 33 || !labels.every((l) => dnsLabel.test(l))) {
    throw new Error(`"${domain}" is not a DNS name (like proxy.example.com, without a trailing dot)`);
  }
  return d;
}

export type HostMatch =
  /** <label>.<base domain>: a route's own host (the label is not checked against a route). */
  | { kind: "route"; label: string; port: string }
  /** The base domain itself. */
  | { kind: "base"; port: string };

/**
 * What a Host header names, strictly: the base domain or one label under it, case
 * insensitive, with an optional port; anything else (another domain, two labels, an IP
 * address, a trailing dot, user info, several Host headers) is undefined.
 */
export function parseHost(host: string | string[] | undefined, baseDomain: string): HostMatch | undefined {
  if (typeof host !== "string") return undefined;
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(host.toLowerCase());
  if (!m) return undefined;
  const name = m[1] ?? "";
  const port = m[2] ?? "";
  if (port !== "" && (Number(port) < 1 || Number(port) > 65535)) return undefined;
  if (name === baseDomain) return { kind: "base", port };
  if (!name.endsWith(`.${baseDomain}`)) return undefined;
  const label = name.slice(0, -baseDomain.length - 1);
  if (!dnsLabel.test(label)) return undefined;
  return { kind: "route", label, port };
}

/** The host (with the port the client used) a route is served on. */
export function routeHost(route: Route, baseDomain: string, port = ""): string {
  return `${routeLabel(route)}.${baseDomain}${port ? `:${port}` : ""}`;
}
