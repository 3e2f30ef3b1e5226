// The address test backends listen on when an API server must reach them: the API
// server's service proxy and aggregator refuse loopback (and link-local) backends, so
// they use this machine's own non-loopback address — traffic still never leaves it.
import { networkInterfaces } from "node:os";

/** This machine's first IPv4 address that is neither loopback nor link-local. */
export function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === "IPv4" && !a.internal && !a.address.startsWith("169.254.")) return a.address;
    }
  }
  throw new Error(
    "this machine has no IPv4 address besides loopback; the API server's proxy refuses loopback backends",
  );
}
