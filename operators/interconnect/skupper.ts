// Skupper v2 (skupper.io/v2alpha1) kinds the interconnect operator writes on edge
// clusters, as far as it reads and writes them (pkg/apis/skupper/v2alpha1/types.go of
// github.com/skupperproject/skupper, release 2.2.1).
import type { KubeObject, ResourceType } from "../runtime/client.ts";

const skupper = (kind: string, plural: string): ResourceType => ({
  group: "skupper.io",
  version: "v2alpha1",
  kind,
  plural,
  namespaced: true,
});

export const SiteResource = skupper("Site", "sites");
export const AccessGrantResource = skupper("AccessGrant", "accessgrants");
export const AccessTokenResource = skupper("AccessToken", "accesstokens");
export const LinkResource = skupper("Link", "links");
export const ListenerResource = skupper("Listener", "listeners");
export const ConnectorResource = skupper("Connector", "connectors");
export const AttachedConnectorResource = skupper("AttachedConnector", "attachedconnectors");
export const AttachedConnectorBindingResource = skupper(
  "AttachedConnectorBinding",
  "attachedconnectorbindings",
);

/** The status every Skupper kind has: a summary word, a message and conditions. */
export interface SkupperStatus {
  /** Ready, Pending or Error. */
  status?: string;
  message?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

export interface Site extends KubeObject {
  spec: { linkAccess?: string; edge?: boolean; ha?: boolean; settings?: Record<string, string> };
  status?: SkupperStatus & {
    endpoints?: { name?: string; host?: string; port?: string; group?: string }[];
    sitesInNetwork?: number;
  };
}

export interface AccessGrant extends KubeObject {
  spec: { redemptionsAllowed?: number; expirationWindow?: string; code?: string };
  status?: SkupperStatus & {
    url?: string;
    code?: string;
    ca?: string;
    redemptions?: number;
    expirationTime?: string;
  };
}

export interface AccessToken extends KubeObject {
  spec: { url: string; code: string; ca: string; linkCost?: number };
  status?: SkupperStatus & { redeemed?: boolean };
}

export interface Link extends KubeObject {
  spec: {
    endpoints?: { name?: string; host?: string; port?: string }[];
    tlsCredentials?: string;
    cost?: number;
  };
  status?: SkupperStatus & { remoteSiteId?: string; remoteSiteName?: string };
}

export interface Listener extends KubeObject {
  spec: { routingKey: string; host: string; port: number; type?: string };
  status?: SkupperStatus & { hasMatchingConnector?: boolean };
}

export interface Connector extends KubeObject {
  spec: { routingKey: string; port: number; selector?: string; host?: string; type?: string };
  status?: SkupperStatus & { hasMatchingListener?: boolean; selectedPods?: { name?: string; ip?: string }[] };
}

export interface AttachedConnector extends KubeObject {
  spec: { siteNamespace: string; selector: string; port: number; type?: string };
  status?: SkupperStatus;
}

export interface AttachedConnectorBinding extends KubeObject {
  spec: { connectorNamespace: string; routingKey: string };
  status?: SkupperStatus;
}

/** Whether a Skupper object reports Ready (its Ready condition, or status "Ready"). */
export function skupperReady(obj: { status?: SkupperStatus } | undefined): boolean {
  const ready = obj?.status?.conditions?.find((c) => c.type === "Ready");
  if (ready) return ready.status === "True";
  return obj?.status?.status === "Ready";
}

/** Whether a Skupper object reports an error (status "Error"). */
export function skupperError(obj: { status?: SkupperStatus } | undefined): string | undefined {
  if (obj?.status?.status !== "Error") return undefined;
  const failing = obj.status.conditions?.find((c) => c.status === "False" && c.message);
  if (obj.status.message) return obj.status.message;
  return failing?.message ?? "error";
}
