// Runs operator controllers in the test process: a Manager with quiet logs (LOG_LEVEL to
// see them), the controllers `register` adds, started; or outpost-operator as its own
// process, to kill.
import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { KubeConfig } from "@kubernetes/client-node";
import { Manager, type ManagerOptions } from "../../operators/runtime/manager.ts";
import { freePort } from "../controlplane/ports.ts";
import { eventually } from "./controlplane.ts";

const main = fileURLToPath(new URL("../../operators/main.ts", import.meta.url));

export async function startOperator(
  name: string,
  kubeConfig: KubeConfig,
  register: (manager: Manager) => void,
  options: Partial<ManagerOptions> = {},
): Promise<Manager> {
  const manager = new Manager({ name, kubeConfig, ...options });
  manager.logger.level = process.env.LOG_LEVEL ?? "silent";
  register(manager);
  await manager.start();
  return manager;
}

/** `outpost-operator` as its own process, for tests that kill it with SIGKILL. */
export class OperatorProcess {
  private child: ChildProcess | undefined;

  private constructor(
    private readonly args: string[],
    readonly port: number,
  ) {}

  static async create(
    kubeconfig: string,
    controllers: string,
    extraArgs: string[] = [],
  ): Promise<OperatorProcess> {
    const port = await freePort();
    return new OperatorProcess(
      [
        `--controllers=${controllers}`,
        `--kubeconfig=${kubeconfig}`,
        "--leader-elect=false",
        `--metrics-bind-address=127.0.0.1:${port}`,
        "--log-level=warn",
        ...extraArgs,
      ],
      port,
    );
  }

  start(): void {
    this.child = spawn(process.execPath, ["--import", "tsx", main, ...this.args], {
      stdio: ["ignore", "ignore", "inherit"],
    });
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child?.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  /**
   * Over and over while `going(kills so far)`: wait until it is ready, SIGKILL it a random
   * time in [minMs, maxMs) later and start it again at once. Resolves with the number of
   * kills. A slow machine gets fewer kills in a given time: make `going` ask for a number.
   */
  async killRepeatedly(going: (kills: number) => boolean, minMs: number, maxMs: number): Promise<number> {
    let kills = 0;
    while (going(kills)) {
      await eventually(
        "the operator ready",
        async () =>
          (await fetch(`http://127.0.0.1:${this.port}/readyz`).catch(() => undefined))?.ok ? true : undefined,
        60_000,
      );
      await sleep(minMs + Math.random() * (maxMs - minMs));
      await this.kill();
      kills++;
      this.start();
    }
    return kills;
  }
}
