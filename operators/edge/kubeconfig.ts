// Strict readers of the credentials Outpost connects to an edge cluster with: a kubeconfig
// (the Secret `<project>.<cluster>` in the edge credentials namespace) and an Argo CD
// cluster Secret (server + config). Pure functions. Only what names the server and proves
// who Outpost is may be there: the server's https URL, CA data, a TLS server name, and a
// bearer token or client certificate and key data. Everything that would make an
// operator run a program (exec, auth providers, Argo CD's execProviderConfig), read a
// local file (every *-file and path field: its own ServiceAccount token, say), send its
// traffic elsewhere (proxy-url), skip TLS verification, act as someone else
// (impersonation) or choose among several identities is refused, naming the field.
import { KubeConfig } from "@kubernetes/client-node";
import { parse } from "yaml";

/** A kubeconfig field Outpost does not accept; `field` is its path (users[0].user.exec). */
export class KubeconfigRefused extends Error {
  override name = "KubeconfigRefused";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

type Fields = Record<string, unknown>;

const isObject = (v: unknown): v is Fields => typeof v === "object" && v !== null && !Array.isArray(v);

/** The keys of `o` that are set (null, false and empty values are what kubectl writes for unset). */
function setKeys(o: Fields): string[] {
  return Object.keys(o).filter((k) => {
    const v = o[k];
    return (
      v !== null &&
      v !== undefined &&
      v !== "" &&
      v !== false &&
      !(isObject(v) && Object.keys(v).length === 0)
    );
  });
}

function only(o: Fields, at: string, allowed: Record<string, string>): void {
  for (const key of setKeys(o)) {
    if (!(key in allowed))
      throw new KubeconfigRefused(
        `${at}.${key}`,
        `${refusedWhy[key] ?? "is not accepted"}; ${at} may hold only ${Object.keys(allowed).join(", ")}`,
      );
  }
}

function text(o: Fields, key: string, at: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new KubeconfigRefused(`${at}.${key}`, "must be a string");
  return v;
}

/** Why a field is refused, where that is more than "not accepted". */
const refusedWhy: Record<string, string> = {
  exec: "would make the operator run a program",
  "auth-provider": "would make the operator run an auth provider",
  tokenFile: "would make the operator read a file of its own (its ServiceAccount token, say)",
  "client-certificate": "is a file path; give client-certificate-data",
  "client-key": "is a file path; give client-key-data",
  "certificate-authority": "is a file path; give certificate-authority-data",
  "proxy-url": "would send the operator's traffic through another host",
  "insecure-skip-tls-verify": "would skip TLS verification; give certificate-authority-data",
  as: "would make the operator impersonate someone",
  "as-uid": "would make the operator impersonate someone",
  "as-groups": "would make the operator impersonate someone",
  "as-user-extra": "would make the operator impersonate someone",
  username: "basic authentication is not accepted; give a token or a client certificate",
  password: "basic authentication is not accepted; give a token or a client certificate",
  extensions: "is not accepted",
};

/** The management cluster's own in-cluster address: never an edge. */
function checkServer(server: string, field: string): void {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeconfigRefused(field, `"${server}" is not a URL`);
  }
  if (url.protocol !== "https:")
    throw new KubeconfigRefused(field, `must be an https:// URL, not ${url.protocol}`);
  if (url.username || url.password) throw new KubeconfigRefused(field, "must not carry credentials");
  if (url.hostname === "kubernetes.default.svc" || url.hostname.startsWith("kubernetes.default."))
    throw new KubeconfigRefused(field, `${server} is the management cluster's own address`);
}

export interface EdgeCredentials {
  server: string;
  caData?: string;
  tlsServerName?: string;
  token?: string;
  certData?: string;
  keyData?: string;
}

/** A client configuration holding exactly `c`. */
export function kubeConfigOf(name: string, c: EdgeCredentials): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name,
        server: c.server,
        skipTLSVerify: false,
        ...(c.caData ? { caData: c.caData } : {}),
        ...(c.tlsServerName ? { tlsServerName: c.tlsServerName } : {}),
      },
    ],
    users: [
      {
        name,
        ...(c.token ? { token: c.token } : {}),
        ...(c.certData && c.keyData ? { certData: c.certData, keyData: c.keyData } : {}),
      },
    ],
    contexts: [{ name, cluster: name, user: name }],
    currentContext: name,
  });
  return kc;
}

function credentials(
  token: string | undefined,
  certData: string | undefined,
  keyData: string | undefined,
  at: string,
) {
  if ((certData === undefined) !== (keyData === undefined))
    throw new KubeconfigRefused(at, "needs both client-certificate-data and client-key-data");
  if (token !== undefined && certData !== undefined)
    throw new KubeconfigRefused(at, "has both a token and a client certificate; keep one");
  if (token === undefined && certData === undefined)
    throw new KubeconfigRefused(
      at,
      "has no credentials (token, or client-certificate-data and client-key-data)",
    );
  return { ...(token ? { token } : {}), ...(certData && keyData ? { certData, keyData } : {}) };
}

/**
 * The credentials of a kubeconfig, read strictly: one cluster, one user, at most one
 * context naming them.
 */
export function strictKubeconfig(kubeconfig: string): EdgeCredentials {
  let doc: unknown;
  try {
    doc = parse(kubeconfig);
  } catch (err) {
    throw new KubeconfigRefused(
      "kubeconfig",
      `is not YAML: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (!isObject(doc)) throw new KubeconfigRefused("kubeconfig", "is not a kubeconfig (a YAML mapping)");
  only(doc, "kubeconfig", {
    apiVersion: "",
    kind: "",
    clusters: "",
    users: "",
    contexts: "",
    "current-context": "",
    preferences: "",
  });
  if (doc.kind !== undefined && doc.kind !== "Config") throw new KubeconfigRefused("kind", "must be Config");
  const one = (key: "clusters" | "users" | "contexts", required: boolean): Fields | undefined => {
    const list = doc[key] ?? [];
    if (!Array.isArray(list)) throw new KubeconfigRefused(key, "must be a list");
    if (list.length > 1)
      throw new KubeconfigRefused(
        key,
        `has ${list.length} entries; give exactly one (Outpost does not choose)`,
      );
    const entry: unknown = list[0];
    if (entry === undefined) {
      if (required) throw new KubeconfigRefused(key, "is empty");
      return undefined;
    }
    if (!isObject(entry)) throw new KubeconfigRefused(`${key}[0]`, "must be a mapping");
    return entry;
  };
  const clusterEntry = one("clusters", true) ?? {};
  const userEntry = one("users", true) ?? {};
  const contextEntry = one("contexts", false);
  only(clusterEntry, "clusters[0]", { name: "", cluster: "" });
  only(userEntry, "users[0]", { name: "", user: "" });
  const cluster = clusterEntry.cluster;
  const user = userEntry.user;
  if (!isObject(cluster)) throw new KubeconfigRefused("clusters[0].cluster", "is missing");
  if (!isObject(user)) throw new KubeconfigRefused("users[0].user", "is missing");
  only(cluster, "clusters[0].cluster", {
    server: "",
    "certificate-authority-data": "",
    "tls-server-name": "",
  });
  only(user, "users[0].user", { token: "", "client-certificate-data": "", "client-key-data": "" });
  if (contextEntry) {
    only(contextEntry, "contexts[0]", { name: "", context: "" });
    const context = contextEntry.context;
    if (!isObject(context)) throw new KubeconfigRefused("contexts[0].context", "is missing");
    only(context, "contexts[0].context", { cluster: "", user: "", namespace: "" });
    if (text(context, "cluster", "contexts[0].context") !== text(clusterEntry, "name", "clusters[0]"))
      throw new KubeconfigRefused("contexts[0].context.cluster", "must name the one cluster");
    if (text(context, "user", "contexts[0].context") !== text(userEntry, "name", "users[0]"))
      throw new KubeconfigRefused("contexts[0].context.user", "must name the one user");
    const current = text(doc, "current-context", "kubeconfig");
    if (current !== undefined && current !== text(contextEntry, "name", "contexts[0]"))
      throw new KubeconfigRefused("current-context", "must name the one context");
  }
  const server = text(cluster, "server", "clusters[0].cluster");
  if (!server) throw new KubeconfigRefused("clusters[0].cluster.server", "is missing");
  checkServer(server, "clusters[0].cluster.server");
  const caData = text(cluster, "certificate-authority-data", "clusters[0].cluster");
  const tlsServerName = text(cluster, "tls-server-name", "clusters[0].cluster");
  return {
    server,
    ...(caData ? { caData } : {}),
    ...(tlsServerName ? { tlsServerName } : {}),
    ...credentials(
      text(user, "token", "users[0].user"),
      text(user, "client-certificate-data", "users[0].user"),
      text(user, "client-key-data", "users[0].user"),
      "users[0].user",
    ),
  };
}

/**
 * The credentials of an Argo CD cluster Secret (util/db/cluster.go: keys server and config,
 * the JSON of ClusterConfig), read as strictly: bearerToken, or tlsClientConfig certData
 * and keyData, with caData and serverName; execProviderConfig, awsAuthConfig, insecure,
 * proxies and the rest are refused, naming the field.
 */
export function strictArgoCluster(server: string, configJson: string): EdgeCredentials {
  checkServer(server, "server");
  let config: unknown;
  try {
    config = JSON.parse(configJson || "{}");
  } catch {
    throw new KubeconfigRefused("config", "is not JSON");
  }
  if (!isObject(config)) throw new KubeconfigRefused("config", "is not a JSON object");
  only(config, "config", { bearerToken: "", tlsClientConfig: "" });
  const tls = config.tlsClientConfig ?? {};
  if (!isObject(tls)) throw new KubeconfigRefused("config.tlsClientConfig", "must be an object");
  for (const key of setKeys(tls)) {
    if (key === "insecure" && tls[key] === false) continue;
    if (!["caData", "certData", "keyData", "serverName"].includes(key))
      throw new KubeconfigRefused(
        `config.tlsClientConfig.${key}`,
        "is not accepted (only caData, certData, keyData and serverName)",
      );
  }
  const caData = text(tls, "caData", "config.tlsClientConfig");
  const tlsServerName = text(tls, "serverName", "config.tlsClientConfig");
  const certData = text(tls, "certData", "config.tlsClientConfig");
  const keyData = text(tls, "keyData", "config.tlsClientConfig");
  const token = text(config, "bearerToken", "config");
  if ((certData === undefined) !== (keyData === undefined))
    throw new KubeconfigRefused("config.tlsClientConfig", "needs both certData and keyData");
  if (token === undefined && certData === undefined)
    throw new KubeconfigRefused(
      "config",
      "has no credentials (bearerToken, or tlsClientConfig certData and keyData)",
    );
  return {
    server,
    ...(caData ? { caData } : {}),
    ...(tlsServerName ? { tlsServerName } : {}),
    ...(token ? { token } : {}),
    ...(certData && keyData ? { certData, keyData } : {}),
  };
}
