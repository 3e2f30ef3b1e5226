// A real Gitea for tests: built once from its Go module (test/gitea/build.sh, cached),
// run on a loopback port with SQLite in a temp folder, an admin user and an API token.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../controlplane/ports.ts";

export interface Gitea {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The REST API root (…/api/v1). */
  api: string;
  username: string;
  password: string;
  token: string;
  stop(): Promise<void>;
}

const buildScript = fileURLToPath(new URL("../gitea/build.sh", import.meta.url));

/** The gitea binary, built once (a no-op when the cache is warm). */
export function giteaBinary(): string {
  const res = spawnSync("bash", [buildScript], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (res.status !== 0) {
    throw new Error(
      `building Gitea failed (${buildScript} exited ${res.status ?? res.signal}):\n${res.stderr.trim()}`,
    );
  }
  return res.stdout.trim().split("\n").pop() ?? "";
}

/** Gitea in `dir` (created; a new temp folder by default), removed on stop. */
export async function startGitea(options: { dir?: string } = {}): Promise<Gitea> {
  const binary = giteaBinary();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "outpost-gitea-"));
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = join(dir, "app.ini");
  mkdirSync(join(dir, "repos"));
  const user = userInfo().username;
  writeFileSync(
    config,
    [
      "APP_NAME = outpost-test",
      "RUN_MODE = prod",
      `RUN_USER = ${user}`,
      `WORK_PATH = ${dir}`,
      // The tests may run as root (CI containers); Gitea refuses that unless told.
      ...(user === "root" ? ["I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true"] : []),
      "[server]",
      "PROTOCOL = http",
      "HTTP_ADDR = 127.0.0.1",
      `HTTP_PORT = ${port}`,
      `ROOT_URL = ${url}/`,
      // Locales and templates sit next to the binary (test/gitea/build.sh).
      `STATIC_ROOT_PATH = ${dirname(binary)}`,
      "DISABLE_SSH = true",
      "OFFLINE_MODE = true",
      "LFS_START_SERVER = false",
      "[database]",
      "DB_TYPE = sqlite3",
      `PATH = ${join(dir, "gitea.db")}`,
      "[repository]",
      `ROOT = ${join(dir, "repos")}`,
      "DEFAULT_BRANCH = main",
      "[security]",
      "INSTALL_LOCK = true",
      `SECRET_KEY = ${randomBytes(24).toString("hex")}`,
      `INTERNAL_TOKEN = ${randomBytes(48).toString("base64url")}`,
      "[service]",
      "DISABLE_REGISTRATION = true",
      "[oauth2]",
      "ENABLED = false",
      "[actions]",
      "ENABLED = false",
      "[cron]",
      "ENABLED = false",
      "[mailer]",
      "ENABLED = false",
      "[log]",
      "MODE = console",
      "LEVEL = Warn",
      "",
    ].join("\n"),
  );
  const run = (...args: string[]): string => {
    const res = spawnSync(binary, [...args, "--config", config], {
      encoding: "utf8",
      cwd: dir,
      env: { ...process.env, GITEA_WORK_DIR: dir, GITEA_CUSTOM: join(dir, "custom") },
    });
    if (res.status !== 0) throw new Error(`gitea ${args.join(" ")} failed: ${res.stderr || res.stdout}`);
    return res.stdout.trim();
  };
  run("migrate");
  const username = "outpost";
  const password = `P${randomBytes(12).toString("hex")}`;
  run(
    "admin",
    "user",
    "create",
    "--admin",
    "--username",
    username,
    "--password",
    password,
    "--email",
    "outpost@example.com",
    "--must-change-password=false",
  );
  const token =
    run("admin", "user", "generate-access-token", "--username", username, "--scopes", "all", "--raw")
      .split("\n")
      .pop()
      ?.trim() ?? "";

  const child: ChildProcess = spawn(binary, ["web", "--config", config], {
    cwd: dir,
    env: { ...process.env, GITEA_WORK_DIR: dir, GITEA_CUSTOM: join(dir, "custom") },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await fetch(`${url}/api/v1/version`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`Gitea did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    api: `${url}/api/v1`,
    username,
    password,
    token,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The tenancy operator's Git settings (Secret outpost-tenancy) for repositories in `organization`. */
export function giteaSettings(gitea: Gitea, organization: string): Record<string, string> {
  return {
    "git.provider": "gitea",
    "git.apiUrl": gitea.api,
    "git.organization": organization,
    "git.username": gitea.username,
    "git.token": gitea.token,
  };
}
