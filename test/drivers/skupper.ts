// A test driver that plays the Skupper v2 controller (skupper.io/v2alpha1, release 2.2.1 of
// github.com/skupperproject/skupper) against real kube-apiservers, because Skupper's own
// controller and routers cannot run here. It lets the interconnect operator's integration
// tests check that the Skupper objects the operator writes on edge clusters would work, and
// get the status Skupper would report back.
//
// What it plays, in one `sync()` pass over all its clusters (every step cites the Skupper
// code it follows, paths inside github.com/skupperproject/skupper at main 80b1ba6d, whose
// CRDs and behaviour match release 2.2.1):
//   1. Sites (internal/kube/controller/controller.go checkSite, internal/kube/site/site.go
//      Reconcile): one active Site per namespace, spec checks, Configured/Running/Resolved,
//      status.endpoints from the link access, status.controller and defaultIssuer;
//   2. the grant server (internal/kube/grants/grants.go checkGrant, ServeHTTP): AccessGrant
//      status (url, code, ca, expirationTime) and redemptions, answered with the exact HTTP
//      codes and texts of checkAndUpdateAccessToken, and the link configuration the accepting
//      site generates (grants/tokens.go, controller.go generateLinkConfig);
//   3. AccessToken redemption (grants/redeem.go RedeemAccessToken): https and CA checks, the
//      POST, the Secret and Link(s) created from the answer, owned by the token's Site, and
//      the token status, with upstream's retries;
//   4. Links (site.go link, CheckLink): Configured, and Operational/remoteSiteName/Id as the
//      router's network status reports them (site.go NetworkStatusUpdated);
//   5. Listeners, Connectors, AttachedConnectors and their bindings (site.go CheckListener,
//      CheckConnector; site/attached_connector.go; site/binding_status.go): Configured,
//      Matched across the network, and the Service a Listener exposes (site.go Expose);
//   6. the network status of every Site (sitesInNetwork, network[]), from the simulated
//      routers (internal/network/network.go ExtractSiteRecords).
//
// The "network" is simulated in memory across the driver's clusters. Endpoint hosts are
// made-up names derived from cluster and namespace (`skupper-inter-router-<ns>.<cluster>.
// outpost.test:55671`, `skupper-edge-<ns>.<cluster>.outpost.test:45671`; for linkAccess
// `local` the cluster-local `skupper-router.<ns>`, as securedaccess/local.go resolves it,
// which only routers of the same cluster can reach), so a Link's endpoints say which site it
// points at. The grant server of a cluster is `https://skupper-grant-server.<cluster>.
// outpost.test:9090`; it is reachable only while that cluster's API server is up (grants are
// read live from it every pass). Routers stay up when an API server goes down (the data plane
// does not depend on it): the last view of a cluster's sites keeps serving links to them.
// `setRouterUp(cluster, false)` takes a cluster's routers off the network instead.
//
// It is strict on purpose. Where Skupper reports an error the driver reports the same text in
// the same status. What Skupper's CRDs would reject or prune (a missing required field, a
// wrong type, an unknown spec field, a Connector with both or neither of host and selector —
// the CRD's oneOf), the driver reports in `errors`, because with stand-in CRDs the API server
// accepts anything. Stricter than Skupper: a Connector pod without status.podIP is not
// selected; a Link is only Operational when its Secret holds a client certificate that the
// driver issued for the site it points at (Skupper's router would fail the TLS handshake);
// links to an edge site never connect (edge routers accept no links).
//
// What Skupper does that surprises, and the driver reproduces: a grant's redemption is used
// up BEFORE the accepting side generates the link, so a redemption that then fails (no Site
// in the grant's namespace, an edge Site, a Site without endpoints, a missing issuer) consumes
// it; a failed redemption is retried at once (the controller's own status write is a watch
// event), then on every resync (30 s upstream, `tokenResyncMs` here), never given up, each
// retry consuming another redemption when the failure comes after the count — so the token
// soon says 404 "No such access granted" instead of the first error; a token recreated with
// the name of an earlier one fails with "Controller could not create received secret:
// secrets "<name>" already exists" (the earlier Secret is owned by the Site, not the token);
// a grant is Ready even when its namespace has no Site, or its Site does not resolve (the
// grant server has its own access); an AccessGrant's expirationTime is fixed at the first
// pass and never recomputed, and an expirationWindow Go cannot parse leaves it empty, so
// redemptions get 500 "Corrupted claim"; spec.issuer of a grant is ignored (the Site's
// defaultIssuer signs); Connector.status.selectedPods is never written (its setter is unused
// in the controller); a link that never connected has no Operational condition (Ready says
// "Not Operational"), one that connected and dropped says "Not operational" with reason
// Pending, not Error; an AttachedConnectorBinding without a matching listener is Pending
// "Not Matched" (Matched is only set once hasMatchingListener changes).
//
// Simplifications: grants are enabled with the grant server autoconfigured and resolvable on
// every cluster; no router Deployment, ConfigMaps, RouterAccess, SecuredAccess, Certificate or
// skupper-site-ca Secret are created (the CAs live in the driver's memory, shared by the
// drivers of one process), so Links made by hand from a Certificate cannot become Operational;
// RouterAccess, SecuredAccess, Certificate and MultiKeyListener objects are not played; every
// access type Skupper knows is enabled (upstream enables local, loadbalancer and route by
// default); a valid Site's router is Running at once and stays Running when setRouterUp takes
// it off the network (its network then shrinks to itself instead of going stale); HA sites
// get a second endpoint group (`skupper-router-2`) but no second router; exposePodsByName,
// observers, per-pod addresses and proxies (beyond the Secret check) are not played; the
// network status is computed each pass from the objects (no collector delay).
import { randomBytes } from "node:crypto";
import {
  ApiError,
  type KubeClient,
  type KubeObject,
  type OwnerReference,
  type ResourceType,
} from "../../operators/runtime/client.ts";
import { podsResource, secretsResource, servicesResource } from "../../operators/runtime/core.ts";
import { createCertificateAuthority, type CertificateAuthority } from "../controlplane/pki.ts";

// ---------------------------------------------------------------------------------------
// API types (pkg/apis/skupper/v2alpha1/types.go), as far as the driver uses them.

const skupperResource = (kind: string, plural: string): ResourceType => ({
  group: "skupper.io",
  version: "v2alpha1",
  kind,
  plural,
  namespaced: true,
});

export const SiteResource = skupperResource("Site", "sites");
export const LinkResource = skupperResource("Link", "links");
export const AccessGrantResource = skupperResource("AccessGrant", "accessgrants");
export const AccessTokenResource = skupperResource("AccessToken", "accesstokens");
export const ListenerResource = skupperResource("Listener", "listeners");
export const ConnectorResource = skupperResource("Connector", "connectors");
export const AttachedConnectorResource = skupperResource("AttachedConnector", "attachedconnectors");
export const AttachedConnectorBindingResource = skupperResource(
  "AttachedConnectorBinding",
  "attachedconnectorbindings",
);

/** metav1.Condition */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** types.go Status (inlined in every kind's status) */
export interface SkupperStatus {
  status?: "Ready" | "Pending" | "Error";
  message?: string;
  conditions?: Condition[];
}

export interface Endpoint {
  name?: string;
  host?: string;
  port?: string;
  group?: string;
}

export interface LinkRecord {
  name?: string;
  remoteSiteId?: string;
  remoteSiteName?: string;
  operational?: boolean;
}

export interface ServiceRecord {
  routingKey?: string;
  connectors?: string[];
  listeners?: string[];
}

export interface SiteRecord {
  id?: string;
  name?: string;
  namespace?: string;
  platform?: string;
  version?: string;
  links?: LinkRecord[];
  services?: ServiceRecord[];
}

export interface Site extends KubeObject {
  spec?: {
    serviceAccount?: string;
    linkAccess?: string;
    defaultIssuer?: string;
    edge?: boolean;
    ha?: boolean;
    settings?: Record<string, string>;
  };
  status?: SkupperStatus & {
    endpoints?: Endpoint[];
    sitesInNetwork?: number;
    network?: SiteRecord[];
    defaultIssuer?: string;
    controller?: { name?: string; namespace?: string; version?: string };
  };
}

export interface Link extends KubeObject {
  spec?: {
    endpoints?: Endpoint[];
    tlsCredentials?: string;
    cost?: number;
    settings?: Record<string, string>;
  };
  status?: SkupperStatus & { remoteSiteId?: string; remoteSiteName?: string };
}

export interface AccessGrant extends KubeObject {
  spec?: {
    redemptionsAllowed?: number;
    expirationWindow?: string;
    code?: string;
    issuer?: string;
    settings?: Record<string, string>;
  };
  status?: SkupperStatus & {
    url?: string;
    code?: string;
    ca?: string;
    redemptions?: number;
    expirationTime?: string;
  };
}

export interface AccessToken extends KubeObject {
  spec?: { url?: string; code?: string; ca?: string; linkCost?: number; settings?: Record<string, string> };
  status?: SkupperStatus & { redeemed?: boolean };
}

export interface Listener extends KubeObject {
  spec?: {
    routingKey?: string;
    host?: string;
    port?: number;
    tlsCredentials?: string;
    type?: string;
    observer?: string;
    exposePodsByName?: boolean;
    settings?: Record<string, string>;
  };
  status?: SkupperStatus & { hasMatchingConnector?: boolean };
}

export interface PodDetails {
  name?: string;
  ip?: string;
}

export interface Connector extends KubeObject {
  spec?: {
    routingKey?: string;
    host?: string;
    selector?: string;
    port?: number;
    tlsCredentials?: string;
    useClientCert?: boolean;
    verifyHostname?: boolean;
    type?: string;
    exposePodsByName?: boolean;
    includeNotReadyPods?: boolean;
    settings?: Record<string, string>;
  };
  status?: SkupperStatus & { selectedPods?: PodDetails[]; hasMatchingListener?: boolean };
}

export interface AttachedConnector extends KubeObject {
  spec?: {
    siteNamespace?: string;
    selector?: string;
    port?: number;
    tlsCredentials?: string;
    useClientCert?: boolean;
    type?: string;
    includeNotReadyPods?: boolean;
    settings?: Record<string, string>;
  };
  status?: SkupperStatus & { selectedPods?: PodDetails[] };
}

export interface AttachedConnectorBinding extends KubeObject {
  spec?: {
    connectorNamespace?: string;
    routingKey?: string;
    exposePodsByName?: boolean;
    settings?: Record<string, string>;
  };
  status?: SkupperStatus & { hasMatchingListener?: boolean };
}

interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}

interface ServicePort {
  name?: string;
  port?: number;
  targetPort?: number | string;
  protocol?: string;
}

interface Service extends KubeObject {
  spec?: { selector?: Record<string, string>; ports?: ServicePort[]; type?: string };
}

interface Pod extends KubeObject {
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
  };
}

// ---------------------------------------------------------------------------------------
// Constants of the controller.

/** types.go CONDITION_TYPE_* */
const Configured = "Configured";
const Running = "Running";
const Resolved = "Resolved";
const Matched = "Matched";
const Processed = "Processed";
const Redeemed = "Redeemed";
const Operational = "Operational";
const Ready = "Ready";

/** The controller's identity in Site status (controller.go NewController: self). */
export const SkupperController = { name: "skupper-controller", namespace: "skupper", version: "2.2.1" };
/** The Site's default signing CA (types.go Site.DefaultIssuer). */
const DefaultIssuerName = "skupper-site-ca";
/** grants/config.go: -grant-server-port default. */
export const GrantServerPort = 9090;
/** RouterAccess roles the Site's default RouterAccess declares (site.go checkDefaultRouterAccess). */
const routerRoles = [
  { name: "inter-router", port: 55671 },
  { name: "edge", port: 45671 },
];
/** securedaccess/config.go ACCESS_TYPE_*: the access types the controller knows. */
const knownAccessTypes = [
  "local",
  "loadbalancer",
  "route",
  "nodeport",
  "ingress",
  "ingress-nginx",
  "contour-http-proxy",
  "gateway",
];
const defaultResolvable = [
  "default",
  "loadbalancer",
  "nodeport",
  "route",
  "ingress",
  "ingress-nginx",
  "local",
];
/** api/types/types.go: labels of the router pods, the selector of a Listener's Service. */
const routerSelector = { application: "skupper-router", "skupper.io/component": "router" };
const ListenerLabel = "internal.skupper.io/listener";
const ControlledAnnotation = "internal.skupper.io/controlled";
/** internal/kube/watchers/watchers.go resyncShort: AccessTokens are resynced (and redeemed again) this often. */
export const UpstreamTokenResyncMs = 30_000;

/** The grant server host of a cluster (the controller's SecuredAccess skupper-grant-server). */
export const grantServerHost = (cluster: string): string => `skupper-grant-server.${cluster}.outpost.test`;

/** The endpoints a Site's link access resolves to, for one router group (site.go groups()). */
function accessEndpoints(cluster: string, namespace: string, accessType: string, group: string): Endpoint[] {
  const suffix = group === "skupper-router" ? "" : group.slice("skupper-router".length);
  return routerRoles.map((role) => ({
    name: role.name,
    // securedaccess/local.go: access.Name + "." + access.Namespace (cluster-local DNS).
    host:
      accessType === "local"
        ? `${group}.${namespace}`
        : `skupper-${role.name}${suffix}-${namespace}.${cluster}.outpost.test`,
    port: String(role.port),
    group,
  }));
}

// ---------------------------------------------------------------------------------------
// Status helpers (types.go Status, SetCondition, setReady and each kind's setters).

interface State {
  status: "True" | "False";
  reason: string;
  message: string;
}
const readyState = (): State => ({ status: "True", reason: "Ready", message: "OK" });
const errorState = (message: string): State => ({ status: "False", reason: "Error", message });
const pendingState = (message: string): State => ({ status: "False", reason: "Pending", message });
const errorOrReady = (err: string | undefined): State => (err === undefined ? readyState() : errorState(err));
const readyOrPending = (ready: boolean): State => (ready ? readyState() : pendingState("Pending"));

class StatusEditor<S extends SkupperStatus> {
  readonly conditions: Condition[];
  constructor(
    readonly status: S,
    private readonly generation: number,
    private readonly now: string,
  ) {
    status.conditions ??= [];
    this.conditions = status.conditions;
  }

  find(type: string): Condition | undefined {
    return this.conditions.find((c) => c.type === type);
  }

  isTrue(type: string): boolean {
    return this.find(type)?.status === "True";
  }

  /** types.go setStatusCondition: lastTransitionTime only moves when status changes. */
  set(type: string, state: State): boolean {
    const existing = this.find(type);
    if (!existing) {
      this.conditions.push({
        type,
        status: state.status,
        observedGeneration: this.generation,
        lastTransitionTime: this.now,
        reason: state.reason,
        message: state.message,
      });
      return true;
    }
    let changed = false;
    if (existing.status !== state.status) {
      existing.status = state.status;
      existing.lastTransitionTime = this.now;
      changed = true;
    }
    if (existing.reason !== state.reason) {
      existing.reason = state.reason;
      changed = true;
    }
    if (existing.message !== state.message) {
      existing.message = state.message;
      changed = true;
    }
    if ((existing.observedGeneration ?? 0) !== this.generation) {
      existing.observedGeneration = this.generation;
      changed = true;
    }
    return changed;
  }

  /** types.go Status.readyState/setReady: Ready mirrors the first required condition not True. */
  setReady(required: string[]): boolean {
    let state = readyState();
    for (const type of required) {
      const c = this.find(type);
      if (!c) {
        state = pendingState(`Not ${type}`);
        break;
      }
      if (c.status === "False") {
        state = { status: "False", reason: c.reason, message: c.message };
        break;
      }
    }
    let changed = false;
    if (this.status.status !== state.reason) {
      this.status.status = state.reason as S["status"];
      changed = true;
    }
    if (this.status.message !== state.message) {
      this.status.message = state.message;
      changed = true;
    }
    return this.set(Ready, state) || changed;
  }

  /** The pattern of every Set* in types.go: Ready is recomputed when the condition changed. */
  setAndReady(type: string, state: State, required: string[]): boolean {
    if (this.set(type, state)) {
      this.setReady(required);
      return true;
    }
    return false;
  }
}

const linkRequired = [Configured, Operational];
const bindingRequired = [Configured, Matched];
const grantRequired = [Processed, Resolved];

// ---------------------------------------------------------------------------------------
// Go-compatible parsing: time.ParseDuration and time.Parse(time.RFC3339).

const goQuote = (s: string): string => JSON.stringify(s);

const durationUnits: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's time.ParseDuration, in milliseconds, with Go's error texts. */
export function parseGoDuration(input: string): number {
  const invalid = (): Error => new Error(`time: invalid duration ${goQuote(input)}`);
  let s = input;
  let negative = false;
  if (s.startsWith("-") || s.startsWith("+")) {
    negative = s.startsWith("-");
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw invalid();
  let totalNs = 0;
  while (s !== "") {
    if (!/^[0-9.]/.test(s)) throw invalid();
    const whole = /^[0-9]*/.exec(s)?.[0] ?? "";
    s = s.slice(whole.length);
    let fraction = "";
    let hasFraction = false;
    if (s.startsWith(".")) {
      s = s.slice(1);
      fraction = /^[0-9]*/.exec(s)?.[0] ?? "";
      hasFraction = fraction !== "";
      s = s.slice(fraction.length);
    }
    if (whole === "" && !hasFraction) throw invalid();
    const unit = /^[^0-9.]*/.exec(s)?.[0] ?? "";
    if (unit === "") throw new Error(`time: missing unit in duration ${goQuote(input)}`);
    const scale = durationUnits[unit];
    if (scale === undefined)
      throw new Error(`time: unknown unit ${goQuote(unit)} in duration ${goQuote(input)}`);
    s = s.slice(unit.length);
    totalNs += Number(`${whole || "0"}.${fraction || "0"}`) * scale;
    if (totalNs > 9.223372036854776e18) throw invalid();
  }
  return (negative ? -totalNs : totalNs) / 1e6;
}

/** time.Parse(time.RFC3339, s) in milliseconds since the epoch, or undefined when Go would fail. */
function parseRFC3339(s: string | undefined): number | undefined {
  if (!s || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return undefined;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

/** time.Now().Format(time.RFC3339) on a UTC host. */
const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** net/http StatusText for the codes the grant server answers. */
const statusText: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

// ---------------------------------------------------------------------------------------
// Small utilities.

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!deepEqual(ao[k], bo[k])) return false;
  return true;
}

const clone = <T>(v: T): T => structuredClone(v);

/** Drops what Go's `omitempty` drops (zero values, empty slices and maps), except in conditions. */
function omitEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => omitEmpty(v));
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (k === "conditions") {
      if (Array.isArray(v) && v.length) out[k] = v;
      continue;
    }
    if (v === undefined || v === null || v === "" || v === false || v === 0) continue;
    const c = omitEmpty(v);
    if (Array.isArray(c) && c.length === 0) continue;
    if (typeof c === "object" && c !== null && !Array.isArray(c) && Object.keys(c).length === 0) continue;
    out[k] = c;
  }
  return out;
}

const byCreation = <T extends KubeObject>(a: T, b: T): number => {
  const x = `${a.metadata.creationTimestamp ?? ""}/${a.metadata.name ?? ""}`;
  const y = `${b.metadata.creationTimestamp ?? ""}/${b.metadata.name ?? ""}`;
  return x < y ? -1 : x > y ? 1 : 0;
};

/** The first value that is set and not empty (Go's `if x == "" { … }` chains). */
const firstSet = (...values: (string | undefined)[]): string =>
  values.find((v) => v !== undefined && v !== "") ?? "";

const nameOf = (o: KubeObject): string => o.metadata.name ?? "";
const nsOf = (o: KubeObject): string => o.metadata.namespace ?? "";
const generationOf = (o: KubeObject): number => o.metadata.generation ?? 0;
const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, "base64").toString("utf8") : "");

/** The base64 bodies of the CERTIFICATE blocks of a PEM bundle (what AppendCertsFromPEM loads). */
function pemCertificates(pem: string): string[] {
  const out: string[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) {
    out.push((m[1] ?? "").replace(/\s+/g, ""));
  }
  return out;
}

const certKey = (pem: string): string => pemCertificates(pem)[0] ?? "";

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Whether `err` says the API server cannot be reached (as opposed to an answer it gave). */
function isUnreachable(err: unknown): boolean {
  if (err instanceof ApiError) return err.code >= 500 || err.code === 429;
  const codes = new Set([
    "ECONNREFUSED",
    "ECONNRESET",
    "EPIPE",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "UND_ERR_SOCKET",
    "UND_ERR_CLOSED",
    "UND_ERR_CONNECT_TIMEOUT",
    "UND_ERR_HEADERS_TIMEOUT",
    "UND_ERR_BODY_TIMEOUT",
  ]);
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && codes.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

class ClusterUnreachable extends Error {
  override name = "ClusterUnreachable";
}

// ---------------------------------------------------------------------------------------
// CAs. Skupper keeps them in Secrets (skupper-grant-server, skupper-site-ca); the driver keeps
// real ones in memory, shared by all drivers of the process so that a restarted driver
// accepts what an earlier one issued.

const grantServerCAs = new Map<string, Promise<CertificateAuthority>>();
const siteCAs = new Map<string, Promise<CertificateAuthority>>();
/** Site UID → the body of its CA certificate (once its CA exists). */
const siteCACertificates = new Map<string, string>();
/** Client certificates issued by redemptions: certificate body → UID of the Site whose CA signed it. */
const issuedCertificates = new Map<string, string>();

function cachedCA(cache: Map<string, Promise<CertificateAuthority>>, key: string, name: string) {
  let ca = cache.get(key);
  if (!ca) {
    ca = createCertificateAuthority(name);
    cache.set(key, ca);
  }
  return ca;
}

// ---------------------------------------------------------------------------------------
// The schemas the upstream CRDs enforce (config/crd/bases/*.yaml, from the Go types), for the
// strictness checks that the stand-in CRDs leave to the driver.

type FieldType = "string" | "integer" | "boolean" | "map" | "endpoints";
interface SpecSchema {
  fields: Record<string, FieldType>;
  required: string[];
}
const schemas: Record<string, SpecSchema> = {
  Site: {
    fields: {
      serviceAccount: "string",
      linkAccess: "string",
      defaultIssuer: "string",
      edge: "boolean",
      ha: "boolean",
      settings: "map",
    },
    required: [],
  },
  Link: {
    fields: { endpoints: "endpoints", tlsCredentials: "string", cost: "integer", settings: "map" },
    required: ["endpoints"],
  },
  AccessGrant: {
    fields: {
      redemptionsAllowed: "integer",
      expirationWindow: "string",
      code: "string",
      issuer: "string",
      settings: "map",
    },
    required: [],
  },
  AccessToken: {
    fields: { url: "string", code: "string", ca: "string", linkCost: "integer", settings: "map" },
    required: ["url", "code", "ca"],
  },
  Listener: {
    fields: {
      routingKey: "string",
      host: "string",
      port: "integer",
      tlsCredentials: "string",
      type: "string",
      observer: "string",
      exposePodsByName: "boolean",
      settings: "map",
    },
    required: ["routingKey", "host", "port"],
  },
  Connector: {
    fields: {
      routingKey: "string",
      host: "string",
      selector: "string",
      port: "integer",
      tlsCredentials: "string",
      useClientCert: "boolean",
      verifyHostname: "boolean",
      type: "string",
      exposePodsByName: "boolean",
      includeNotReadyPods: "boolean",
      settings: "map",
    },
    required: ["routingKey", "port"],
  },
  AttachedConnector: {
    fields: {
      siteNamespace: "string",
      selector: "string",
      port: "integer",
      tlsCredentials: "string",
      useClientCert: "boolean",
      type: "string",
      includeNotReadyPods: "boolean",
      settings: "map",
    },
    required: ["port", "selector", "siteNamespace"],
  },
  AttachedConnectorBinding: {
    fields: {
      connectorNamespace: "string",
      routingKey: "string",
      exposePodsByName: "boolean",
      settings: "map",
    },
    required: ["connectorNamespace", "routingKey"],
  },
};

function typeProblem(value: unknown, type: FieldType): string | undefined {
  switch (type) {
    case "string":
      return typeof value === "string" ? undefined : "must be a string";
    case "integer":
      return Number.isInteger(value) ? undefined : "must be an integer";
    case "boolean":
      return typeof value === "boolean" ? undefined : "must be a boolean";
    case "map":
      return typeof value === "object" &&
        value !== null &&
        !Array.isArray(value) &&
        Object.values(value).every((v) => typeof v === "string")
        ? undefined
        : "must be a map of strings";
    case "endpoints": {
      if (!Array.isArray(value)) return "must be a list of endpoints";
      for (const [i, e] of value.entries()) {
        if (typeof e !== "object" || e === null) return `[${i}] must be an object`;
        for (const [k, v] of Object.entries(e as Record<string, unknown>)) {
          if (!["name", "host", "port", "group"].includes(k)) return `[${i}].${k} is not a field of Endpoint`;
          if (typeof v !== "string") return `[${i}].${k} must be a string (ports are strings)`;
        }
      }
      return undefined;
    }
  }
}

/** What the upstream CRD would reject or prune in `obj`'s spec. */
function specProblems(kind: string, obj: KubeObject & { spec?: unknown }): string[] {
  const schema = schemas[kind];
  if (!schema) return [];
  const problems: string[] = [];
  const spec = obj.spec;
  if (spec !== undefined && (typeof spec !== "object" || spec === null || Array.isArray(spec))) {
    return ["spec must be an object (the upstream CRD rejects the object)"];
  }
  const fields = (spec ?? {}) as Record<string, unknown>;
  for (const r of schema.required) {
    if (fields[r] === undefined) problems.push(`spec.${r} is required (the upstream CRD rejects the object)`);
  }
  for (const [k, v] of Object.entries(fields)) {
    const type = schema.fields[k];
    if (!type) {
      problems.push(
        `spec.${k} is not a field of ${kind} (the upstream CRD prunes it: Skupper never sees it)`,
      );
      continue;
    }
    const p = typeProblem(v, type);
    if (p) problems.push(`spec.${k} ${p} (the upstream CRD rejects the object)`);
  }
  if (kind === "Connector" && (fields.host === undefined) === (fields.selector === undefined)) {
    problems.push(
      "exactly one of spec.host and spec.selector must be set (the upstream CRD's oneOf rejects the object)",
    );
  }
  if (kind === "Listener" && fields.observer !== undefined) {
    if (
      typeof fields.observer !== "string" ||
      !["auto", "none", "http1", "http2"].includes(fields.observer)
    ) {
      problems.push(
        `spec.observer must be one of auto, none, http1, http2 (the upstream CRD rejects the object)`,
      );
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// The driver.

export interface SkupperCluster {
  name: string;
  client: KubeClient;
}

export interface SkupperDriverOptions {
  clusters: SkupperCluster[];
  /**
   * linkAccess types that resolve on these clusters (get endpoints). Default: ["default",
   * "loadbalancer", "nodeport", "route", "ingress", "ingress-nginx", "local"]. A Site asking
   * for another known type stays Resolved=False/Pending ("Pending"), as upstream does when
   * the access (a LoadBalancer without an address, say) does not resolve; an unknown type is
   * Configured=False ("Unsupported value for LinkAccess: …").
   */
  resolvableAccessTypes?: string[];
  /**
   * How often a failed AccessToken redemption is tried again when nothing changed (upstream:
   * every resync of AccessTokens, 30 s; watchers.go resyncShort). Default 1000 ms. A change
   * of the token (including the driver's own status write after a failure, as upstream's
   * watch sees it) retries at the next pass.
   */
  tokenResyncMs?: number;
  log?: (line: string) => void;
}

export interface Redemption {
  url: string;
  /** The cluster of the AccessToken. */
  cluster: string;
  namespace: string;
  token: string;
  /** The HTTP status the grant server answered, or 0 when it could not be reached (connection, DNS, TLS). */
  status: number;
}

/** A Site as one pass sees it. */
interface SiteView {
  cluster: string;
  obj: Site;
  /** The status the pass computes (written at the end of the pass). */
  status: NonNullable<Site["status"]>;
  editor: StatusEditor<NonNullable<Site["status"]>>;
  /** The namespace's active Site (controller.go getSite(ns).GetSite()). */
  active: boolean;
  /** Passed verifySiteSpec: its router runs (site.go reconcile went on to the Deployment). */
  valid: boolean;
}

/** A site of the simulated network: an active, valid Site with a router. */
interface SiteNode {
  cluster: string;
  namespace: string;
  id: string;
  name: string;
  edge: boolean;
  endpoints: Endpoint[];
  links: LinkNode[];
  /** Router connectors (their destination hosts) and listeners (their names), by routing key. */
  connectors: Map<string, string[]>;
  listeners: Map<string, string[]>;
}

interface LinkNode {
  name: string;
  uid: string;
  configured: boolean;
  /** The endpoint of the role the local router dials (site/link.go Apply: inter-router, or edge from an edge site). */
  target?: { host: string; port: string };
  /** The client certificate and CA in its tlsCredentials Secret. */
  tls?: { crt: string; ca: string };
  /** The Link had an Operational condition: its router knew the peer before (network.go ExtractSiteRecords). */
  hadPeer: boolean;
  /** Set by the network computation. */
  peer?: SiteNode;
  operational?: boolean;
}

interface ClusterPass {
  name: string;
  client: KubeClient;
  up: boolean;
  sites: Site[];
  links: Link[];
  grants: AccessGrant[];
  tokens: AccessToken[];
  listeners: Listener[];
  connectors: Connector[];
  attached: AttachedConnector[];
  bindings: AttachedConnectorBinding[];
  siteViews: SiteView[];
  nodes: SiteNode[];
  secrets: Map<string, Promise<Map<string, Secret>>>;
  /** Links were created this pass (redemptions): list them again before the link step. */
  linksChanged: boolean;
  /**
   * The Configured outcome of each Link, Listener, Connector, AttachedConnector and binding:
   * "" when configured, an error text, or null when the controller writes no status.
   */
  configured: Map<KubeObject, string | null>;
}

interface PassState {
  now: number;
  clusters: Map<string, ClusterPass>;
}

/** A listener as exposed on a Service (site/ports.go Port). */
interface ExposedPort {
  name: string;
  port: number;
  targetPort: number;
  protocol: string;
}

export class SkupperDriver {
  /** Sync errors and strictness violations (newest last, at most 200). */
  readonly errors: string[] = [];
  /** What the controller would log (deduplicated among the recent lines; newest last, at most 300). */
  readonly events: string[] = [];
  /** Every redemption attempt that sent (or tried to send) a POST to a grant server. */
  readonly redemptions: Redemption[] = [];

  private readonly clusters: SkupperCluster[];
  private readonly resolvable: Set<string>;
  private readonly enabledAccessTypes: Set<string>;
  private readonly tokenResyncMs: number;
  private readonly routerUp = new Map<string, boolean>();
  /** cluster/namespace → UID of the active Site (controller.go keeps one site.Site per namespace). */
  private readonly activeSites = new Map<string, string>();
  /** The last nodes seen of each cluster, serving the network while its API server is down. */
  private readonly lastNodes = new Map<string, SiteNode[]>();
  /** Token UID → the token's resourceVersion and time of the last redemption attempt. */
  private readonly attempts = new Map<string, { resourceVersion: string; at: number }>();
  /** cluster/namespace → listener name → router port (qdr/port_mapping.go). */
  private readonly portMappings = new Map<string, Map<string, number>>();
  private readonly reported = new Set<string>();
  private readonly down = new Set<string>();
  private lock: Promise<void> = Promise.resolve();
  private loop: Promise<void> | undefined;
  private stopRequested = false;
  private wake: (() => void) | undefined;

  constructor(private readonly options: SkupperDriverOptions) {
    this.clusters = options.clusters;
    const names = new Set<string>();
    for (const c of this.clusters) {
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(c.name)) {
        throw new Error(`cluster name ${goQuote(c.name)} is not a DNS label (it is part of host names)`);
      }
      if (names.has(c.name)) throw new Error(`cluster ${c.name} given twice`);
      names.add(c.name);
      this.routerUp.set(c.name, true);
    }
    this.resolvable = new Set(options.resolvableAccessTypes ?? defaultResolvable);
    this.enabledAccessTypes = new Set([...knownAccessTypes, ...this.resolvable]);
    this.tokenResyncMs = options.tokenResyncMs ?? 1000;
  }

  // ---- test controls ----------------------------------------------------------------

  /**
   * Takes the routers of `cluster` off the simulated network (or back): links to and from
   * its sites stop being Operational, and its sites' network shrinks to themselves.
   */
  setRouterUp(cluster: string, up: boolean): void {
    if (!this.routerUp.has(cluster)) throw new Error(`unknown cluster ${cluster}`);
    this.routerUp.set(cluster, up);
    this.log(`cluster ${cluster}: routers ${up ? "up" : "down"}`);
  }

  /** The grant server URL base of a cluster (what AccessGrant status.url starts with). */
  grantServerURL(cluster: string): string {
    return `https://${grantServerHost(cluster)}:${GrantServerPort}`;
  }

  /** The CA (PEM) a cluster's grant server presents (AccessGrant status.ca). */
  async grantServerCA(cluster: string): Promise<string> {
    const c = this.clusters.find((x) => x.name === cluster);
    if (!c) throw new Error(`unknown cluster ${cluster}`);
    return (await this.grantCA(c)).certPem;
  }

  // ---- running ------------------------------------------------------------------------

  /** One pass over all clusters. A cluster whose API server is down is skipped (see events). */
  sync(): Promise<void> {
    return this.locked(() => this.pass());
  }

  /** Runs sync() every `intervalMs` until stop(); errors are logged and kept in `errors`. */
  start(intervalMs = 200): void {
    if (this.loop) return;
    this.stopRequested = false;
    this.loop = this.run(intervalMs);
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(intervalMs: number): Promise<void> {
    while (!this.stopRequested) {
      try {
        await this.sync();
      } catch (err) {
        this.error(`sync failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
      if (this.stopping()) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, intervalMs);
      });
      this.wake = undefined;
    }
  }

  private stopping(): boolean {
    return this.stopRequested;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.lock.then(fn);
    this.lock = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private log(line: string): void {
    // A retry repeats every pass: keep one line per distinct message among the recent ones.
    if (this.events.slice(-100).includes(line)) return;
    this.events.push(line);
    if (this.events.length > 300) this.events.shift();
    this.options.log?.(`skupper-driver: ${line}`);
  }

  private error(line: string): void {
    // A persistent failure repeats every pass: keep one line per distinct message among the recent ones.
    if (this.errors.slice(-50).includes(line)) return;
    this.errors.push(line);
    if (this.errors.length > 200) this.errors.shift();
    this.log(`ERROR ${line}`);
  }

  /** A strictness violation, reported once per object generation. */
  private violation(cluster: string, kind: string, obj: KubeObject, problem: string): void {
    const key = `${cluster}/${kind}/${nsOf(obj)}/${nameOf(obj)}/${obj.metadata.uid ?? ""}/${generationOf(obj)}/${problem}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.error(`${cluster}: ${kind} ${nsOf(obj)}/${nameOf(obj)}: ${problem}`);
  }

  private grantCA(cluster: SkupperCluster): Promise<CertificateAuthority> {
    return cachedCA(grantServerCAs, cluster.client.server, "SkupperGrantServerCA");
  }

  private async siteCA(siteId: string, siteName: string): Promise<CertificateAuthority> {
    const ca = await cachedCA(siteCAs, siteId, `${siteName} site CA`);
    siteCACertificates.set(siteId, certKey(ca.certPem));
    return ca;
  }

  // ---- one pass -------------------------------------------------------------------------

  private async pass(): Promise<void> {
    const state: PassState = { now: Date.now(), clusters: new Map() };
    const passes = await Promise.all(this.clusters.map((c) => this.read(c)));
    for (const p of passes) state.clusters.set(p.name, p);
    const up = (): ClusterPass[] => [...state.clusters.values()].filter((p) => p.up);

    for (const p of up()) await this.onCluster(p, () => this.sitesStep(p, state));
    for (const p of up()) await this.onCluster(p, () => this.grantsStep(p, state));
    for (const p of up()) await this.onCluster(p, () => this.tokensStep(p, state));
    for (const p of up()) await this.onCluster(p, () => this.linksStep(p));
    for (const p of up()) await this.onCluster(p, () => this.bindingsStep(p));
    for (const p of up()) this.lastNodes.set(p.name, p.nodes);
    this.network(state);
    for (const p of up()) await this.onCluster(p, () => this.writeStep(p, state));
  }

  /** Runs one step for a cluster; an unreachable API server takes the cluster out of the pass. */
  private async onCluster(p: ClusterPass, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      if (err instanceof ClusterUnreachable || isUnreachable(err)) {
        p.up = false;
        this.markDown(p.name, err);
        return;
      }
      throw err;
    }
  }

  private markDown(cluster: string, err: unknown): void {
    this.down.add(cluster);
    this.log(`cluster ${cluster}: API server unreachable (${errorText(err)}); skipped this pass`);
  }

  /** Runs a write for one object: an API error is reported and the pass goes on. */
  private async guard(p: ClusterPass, what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (isUnreachable(err)) throw new ClusterUnreachable(errorText(err));
      if (err instanceof ApiError) {
        // Races with other writers — the object changed or went since this pass read it, or
        // its namespace is being deleted — are retried on the next pass, as the
        // controller's work queue retries them; anything else is a real error.
        const race =
          err.code === 409 ||
          err.code === 404 ||
          (err.code === 403 && err.message.includes("being terminated"));
        if (race) this.log(`${p.name}: ${what}: ${err.message} (retried next pass)`);
        else this.error(`${p.name}: ${what}: ${err.message}`);
        return;
      }
      throw err;
    }
  }

  private async read(c: SkupperCluster): Promise<ClusterPass> {
    const p: ClusterPass = {
      name: c.name,
      client: c.client,
      up: false,
      sites: [],
      links: [],
      grants: [],
      tokens: [],
      listeners: [],
      connectors: [],
      attached: [],
      bindings: [],
      siteViews: [],
      nodes: [],
      secrets: new Map(),
      linksChanged: false,
      configured: new Map(),
    };
    try {
      const list = async <T extends KubeObject>(r: ResourceType): Promise<T[]> =>
        (await c.client.list<T>(r)).items.filter((o) => !o.metadata.deletionTimestamp).sort(byCreation);
      [p.sites, p.links, p.grants, p.tokens, p.listeners, p.connectors, p.attached, p.bindings] =
        await Promise.all([
          list<Site>(SiteResource),
          list<Link>(LinkResource),
          list<AccessGrant>(AccessGrantResource),
          list<AccessToken>(AccessTokenResource),
          list<Listener>(ListenerResource),
          list<Connector>(ConnectorResource),
          list<AttachedConnector>(AttachedConnectorResource),
          list<AttachedConnectorBinding>(AttachedConnectorBindingResource),
        ]);
      p.up = true;
      if (this.down.delete(c.name)) this.log(`cluster ${c.name}: API server reachable again`);
    } catch (err) {
      if (isUnreachable(err)) {
        this.markDown(c.name, err);
      } else if (ApiError.isNotFound(err)) {
        this.error(`${c.name}: the skupper.io/v2alpha1 CRDs are not installed (${errorText(err)})`);
      } else {
        throw err;
      }
    }
    return p;
  }

  private secretsOf(p: ClusterPass, namespace: string): Promise<Map<string, Secret>> {
    let secrets = p.secrets.get(namespace);
    if (!secrets) {
      secrets = p.client
        .list<Secret>(secretsResource, { namespace })
        .then((l) => new Map(l.items.map((s) => [nameOf(s), s])));
      p.secrets.set(namespace, secrets);
    }
    return secrets;
  }

  private activeSite(p: ClusterPass, namespace: string): SiteView | undefined {
    return p.siteViews.find((s) => s.active && nsOf(s.obj) === namespace);
  }

  // ---- 1. sites -----------------------------------------------------------------------

  /**
   * controller.go checkSite → site.go Reconcile: the first Site of a namespace is active, a
   * second one is marked inactive (markSiteInactive); verifySiteSpec; updateConfigured
   * (defaultIssuer, Configured); RouterPodEvent (Running); CheckRouterAccess → updateResolved
   * (endpoints, Resolved).
   */
  private async sitesStep(p: ClusterPass, state: PassState): Promise<void> {
    const now = rfc3339(state.now);
    const byNamespace = new Map<string, Site[]>();
    for (const site of p.sites) {
      byNamespace.set(nsOf(site), [...(byNamespace.get(nsOf(site)) ?? []), site]);
      for (const problem of specProblems("Site", site)) this.violation(p.name, "Site", site, problem);
    }
    // Namespaces whose active Site went away: site.go Deleted → updateAccessTokensForDeletedSite.
    for (const [key, uid] of this.activeSites) {
      const [cluster, namespace] = key.split("/") as [string, string];
      if (cluster !== p.name) continue;
      if ((byNamespace.get(namespace) ?? []).some((s) => s.metadata.uid === uid)) continue;
      this.activeSites.delete(key);
      this.log(`${p.name}: Site in ${namespace} deleted`);
      await this.tokensOfDeletedSite(p, namespace, now);
    }
    for (const [namespace, sites] of byNamespace) {
      const key = `${p.name}/${namespace}`;
      let activeUID = this.activeSites.get(key);
      if (!activeUID || !sites.some((s) => s.metadata.uid === activeUID)) {
        activeUID = sites[0]?.metadata.uid ?? "";
        this.activeSites.set(key, activeUID);
      }
      const active = sites.find((s) => s.metadata.uid === activeUID);
      for (const site of sites) {
        const status = clone(site.status ?? {});
        const editor = new StatusEditor(status, generationOf(site), now);
        const view: SiteView = {
          cluster: p.name,
          obj: site,
          status,
          editor,
          active: site === active,
          valid: false,
        };
        p.siteViews.push(view);
        // controller.go checkSite: site.Status.Controller = &c.self before reconciling.
        status.controller = { ...SkupperController };
        const required = this.siteRequired(site);
        if (site !== active) {
          editor.setAndReady(
            Configured,
            errorState(`An active site already exists in the namespace (${nameOf(active ?? site)})`),
            required,
          );
          continue;
        }
        const verifyError = this.verifySite(site);
        // site.go setDefaultIssuerInStatus: spec, else what status already says, else skupper-site-ca.
        status.defaultIssuer = firstSet(site.spec?.defaultIssuer, status.defaultIssuer, DefaultIssuerName);
        editor.setAndReady(Configured, errorOrReady(verifyError), required);
        if (verifyError !== undefined) continue;
        view.valid = true;
        // site.go RouterPodEvent/isRouterPodRunning: the (simulated) router pod is ready.
        editor.setAndReady(Running, readyState(), required);
        if (this.resolutionRequired(site)) {
          const endpoints = this.siteEndpoints(p.name, site);
          // types.go SetEndpoints.
          if (!deepEqual(status.endpoints ?? [], endpoints)) status.endpoints = endpoints;
          editor.setAndReady(Resolved, readyOrPending(endpoints.length > 0), required);
        } else {
          delete status.endpoints;
        }
        p.nodes.push({
          cluster: p.name,
          namespace,
          id: site.metadata.uid ?? "",
          name: nameOf(site),
          edge: site.spec?.edge === true,
          endpoints: status.endpoints ?? [],
          links: [],
          connectors: new Map(),
          listeners: new Map(),
        });
      }
    }
  }

  /** types.go Site.resolutionRequired */
  private resolutionRequired(site: Site): boolean {
    const access = site.spec?.linkAccess ?? "";
    return access !== "" && access !== "none";
  }

  /** types.go Site.requiredConditions */
  private siteRequired(site: Site): string[] {
    return this.resolutionRequired(site) ? [Configured, Running, Resolved] : [Configured, Running];
  }

  /** site.go verifySiteSpec */
  private verifySite(site: Site): string | undefined {
    const access = site.spec?.linkAccess ?? "";
    if (access !== "" && access !== "none" && access !== "default" && !this.enabledAccessTypes.has(access)) {
      return `Unsupported value for LinkAccess: ${access}`;
    }
    if (site.spec?.edge === true && site.spec.ha === true) return "Edge sites cannot have HA enabled";
    return undefined;
  }

  /**
   * The endpoints of the Site's RouterAccess skupper-router (site.go checkDefaultRouterAccess:
   * roles inter-router 55671 and edge 45671), one group per router (groups(): HA adds
   * skupper-router-2), when its access type resolves on this cluster.
   */
  private siteEndpoints(cluster: string, site: Site): Endpoint[] {
    const access = site.spec?.linkAccess ?? "";
    if (!this.resolvable.has(access)) return [];
    const groups = site.spec?.ha === true ? ["skupper-router", "skupper-router-2"] : ["skupper-router"];
    return groups.flatMap((g) => accessEndpoints(cluster, nsOf(site), access, g));
  }

  /** site.go updateRedeemedStatusForDeletedSite: redeemed tokens of the namespace say so. */
  private async tokensOfDeletedSite(p: ClusterPass, namespace: string, now: string): Promise<void> {
    for (const token of p.tokens.filter((t) => nsOf(t) === namespace)) {
      const status = clone(token.status ?? {});
      const editor = new StatusEditor(status, generationOf(token), now);
      if (!editor.isTrue(Redeemed)) continue;
      if (
        editor.set(Redeemed, {
          status: "True",
          reason: "Error",
          message: "Already redeemed for a deleted site",
        })
      ) {
        status.redeemed = true;
        status.status = "Error";
        status.message = "Already redeemed for a deleted site";
        await this.guard(p, `AccessToken ${namespace}/${nameOf(token)}`, () =>
          this.writeStatus(p, AccessTokenResource, token, status).then(() => undefined),
        );
      }
    }
  }

  // ---- 2. grants ------------------------------------------------------------------------

  /** grants.go checkGrant */
  private async grantsStep(p: ClusterPass, state: PassState): Promise<void> {
    const cluster = this.clusters.find((c) => c.name === p.name);
    if (!cluster) return;
    const ca = (await this.grantCA(cluster)).certPem;
    const now = rfc3339(state.now);
    for (const grant of p.grants) {
      const what = `AccessGrant ${nsOf(grant)}/${nameOf(grant)}`;
      for (const problem of specProblems("AccessGrant", grant))
        this.violation(p.name, "AccessGrant", grant, problem);
      // "if RedemptionsAllowed is not set default to 1": an Update of the spec, nothing else this time.
      if (!grant.spec?.redemptionsAllowed) {
        await this.guard(p, what, async () => {
          const updated = await p.client.mergePatch<AccessGrant>(
            AccessGrantResource,
            nameOf(grant),
            nsOf(grant),
            {
              spec: { redemptionsAllowed: 1 },
            },
          );
          grant.metadata = updated.metadata;
          grant.spec = updated.spec;
        });
        continue;
      }
      const status = clone(grant.status ?? {});
      const editor = new StatusEditor(status, generationOf(grant), now);
      const problems: string[] = [];
      // Any Ready edge Site in the namespace.
      const edge = p.siteViews.some(
        (s) => nsOf(s.obj) === nsOf(grant) && s.obj.spec?.edge === true && s.editor.isTrue(Ready),
      );
      if (edge) problems.push("Edge sites cannot accept incoming links from remote sites");
      // claimUrl, checkCa
      status.url = `${this.grantServerURL(p.name)}/${grant.metadata.uid ?? ""}`;
      status.ca = ca;
      status.code = firstSet(status.code, grant.spec.code, randomCode(24));
      if (!status.expirationTime) {
        const window = grant.spec.expirationWindow ?? "";
        if (window !== "") {
          try {
            status.expirationTime = rfc3339(state.now + parseGoDuration(window));
          } catch (err) {
            problems.push(`Invalid duration ${goQuote(window)}: ${errorText(err)}`);
          }
        } else {
          status.expirationTime = rfc3339(state.now + 10 * 60_000);
        }
      }
      editor.setAndReady(
        Processed,
        errorOrReady(problems.length ? problems.join(", ") : undefined),
        grantRequired,
      );
      // types.go AccessGrant.SetResolved
      editor.setAndReady(
        Resolved,
        status.url && status.ca ? readyState() : pendingState("Pending"),
        grantRequired,
      );
      await this.guard(p, what, () =>
        this.writeStatus(p, AccessGrantResource, grant, status).then(() => undefined),
      );
    }
  }

  // ---- 3. tokens ------------------------------------------------------------------------

  /** controller.go checkAccessToken → grants/redeem.go RedeemAccessToken */
  private async tokensStep(p: ClusterPass, state: PassState): Promise<void> {
    for (const token of p.tokens) {
      for (const problem of specProblems("AccessToken", token))
        this.violation(p.name, "AccessToken", token, problem);
      const status = clone(token.status ?? {});
      const editor = new StatusEditor(status, generationOf(token), rfc3339(state.now));
      if (editor.isTrue(Redeemed)) continue;
      const site = this.activeSite(p, nsOf(token));
      if (!site) {
        this.log(`${p.name}: AccessToken ${nsOf(token)}/${nameOf(token)} waits for a Site in its namespace`);
        continue;
      }
      // Upstream redeems on every event of the token (its own status writes included) and on
      // every resync; without a change, the driver waits tokenResyncMs.
      const uid = token.metadata.uid ?? "";
      const last = this.attempts.get(uid);
      const rv = token.metadata.resourceVersion ?? "";
      if (last?.resourceVersion === rv && state.now - last.at < this.tokenResyncMs) continue;
      this.attempts.set(uid, { resourceVersion: rv, at: state.now });
      const err = await this.redeem(p, state, token, site);
      if (err === undefined) {
        this.log(`${p.name}: AccessToken ${nsOf(token)}/${nameOf(token)} redeemed`);
      } else {
        this.log(`${p.name}: AccessToken ${nsOf(token)}/${nameOf(token)} not redeemed: ${err}`);
      }
      // types.go AccessToken.SetRedeemed
      const s = errorOrReady(err);
      if (editor.set(Redeemed, s)) {
        status.redeemed = editor.isTrue(Redeemed);
        status.status = s.reason as "Ready" | "Error";
        status.message = s.message;
        await this.guard(p, `AccessToken ${nsOf(token)}/${nameOf(token)}`, () =>
          this.writeStatus(p, AccessTokenResource, token, status).then(() => undefined),
        );
      }
    }
  }

  /** redeem.go RedeemAccessToken/postTokenRequest/handleTokenResponse; the error for the status. */
  private async redeem(
    p: ClusterPass,
    state: PassState,
    token: AccessToken,
    site: SiteView,
  ): Promise<string | undefined> {
    const spec = token.spec ?? {};
    if (!spec.ca) return "token does not have a CA";
    const url = spec.url ?? "";
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase() ?? "";
    if (scheme !== "https") return "token url scheme must be https";
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `could not parse token url: parse ${goQuote(url)}: invalid URL`;
    }
    const record = (status: number): void => {
      this.redemptions.push({ url, cluster: p.name, namespace: nsOf(token), token: nameOf(token), status });
      if (this.redemptions.length > 1000) this.redemptions.shift();
    };
    const host = parsed.hostname;
    const port = parsed.port || "443";
    const post = `Post ${goQuote(url)}`;
    const server = this.clusters.find((c) => grantServerHost(c.name) === host);
    if (!server) {
      record(0);
      return `Controller got error: ${post}: dial tcp: lookup ${host}: no such host`;
    }
    const target = state.clusters.get(server.name);
    if (port !== String(GrantServerPort) || !target?.up) {
      record(0);
      return `Controller got error: ${post}: dial tcp ${host}:${port}: connect: connection refused`;
    }
    // tlsConfig: RootCAs from the token's ca only.
    const serverCA = certKey((await this.grantCA(server)).certPem);
    if (!pemCertificates(spec.ca).includes(serverCA)) {
      record(0);
      return `Controller got error: ${post}: tls: failed to verify certificate: x509: certificate signed by unknown authority`;
    }
    const answer = await this.serveRedemption(target, state, parsed.pathname, spec.code ?? "", token, site);
    record(answer.status);
    if (answer.status !== 200 || !answer.config) {
      return `Controller got failed response: ${answer.status} (${statusText[answer.status] ?? ""}) ${answer.body.trim()}`;
    }
    // handleTokenResponse: the Secret and Links, owned by the token's Site.
    const refs: OwnerReference[] = [
      {
        kind: "Site",
        apiVersion: "skupper.io/v2alpha1",
        name: nameOf(site.obj),
        uid: site.obj.metadata.uid ?? "",
      },
    ];
    const namespace = nsOf(token);
    try {
      await p.client.create<Secret>(secretsResource, {
        ...answer.config.secret,
        metadata: { ...answer.config.secret.metadata, namespace, ownerReferences: refs },
      });
    } catch (err) {
      if (err instanceof ApiError) return `Controller could not create received secret: ${err.message}`;
      throw err;
    }
    for (const link of answer.config.links) {
      if ((spec.linkCost ?? 0) > 0 && link.spec) link.spec.cost = spec.linkCost;
      try {
        await p.client.create<Link>(LinkResource, {
          ...link,
          metadata: { ...link.metadata, namespace, ownerReferences: refs },
        });
        p.linksChanged = true;
      } catch (err) {
        if (err instanceof ApiError) return `Controller could not create received link: ${err.message}`;
        throw err;
      }
    }
    return undefined;
  }

  /**
   * The grant server of `target` answering a POST (grants.go ServeHTTP and
   * checkAndUpdateAccessToken, then controller.go generateLinkConfig → tokens.go).
   */
  private async serveRedemption(
    target: ClusterPass,
    state: PassState,
    path: string,
    code: string,
    token: AccessToken,
    requester: SiteView,
  ): Promise<{ status: number; body: string; config?: { secret: Secret; links: Link[] } }> {
    const fail = (status: number, body: string) => ({ status, body: `${body}\n` });
    // The key is the path without its slashes: the grant's UID. Only grants checkGrant recorded
    // (redemptionsAllowed set) are known.
    const key = path.split("/").join("");
    const grant = target.grants.find((g) => g.metadata.uid === key && g.spec?.redemptionsAllowed);
    if (!grant) return fail(404, "No such claim");
    const what = `AccessGrant ${nsOf(grant)}/${nameOf(grant)}`;
    const expiration = parseRFC3339(grant.status?.expirationTime);
    if (expiration === undefined) return fail(500, "Corrupted claim");
    if (expiration < state.now) {
      this.log(`${target.name}: ${what} expired`);
      return fail(404, "No such claim");
    }
    if ((grant.spec?.redemptionsAllowed ?? 0) <= (grant.status?.redemptions ?? 0)) {
      this.log(`${target.name}: ${what} already redeemed`);
      return fail(404, "No such access granted");
    }
    if (grant.status?.code !== code) return fail(403, "Redemption of access token refused");
    const status = clone(grant.status ?? {});
    status.redemptions = (status.redemptions ?? 0) + 1;
    try {
      // updateGrantStatus: an Update with the resourceVersion the server read; any error is a 503.
      const updated = await target.client.replace<AccessGrant>(
        AccessGrantResource,
        { ...grant, status: omitEmpty(status) as AccessGrant["status"] },
        "status",
      );
      grant.metadata.resourceVersion = updated.metadata.resourceVersion;
      grant.status = updated.status;
    } catch (err) {
      if (isUnreachable(err)) target.up = false;
      else if (!(err instanceof ApiError)) throw err;
      this.log(`${target.name}: error updating ${what}: ${errorText(err)}`);
      return fail(503, "Internal error");
    }
    // generateLinkConfig: the active Site of the grant's namespace.
    const site = this.activeSite(target, nsOf(grant));
    if (!site) return fail(500, `Site not yet defined for ${nsOf(grant)}`);
    // tokens.go NewTokenGenerator: loadCA(site.DefaultIssuer()).
    const issuer = firstSet(site.obj.spec?.defaultIssuer, site.status.defaultIssuer, DefaultIssuerName);
    if (issuer !== DefaultIssuerName) {
      let found = false;
      try {
        found = (await this.secretsOf(target, nsOf(grant))).has(issuer);
      } catch (err) {
        if (!(err instanceof ApiError) && !isUnreachable(err)) throw err;
      }
      if (!found) return fail(500, "Could not get issuer for requested certificate");
    }
    // setValidHostsFromSite
    if (site.obj.spec?.edge === true)
      return fail(500, "Edge sites cannot accept incoming links from remote sites");
    const endpoints = site.status.endpoints ?? [];
    if (endpoints.length === 0) return fail(500, "No valid endpoints found for site");
    const groups = new Map<string, Endpoint[]>();
    for (const e of endpoints) {
      if (e.name !== "inter-router" && e.name !== "edge") continue;
      groups.set(e.group ?? "", [...(groups.get(e.group ?? "") ?? []), { ...e }]);
    }
    // NewCertToken: a client certificate for the requester (subject: its Site's UID), signed by
    // the accepting site's CA; one Link per endpoint group (-1, -2… when there are several;
    // Go's map order decides which is which, the driver sorts the groups).
    const name = nameOf(token);
    const ca = await this.siteCA(site.obj.metadata.uid ?? "", nameOf(site.obj));
    const cert = await ca.issue({
      commonName: requester.obj.metadata.uid ?? name,
      hosts: endpoints.map((e) => e.host ?? ""),
      usage: "client",
    });
    issuedCertificates.set(certKey(cert.certPem), site.obj.metadata.uid ?? "");
    const sorted = [...groups.keys()].sort();
    const links: Link[] = sorted.map((g, i) => ({
      metadata: { name: sorted.length > 1 ? `${name}-${i + 1}` : name },
      spec: { endpoints: groups.get(g) ?? [], tlsCredentials: name },
    }));
    this.log(`${target.name}: redemption of access token succeeded for ${what}`);
    return {
      status: 200,
      body: "",
      config: {
        secret: {
          metadata: { name },
          type: "kubernetes.io/tls",
          data: { "tls.crt": b64(cert.certPem), "tls.key": b64(cert.keyPem), "ca.crt": b64(ca.certPem) },
        },
        links,
      },
    };
  }

  // ---- 4. links -------------------------------------------------------------------------

  /** site.go CheckLink/link: Configured; the router connector it configures (site/link.go Apply). */
  private async linksStep(p: ClusterPass): Promise<void> {
    if (p.linksChanged) {
      p.links = (await p.client.list<Link>(LinkResource)).items
        .filter((l) => !l.metadata.deletionTimestamp)
        .sort(byCreation);
      p.secrets.clear();
    }
    for (const link of p.links) {
      for (const problem of specProblems("Link", link)) this.violation(p.name, "Link", link, problem);
      const site = this.activeSite(p, nsOf(link));
      const node = p.nodes.find((n) => n.namespace === nsOf(link));
      const linkNode: LinkNode = {
        name: nameOf(link),
        uid: link.metadata.uid ?? "",
        configured: false,
        hadPeer: (link.status?.conditions ?? []).some((c) => c.type === Operational),
      };
      let err: string | undefined;
      if (!site?.valid || !node) {
        err = "No active site in namespace";
      } else {
        const secrets = await this.secretsOf(p, nsOf(link));
        const proxy = link.spec?.settings?.["proxy-configuration"];
        const tls = link.spec?.tlsCredentials ?? "";
        if (proxy && !secrets.has(proxy)) {
          err = "Secret not found for proxy configuration";
        } else if (tls && !secrets.has(tls)) {
          err = `TLS credentials secret ${goQuote(tls)} not found`;
        } else {
          linkNode.configured = true;
          const secret = tls ? secrets.get(tls) : undefined;
          if (secret)
            linkNode.tls = { crt: unb64(secret.data?.["tls.crt"]), ca: unb64(secret.data?.["ca.crt"]) };
          const role = node.edge ? "edge" : "inter-router";
          const endpoint = (link.spec?.endpoints ?? []).find((e) => e.name === role);
          if (endpoint?.host) linkNode.target = { host: endpoint.host, port: endpoint.port ?? "" };
          else
            this.log(
              `${p.name}: Link ${nsOf(link)}/${nameOf(link)} has no ${role} endpoint: its router never dials`,
            );
        }
        node.links.push(linkNode);
      }
      p.configured.set(link, err ?? "");
    }
  }

  // ---- 5. listeners, connectors, attached connectors ------------------------------------

  /**
   * site.go CheckListener/CheckConnector, site/bindings.go (pod selection),
   * site/attached_connector.go: Configured, and what the router serves per routing key.
   */
  private async bindingsStep(p: ClusterPass): Promise<void> {
    const nodeOf = (namespace: string): SiteNode | undefined =>
      p.nodes.find((n) => n.namespace === namespace);
    const add = (m: Map<string, string[]>, key: string, values: string[]): void => {
      if (values.length) m.set(key, [...(m.get(key) ?? []), ...values]);
    };
    const tlsMissing = async (namespace: string, secret: string | undefined): Promise<string | undefined> =>
      secret && !(await this.secretsOf(p, namespace)).has(secret)
        ? `TLS credentials secret ${goQuote(secret)} not found`
        : undefined;

    // Listeners: the first Listener with a host and port leads (site.go leadListeners); a
    // Service of that name not made by Skupper is a conflict (controller.go observedServices).
    const services = new Map<string, Service[]>();
    const servicesOf = async (namespace: string): Promise<Service[]> => {
      let list = services.get(namespace);
      if (!list) {
        list = (await p.client.list<Service>(servicesResource, { namespace })).items;
        services.set(namespace, list);
      }
      return list;
    };
    const exposed = new Map<string, Map<string, ExposedPort[]>>();
    const leaders = new Map<string, string>();
    for (const listener of p.listeners) {
      for (const problem of specProblems("Listener", listener))
        this.violation(p.name, "Listener", listener, problem);
      const namespace = nsOf(listener);
      const node = nodeOf(namespace);
      const host = listener.spec?.host ?? "";
      const port = listener.spec?.port ?? 0;
      let err: string | undefined;
      if (!node) {
        err = "No active site in namespace";
      } else {
        const foreign = (await servicesOf(namespace)).find(
          (s) => nameOf(s) === host && s.metadata.labels?.[ListenerLabel] === undefined,
        );
        const leaderKey = `${namespace}/${host}/${port}`;
        const leader = leaders.get(leaderKey);
        if (foreign) {
          err = `Service ${host} already exists in namespace`;
        } else if (leader !== undefined) {
          err = `Listener ${leader} with host ${host} and port ${port} already exists in namespace`;
        } else {
          leaders.set(leaderKey, nameOf(listener));
          err = await tlsMissing(namespace, listener.spec?.tlsCredentials);
          // extended_bindings.go ListenerUpdated: exposed whatever the TLS state.
          const hosts = exposed.get(namespace) ?? new Map<string, ExposedPort[]>();
          exposed.set(namespace, hosts);
          hosts.set(host, [
            ...(hosts.get(host) ?? []),
            {
              name: nameOf(listener),
              port,
              targetPort: await this.routerPort(p, namespace, nameOf(listener)),
              protocol: listener.spec?.type === "udp" ? "UDP" : "TCP",
            },
          ]);
          if (err === undefined) add(node.listeners, listener.spec?.routingKey ?? "", [nameOf(listener)]);
        }
      }
      p.configured.set(listener, err ?? "");
    }
    await this.exposeListeners(p, services, exposed, servicesOf);

    // Connectors
    for (const connector of p.connectors) {
      for (const problem of specProblems("Connector", connector))
        this.violation(p.name, "Connector", connector, problem);
      const namespace = nsOf(connector);
      const node = nodeOf(namespace);
      const spec = connector.spec ?? {};
      let err: string | undefined;
      if (!node) {
        err = "No active site in namespace";
      } else {
        const errors: string[] = [];
        const tls = await tlsMissing(namespace, spec.tlsCredentials);
        if (tls) errors.push(tls);
        if (!spec.host && !spec.selector) {
          errors.push("Connector must define a non-empty spec.host or spec.selector");
        }
        let targets: string[] = [];
        if (spec.selector) {
          const pods = await this.selectPods(
            p,
            connector,
            "Connector",
            namespace,
            spec.selector,
            spec.includeNotReadyPods,
          );
          // bindings.go TargetSelectionImpl.Updated
          if (pods.length === 0 && errors.length === 0) errors.push("No matches for selector");
          targets = pods.map((pod) => pod.ip ?? "");
        }
        // extended_bindings.go updateBridgeConfigForConnector: host wins over selector.
        if (spec.host) targets = [spec.host];
        if (!tls) add(node.connectors, spec.routingKey ?? "", targets);
        // errors.Join
        err = errors.length ? errors.join("\n") : undefined;
      }
      p.configured.set(connector, err ?? "");
    }

    // AttachedConnectors and their bindings, paired by name (extended_bindings.go
    // checkAttachedConnectorBinding/attachedConnectorUpdated, attached_connector.go).
    const pairedDefinitions = new Set<AttachedConnector>();
    for (const ac of p.attached) {
      for (const problem of specProblems("AttachedConnector", ac))
        this.violation(p.name, "AttachedConnector", ac, problem);
    }
    for (const binding of p.bindings) {
      for (const problem of specProblems("AttachedConnectorBinding", binding)) {
        this.violation(p.name, "AttachedConnectorBinding", binding, problem);
      }
      const siteNamespace = nsOf(binding);
      const definitions = p.attached.filter(
        (ac) => nameOf(ac) === nameOf(binding) && ac.spec?.siteNamespace === siteNamespace,
      );
      for (const d of definitions) pairedDefinitions.add(d);
      const node = nodeOf(siteNamespace);
      // Without a Site nothing happens to either (b.site == nil; definitionUpdated: site not active).
      p.configured.set(binding, null);
      if (!node) {
        for (const d of definitions) p.configured.set(d, null);
        continue;
      }
      const allowed = binding.spec?.connectorNamespace ?? "";
      const active = definitions.find((d) => nsOf(d) === allowed);
      for (const d of definitions) {
        if (d === active) continue;
        p.configured.set(
          d,
          `AttachedConnectorBinding ${siteNamespace}/${nameOf(binding)} does not allow AttachedConnector in ${nsOf(d)} (only ${allowed})`,
        );
      }
      if (!active) {
        p.configured.set(binding, "No matching AttachedConnector");
        continue;
      }
      const pods = await this.selectPods(
        p,
        active,
        "AttachedConnector",
        nsOf(active),
        active.spec?.selector ?? "",
        active.spec?.includeNotReadyPods,
      );
      const err = pods.length === 0 ? "No matches for selector" : "";
      p.configured.set(binding, err);
      p.configured.set(active, err);
      const tls = await tlsMissing(nsOf(active), active.spec?.tlsCredentials);
      if (!tls)
        add(
          node.connectors,
          binding.spec?.routingKey ?? "",
          pods.map((pod) => pod.ip ?? ""),
        );
    }
    for (const ac of p.attached) {
      if (pairedDefinitions.has(ac)) continue;
      p.configured.set(ac, "No matching AttachedConnectorBinding in site namespace");
    }
  }

  /** bindings.go PodWatcher.pods: ready (or includeNotReadyPods), Running, not being deleted; and (stricter) with an IP. */
  private async selectPods(
    p: ClusterPass,
    owner: KubeObject,
    kind: string,
    namespace: string,
    selector: string,
    includeNotReady: boolean | undefined,
  ): Promise<PodDetails[]> {
    let pods: Pod[];
    try {
      pods = (await p.client.list<Pod>(podsResource, { namespace, labelSelector: selector })).items;
    } catch (err) {
      if (err instanceof ApiError && err.code === 400) {
        this.violation(
          p.name,
          kind,
          owner,
          `spec.selector ${goQuote(selector)} is not a label selector: ${err.message}`,
        );
        return [];
      }
      throw err;
    }
    const out: PodDetails[] = [];
    for (const pod of pods.sort((a, b) => nameOf(a).localeCompare(nameOf(b)))) {
      const ready = (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
      if (!(ready || includeNotReady === true)) continue;
      if (pod.status?.phase !== "Running" || pod.metadata.deletionTimestamp) continue;
      if (!pod.status.podIP) {
        this.log(
          `${p.name}: pod ${namespace}/${nameOf(pod)} has no IP: not selected (stricter than Skupper)`,
        );
        continue;
      }
      out.push({ name: nameOf(pod), ip: pod.status.podIP });
    }
    return out;
  }

  /** qdr/port_mapping.go GetPortForKey: a router port per listener, from 1024 up. */
  private async routerPort(p: ClusterPass, namespace: string, listener: string): Promise<number> {
    const key = `${p.name}/${namespace}`;
    let mapping = this.portMappings.get(key);
    if (!mapping) {
      // RecoverPortMapping: what the Services already say.
      mapping = new Map();
      const services = (
        await p.client.list<Service>(servicesResource, { namespace, labelSelector: ListenerLabel })
      ).items;
      for (const s of services) {
        for (const port of s.spec?.ports ?? []) {
          if (port.name && typeof port.targetPort === "number") mapping.set(port.name, port.targetPort);
        }
      }
      this.portMappings.set(key, mapping);
    }
    const existing = mapping.get(listener);
    if (existing !== undefined) return existing;
    const used = new Set([...mapping.values(), 5671, 5672, 9090, 55671, 45671]);
    let port = 1024;
    while (used.has(port)) port++;
    mapping.set(listener, port);
    return port;
  }

  /** site.go Expose/Unexpose and CheckListenerService (stale listener Services are deleted). */
  private async exposeListeners(
    p: ClusterPass,
    services: Map<string, Service[]>,
    exposed: Map<string, Map<string, ExposedPort[]>>,
    servicesOf: (namespace: string) => Promise<Service[]>,
  ): Promise<void> {
    for (const node of p.nodes) {
      const namespace = node.namespace;
      const hosts = exposed.get(namespace) ?? new Map<string, ExposedPort[]>();
      const site = this.activeSite(p, namespace);
      if (!site) continue;
      const current = await servicesOf(namespace);
      for (const [host, ports] of hosts) {
        const sorted = [...ports].sort((a, b) => a.name.localeCompare(b.name));
        const desiredPorts = sorted.map((x) => ({
          name: x.name,
          port: x.port,
          targetPort: x.targetPort,
          protocol: x.protocol,
        }));
        const existing = current.find((s) => nameOf(s) === host);
        const labels = { [ListenerLabel]: sorted[0]?.name ?? "" };
        await this.guard(p, `Service ${namespace}/${host}`, async () => {
          if (!existing) {
            await p.client.create<Service>(servicesResource, {
              metadata: {
                name: host,
                namespace,
                labels,
                annotations: { [ControlledAnnotation]: "true" },
                ownerReferences: [
                  {
                    kind: "Site",
                    apiVersion: "skupper.io/v2alpha1",
                    name: nameOf(site.obj),
                    uid: site.obj.metadata.uid ?? "",
                  },
                ],
              },
              spec: { selector: { ...routerSelector }, ports: desiredPorts },
            });
            this.log(
              `${p.name}: created Service ${namespace}/${host} for listener(s) ${sorted.map((x) => x.name).join(", ")}`,
            );
            return;
          }
          const actualPorts = (existing.spec?.ports ?? []).map((x) => ({
            name: x.name,
            port: x.port,
            targetPort: x.targetPort,
            protocol: x.protocol,
          }));
          const listenerLabel = existing.metadata.labels?.[ListenerLabel];
          if (
            deepEqual(actualPorts, desiredPorts) &&
            deepEqual(existing.spec?.selector ?? {}, routerSelector) &&
            listenerLabel !== undefined &&
            sorted.some((x) => x.name === listenerLabel)
          ) {
            return;
          }
          await p.client.replace<Service>(servicesResource, {
            ...existing,
            metadata: { ...existing.metadata, labels: { ...existing.metadata.labels, ...labels } },
            spec: { ...existing.spec, selector: { ...routerSelector }, ports: desiredPorts },
          });
        });
      }
      for (const s of current) {
        if (s.metadata.labels?.[ListenerLabel] === undefined || hosts.has(nameOf(s))) continue;
        if (s.metadata.annotations?.[ControlledAnnotation] === undefined) continue;
        await this.guard(p, `Service ${namespace}/${nameOf(s)}`, async () => {
          await p.client.delete(servicesResource, nameOf(s), namespace);
          this.log(`${p.name}: deleted stale listener Service ${namespace}/${nameOf(s)}`);
        });
      }
      // ReleasePortForKey for listeners gone.
      const mapping = this.portMappings.get(`${p.name}/${namespace}`);
      if (mapping) {
        const names = new Set([...hosts.values()].flat().map((x) => x.name));
        for (const k of [...mapping.keys()]) if (!names.has(k)) mapping.delete(k);
      }
    }
  }

  // ---- 6. the network -------------------------------------------------------------------

  /**
   * The routers: a link connects when its site's router and the peer's are up, the endpoint
   * it dials belongs to the peer (a `local` host only from the same cluster), the peer is not
   * an edge site and its TLS credentials were issued by the peer's CA. Sites joined by
   * connected links (either way) form a network.
   */
  private network(state: PassState): void {
    const nodes: SiteNode[] = [];
    for (const c of this.clusters) {
      const p = state.clusters.get(c.name);
      nodes.push(...(p?.up ? p.nodes : (this.lastNodes.get(c.name) ?? [])));
    }
    const byEndpoint = new Map<string, SiteNode>();
    for (const n of nodes) {
      for (const e of n.endpoints) {
        const local = !(e.host ?? "").includes(".outpost.test");
        byEndpoint.set(`${local ? n.cluster : ""}|${e.host ?? ""}:${e.port ?? ""}`, n);
      }
    }
    const adjacency = new Map<SiteNode, Set<SiteNode>>(nodes.map((n) => [n, new Set<SiteNode>()]));
    for (const n of nodes) {
      for (const link of n.links) {
        link.peer = undefined;
        link.operational = false;
        if (!link.configured || !link.target) continue;
        const hostPort = `${link.target.host}:${link.target.port}`;
        const peer = byEndpoint.get(`|${hostPort}`) ?? byEndpoint.get(`${n.cluster}|${hostPort}`);
        if (!peer || peer === n) continue;
        link.peer = peer;
        const issuedBy = link.tls ? issuedCertificates.get(certKey(link.tls.crt)) : undefined;
        const peerCA = siteCACertificates.get(peer.id);
        const tlsOK =
          issuedBy === peer.id &&
          peerCA !== undefined &&
          pemCertificates(link.tls?.ca ?? "").includes(peerCA);
        if (!tlsOK) {
          this.log(
            `${n.cluster}: Link ${n.namespace}/${link.name} to ${hostPort}: TLS handshake fails (its Secret holds no client certificate of ${peer.cluster}/${peer.namespace}'s site CA)`,
          );
        }
        link.operational =
          tlsOK &&
          !peer.edge &&
          this.routerUp.get(n.cluster) === true &&
          this.routerUp.get(peer.cluster) === true;
        if (link.operational) {
          adjacency.get(n)?.add(peer);
          adjacency.get(peer)?.add(n);
        }
        if (!link.operational && tlsOK && peer.edge) {
          this.log(
            `${n.cluster}: Link ${n.namespace}/${link.name} points at an edge site: edge routers accept no links`,
          );
        }
      }
    }
    const components = new Map<SiteNode, SiteNode[]>();
    for (const n of nodes) {
      if (components.has(n)) continue;
      const seen = new Set<SiteNode>([n]);
      const queue = [n];
      for (let x = queue.shift(); x; x = queue.shift()) {
        for (const y of adjacency.get(x) ?? []) {
          if (!seen.has(y)) {
            seen.add(y);
            queue.push(y);
          }
        }
      }
      const members = [...seen];
      for (const m of members) components.set(m, members);
    }
    this.components = components;
  }

  private components = new Map<SiteNode, SiteNode[]>();

  /** network.go ExtractSiteRecords: the record of a site as its router reports it. */
  private siteRecord(n: SiteNode): SiteRecord {
    const routingKeys = [...new Set([...n.connectors.keys(), ...n.listeners.keys()])].sort();
    return {
      id: n.id,
      name: n.name,
      namespace: n.namespace,
      platform: "kubernetes",
      version: SkupperController.version,
      links: n.links
        .filter((l) => l.operational === true || (l.hadPeer && l.peer !== undefined))
        .map((l) => ({
          name: l.name,
          remoteSiteId: l.peer?.id,
          remoteSiteName: l.peer?.name,
          operational: l.operational === true,
        })),
      services: routingKeys.map((k) => ({
        routingKey: k,
        connectors: n.connectors.get(k) ?? [],
        listeners: n.listeners.get(k) ?? [],
      })),
    };
  }

  private reachable(node: SiteNode | undefined): SiteNode[] {
    if (!node) return [];
    return this.components.get(node) ?? [node];
  }

  // ---- 7. status writes -------------------------------------------------------------------

  private async writeStep(p: ClusterPass, state: PassState): Promise<void> {
    const now = rfc3339(state.now);
    const nodeOf = (namespace: string): SiteNode | undefined =>
      p.nodes.find((n) => n.namespace === namespace);
    const matches = (namespace: string, routingKey: string, kind: "connectors" | "listeners"): boolean =>
      this.reachable(nodeOf(namespace)).some((n) => (n[kind].get(routingKey) ?? []).length > 0);

    // Sites: site.go NetworkStatusUpdated.
    for (const view of p.siteViews) {
      const node = view.active && view.valid ? nodeOf(nsOf(view.obj)) : undefined;
      if (node) {
        const network = this.reachable(node)
          .map((n) => this.siteRecord(n))
          .sort((a, b) =>
            `${a.name}/${a.namespace}/${a.id}`.localeCompare(`${b.name}/${b.namespace}/${b.id}`),
          );
        view.status.network = network;
        view.status.sitesInNetwork = network.length;
      }
      await this.guard(p, `Site ${nsOf(view.obj)}/${nameOf(view.obj)}`, () =>
        this.writeStatus(p, SiteResource, view.obj, view.status).then(() => undefined),
      );
    }

    // Links: updateLinkConfiguredCondition, then updateLinkOperationalCondition from the link records.
    for (const link of p.links) {
      const configuredErr = p.configured.get(link);
      if (configuredErr === undefined || configuredErr === null) continue;
      const status = clone(link.status ?? {});
      const editor = new StatusEditor(status, generationOf(link), now);
      editor.setAndReady(Configured, errorOrReady(configuredErr || undefined), linkRequired);
      const node = nodeOf(nsOf(link));
      const ln = node?.links.find((l) => l.uid === link.metadata.uid);
      if (ln && (ln.operational === true || (ln.hadPeer && ln.peer !== undefined))) {
        const peer = ln.peer;
        // types.go Link.SetOperational
        if (peer) {
          status.remoteSiteId = peer.id;
          status.remoteSiteName = peer.name;
        }
        editor.setAndReady(
          Operational,
          ln.operational ? readyState() : pendingState("Not operational"),
          linkRequired,
        );
      } else if (ln?.hadPeer) {
        // It connected before and its peer is gone: its router reports it down.
        editor.setAndReady(Operational, pendingState("Not operational"), linkRequired);
      }
      await this.guard(p, `Link ${nsOf(link)}/${nameOf(link)}`, () =>
        this.writeStatus(p, LinkResource, link, status).then(() => undefined),
      );
    }

    // Listeners: SetConfigured, SetHasMatchingConnector (binding_status.go).
    for (const listener of p.listeners) {
      const err = p.configured.get(listener);
      if (err === undefined || err === null) continue;
      const status = clone(listener.status ?? {});
      const editor = new StatusEditor(status, generationOf(listener), now);
      const required = [Configured, Matched];
      editor.setAndReady(Configured, errorOrReady(err || undefined), required);
      if (nodeOf(nsOf(listener))) {
        const matched = matches(nsOf(listener), listener.spec?.routingKey ?? "", "connectors");
        status.hasMatchingConnector = matched;
        editor.setAndReady(
          Matched,
          matched ? readyState() : pendingState("No matching connectors"),
          required,
        );
      }
      await this.guard(p, `Listener ${nsOf(listener)}/${nameOf(listener)}`, () =>
        this.writeStatus(p, ListenerResource, listener, status).then(() => undefined),
      );
    }

    // Connectors: SetConfigured, SetHasMatchingListener. selectedPods: never set upstream.
    for (const connector of p.connectors) {
      const err = p.configured.get(connector);
      if (err === undefined || err === null) continue;
      const status = clone(connector.status ?? {});
      const editor = new StatusEditor(status, generationOf(connector), now);
      const required = [Configured, Matched];
      editor.setAndReady(Configured, errorOrReady(err || undefined), required);
      if (nodeOf(nsOf(connector))) {
        const matched = matches(nsOf(connector), connector.spec?.routingKey ?? "", "listeners");
        status.hasMatchingListener = matched;
        editor.setAndReady(Matched, matched ? readyState() : pendingState("No matching listeners"), required);
      }
      await this.guard(p, `Connector ${nsOf(connector)}/${nameOf(connector)}`, () =>
        this.writeStatus(p, ConnectorResource, connector, status).then(() => undefined),
      );
    }

    // AttachedConnectors (Ready needs Configured only) and bindings (Configured + Matched;
    // Matched is only set when hasMatchingListener changes: attached_connector.go, types.go).
    for (const ac of p.attached) {
      const err = p.configured.get(ac);
      if (err === undefined || err === null) continue;
      const status = clone(ac.status ?? {});
      const editor = new StatusEditor(status, generationOf(ac), now);
      editor.setAndReady(Configured, errorOrReady(err || undefined), [Configured]);
      await this.guard(p, `AttachedConnector ${nsOf(ac)}/${nameOf(ac)}`, () =>
        this.writeStatus(p, AttachedConnectorResource, ac, status).then(() => undefined),
      );
    }
    for (const binding of p.bindings) {
      const err = p.configured.get(binding);
      if (err === undefined || err === null) continue;
      const status = clone(binding.status ?? {});
      const editor = new StatusEditor(status, generationOf(binding), now);
      editor.setAndReady(Configured, errorOrReady(err || undefined), bindingRequired);
      const matched = matches(nsOf(binding), binding.spec?.routingKey ?? "", "listeners");
      if ((status.hasMatchingListener ?? false) !== matched) {
        status.hasMatchingListener = matched;
        editor.setAndReady(Matched, readyOrPending(matched), bindingRequired);
      }
      await this.guard(p, `AttachedConnectorBinding ${nsOf(binding)}/${nameOf(binding)}`, () =>
        this.writeStatus(p, AttachedConnectorBindingResource, binding, status).then(() => undefined),
      );
    }
  }

  /**
   * Writes `status` through the status subresource when it differs from what `obj` holds
   * (an Update with the object's resourceVersion, as the controller's UpdateStatus). On a
   * conflict the status is written over the fresh object: the driver owns it.
   */
  private async writeStatus(
    p: ClusterPass,
    resource: ResourceType,
    obj: KubeObject & { status?: unknown },
    status: unknown,
  ): Promise<boolean> {
    const desired = omitEmpty(status);
    if (deepEqual(omitEmpty(obj.status ?? {}), desired)) return false;
    const put = (o: KubeObject): Promise<KubeObject> =>
      p.client.replace<KubeObject>(resource, { ...o, status: desired } as KubeObject, "status");
    let updated: KubeObject;
    try {
      updated = await put(obj);
    } catch (err) {
      if (ApiError.isNotFound(err)) return false;
      if (!ApiError.isConflict(err)) throw err;
      const fresh = await p.client.get<KubeObject>(resource, nameOf(obj), nsOf(obj));
      if (!fresh) return false;
      updated = await put(fresh);
    }
    obj.metadata.resourceVersion = updated.metadata.resourceVersion;
    obj.status = desired;
    return true;
  }
}

/** utils.go RandomId: alphanumerics. */
function randomCode(length: number): string {
  const alphanumerics = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let out = "";
  for (const byte of randomBytes(length)) out += alphanumerics[byte % alphanumerics.length] ?? "";
  return out;
}
