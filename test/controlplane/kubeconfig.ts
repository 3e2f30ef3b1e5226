// Kubeconfig files for the local clusters: admin ones, and ones for any user and groups
// (client certificates signed by the cluster's CA) so RBAC can be tested for real.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { stringify } from "yaml";
import type { CertificateAuthority } from "./pki.ts";

export interface KubeconfigEntry {
  /** Context and cluster name. */
  name: string;
  server: string;
  caPem: string;
  user: { name: string; certPem: string; keyPem: string };
}

const b64 = (s: string): string => Buffer.from(s).toString("base64");

/** A kubeconfig with one context per entry; the first one is current. */
export function kubeconfigYaml(entries: KubeconfigEntry[]): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: entries.map((e) => ({
      name: e.name,
      cluster: { server: e.server, "certificate-authority-data": b64(e.caPem) },
    })),
    users: entries.map((e) => ({
      name: `${e.user.name}@${e.name}`,
      user: { "client-certificate-data": b64(e.user.certPem), "client-key-data": b64(e.user.keyPem) },
    })),
    contexts: entries.map((e) => ({
      name: e.name,
      context: { cluster: e.name, user: `${e.user.name}@${e.name}` },
    })),
    "current-context": entries[0]?.name ?? "",
  });
}

export interface ClusterAccess {
  name: string;
  server: string;
  kubeconfig: string;
  ca: CertificateAuthority;
}

/**
 * Writes a kubeconfig for `user` in `groups` on `cluster` (a client certificate: CN = user,
 * O = groups) next to the cluster's admin kubeconfig and returns its path.
 */
export async function kubeconfigFor(
  cluster: ClusterAccess,
  user: string,
  groups: string[] = [],
): Promise<string> {
  const cert = await cluster.ca.issue({ commonName: user, organizations: groups, usage: "client" });
  const safe = user.replace(/[^A-Za-z0-9_.-]/g, "_");
  const path = join(dirname(cluster.kubeconfig), `kubeconfig-${safe}`);
  writeFileSync(
    path,
    kubeconfigYaml([
      {
        name: cluster.name,
        server: cluster.server,
        caPem: cluster.ca.certPem,
        user: { name: user, ...cert },
      },
    ]),
    { mode: 0o600 },
  );
  return path;
}
