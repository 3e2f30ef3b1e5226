// `make demo KUBECONFIG=…` on a cluster that runs Fleet: install Outpost there from
// config/ with the user's kubectl, wait until its operators run, and check what the
// demo cannot guess (where project repositories live) before the examples are applied.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { KubeClient } from "../../operators/runtime/client.ts";
import { secretsResource } from "../../operators/runtime/core.ts";
import { repoRoot } from "./layout.ts";

function kubectl(args: string[], timeoutMs: number): { ok: boolean; out: string } {
  const res = spawnSync("kubectl", args, { encoding: "utf8", timeout: timeoutMs });
  if (res.error && (res.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new Error("installing Outpost into a cluster needs kubectl on PATH");
  }
  return { ok: res.status === 0, out: `${res.stdout}${res.stderr}`.trim() };
}

/** Installs (or upgrades) Outpost from config/ and waits for its Deployments. */
export async function installInto(
  client: KubeClient,
  progress: (line: string) => void,
  timeoutMs: number,
): Promise<void> {
  progress("installing Outpost from config/ (kubectl apply -k config/)");
  const apply = kubectl(
    ["apply", "--server-side", "--force-conflicts", "-k", join(repoRoot, "config")],
    timeoutMs,
  );
  if (!apply.ok) throw new Error(`kubectl apply -k config/ failed:\n${apply.out}`);
  // crds/<group>_<plural>.yaml holds CRD <plural>.<group>.
  const names = readdirSync(join(repoRoot, "crds"))
    .map((f) => /^(.+)_(.+)\.yaml$/.exec(f))
    .flatMap((m) => (m ? [`crd/${m[2] ?? ""}.${m[1] ?? ""}`] : []));
  const crds = kubectl(
    ["wait", "--for=condition=Established", `--timeout=${Math.round(timeoutMs / 1000)}s`, ...names],
    timeoutMs + 5000,
  );
  if (!crds.ok) throw new Error(`Outpost's CRDs are not served:\n${crds.out}`);
  progress("waiting for the operators in outpost-system to be available");
  const rollout = kubectl(
    [
      "-n",
      "outpost-system",
      "wait",
      "--for=condition=Available",
      `--timeout=${Math.round(timeoutMs / 1000)}s`,
      "deployment",
      "--all",
    ],
    timeoutMs + 5000,
  );
  if (!rollout.ok) {
    const pods = kubectl(["-n", "outpost-system", "get", "pods", "-o", "wide"], 15_000).out;
    throw new Error(
      [
        "Outpost's operators did not become available in outpost-system.",
        "They run image ghcr.io/outpost-dev/outpost:0.1.0: build it (docker build -t ghcr.io/outpost-dev/outpost:0.1.0 .)",
        "and make it pullable by the cluster (for kind: kind load docker-image ghcr.io/outpost-dev/outpost:0.1.0).",
        rollout.out,
        pods,
      ].join("\n"),
    );
  }
  if (!(await client.get(secretsResource, "outpost-tenancy", "outpost-system"))) {
    throw new Error(
      "Secret outpost-system/outpost-tenancy is missing: tell the tenancy operator where project repositories live " +
        "(git.provider, git.apiUrl, git.organization, git.username, git.token; see docs/operations.md#projects), then run make demo again",
    );
  }
  progress("Outpost is installed and its operators run");
}
