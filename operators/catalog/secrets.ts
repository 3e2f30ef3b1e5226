// Reads the Secrets catalog objects refer to (registry credentials and CAs).
import type { KubeClient, KubeObject } from "../runtime/client.ts";
import { secretsResource } from "../runtime/core.ts";
import { ReconcileError } from "../runtime/reconcile.ts";
import type { RegistryAccess } from "./registry-client.ts";
import type { Registry } from "../api/registry.generated.ts";

interface Secret extends KubeObject {
  data?: Record<string, string>;
}

/** The Secret's keys, decoded; a missing Secret or key is a ReconcileError naming it. */
export async function secretData(
  client: KubeClient,
  namespace: string,
  name: string,
  purpose: string,
): Promise<Record<string, string>> {
  const secret = await client.get<Secret>(secretsResource, name, namespace);
  if (!secret) {
    throw new ReconcileError(
      "SecretNotFound",
      `Secret ${namespace}/${name} (${purpose}) does not exist; create it or fix the reference`,
    );
  }
  return Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
  );
}

/** How to reach a Registry: its URL with the credentials and CA of the Secrets it names. */
export async function registryAccess(client: KubeClient, registry: Registry): Promise<RegistryAccess> {
  const ns = registry.metadata.namespace ?? "default";
  const access: RegistryAccess = { type: registry.spec.type, url: registry.spec.url };
  const creds = registry.spec.credentialsSecretRef;
  if (creds) {
    const data = await secretData(client, ns, creds.name, "registry credentials");
    // Both may be given: clients that take a token use it, the others (Fleet, Argo CD) the
    // username and password.
    if (data.token) access.token = data.token;
    if (data.username !== undefined) {
      access.username = data.username;
      access.password = data.password ?? "";
    }
    if (access.token === undefined && access.username === undefined) {
      throw new ReconcileError(
        "InvalidSecret",
        `Secret ${ns}/${creds.name} needs the keys username and password, or the key token`,
      );
    }
  }
  const ca = registry.spec.caSecretRef;
  if (ca) {
    const data = await secretData(client, ns, ca.name, "registry CA");
    if (!data["ca.crt"])
      throw new ReconcileError(
        "InvalidSecret",
        `Secret ${ns}/${ca.name} needs the key ca.crt (PEM certificates)`,
      );
    access.caPem = data["ca.crt"];
  }
  return access;
}
