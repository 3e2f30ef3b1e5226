// Fleet's CRDs for tests that run the Fleet test driver (fleet.ts).
//
// The real ones come from the Go module github.com/rancher/fleet (upstreamCRDFiles, see
// test/controlplane/upstream.ts). When the module proxy refuses it and OUTPOST_UPSTREAM_CRDS
// names no folder holding them, minimal stand-ins built here are installed instead.
//
// The stand-ins accept ANYTHING in spec and status (x-kubernetes-preserve-unknown-fields):
// the API server then validates and prunes nothing, so with them the driver's own checks
// (fleet.ts validates GitRepo specs and fleet.yaml strictly) are all that validate the
// objects under test. With the upstream CRDs the API server also applies Fleet's schemas:
// unknown fields are pruned and patterns/enums enforced, as on a real management cluster.
import { loadAllYaml, type V1CustomResourceDefinition } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { installCRDs, kubeConfigFromFile } from "../controlplane/crds.ts";
import { ApiError, KubeClient } from "../../operators/runtime/client.ts";
import { namespacesResource } from "../../operators/runtime/core.ts";
import { fleetSystemNamespace } from "../../operators/inventory/register.ts";
import { upstream, upstreamCRDFiles, UpstreamUnavailableError } from "../controlplane/upstream.ts";

/** Kinds the driver reads and writes; the names Fleet's CRDs declare (charts/fleet-crd). */
const standInKinds = [
  { kind: "GitRepo", plural: "gitrepos" },
  { kind: "Bundle", plural: "bundles" },
  { kind: "BundleDeployment", plural: "bundledeployments" },
  { kind: "Cluster", plural: "clusters" },
  { kind: "ClusterGroup", plural: "clustergroups" },
];

/** A stand-in CRD, in wire format: namespaced, v1alpha1, status subresource, any spec and status. */
function standIn(kind: string, plural: string): Record<string, unknown> {
  const anything = { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.fleet.cattle.io` },
    spec: {
      group: "fleet.cattle.io",
      scope: "Namespaced",
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: "v1alpha1",
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: { type: "object", properties: { spec: anything, status: anything } },
          },
        },
      ],
    },
  };
}

/** The stand-in CRDs (exported for inspection in tests). */
export function standInFleetCRDs(): V1CustomResourceDefinition[] {
  // Through client-node's deserializer, like readCRDs: its serializer only knows model keys
  // (x_kubernetes_preserve_unknown_fields), not the wire keys written above.
  const text = standInKinds.map((k) => stringify(standIn(k.kind, k.plural))).join("---\n");
  return loadAllYaml(text) as V1CustomResourceDefinition[];
}

/**
 * Installs Fleet's CRDs into the cluster of `kubeconfigPath` and waits until they are
 * served. Returns which were installed, for the test log: "upstream" (Fleet's own,
 * from the pinned module or OUTPOST_UPSTREAM_CRDS) or "stand-in" (built here).
 */
export async function installFleetCRDs(kubeconfigPath: string): Promise<"upstream" | "stand-in"> {
  let files: string[] | undefined;
  try {
    files = upstreamCRDFiles(upstream.fleet);
  } catch (err) {
    if (!(err instanceof UpstreamUnavailableError)) throw err;
  }
  await fleetNamespace(kubeconfigPath);
  if (files) {
    await installCRDs({ kubeconfig: kubeconfigPath }, files);
    return "upstream";
  }
  await installCRDs({ kubeconfig: kubeconfigPath }, standInFleetCRDs());
  return "stand-in";
}

/** Fleet's own namespace, as Fleet's chart creates it (where its agents' kubeconfigs go). */
async function fleetNamespace(kubeconfigPath: string): Promise<void> {
  const client = new KubeClient(kubeConfigFromFile(kubeconfigPath));
  try {
    if (!(await client.get(namespacesResource, fleetSystemNamespace)))
      await client.create(namespacesResource, { metadata: { name: fleetSystemNamespace } });
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 409)) throw err;
  } finally {
    await client.close();
  }
}
