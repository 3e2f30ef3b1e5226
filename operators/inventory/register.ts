// Registering an edge cluster with a project, where the project's delivery engine needs
// it (pure: the objects to apply). Every registration gets Outpost's own Secret
// `<cluster>-kubeconfig` in the project namespace (the edge identity of config/edge/, for
// interconnect, ops and the service proxy), plus, for the engine:
//   - fleet:  a Fleet Cluster with the cluster's labels whose kubeConfigSecret holds the
//             kubeconfig Fleet deploys its agent with (manager-initiated registration);
//   - argocd: an Argo CD cluster Secret in Argo CD's namespace, labelled with the project
//             and the cluster's labels (the ApplicationSets' cluster generator selects on
//             them), scoped to the project's AppProject, with the engine's credentials.
import { KubeConfig } from "@kubernetes/client-node";
import type { KubeObject, ResourceType } from "../runtime/client.ts";
import { secretsResource } from "../runtime/core.ts";
import {
  appProjectName,
  argoSecretTypeLabel,
  clusterLabel,
  FleetClusterResource,
  projectLabel,
} from "./registrations.ts";
import { dnsName } from "../runtime/names.ts";

export interface Registration {
  /** The project namespace. */
  namespace: string;
  /** The cluster's name in the project. */
  name: string;
  labels: Record<string, string>;
  engine: "fleet" | "argocd";
  /** The kubeconfig the engine reaches the cluster with (Fleet's agent install, Argo CD's pushes). */
  engineKubeconfig: string;
  /** The kubeconfig of Outpost's edge identity (config/edge/). */
  outpostKubeconfig: string;
  /** Argo CD's namespace (argocd engine). */
  argocdNamespace?: string;
}

export interface RegistrationObject {
  resource: ResourceType;
  object: KubeObject;
}

export class RegistrationError extends Error {
  override name = "RegistrationError";
}

const labelKey =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const labelValue = /^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;

/**
 * Argo CD's cluster config (util/db/cluster.go ClusterConfig) from a kubeconfig: the
 * current context's server, CA, and bearer token or client certificate — as data, never
 * file paths, exec plugins or auth providers, which are refused.
 */
export function argoClusterConfig(kubeconfig: string): { server: string; config: string } {
  const kc = new KubeConfig();
  try {
    kc.loadFromString(kubeconfig);
  } catch (err) {
    throw new RegistrationError(
      `the kubeconfig cannot be read: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || !user)
    throw new RegistrationError("the kubeconfig has no current context with a cluster and a user");
  if (cluster.skipTLSVerify)
    throw new RegistrationError("the kubeconfig skips TLS verification (insecure-skip-tls-verify)");
  if (cluster.caFile || user.certFile || user.keyFile || user.authProvider || user.exec) {
    throw new RegistrationError(
      "the kubeconfig names files, an exec plugin or an auth provider; give the credentials as data (certificate-authority-data, client-certificate-data and client-key-data, or token)",
    );
  }
  const tls: Record<string, string> = {};
  if (cluster.caData) tls.caData = cluster.caData;
  if (cluster.tlsServerName) tls.serverName = cluster.tlsServerName;
  if (user.certData && user.keyData) {
    tls.certData = user.certData;
    tls.keyData = user.keyData;
  } else if (!user.token) {
    throw new RegistrationError("the kubeconfig's user has no token and no client certificate data");
  }
  return {
    server: cluster.server,
    config: JSON.stringify({ ...(user.token ? { bearerToken: user.token } : {}), tlsClientConfig: tls }),
  };
}

/** The objects that register a cluster with a project. */
export function registrationObjects(r: Registration): RegistrationObject[] {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(r.name) || r.name.length > 63) {
    throw new RegistrationError(
      `cluster name "${r.name}" must be a DNS label (lowercase letters, digits and dashes)`,
    );
  }
  for (const [k, v] of Object.entries(r.labels)) {
    if (!labelKey.test(k) || !labelValue.test(v))
      throw new RegistrationError(`label ${k}=${v} is not a valid label`);
    if (k === projectLabel || k === clusterLabel || k === argoSecretTypeLabel) {
      throw new RegistrationError(`label ${k} is set by Outpost; choose another key`);
    }
  }
  const secret = (name: string, namespace: string, data: Record<string, string>, labels = {}): KubeObject =>
    ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace, labels: { "app.kubernetes.io/managed-by": "outpost", ...labels } },
      type: "Opaque",
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
    }) as KubeObject;
  const outpost: RegistrationObject = {
    resource: secretsResource,
    object: secret(`${r.name}-kubeconfig`, r.namespace, { value: r.outpostKubeconfig }),
  };
  if (r.engine === "fleet") {
    const fleetSecret = `${r.name}-fleet-kubeconfig`;
    return [
      outpost,
      { resource: secretsResource, object: secret(fleetSecret, r.namespace, { value: r.engineKubeconfig }) },
      {
        resource: FleetClusterResource,
        object: {
          apiVersion: "fleet.cattle.io/v1alpha1",
          kind: "Cluster",
          metadata: { name: r.name, namespace: r.namespace, labels: r.labels },
          spec: { kubeConfigSecret: fleetSecret },
        } as KubeObject,
      },
    ];
  }
  const argoNs = r.argocdNamespace ?? "argocd";
  const { server, config } = argoClusterConfig(r.engineKubeconfig);
  return [
    outpost,
    {
      resource: secretsResource,
      object: secret(
        argoClusterSecretName(r.namespace, r.name),
        argoNs,
        // The name Argo CD knows the cluster by is unique in the whole instance.
        { name: `${r.namespace}.${r.name}`, server, config, project: appProjectName(r.namespace) },
        {
          ...r.labels,
          [argoSecretTypeLabel]: "cluster",
          [projectLabel]: r.namespace,
          [clusterLabel]: r.name,
        },
      ),
    },
  ];
}

/** The name of the Argo CD cluster Secret registering `cluster` for project `namespace`. */
export const argoClusterSecretName = (namespace: string, cluster: string): string =>
  dnsName(`cluster-${namespace}-${cluster}`, 253);
