// Locates the control-plane binaries, building them once with ./build.sh (cached).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface Binaries {
  dir: string;
  etcd: string;
  kubeApiServer: string;
  kubeControllerManager: string;
  kubectl: string;
}

const buildScript = fileURLToPath(new URL("./build.sh", import.meta.url));
let cached: Binaries | undefined;

/** Runs build.sh (a no-op when the cache is warm) and returns the binary paths. */
export function ensureBinaries(progress: (line: string) => void = () => undefined): Binaries {
  if (cached) return cached;
  const res = spawnSync("bash", [buildScript], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  for (const line of res.stderr.split("\n").filter(Boolean)) progress(line);
  if (res.status !== 0) {
    throw new Error(
      `building the control plane failed (${buildScript} exited ${res.status ?? res.signal}):\n${res.stderr.trim()}`,
    );
  }
  const dir = res.stdout.trim().split("\n").pop() ?? "";
  cached = {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiServer: join(dir, "kube-apiserver"),
    kubeControllerManager: join(dir, "kube-controller-manager"),
    kubectl: join(dir, "kubectl"),
  };
  return cached;
}
