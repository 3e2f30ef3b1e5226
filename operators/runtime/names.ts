// Kubernetes object names derived from user text.
import { createHash } from "node:crypto";

/** A Kubernetes name from `text`: lowercase, DNS-1123, at most `max` (hash-suffixed when cut). */
export function dnsName(text: string, max = 53): string {
  const clean = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (clean.length <= max && clean === text) return clean;
  const hash = createHash("md5").update(text).digest("hex").slice(0, 8);
  return `${clean.slice(0, max - 9).replace(/-+$/, "")}-${hash}`;
}
