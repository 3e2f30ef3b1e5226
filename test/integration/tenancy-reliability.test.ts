// The tenancy operator as its own process, killed with SIGKILL at random points while it
// provisions projects against Harbor (contract fake) and Gitea: after the last restart
// every project is Ready with exactly one Harbor project, one robot, one Git repository
// and one set of RoleBindings — and every pull Secret holds the robot's current secret.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Octokit } from "@octokit/rest";
import type { Project } from "../../operators/api/project.generated.ts";
import { ProjectResource } from "../../operators/api/resources.generated.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import { configSecret, roleBindingsResource } from "../../operators/tenancy/project.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { OperatorProcess } from "../support/operator.ts";
import { giteaSettings, startGitea, type Gitea } from "../support/gitea.ts";
import { startHarborFake, type HarborFake } from "../support/harbor-fake.ts";
import { installOutpost } from "../support/install.ts";
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
    await client.apply(
      secretsResource,
      {
        metadata: { name: configSecret, namespace: "outpost-system" },
        stringData: {
          "harbor.url": harbor.url,
          "harbor.username": harbor.username,
          "harbor.password": harbor.password,
          "harbor.registry": "harbor.example.com",
          ...giteaSettings(gitea, "projects"),
        },
      } as KubeObject,
      { fieldManager: "test" },
    );
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
});
