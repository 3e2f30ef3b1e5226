// The tenancy operator as its own process, killed with SIGKILL at random points while it
// provisions projects against Harbor (contract fake) and Gitea: after the last restart
// every project is Ready with exactly one Harbor project, one robot, one Git repository
// and one set of RoleBindings — and every pull Secret holds the robot's current secret.
// Killed right after each write to Harbor or Gitea took effect (before it hears the
// answer), then deleted, a project leaves nothing behind; and a project whose
// AppDeployments cannot be listed is not deleted past them.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Octokit } from "@octokit/rest";
import type { Project } from "../../operators/api/project.generated.ts";
import { ProjectResource } from "../../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import { roleBindingsResource } from "../../operators/tenancy/project.ts";
import { kubeConfigFromFile, kubeconfigFor } from "../controlplane/index.ts";
import { AppDeploymentResource } from "../../operators/api/resources.generated.ts";
import { namespacesResource } from "../../operators/runtime/core.ts";
import { HttpTap } from "../support/http-tap.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { OperatorProcess } from "../support/operator.ts";
import { giteaSettings, startGitea, type Gitea } from "../support/gitea.ts";
import { harborSettings, startHarborFake, type HarborFake } from "../support/harbor-fake.ts";
import { configureTenancy, installOutpost } from "../support/install.ts";
import { secretsResource } from "../../operators/runtime/core.ts";

const controlPlane = useControlPlane();
const projects = ["p1", "p2", "p3", "p4", "p5"];
let client: KubeClient;
let harbor: HarborFake;
let gitea: Gitea;
let operator: OperatorProcess;

describe("tenancy operator reliability", () => {
  before(async () => {
    installOutpost(controlPlane());
    client = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
    [harbor, gitea] = await Promise.all([startHarborFake(), startGitea()]);
    await configureTenancy(client, { ...harborSettings(harbor), ...giteaSettings(gitea, "projects") });
    operator = await OperatorProcess.create(controlPlane().management.kubeconfig, "tenancy");
    operator.start();
  });
  after(async () => {
    await operator.kill();
    await client.close();
    await Promise.all([harbor.stop(), gitea.stop()]);
  });

  it("provisions exactly one of everything despite SIGKILL at random points", async () => {
    // Slow Harbor answers: the kills land in the middle of provisioning.
    harbor.slow(150);
    const state = { provisioning: true };
    const killer = operator.killRepeatedly((kills) => state.provisioning || kills < 3, 50, 450);
    for (const name of projects) {
      await client.create(ProjectResource, {
        metadata: { name },
        spec: {
          members: [
            { user: `${name}-admin`, role: "admin" },
            { group: `${name}-devs`, role: "deployer" },
          ],
        },
      } as KubeObject);
      await sleep(300 + Math.random() * 300);
    }
    await sleep(1_500);
    state.provisioning = false;
    const kills = await killer;
    harbor.slow(0);

    for (const name of projects) {
      await eventually(
        `${name} Ready`,
        async () => {
          const p = await client.get<Project>(ProjectResource, name);
          if (getCondition(p?.status?.conditions, "Ready")?.status === "True") return true;
          throw new Error(JSON.stringify(p?.status?.conditions ?? null));
        },
        90_000,
      );
    }
    assert.deepEqual(
      harbor
        .projects()
        .map((p) => p.name)
        .sort(),
      projects,
      "one Harbor project each",
    );
    const robots = harbor.robots();
    assert.deepEqual(
      robots.map((r) => r.name).sort(),
      projects.map((p) => `robot$${p}+outpost`),
      "one robot each",
    );
    const api = new Octokit({ auth: gitea.token, baseUrl: gitea.api });
    const repos = await api.repos.listForOrg({ org: "projects", per_page: 50 });
    assert.deepEqual(repos.data.map((r) => r.name).sort(), projects, "one Git repository each");
    for (const name of projects) {
      const bindings = await client.list(roleBindingsResource, { namespace: name });
      const names = bindings.items
        .map((b) => b.metadata.name ?? "")
        .filter((n) => n.startsWith("outpost:project-"));
      assert.deepEqual(
        names.sort(),
        ["outpost:project-admin", "outpost:project-deployer"],
        `${name} bindings`,
      );
      const secret = await client.get<KubeObject & { data?: Record<string, string> }>(
        secretsResource,
        "outpost-harbor",
        name,
      );
      const password = Buffer.from(secret?.data?.password ?? "", "base64").toString();
      assert.equal(
        password,
        robots.find((r) => r.name === `robot$${name}+outpost`)?.secret,
        `${name}: the pull Secret works`,
      );
    }
    console.log(`# ${kills} kills while provisioning ${projects.length} projects`);
  });

  it("leaves nothing in Harbor, Gitea or the API server when killed right after each external write, then deleted", async () => {
    const [harborTap, giteaTap] = await Promise.all([HttpTap.start(harbor.url), HttpTap.start(gitea.api)]);
    const api = new Octokit({ auth: gitea.token, baseUrl: gitea.api });
    try {
      await configureTenancy(client, {
        ...harborSettings(harbor, harborTap.url),
        ...giteaSettings({ ...gitea, api: giteaTap.url }, "projects"),
      });
      // Provisioning order: the Git repository, then the Harbor project, then its robot.
      const steps = [
        { name: "k-git", tap: giteaTap, method: "POST", path: "/api/v1/orgs/projects/repos" },
        { name: "k-harbor", tap: harborTap, method: "POST", path: "/api/v2.0/projects" },
        { name: "k-robot", tap: harborTap, method: "POST", path: "/api/v2.0/robots" },
      ];
      for (const step of steps) {
        const killed = step.tap.onceAfter(
          (r) => r.method === step.method && r.path === step.path,
          async () => {
            await operator.kill();
            return "drop";
          },
        );
        await client.create(ProjectResource, {
          metadata: { name: step.name },
          spec: { members: [{ user: `${step.name}-admin`, role: "admin" }] },
        } as KubeObject);
        const write = await killed;
        assert.ok(
          write.status >= 200 && write.status < 300,
          `${step.name}: ${step.method} ${step.path} took effect`,
        );
        operator.start();
        await eventually(
          `${step.name} Ready after the restart`,
          async () => {
            const p = await client.get<Project>(ProjectResource, step.name);
            if (getCondition(p?.status?.conditions, "Ready")?.status === "True") return true;
            throw new Error(JSON.stringify(p?.status?.conditions ?? null));
          },
          90_000,
        );
        await client.delete(ProjectResource, step.name);
        await eventually(
          `${step.name} deleted`,
          async () => ((await client.get(ProjectResource, step.name)) ? undefined : true),
          90_000,
        );
        assert.equal(
          await client.get(namespacesResource, step.name),
          undefined,
          `${step.name}: namespace gone`,
        );
        assert.deepEqual(
          harbor.projects().filter((p) => p.name === step.name),
          [],
          `${step.name}: no Harbor project left`,
        );
        assert.deepEqual(
          harbor.robots().filter((r) => r.name === `robot$${step.name}+outpost`),
          [],
          `${step.name}: no robot left`,
        );
        const repos = await api.repos.listForOrg({ org: "projects", per_page: 50 });
        assert.deepEqual(
          repos.data.filter((r) => r.name === step.name).map((r) => r.full_name),
          [],
          `${step.name}: no Git repository left`,
        );
      }
    } finally {
      await Promise.all([harborTap.close(), giteaTap.close()]);
    }
  });

  it("does not delete a project past its AppDeployments while it cannot list them", async () => {
    // The operator as its own ServiceAccount, so that RBAC can take the list away.
    await operator.kill();
    const serviceAccount = await kubeconfigFor(
      controlPlane().management,
      "system:serviceaccount:outpost-system:outpost-tenancy",
      ["system:serviceaccounts", "system:serviceaccounts:outpost-system"],
    );
    const restricted = await OperatorProcess.create(serviceAccount, "tenancy");
    restricted.start();
    const clusterRoles = {
      group: "rbac.authorization.k8s.io",
      version: "v1",
      kind: "ClusterRole",
      plural: "clusterroles",
      namespaced: false,
    };
    type Role = KubeObject & { rules?: { resources?: string[] }[] };
    const roleNames = ["outpost:tenancy-operator", "outpost:tenancy-operator-project"];
    const originals: Role[] = [];
    try {
      const name = "blocked";
      await client.create(ProjectResource, {
        metadata: { name },
        spec: { harbor: { enabled: false }, git: { enabled: false } },
      } as KubeObject);
      await eventually(`${name} Ready`, async () => {
        const p = await client.get<Project>(ProjectResource, name);
        return getCondition(p?.status?.conditions, "Ready")?.status === "True" ? true : undefined;
      });
      await client.create(AppDeploymentResource, {
        metadata: { name: "shop", namespace: name },
        spec: {
          packageRef: { name: "shop", version: "1.0.0" },
          targets: { clusterSelector: { matchLabels: { site: "store" } } },
        },
      } as KubeObject);
      // Take away the operator's right to list (and delete) AppDeployments.
      for (const roleName of roleNames) {
        const role = await client.get<Role>(clusterRoles, roleName);
        assert.ok(role, roleName);
        originals.push(role);
        await client.replace(clusterRoles, {
          ...role,
          rules: (role.rules ?? [])
            .map((r) => ({ ...r, resources: (r.resources ?? []).filter((x) => x !== "appdeployments") }))
            .filter((r) => r.resources.length > 0),
        });
      }
      await client.delete(ProjectResource, name);
      // The witness: the Project says why its deletion waits.
      const message = await eventually(
        "the Project to report the failed list",
        async () => {
          const p = await client.get<Project>(ProjectResource, name);
          const ready = getCondition(p?.status?.conditions, "Ready");
          return ready?.message.includes("cannot list the project's appdeployments")
            ? ready.message
            : undefined;
        },
        60_000,
      );
      assert.match(message, /forbidden/i, "the message carries the API server's answer");
      const ns = await client.get(namespacesResource, name);
      assert.ok(ns, "the namespace is still there");
      assert.equal(ns.metadata.deletionTimestamp, undefined, "and not being deleted");
      assert.ok(await client.get(AppDeploymentResource, "shop", name), "the AppDeployment is still there");

      // Given the right back, the deletion goes on: AppDeployments first, then the rest.
      for (const role of originals.splice(0)) {
        const now = await client.get<Role>(clusterRoles, role.metadata.name ?? "");
        await client.replace(clusterRoles, {
          ...role,
          metadata: { ...role.metadata, resourceVersion: now?.metadata.resourceVersion },
        });
      }
      await eventually(
        "the Project deleted",
        async () => ((await client.get(ProjectResource, name)) ? undefined : true),
        90_000,
      );
    } finally {
      for (const role of originals) {
        const now = await client.get<Role>(clusterRoles, role.metadata.name ?? "");
        await client.replace(clusterRoles, {
          ...role,
          metadata: { ...role.metadata, resourceVersion: now?.metadata.resourceVersion },
        });
      }
      await restricted.kill();
    }
  });
});
