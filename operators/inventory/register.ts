// Registering an edge cluster with a project, where the project's delivery engine needs
// it (pure: the objects to apply). Registering is a platform administrator's task: no
// credential goes where project roles reach. Every registration gets Outpost's own Secret
// `<project>.<cluster>` in outpost-edges (the edge identity of config/edge/, for
// interconnect, ops and the service proxy), plus, for the engine:
//   - fleet:  a Fleet Cluster with the cluster's labels whose kubeConfigSecret, in Fleet's
//             own namespace (cattle-fleet-system: one of the namespaces Fleet v0.16 reads
//             kubeconfigs from, allowedKubeConfigSecretNamespace in
//             internal/cmd/controller/agentmanagement/controllers/cluster/import.go), holds
//             the kubeconfig Fleet deploys its agent with (manager-initiated registration);
//   - argocd: an Argo CD cluster Secret in Argo CD's namespace, labelled with the project
//             and the cluster's labels (the ApplicationSets' cluster generator selects on
//             them), scoped to the project's AppProject, with the engine's credentials.
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
import { edgeCredentialsNamespace, edgeSecretName } from "../edge/edge-clusters.ts";
import { KubeconfigRefused, strictKubeconfig } from "../edge/kubeconfig.ts";

/** Fleet's own namespace, where the kubeconfigs Fleet installs its agents with are kept. */
export const fleetSystemNamespace = "cattle-fleet-system";

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

/** A kubeconfig read strictly (edge/kubeconfig.ts), or why it is refused. */
function credentialsOf(kubeconfig: string, which: string) {
  try {
    return strictKubeconfig(kubeconfig);
  } catch (err) {
    if (err instanceof KubeconfigRefused)
      throw new RegistrationError(`the ${which} kubeconfig is refused: ${err.message}`);
    throw err;
  }
}

/**
 * Argo CD's cluster config (util/db/cluster.go ClusterConfig) from a kubeconfig: its
 * server, CA, and bearer token or client certificate — as data, never file paths, exec
 * plugins or auth providers, which are refused.
 */
export function argoClusterConfig(kubeconfig: string): { server: string; config: string } {
  const c = credentialsOf(kubeconfig, "engine");
  const tls: Record<string, string> = {};
  if (c.caData) tls.caData = c.caData;
  if (c.tlsServerName) tls.serverName = c.tlsServerName;
  if (c.certData && c.keyData) {
    tls.certData = c.certData;
    tls.keyData = c.keyData;
  }
  return {
    server: c.server,
    config: JSON.stringify({ ...(c.token ? { bearerToken: c.token } : {}), tlsClientConfig: tls }),
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
  credentialsOf(r.outpostKubeconfig, "Outpost");
  const secretName = edgeSecretName(r.namespace, r.name);
  const outpost: RegistrationObject = {
    resource: secretsResource,
    object: secret(
      secretName,
      edgeCredentialsNamespace,
      { value: r.outpostKubeconfig },
      { [projectLabel]: r.namespace, [clusterLabel]: r.name },
    ),
  };
  if (r.engine === "fleet") {
    credentialsOf(r.engineKubeconfig, "engine");
    return [
      outpost,
      {
        resource: secretsResource,
        object: secret(
          secretName,
          fleetSystemNamespace,
          { value: r.engineKubeconfig },
          { [projectLabel]: r.namespace, [clusterLabel]: r.name },
        ),
      },
      {
        resource: FleetClusterResource,
        object: {
          apiVersion: "fleet.cattle.io/v1alpha1",
          kind: "Cluster",
          metadata: { name: r.name, namespace: r.namespace, labels: r.labels },
          spec: { kubeConfigSecret: secretName, kubeConfigSecretNamespace: fleetSystemNamespace },
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
