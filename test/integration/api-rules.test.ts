// Invariants of the deploy, interconnect, ops and tenancy APIs, enforced by the API
// server (CEL rules in crds/): each rejects an invalid object with its message, and the
// valid counterpart passes.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import { crdFiles } from "../support/crds.ts";
import { useControlPlane } from "../support/controlplane.ts";
import { rejected as rejectedBy } from "../support/api.ts";

const controlPlane = useControlPlane();
let client: KubeClient;
const ns = "default";

const kind = (group: string, k: string, plural: string, namespaced = true): ResourceType => ({
  group: `${group}.outpost.dev`,
  version: "v1alpha1",
  kind: k,
  plural,
  namespaced,
});
const deployments = kind("deploy", "AppDeployment", "appdeployments");
const approvals = kind("deploy", "Approval", "approvals");
const networks = kind("interconnect", "Network", "networks");
const networkServices = kind("interconnect", "NetworkService", "networkservices");
const actions = kind("ops", "ResourceAction", "resourceactions");
const projects = kind("tenancy", "Project", "projects", false);

type Obj = KubeObject & { spec: Record<string, unknown> };

const rejected = (r: ResourceType, obj: Obj, message: string | RegExp, update = false): Promise<void> =>
  rejectedBy(client, r, obj, message, update);

let counter = 0;
const named = (spec: Record<string, unknown>): Obj => ({
  metadata: { name: `o${++counter}`, namespace: ns },
  spec,
});
const dep = (spec: Record<string, unknown>): Obj =>
  named({
    packageRef: { name: "shop", version: "1.0.0" },
    targets: { clusterSelector: { matchLabels: { site: "store" } } },
    ...spec,
  });

describe("deploy, interconnect, ops and tenancy API rules", () => {
  before(async () => {
    await installCRDs(controlPlane().management, crdFiles());
    client = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
  });

  it("AppDeployment: one way to target, typed parameters, rollout", async () => {
    const created = await client.create(
      deployments,
      dep({
        applications: [{ name: "db", targets: { clusters: ["central"] }, values: { replicas: 1 } }],
        parameters: [
          { application: "web", name: "image.tag", value: "1.2.0" },
          { application: "db", name: "password", secretKeyRef: { name: "db", key: "password" } },
        ],
        rollout: {
          maxUnavailable: "25%",
          waves: [{ name: "canary", clusterSelector: { matchLabels: { ring: "0" } }, pauseAfter: true }],
        },
      }),
    );
    assert.equal((created.spec as { revisionHistoryLimit?: number }).revisionHistoryLimit, 10);
    await client.create(deployments, dep({ rollout: { maxUnavailable: 2 } }));
    await rejected(deployments, dep({ targets: {} }), "set exactly one of clusterSelector and clusters");
    await rejected(
      deployments,
      dep({ targets: { clusters: ["a"], clusterSelector: { matchLabels: { x: "y" } } } }),
      "set exactly one of clusterSelector and clusters",
    );
    await rejected(
      deployments,
      dep({ applications: [{ name: "db", targets: {} }] }),
      "set exactly one of clusterSelector and clusters",
    );
    await rejected(
      deployments,
      dep({ applications: [{ name: "db" }, { name: "db" }] }),
      "each application may be listed only once",
    );
    await rejected(
      deployments,
      dep({ parameters: [{ application: "web", name: "a" }] }),
      "set exactly one of value and secretKeyRef",
    );
    await rejected(
      deployments,
      dep({
        parameters: [{ application: "web", name: "a", value: "1", secretKeyRef: { name: "s", key: "k" } }],
      }),
      "set exactly one of value and secretKeyRef",
    );
    await rejected(
      deployments,
      dep({ rollout: { maxUnavailable: "half" } }),
      "maxUnavailable must be a number of clusters",
    );
    await rejected(
      deployments,
      dep({ rollout: { maxUnavailable: -1 } }),
      "maxUnavailable must be a number of clusters",
    );
    // Fleet updates no cluster with a maxUnavailable of 0.
    for (const maxUnavailable of [0, "0%", "101%"])
      await rejected(
        deployments,
        dep({ rollout: { maxUnavailable } }),
        "with 0 Fleet never updates a cluster",
      );
    await client.create(deployments, dep({ rollout: { maxUnavailable: "100%" } }));
  });

  it("AppDeployment: label selectors and names Fleet accepts", async () => {
    const selector = (clusterSelector: Record<string, unknown>): Record<string, unknown> => ({
      targets: { clusterSelector },
    });
    await client.create(
      deployments,
      dep(
        selector({
          matchLabels: { "example.com/ring": "pilot-1", site: "" },
          matchExpressions: [
            { key: "tier", operator: "In", values: ["store", "kiosk"] },
            { key: "example.com/gpu", operator: "Exists" },
          ],
        }),
      ),
    );
    await rejected(
      deployments,
      dep(selector({ matchExpressions: [{ key: "tier", operator: "In", values: [] }] })),
      "values must list at least one value for In and NotIn",
    );
    await rejected(
      deployments,
      dep(selector({ matchExpressions: [{ key: "tier", operator: "NotIn" }] })),
      "values must list at least one value for In and NotIn",
    );
    await rejected(
      deployments,
      dep(selector({ matchExpressions: [{ key: "tier", operator: "Exists", values: ["x"] }] })),
      "must be empty for Exists and DoesNotExist",
    );
    await rejected(
      deployments,
      dep(selector({ matchExpressions: [{ key: "tier", operator: "In", values: ["a b"] }] })),
      "every value must be a label value",
    );
    await rejected(
      deployments,
      dep(selector({ matchExpressions: [{ key: "-tier", operator: "Exists" }] })),
      "key must be a label key",
    );
    await rejected(
      deployments,
      dep(selector({ matchLabels: { tier: "store!" } })),
      "every value in matchLabels must be a label value",
    );
    await rejected(
      deployments,
      dep(selector({ matchLabels: { "a/b/c": "x" } })),
      "every key in matchLabels must be a label key",
    );
    // The same rules hold for waves, overrides and per-application targets.
    await rejected(
      deployments,
      dep({ rollout: { waves: [{ name: "w", clusterSelector: { matchLabels: { ring: "-0" } } }] } }),
      "every value in matchLabels must be a label value",
    );
    await rejected(
      deployments,
      dep({
        overrides: [
          {
            application: "web",
            clusterSelector: { matchExpressions: [{ key: "ring", operator: "In" }] },
            values: { a: 1 },
          },
        ],
      }),
      "values must list at least one value for In and NotIn",
    );
    await rejected(
      deployments,
      dep({ applications: [{ name: "db", targets: { clusterSelector: { matchLabels: { "": "x" } } } }] }),
      "every key in matchLabels must be a label key",
    );
    await client.create(deployments, { ...dep({}), metadata: { name: "d".repeat(63), namespace: ns } });
    await rejected(
      deployments,
      { ...dep({}), metadata: { name: "d".repeat(64), namespace: ns } },
      "metadata.name must be at most 63 characters",
    );
  });

  it("Approval: cannot change", async () => {
    const a = await client.create(
      approvals,
      named({ deploymentRef: { name: "shop" }, revisionHash: "abc123" }),
    );
    await rejected(
      approvals,
      { ...a, spec: { ...a.spec, revisionHash: "def456" } },
      "an Approval cannot change",
      true,
    );
  });

  it("Network: hubs only for hub-and-spoke", async () => {
    const members = { clusterSelector: { matchLabels: { site: "store" } } };
    const mesh = await client.create(networks, named({ members }));
    assert.deepEqual(mesh.spec.topology, undefined);
    await client.create(networks, named({ members, topology: { type: "mesh" } }));
    await client.create(
      networks,
      named({
        members,
        topology: { type: "hub-and-spoke", hubSelector: { matchLabels: { site: "central" } } },
      }),
    );
    await rejected(
      networks,
      named({ members, topology: { type: "hub-and-spoke" } }),
      "a hub-and-spoke topology needs hubSelector",
    );
    await rejected(
      networks,
      named({ members, topology: { type: "mesh", hubSelector: { matchLabels: { site: "central" } } } }),
      "a mesh has no hubs",
    );
    await rejected(
      networkServices,
      named({
        networkRef: { name: "n" },
        deploymentRef: { name: "d" },
        application: "db",
        service: "db",
        port: 70000,
      }),
      /spec\.port/,
    );
  });

  it("ResourceAction: immutable, start and stop for VMs only", async () => {
    const target = { kind: "Deployment", namespace: "shop", name: "web" };
    const a = await client.create(
      actions,
      named({ deploymentRef: { name: "shop" }, cluster: "store-1", target, action: "restart" }),
    );
    assert.equal((a.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished, 3600);
    await rejected(
      actions,
      { ...a, spec: { ...a.spec, action: "delete" } },
      "a ResourceAction cannot change after creation",
      true,
    );
    await rejected(
      actions,
      named({ deploymentRef: { name: "shop" }, cluster: "store-1", target, action: "stop" }),
      "start and stop apply to VirtualMachines only",
    );
    await client.create(
      actions,
      named({
        deploymentRef: { name: "shop" },
        cluster: "store-1",
        target: { ...target, kind: "VirtualMachine" },
        action: "stop",
      }),
    );
  });

  it("Project: a valid namespace name, members are a user or a group", async () => {
    await client.create(projects, {
      metadata: { name: "team-a" },
      spec: {
        members: [
          { user: "alice", role: "admin" },
          { group: "ops", role: "viewer" },
        ],
      },
    });
    await rejected(
      projects,
      { metadata: { name: "team.a" }, spec: {} },
      "a Project name becomes its namespace name",
    );
    await rejected(
      projects,
      { metadata: { name: "t".repeat(64) }, spec: {} },
      "a Project name becomes its namespace name",
    );
    await rejected(
      projects,
      { metadata: { name: "team-b" }, spec: { members: [{ role: "admin" }] } },
      "a member is either a user or a group",
    );
    await rejected(
      projects,
      { metadata: { name: "team-c" }, spec: { members: [{ user: "a", group: "b", role: "admin" }] } },
      "a member is either a user or a group",
    );
    await rejected(
      projects,
      { metadata: { name: "team-d" }, spec: { members: [{ user: "a", role: "owner" }] } },
      /spec\.members\[0\]\.role/,
    );
  });
});
