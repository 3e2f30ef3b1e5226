// Test support: one control plane per test file, stopped after the file, with every
// process log printed when a test of the file failed.
import { readdirSync, readFileSync } from "node:fs";
import { after, afterEach, before } from "node:test";
import { startControlPlane, type ControlPlane, type StartOptions } from "../controlplane/index.ts";
import { ApiError } from "../../operators/runtime/client.ts";

export function useControlPlane(options: StartOptions = {}): () => ControlPlane {
  let cp: ControlPlane | undefined;
  let failed = false;
  before(async () => {
    cp = await startControlPlane(options);
  });
  afterEach((t) => {
    // TestContext.passed exists at run time (Node 22+) though @types/node lists it on suites only.
    if ((t as { passed?: boolean }).passed === false) failed = true;
  });
  after(async () => {
    if (!cp) return;
    if (failed) console.error(`control-plane logs (a test failed):\n${cp.logs(40)}`);
    await cp.stop();
  });
  return () => {
    if (!cp) throw new Error("the control plane is not started");
    return cp;
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs / 1000}s waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** PIDs of running processes whose command line mentions `text` (Linux /proc). */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const state = /^\S+ \(.*\) (\S)/.exec(readFileSync(`/proc/${entry}/stat`, "utf8"))?.[1];
      if (cmdline.includes(text) && state !== "Z") pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** The HTTP status of `work`, an API call: 200 when it succeeds (an RBAC probe). */
export async function statusOf(work: Promise<unknown>): Promise<number> {
  try {
    await work;
    return 200;
  } catch (err) {
    if (err instanceof ApiError) return err.code;
    throw err;
  }
}
