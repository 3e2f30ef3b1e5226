// Where the local demo fleet keeps its files, and the state file its supervisor writes
// once everything runs. Everything lives under one folder (default: .demo/ in the
// checkout; OUTPOST_DEMO_DIR to move it), so `make demo-down` can find and remove it all.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

export function demoDir(): string {
  return resolve(process.env.OUTPOST_DEMO_DIR ?? join(repoRoot, ".demo"));
}

/** The edge clusters of the demo, the edge API server each one runs on, and its labels. */
export const demoClusters = [
  { name: "store-1", edge: "edge-1", labels: { "site-type": "store", ring: "pilot" } },
  { name: "store-2", edge: "edge-2", labels: { "site-type": "store", "store-size": "large" } },
  { name: "central", edge: "edge-3", labels: { "site-type": "central" } },
] as const;

export interface DemoState {
  /** The supervisor's pid (also the process group of everything it started). */
  pid: number;
  startedAt: string;
  /** Kubeconfig with contexts management, store-1, store-2 and central (admin). */
  kubeconfig: string;
  /** kubectl and kubectl-outpost, to put on PATH. */
  bin: string;
  /** Per Fleet cluster: a kubeconfig for Outpost's edge identity (config/edge). */
  edgeKubeconfigs: Record<string, string>;
  /** Per cluster: its admin kubeconfig, for the engine's registration (Argo CD, or Fleet's agent). */
  fleetKubeconfigs: Record<string, string>;
  /** Argo CD, which delivers the demo project's deployments. */
  argocd: { namespace: string; version: string };
  gitea: { url: string; username: string; password: string };
  /** The OCI registry's URL of the demo's chart repository (…/bitnamicharts). */
  charts: string;
  /** clamd's host:port, or undefined when clamd is not installed (scanning off). */
  clamd?: string;
  fleetCRDs: "upstream" | "stand-in";
  skupperCRDs: "upstream" | "stand-in";
  operatorMetrics: string;
  proxy: string;
  logDir: string;
}

export const statePath = (dir: string): string => join(dir, "state.json");
export const progressPath = (dir: string): string => join(dir, "progress.log");
export const supervisorLog = (dir: string): string => join(dir, "supervisor.log");

export function readState(dir: string): DemoState | undefined {
  const path = statePath(dir);
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as DemoState;
  } catch {
    return undefined;
  }
}

export function writeState(dir: string, state: DemoState): void {
  writeFileSync(statePath(dir), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/** Whether `pid` is a live demo supervisor (not a recycled pid of another program). */
export function supervisorAlive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("scripts/demo/fleet.ts");
  } catch {
    return false;
  }
}
