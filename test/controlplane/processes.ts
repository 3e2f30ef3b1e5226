// Supervises the control-plane processes: each runs in its own process group with its
// output in a log file, is stopped with SIGTERM then SIGKILL, and is registered with a
// guardian process that kills it if this program dies without cleaning up.
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const guardianPath = fileURLToPath(new URL("./guardian.js", import.meta.url));

export class ManagedProcess {
  readonly name: string;
  readonly logPath: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  running = true;

  constructor(name: string, logPath: string, child: ChildProcess) {
    this.name = name;
    this.logPath = logPath;
    this.child = child;
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (!this.running) return;
        this.running = false;
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      };
      child.once("exit", finish);
      // A spawn failure (ENOENT, EACCES) ends the process as an exit would.
      child.once("error", () => {
        finish(127, null);
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no pid`);
    return this.child.pid;
  }

  /** The last `lines` lines of the process log. */
  logTail(lines = 20): string {
    if (!existsSync(this.logPath)) return "";
    return readFileSync(this.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  }
}

export class ProcessGroup {
  readonly logDir: string;
  private readonly processes = new Set<ManagedProcess>();
  private guardian: ChildProcess | undefined;

  constructor(logDir: string) {
    this.logDir = logDir;
  }

  private tellGuardian(line: string): void {
    if (!this.guardian) {
      this.guardian = spawn(process.execPath, [guardianPath], {
        detached: true,
        stdio: ["pipe", "ignore", "ignore"],
      });
      this.guardian.unref();
      // The pipe must not keep this program alive: the guardian exists for when it ends.
      (this.guardian.stdin as unknown as { unref(): void }).unref();
    }
    this.guardian.stdin?.write(`${line}\n`);
  }

  /** Starts `command` in a new process group, output appended to `<logDir>/<name>.log`. */
  start(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): ManagedProcess {
    const logPath = join(this.logDir, `${name}.log`);
    const fd = openSync(logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        detached: true,
        stdio: ["ignore", fd, fd],
        env: env ?? process.env,
      });
    } finally {
      closeSync(fd);
    }
    const managed = new ManagedProcess(name, logPath, child);
    if (child.pid !== undefined) this.tellGuardian(`+${child.pid}`);
    // Tests and demos end by stopping the group; a forgotten stop must not hang the
    // program, and the guardian then cleans up.
    child.unref();
    this.processes.add(managed);
    void managed.exited.then(() => {
      if (child.pid !== undefined) this.tellGuardian(`-${child.pid}`);
    });
    return managed;
  }

  /** Stops one process: SIGTERM to its group, SIGKILL after `graceMs`. */
  async stop(p: ManagedProcess, graceMs = 5000): Promise<void> {
    this.processes.delete(p);
    if (!p.running) return;
    signalGroup(p.pid, "SIGTERM");
    const killed = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!killed) {
      signalGroup(p.pid, "SIGKILL");
      await p.exited;
    }
    // Children of the process (if any) share its group.
    signalGroup(p.pid, "SIGKILL");
  }

  /** Stops every process, in the reverse order of their start, tier by tier. */
  async stopAll(tiers?: ManagedProcess[][]): Promise<void> {
    const order = tiers ?? [[...this.processes].reverse()];
    for (const tier of order) await Promise.all(tier.map((p) => this.stop(p)));
    await Promise.all([...this.processes].map((p) => this.stop(p)));
    if (this.guardian) {
      this.guardian.stdin?.end();
      this.guardian = undefined;
    }
  }

  get all(): ManagedProcess[] {
    return [...this.processes];
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** True while any process of the group `pgid` is alive. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
