// A contract fake of Harbor's API v2.0 (Harbor itself cannot run here; the kind end-to-end
// tests use a real Harbor). It implements the calls project provisioning makes, with
// Harbor's documented behaviour (goharbor/harbor src/server/v2.0/handler/{project,robot,
// repository}.go, src/server/middleware/{csrf,requestid}, src/lib/http/error.go):
// basic auth (a bad password runs as anonymous and gets 401), `X-Request-Id` echoed,
// `Set-Cookie: sid` on every API answer and 403 "CSRF token invalid" when a client
// replays it on a write, name rules, 201 + Location, 409 on an existing name, 412 on
// deleting a project that holds repositories, robots named robot$<project>+<name> whose
// secret is returned only on creation, `{"errors":[{code,message}]}` bodies, 5xx messages
// replaced by "internal server error". Faults can be injected.
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { freePort } from "../controlplane/ports.ts";

const namePattern = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

interface FakeProject {
  id: number;
  name: string;
  repositories: Set<string>;
}

interface FakeRobot {
  id: number;
  name: string;
  projectId: number;
  secret: string;
  actions: string[];
}

export interface HarborFake {
  url: string;
  username: string;
  password: string;
  projects(): { name: string; repositories: string[] }[];
  robots(): { name: string; secret: string; actions: string[] }[];
  /** Adds a repository (as a push would). */
  addRepository(project: string, repository: string): void;
  /** The next `count` API requests answer `status` (default 500). */
  fail(count: number, status?: number): void;
  /** Every API request answers 503 until `up()`. */
  down(): void;
  up(): void;
  /** Every API request takes this long before it is answered. */
  slow(ms: number): void;
  /** Requests seen: method, path, status, whether a cookie came with it. */
  log: { method: string; path: string; status: number; cookie: boolean; requestId: string }[];
  stop(): Promise<void>;
}

/** The tenancy operator's settings for `harbor`, reached at `url` (default: its own). */
export function harborSettings(harbor: HarborFake, url = harbor.url): Record<string, string> {
  return {
    "harbor.url": url,
    "harbor.username": harbor.username,
    "harbor.password": harbor.password,
    "harbor.registry": "harbor.example.com",
  };
}

export async function startHarborFake(): Promise<HarborFake> {
  const username = "admin";
  const password = `Harbor${randomBytes(6).toString("hex")}`;
  const projects = new Map<string, FakeProject>();
  const robots = new Map<number, FakeRobot>();
  let nextId = 1;
  let failures: { count: number; status: number } = { count: 0, status: 500 };
  let isDown = false;
  let delayMs = 0;
  const log: HarborFake["log"] = [];

  const send = (
    res: ServerResponse,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ): true => {
    res.writeHead(status, {
      ...(body !== undefined ? { "content-type": "application/json; charset=utf-8" } : {}),
      ...headers,
    });
    res.end(body === undefined ? undefined : JSON.stringify(body));
    return true;
  };
  const error = (res: ServerResponse, status: number, code: string, message: string): true =>
    // src/lib/http/error.go: the message of any 5xx is hidden.
    send(res, status, { errors: [{ code, message: status >= 500 ? "internal server error" : message }] });
  const readBody = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    return text ? (JSON.parse(text) as unknown) : undefined;
  };
  const projectByNameOrId = (req: IncomingMessage, key: string): FakeProject | undefined => {
    // A numeric key is an ID unless X-Is-Resource-Name: true.
    const byName = req.headers["x-is-resource-name"] === "true" || !/^\d+$/.test(key);
    return byName ? projects.get(key) : [...projects.values()].find((p) => p.id === Number(key));
  };

  /** Answers the request; resolves to true once answered. */
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<true> => {
    const url = new URL(req.url ?? "/", "http://harbor");
    const method = req.method ?? "GET";
    const requestId = (req.headers["x-request-id"] as string | undefined) ?? randomUUID();
    res.setHeader("x-request-id", requestId);
    const cookie = (req.headers.cookie ?? "").includes("sid=");
    res.on("finish", () => {
      log.push({ method, path: url.pathname, status: res.statusCode, cookie, requestId });
    });
    if (!url.pathname.startsWith("/api/v2.0/")) return error(res, 404, "NOT_FOUND", "not found");
    const path = url.pathname.slice("/api/v2.0".length);
    if (path === "/ping") {
      res.writeHead(200, { "content-type": "text/plain" }).end("Pong");
      return true;
    }
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    if (isDown) return error(res, 503, "UNKNOWN", "unavailable");
    if (failures.count > 0) {
      failures.count--;
      return error(res, failures.status, "UNKNOWN", "injected");
    }
    // Harbor sets a session cookie on basic-auth API answers; a client must not replay it.
    res.setHeader("set-cookie", `sid=${randomBytes(8).toString("hex")}; Path=/; HttpOnly`);
    if (cookie && method !== "GET" && method !== "HEAD")
      return error(res, 403, "FORBIDDEN", "CSRF token invalid");
    const auth = req.headers.authorization ?? "";
    const authenticated = auth === `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    if (!authenticated) return error(res, 401, "UNAUTHORIZED", "unauthorized");

    let m: RegExpExecArray | null;
    if (path === "/projects" && method === "HEAD") {
      return send(res, projects.has(url.searchParams.get("project_name") ?? "") ? 200 : 404);
    }
    if (path === "/projects" && method === "POST") {
      const body = (await readBody(req)) as { project_name?: string } | undefined;
      const name = body?.project_name ?? "";
      if (!namePattern.test(name) || name.length > 255) {
        return error(
          res,
          400,
          "BAD_REQUEST",
          "project name is not in lower case or contains illegal characters",
        );
      }
      if (projects.has(name)) return error(res, 409, "CONFLICT", `The project named ${name} already exists`);
      const p = { id: nextId++, name, repositories: new Set<string>() };
      projects.set(name, p);
      return send(res, 201, undefined, { location: `/api/v2.0/projects/${p.id}` });
    }
    if ((m = /^\/projects\/([^/]+)\/repositories$/.exec(path)) && method === "GET") {
      const p = projects.get(decodeURIComponent(m[1] ?? ""));
      if (!p) return error(res, 404, "NOT_FOUND", "project not found");
      const page = Number(url.searchParams.get("page") ?? "1");
      const size = Math.min(100, Number(url.searchParams.get("page_size") ?? "10"));
      const all = [...p.repositories].sort().map((r) => ({ name: `${p.name}/${r}`, project_id: p.id }));
      return send(res, 200, all.slice((page - 1) * size, page * size), {
        "x-total-count": String(all.length),
      });
    }
    if ((m = /^\/projects\/([^/]+)\/repositories\/([^/]+)$/.exec(path)) && method === "DELETE") {
      const p = projects.get(decodeURIComponent(m[1] ?? ""));
      // The repository name arrives encoded twice; the router decoded it once.
      const repo = decodeURIComponent(decodeURIComponent(m[2] ?? ""));
      if (!p?.repositories.has(repo)) return error(res, 404, "NOT_FOUND", "repository not found");
      p.repositories.delete(repo);
      return send(res, 200);
    }
    if ((m = /^\/projects\/([^/]+)$/.exec(path))) {
      const p = projectByNameOrId(req, decodeURIComponent(m[1] ?? ""));
      if (!p) return error(res, 404, "NOT_FOUND", "project not found");
      if (method === "GET")
        return send(res, 200, { project_id: p.id, name: p.name, repo_count: p.repositories.size });
      if (method === "DELETE") {
        if (p.repositories.size > 0) {
          return error(res, 412, "PRECONDITION", "the project contains repositories, can not be deleted");
        }
        projects.delete(p.name);
        for (const [id, r] of robots) if (r.projectId === p.id) robots.delete(id);
        return send(res, 200);
      }
    }
    if (path === "/robots" && method === "POST") {
      const body = (await readBody(req)) as
        | {
            name?: string;
            level?: string;
            permissions?: {
              kind?: string;
              namespace?: string;
              access?: { resource?: string; action?: string }[];
            }[];
          }
        | undefined;
      const name = body?.name ?? "";
      if (!namePattern.test(name))
        return error(
          res,
          400,
          "BAD_REQUEST",
          `robot name is not in lower case or contains illegal characters`,
        );
      if (body?.level !== "project" || body.permissions?.length !== 1) {
        return error(res, 400, "BAD_REQUEST", "a project level robot needs exactly one project permission");
      }
      const perm = body.permissions[0];
      const p = projects.get(perm?.namespace ?? "");
      if (!p) return error(res, 404, "NOT_FOUND", `project ${perm?.namespace ?? ""} not found`);
      const actions = (perm?.access ?? []).map((a) => a.action ?? "");
      if (
        actions.length === 0 ||
        (perm?.access ?? []).some(
          (a) => a.resource !== "repository" || !["pull", "push"].includes(a.action ?? ""),
        )
      ) {
        return error(res, 400, "BAD_REQUEST", "invalid permission");
      }
      const full = `robot$${p.name}+${name}`;
      if ([...robots.values()].some((r) => r.name === full))
        return error(res, 409, "CONFLICT", `robot ${full} already exists`);
      const robot = {
        id: nextId++,
        name: full,
        projectId: p.id,
        secret: randomBytes(16).toString("hex"),
        actions,
      };
      robots.set(robot.id, robot);
      return send(
        res,
        201,
        {
          id: robot.id,
          name: robot.name,
          secret: robot.secret,
          creation_time: new Date().toISOString(),
          expires_at: -1,
        },
        { location: `/api/v2.0/robots/${robot.id}` },
      );
    }
    if (path === "/robots" && method === "GET") {
      const q = url.searchParams.get("q") ?? "";
      const wanted = /^name=(.+)$/.exec(q)?.[1];
      const list = [...robots.values()].filter((r) => wanted === undefined || r.name === wanted);
      return send(
        res,
        200,
        list.map((r) => ({ id: r.id, name: r.name, level: "project" })),
      );
    }
    if ((m = /^\/robots\/(\d+)$/.exec(path))) {
      const robot = robots.get(Number(m[1]));
      if (!robot) return error(res, 404, "NOT_FOUND", "robot not found");
      if (method === "DELETE") {
        robots.delete(robot.id);
        return send(res, 200);
      }
      if (method === "PATCH") {
        robot.secret = randomBytes(16).toString("hex");
        return send(res, 200, { secret: robot.secret });
      }
    }
    return error(res, 405, "METHOD_NOT_ALLOWED", `${method} ${path}`);
  };

  const port = await freePort();
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      error(res, 500, "UNKNOWN", String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    username,
    password,
    projects: () =>
      [...projects.values()].map((p) => ({ name: p.name, repositories: [...p.repositories].sort() })),
    robots: () => [...robots.values()].map((r) => ({ name: r.name, secret: r.secret, actions: r.actions })),
    addRepository(project, repository) {
      projects.get(project)?.repositories.add(repository);
    },
    fail(count, status = 500) {
      failures = { count, status };
    },
    down() {
      isDown = true;
    },
    up() {
      isDown = false;
    },
    slow(ms) {
      delayMs = ms;
    },
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
