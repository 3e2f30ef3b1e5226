// A real Git smart-HTTP server for tests: Git's own `git http-backend` (CGI) behind a
// small Node HTTP server, with bare repositories in a temp folder and optional basic auth.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort } from "../controlplane/ports.ts";

export interface GitServer {
  /** http://127.0.0.1:<port> */
  url: string;
  root: string;
  /** Creates a bare repository `<name>.git` whose default branch is `branch`; returns its URL. */
  createRepo(name: string, branch?: string): string;
  /** Commit SHAs of `branch`, newest first. */
  log(name: string, branch?: string): string[];
  /** A file's content at the head of `branch`, or undefined. */
  show(name: string, path: string, branch?: string): string | undefined;
  /** Paths at the head of `branch`. */
  files(name: string, branch?: string): string[];
  /** Commits `content` at `path` on `branch` directly in the repository (another writer). */
  commit(name: string, path: string, content: string, branch?: string): string;
  /** Calls `hook` with each request's method and URL before serving it (undefined: none). */
  onRequest(hook: ((method: string, url: string) => void) | undefined): void;
  /** Refuse every request (Git server down) until `up()`. */
  down(): void;
  up(): void;
  stop(): Promise<void>;
}

function git(args: string[], cwd?: string): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export async function startGitServer(options: { basicAuth?: string } = {}): Promise<GitServer> {
  const root = mkdtempSync(join(tmpdir(), "outpost-git-"));
  const port = await freePort();
  let refusing = false;
  let requestHook: ((method: string, url: string) => void) | undefined;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (refusing) {
      res.writeHead(503).end("down for the test");
      return;
    }
    requestHook?.(req.method ?? "GET", req.url ?? "/");
    const user = options.basicAuth ? Buffer.from(options.basicAuth).toString("base64") : undefined;
    if (user && req.headers.authorization !== `Basic ${user}`) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="git"' }).end();
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const cgi = spawn("git", ["http-backend"], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.replace(/^\?/, ""),
        REQUEST_METHOD: req.method ?? "GET",
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        REMOTE_USER: options.basicAuth?.split(":")[0] ?? "test",
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split("\r\n")) {
        const i = line.indexOf(":");
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === "status") status = Number(value.split(" ")[0]);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    cgi.on("close", () => res.end());
  };
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${port}`;
  const repoDir = (name: string): string => join(root, `${name}.git`);
  return {
    url,
    root,
    createRepo(name, branch = "main") {
      git(["init", "--quiet", "--bare", `--initial-branch=${branch}`, repoDir(name)]);
      git(["config", "http.receivepack", "true"], repoDir(name));
      return `${url}/${name}.git`;
    },
    log(name, branch = "main") {
      try {
        return git(["log", "--format=%H", branch], repoDir(name)).trim().split("\n").filter(Boolean);
      } catch {
        return [];
      }
    },
    show(name, path, branch = "main") {
      try {
        return git(["show", `${branch}:${path}`], repoDir(name));
      } catch {
        return undefined;
      }
    },
    files(name, branch = "main") {
      try {
        return git(["ls-tree", "-r", "--name-only", branch], repoDir(name))
          .trim()
          .split("\n")
          .filter(Boolean);
      } catch {
        return [];
      }
    },
    commit(name, path, content, branch = "main") {
      const work = mkdtempSync(join(tmpdir(), "outpost-git-work-"));
      try {
        git(["clone", "--quiet", repoDir(name), work]);
        git(["checkout", "--quiet", "-B", branch], work);
        mkdirSync(dirname(join(work, path)), { recursive: true });
        writeFileSync(join(work, path), content);
        git(["add", path], work);
        git(
          [
            "-c",
            "user.name=other",
            "-c",
            "user.email=other@test",
            "commit",
            "--quiet",
            "-m",
            `other writer: ${path}`,
          ],
          work,
        );
        git(["push", "--quiet", "origin", `HEAD:${branch}`], work);
        return git(["rev-parse", "HEAD"], work).trim();
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
    onRequest: (hook) => (requestHook = hook),
    down: () => (refusing = true),
    up: () => (refusing = false),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(root, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
