// Skupper v2's CRDs for tests that run the Skupper test driver (skupper.ts).
//
// The real ones come from the Go module github.com/skupperproject/skupper (release 2.2.1,
// config/crd/bases; upstreamCRDFiles, see test/controlplane/upstream.ts). When the module
// proxy refuses it and OUTPOST_UPSTREAM_CRDS names no folder holding them, minimal
// stand-ins built here are installed instead.
//
// The stand-ins accept ANYTHING in spec and status (x-kubernetes-preserve-unknown-fields):
// the API server then validates and prunes nothing, so with them the driver's own checks
// (skupper.ts reports missing required fields, wrong types and fields Skupper's schemas
// would prune, in `driver.errors`) are all that validate the objects under test. With the
// upstream CRDs the API server also applies Skupper's schemas: required fields, the
// Connector's oneOf (selector or host), enums and formats are enforced at admission and
// unknown fields pruned, as on a real edge cluster.
import { loadAllYaml, type V1CustomResourceDefinition } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { installCRDs } from "../controlplane/crds.ts";
import { upstream, upstreamCRDFiles, UpstreamUnavailableError } from "../controlplane/upstream.ts";

/** Every kind of skupper.io/v2alpha1, with the names and short names its CRDs declare. */
const standInKinds = [
  { kind: "Site", plural: "sites", shortNames: ["st"] },
  { kind: "Link", plural: "links", shortNames: ["ln"] },
  { kind: "AccessGrant", plural: "accessgrants", shortNames: ["grant", "gr"] },
  { kind: "AccessToken", plural: "accesstokens", shortNames: ["token", "to"] },
  { kind: "Listener", plural: "listeners", shortNames: ["lnr"] },
  { kind: "Connector", plural: "connectors", shortNames: ["cnr"] },
  { kind: "AttachedConnector", plural: "attachedconnectors", shortNames: ["acnr"] },
  { kind: "AttachedConnectorBinding", plural: "attachedconnectorbindings", shortNames: ["acnrb"] },
  { kind: "RouterAccess", plural: "routeraccesses", shortNames: [] },
  { kind: "SecuredAccess", plural: "securedaccesses", shortNames: [] },
  { kind: "Certificate", plural: "certificates", shortNames: [] },
  { kind: "MultiKeyListener", plural: "multikeylisteners", shortNames: [] },
];

/** A stand-in CRD, in wire format: namespaced, v2alpha1, status subresource, any spec and status. */
function standIn(kind: string, plural: string, shortNames: string[]): Record<string, unknown> {
  const anything = { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.skupper.io` },
    spec: {
      group: "skupper.io",
      scope: "Namespaced",
      names: {
        kind,
        plural,
        singular: kind.toLowerCase(),
        listKind: `${kind}List`,
        ...(shortNames.length ? { shortNames } : {}),
      },
      versions: [
        {
          name: "v2alpha1",
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
export function standInSkupperCRDs(): V1CustomResourceDefinition[] {
  // Through client-node's deserializer, like readCRDs: its serializer only knows model keys
  // (x_kubernetes_preserve_unknown_fields), not the wire keys written above.
  const text = standInKinds.map((k) => stringify(standIn(k.kind, k.plural, k.shortNames))).join("---\n");
  return loadAllYaml(text) as V1CustomResourceDefinition[];
}

/**
 * Installs Skupper's CRDs into the cluster of `kubeconfigPath` and waits until they are
 * served. Returns which were installed, for the test log: "upstream" (Skupper's own,
 * from the pinned module or OUTPOST_UPSTREAM_CRDS) or "stand-in" (built here).
 */
export async function installSkupperCRDs(kubeconfigPath: string): Promise<"upstream" | "stand-in"> {
  let files: string[] | undefined;
  try {
    files = upstreamCRDFiles(upstream.skupper);
  } catch (err) {
    if (!(err instanceof UpstreamUnavailableError)) throw err;
  }
  if (files) {
    await installCRDs({ kubeconfig: kubeconfigPath }, files);
    return "upstream";
  }
  await installCRDs({ kubeconfig: kubeconfigPath }, standInSkupperCRDs());
  return "stand-in";
}
