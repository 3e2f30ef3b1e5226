import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DeliveredApp } from "../deploy/delivered.ts";
import { controllerOf, installedOn, kubevirtActionPath, owningRelease, type Owned } from "./targets.ts";

const repo = (app: string, ns: string, targets: DeliveredApp["targets"]): DeliveredApp => ({
  deployment: "shop",
  application: app,
  namespace: ns,
  releaseName: app,
  targets,
});
const clusters = [
  { metadata: { name: "store-1", labels: { tier: "store" } } },
  { metadata: { name: "central", labels: { tier: "central" } } },
];
const repos = [
  repo("web", "shop", [{ name: "selected", clusterSelector: { matchLabels: { tier: "store" } } }]),
  repo("db", "data", [{ name: "cluster-central", clusterName: "central" }]),
];

describe("ops targets", () => {
  it("knows which releases a deployment installed on a cluster", () => {
    assert.deepEqual(installedOn(repos, clusters, "store-1").releases, [
      { namespace: "shop", release: "web", application: "web" },
    ]);
    assert.deepEqual(installedOn(repos, clusters, "central").releases, [
      { namespace: "data", release: "db", application: "db" },
    ]);
    assert.deepEqual(installedOn(repos, clusters, "mars").releases, []);
  });

  it("finds the Helm release on the target or the controllers above it", () => {
    const installed = installedOn(repos, clusters, "store-1");
    const helm = (release: string, ns = "shop") => ({
      "meta.helm.sh/release-name": release,
      "meta.helm.sh/release-namespace": ns,
    });
    const pod: Owned = { kind: "Pod", metadata: { name: "web-1" } };
    const rs: Owned = { kind: "ReplicaSet", metadata: { name: "web-5d" } };
    const dep: Owned = { kind: "Deployment", metadata: { name: "web", annotations: helm("web") } };
    assert.equal(owningRelease([pod, rs, dep], "shop", installed)?.application, "web");
    assert.equal(owningRelease([pod, rs], "shop", installed), undefined);
    // The first release found decides: a foreign chart's object is not ours.
    const foreign: Owned = { kind: "Deployment", metadata: { annotations: helm("other") } };
    assert.equal(owningRelease([pod, foreign, dep], "shop", installed), undefined);
    // Same release name, another namespace: not ours either.
    assert.equal(
      owningRelease([{ kind: "Deployment", metadata: { annotations: helm("web", "x") } }], "x", installed),
      undefined,
    );
  });

  it("follows only controller references of known kinds", () => {
    const ref = (kind: string, controller = true) => ({ apiVersion: "v1", kind, name: "o", controller });
    assert.deepEqual(controllerOf({ kind: "Pod", metadata: { ownerReferences: [ref("ReplicaSet")] } }), {
      kind: "ReplicaSet",
      name: "o",
    });
    assert.equal(
      controllerOf({ kind: "Pod", metadata: { ownerReferences: [ref("ReplicaSet", false)] } }),
      undefined,
    );
    assert.equal(controllerOf({ kind: "Pod", metadata: { ownerReferences: [ref("toString")] } }), undefined);
    assert.equal(controllerOf({ kind: "Pod", metadata: { ownerReferences: [ref("Node")] } }), undefined);
  });

  it("addresses KubeVirt's subresource API", () => {
    assert.equal(
      kubevirtActionPath("shop", "kiosk", "stop"),
      "/apis/subresources.kubevirt.io/v1/namespaces/shop/virtualmachines/kiosk/stop",
    );
  });
});

describe("ops targets delivered by Argo CD", () => {
  const delivered = [
    {
      deployment: "shop",
      application: "web",
      namespace: "shop",
      releaseName: "web",
      targets: [{ name: "s", clusterName: "store-1" }],
      argoApplicationSet: "retail-shop-web",
    },
  ];
  const cluster = [{ metadata: { name: "store-1", labels: {} } }];
  it("finds the release by Argo CD's tracking annotation, on the target or above it", () => {
    const installed = installedOn(delivered, cluster, "store-1");
    assert.equal(installed.releases[0]?.argoApplication, "retail-shop-web-store-1");
    const tracked = (app: string, ns = "shop") => ({
      "argocd.argoproj.io/tracking-id": `${app}:apps/Deployment:${ns}/web`,
    });
    const pod: Owned = { kind: "Pod", metadata: { name: "web-1" } };
    const deployment = (annotations: Record<string, string>): Owned => ({
      kind: "Deployment",
      metadata: { name: "web", annotations },
    });
    assert.equal(
      owningRelease([pod, deployment(tracked("retail-shop-web-store-1"))], "shop", installed)?.application,
      "web",
    );
    // Another tenant's Application (same names elsewhere), or another namespace: not ours.
    assert.equal(
      owningRelease([pod, deployment(tracked("other-shop-web-store-1"))], "shop", installed),
      undefined,
    );
    assert.equal(
      owningRelease([pod, deployment(tracked("retail-shop-web-store-1", "kube-system"))], "shop", installed),
      undefined,
    );
  });
});
