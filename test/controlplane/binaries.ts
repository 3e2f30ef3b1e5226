// Locates the control-plane binaries, building them once with ./build.sh (cached), and
// kwok (fake nodes for edges that run workloads) with ../kwok/build.sh.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface Binaries {
  dir: string;
  etcd: string;
  kubeApiServer: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
}

const buildScript = fileURLToPath(new URL("./build.sh", import.meta.url));
const kwokBuildScript = fileURLToPath(new URL("../kwok/build.sh", import.meta.url));
let cached: Binaries | undefined;
let cachedKwok: string | undefined;

/** Runs a build script and returns the last line of its output; stderr goes to `progress`. */
function runBuild(script: string, what: string, progress: (line: string) => void): string {
  const res = spawnSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  for (const line of res.stderr.split("\n").filter(Boolean)) progress(line);
  if (res.status !== 0) {
    throw new Error(
      `building ${what} failed (${script} exited ${res.status ?? res.signal}):\n${res.stderr.trim()}`,
    );
  }
  return res.stdout.trim().split("\n").pop() ?? "";
}

/** Runs build.sh (a no-op when the cache is warm) and returns the binary paths. */
export function ensureBinaries(progress: (line: string) => void = () => undefined): Binaries {
  if (cached) return cached;
  const dir = runBuild(buildScript, "the control plane", progress);
  cached = {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiServer: join(dir, "kube-apiserver"),
    kubeControllerManager: join(dir, "kube-controller-manager"),
    kubeScheduler: join(dir, "kube-scheduler"),
    kubectl: join(dir, "kubectl"),
  };
  return cached;
}

/** Runs ../kwok/build.sh (a no-op when the cache is warm) and returns the kwok binary's path. */
export function ensureKwok(progress: (line: string) => void = () => undefined): string {
  cachedKwok ??= runBuild(kwokBuildScript, "kwok", progress);
  return cachedKwok;
}
