// The deploy operator as its own process, killed with SIGKILL at random points during 100
// deployment changes: after the last restart every deployment converges, and the Git
// history has one commit per distinct rendered tree — never a commit that changes
// nothing. Then a Git server outage: the condition says so and delivery resumes without
// help; a deletion while Git is down completes when it is back.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { AppDeploymentResource } from "../../operators/api/resources.generated.ts";
import { getCondition } from "../../operators/runtime/conditions.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { OperatorProcess } from "../support/operator.ts";
import {
  shopDeployment,
  specHash,
  startDeployFixture,
  waitForDeployment,
  type DeployFixture,
} from "../support/deploy.ts";

const controlPlane = useControlPlane();
const ns = "resilient";
const deployments = ["d0", "d1", "d2", "d3", "d4"];
const changes = 100;
let fx: DeployFixture;
let operator: OperatorProcess;

/** Commit → tree, and commit → parent's tree, for the whole branch. */
function history(): { commit: string; tree: string; parentTree?: string }[] {
  const gitDir = join(fx.git.root, `${fx.repo}.git`);
  const out = execFileSync("git", ["--git-dir", gitDir, "log", "--format=%H %T %P", "main"], {
    encoding: "utf8",
  });
  const rows = out
    .trim()
    .split("\n")
    .map((l) => l.split(" "));
  const treeOf = new Map(rows.map(([c, t]) => [c ?? "", t ?? ""]));
  return rows.map(([commit = "", tree = "", parent]) => ({
    commit,
    tree,
    ...(parent ? { parentTree: treeOf.get(parent) } : {}),
  }));
}

describe("deploy operator reliability", () => {
  before(async () => {
    fx = await startDeployFixture(controlPlane(), ns);
    operator = await OperatorProcess.create(controlPlane().management.kubeconfig, "deploy");
    operator.start();
  });
  after(async () => {
    await operator.kill();
    await fx.stop();
  });

  it("converges after SIGKILL at random points during 100 changes, one commit per distinct tree", async () => {
    for (const name of deployments) await fx.client.create(AppDeploymentResource, shopDeployment(ns, name));

    // A killer: once the operator is ready, SIGKILL it 0.2–1.5 s later, restart at once;
    // over and over while the changes go in.
    const state = { changing: true };
    const killer = operator.killRepeatedly((kills) => state.changing || kills < 3, 200, 1500);
    for (let i = 1; i <= changes; i++) {
      const name = deployments[i % deployments.length] ?? "d0";
      await fx.client.mergePatch(AppDeploymentResource, name, ns, {
        spec: {
          parameters: [
            ...(shopDeployment(ns, name).spec.parameters ?? []),
            { application: "web", name: "replicaCount", value: String(i) },
          ],
        },
      });
      await sleep(100 + Math.random() * 100);
    }
    state.changing = false;
    const kills = await killer;

    for (const name of deployments) {
      const current = await fx.client.get<ReturnType<typeof shopDeployment>>(AppDeploymentResource, name, ns);
      assert.ok(current);
      const hash = specHash(current.spec);
      await waitForDeployment(
        fx.client,
        ns,
        name,
        "the last change delivered and running",
        (d) => d.status?.revisionHash === hash && d.status.phase === "Running",
        90_000,
      );
      const last = (current.spec.parameters ?? []).find((p) => p.name === "replicaCount")?.value;
      assert.match(
        fx.git.show(fx.repo, `${name}/web/values.yaml`) ?? "",
        new RegExp(`replicaCount: ${last ?? "?"}\\n`),
      );
    }

    const commits = history();
    const empty = commits.filter((c) => c.parentTree !== undefined && c.parentTree === c.tree);
    assert.deepEqual(empty, [], "no commit without a change");
    assert.equal(new Set(commits.map((c) => c.tree)).size, commits.length, "every commit's tree is distinct");
    assert.ok(
      commits.length <= changes + deployments.length,
      `${commits.length} commits for ${changes} changes`,
    );
    console.log(
      `# ${kills} kills, ${commits.length} commits for ${changes} changes to ${deployments.length} deployments`,
    );
  });

  it("says when Git is down for a minute, recovers without help, and finishes a deletion once Git is back", async () => {
    fx.git.down();
    await fx.client.mergePatch(AppDeploymentResource, "d1", ns, {
      spec: { applications: [{ name: "web", values: { banner: "offline sale" } }] },
    });
    const down = await waitForDeployment(
      fx.client,
      ns,
      "d1",
      "Git unreachable",
      (d) => getCondition(d.status?.conditions, "Delivered")?.status === "False",
    );
    assert.match(
      getCondition(down.status?.conditions, "Delivered")?.message ?? "",
      /503|unreachable|refused|status/i,
    );
    await fx.client.delete(AppDeploymentResource, "d2", ns);
    // A minute without Git: the deployments say so the whole time, the deletion waits.
    const outageEnds = Date.now() + 60_000;
    while (Date.now() < outageEnds) {
      await sleep(10_000);
      const d1 = await fx.client.get<ReturnType<typeof shopDeployment>>(AppDeploymentResource, "d1", ns);
      assert.equal(getCondition(d1?.status?.conditions, "Delivered")?.status, "False", "still reported");
      assert.ok(await fx.client.get(AppDeploymentResource, "d2", ns), "the deletion waits for Git");
    }

    fx.git.up();
    await waitForDeployment(
      fx.client,
      ns,
      "d1",
      "delivered after the outage",
      (d) =>
        getCondition(d.status?.conditions, "Delivered")?.status === "True" && d.status?.phase === "Running",
      60_000,
    );
    assert.match(fx.git.show(fx.repo, "d1/web/values.yaml") ?? "", /banner: offline sale/);
    await eventually(
      "d2 deleted",
      async () => ((await fx.client.get(AppDeploymentResource, "d2", ns)) ? undefined : true),
      60_000,
    );
    assert.ok(!fx.git.files(fx.repo).some((f) => f.startsWith("d2/")));
  });
});
