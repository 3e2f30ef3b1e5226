// The interconnect operator follows clusters of every registration: a cluster registered
// for Argo CD (a cluster Secret in Argo CD's namespace, labelled with its project) joins a
// Network the moment it appears or its labels change, as a Fleet Cluster does — not on
// the next periodic pass (set to ten minutes here, so only a watch can make it happen).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Network } from "../../operators/api/network.generated.ts";
import { NetworkResource } from "../../operators/api/resources.generated.ts";
import { registerInterconnect } from "../../operators/interconnect/index.ts";
import { configureInventory } from "../../operators/inventory/inventory.ts";
import { argoSecretTypeLabel, clusterLabel, projectLabel } from "../../operators/inventory/registrations.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { installOutpost } from "../support/install.ts";
import { startOperator } from "../support/operator.ts";

const controlPlane = useControlPlane();
const ns = "retail";
const argo = "argocd";
let client: KubeClient;
let operator: Manager;

const members = async (): Promise<number | undefined> =>
  (await client.get<Network>(NetworkResource, "retail", ns))?.status?.summary?.members;

/** An Argo CD cluster Secret registering `name` for project retail (no credentials needed here). */
const clusterSecret = (name: string, labels: Record<string, string>): KubeObject =>
  ({
    metadata: {
      name: `cluster-${name}`,
      namespace: argo,
      labels: { [argoSecretTypeLabel]: "cluster", [projectLabel]: ns, [clusterLabel]: name, ...labels },
    },
    stringData: { name: `${ns}.${name}`, server: `https://${name}.invalid:6443`, config: "{}" },
  }) as KubeObject;

describe("interconnect: clusters registered for Argo CD", () => {
  before(async () => {
    const cp = controlPlane();
    installOutpost(cp);
    const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
    client = new KubeClient(kubeConfig);
    for (const name of [ns, argo]) await client.create(namespacesResource, { metadata: { name } });
    operator = await startOperator("outpost-interconnect", kubeConfig, (m) => {
      configureInventory(m, { argocdNamespace: argo });
      registerInterconnect(m, { pendingPollMs: 600_000, readyPollMs: 600_000 });
    });
  });

  after(async () => {
    await operator.stop();
    await client.close();
  });

  it("adds a member when its cluster Secret appears or is relabelled", async () => {
    await client.create(secretsResource, clusterSecret("store-1", { tier: "lab" }));
    await client.create(NetworkResource, {
      metadata: { name: "retail", namespace: ns },
      spec: { members: { clusterSelector: { matchLabels: { tier: "store" } } }, topology: { type: "mesh" } },
    } as KubeObject);
    // The witness that the Network was reconciled, with no member yet.
    await eventually("the network reconciled", async () => ((await members()) === 0 ? true : undefined));

    await client.create(secretsResource, clusterSecret("store-2", { tier: "store" }));
    await eventually("store-2 a member", async () => ((await members()) === 1 ? true : undefined), 20_000);
    await client.mergePatch(secretsResource, "cluster-store-1", argo, {
      metadata: { labels: { tier: "store" } },
    });
    await eventually("store-1 a member", async () => ((await members()) === 2 ? true : undefined), 20_000);
    assert.equal(await members(), 2);
  });
});
