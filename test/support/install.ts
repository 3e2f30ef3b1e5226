// Installs Outpost from config/ into a cluster with `kubectl apply -k`, as a user would,
// and waits until its CRDs are Established.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ControlPlane } from "../controlplane/index.ts";
import type { KubeClient, KubeObject } from "../../operators/runtime/client.ts";
import { secretsResource } from "../../operators/runtime/core.ts";
import { configSecret } from "../../operators/tenancy/project.ts";

export const configDir = fileURLToPath(new URL("../../config/", import.meta.url));

export function kubectl(
  cp: ControlPlane,
  ...args: string[]
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(cp.binaries.kubectl, ["--kubeconfig", cp.management.kubeconfig, ...args], {
    encoding: "utf8",
  });
}

export function installOutpost(cp: ControlPlane): void {
  const apply = kubectl(cp, "apply", "-k", configDir);
  assert.equal(apply.status, 0, apply.stderr);
  const wait = kubectl(cp, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all");
  assert.equal(wait.status, 0, wait.stderr);
}

/** Writes the tenancy operator's configuration (Secret outpost-system/outpost-tenancy). */
export async function configureTenancy(client: KubeClient, data: Record<string, string>): Promise<void> {
  await client.apply(
    secretsResource,
    { metadata: { name: configSecret, namespace: "outpost-system" }, stringData: data } as KubeObject,
    { fieldManager: "test" },
  );
}
