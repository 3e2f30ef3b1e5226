// A small Harbor (API v2.0) client on undici, for the calls project provisioning needs:
// projects, their repositories and project-level robot accounts. It follows Harbor's
// behaviour: 201 + Location on create, 409 when a name exists, 412 when a project still
// holds repositories, `{"errors":[{code,message}]}` bodies. It never stores or replays
// cookies (a replayed `sid` makes Harbor demand a CSRF token), addresses projects by name
// with `X-Is-Resource-Name: true`, and sends an `X-Request-Id` that it puts in every error.
import { STATUS_CODES } from "node:http";
import { randomUUID } from "node:crypto";
import { Agent, request, type Dispatcher } from "undici";

export interface HarborOptions {
  /** https://harbor.example.com (the API is under /api/v2.0). */
  url: string;
  username: string;
  password: string;
  /** Per request. Default 30 s. */
  timeoutMs?: number;
  /** Told about each request (method, path, status, request id). */
  onRequest?: (entry: { method: string; path: string; status: number; requestId: string }) => void;
}

export class HarborError extends Error {
  override name = "HarborError";
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly requestId: string,
  ) {
    super(message);
  }
  static is(err: unknown, status: number): boolean {
    return err instanceof HarborError && err.status === status;
  }
}

/** Harbor's rule for project and robot names. */
export const harborNamePattern = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

export interface Robot {
  id: number;
  /** The login name: robot$<project>+<name>. */
  name: string;
}

type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export class HarborClient {
  private readonly base: URL;
  private readonly dispatcher: Dispatcher;
  private readonly auth: string;

  constructor(private readonly options: HarborOptions) {
    this.base = new URL(options.url.replace(/\/+$/, "") + "/api/v2.0/");
    this.dispatcher = new Agent({ connections: 8, keepAliveTimeout: 10_000 });
    this.auth = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString("base64")}`;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private async call(
    method: Method,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; data: unknown; location?: string }> {
    const requestId = randomUUID();
    const url = new URL(path, this.base);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method,
        dispatcher: this.dispatcher,
        headers: {
          authorization: this.auth,
          accept: "application/json",
          "x-request-id": requestId,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: this.options.timeoutMs ?? 30_000,
        bodyTimeout: this.options.timeoutMs ?? 30_000,
      });
    } catch (err) {
      const timedOut = err instanceof Error && /timeout/i.test(`${err.name} ${err.message}`);
      throw new HarborError(
        `Harbor ${this.options.url} ${timedOut ? `did not answer within ${(this.options.timeoutMs ?? 30_000) / 1000}s` : "is unreachable"} (${method} ${url.pathname}): ${err instanceof Error ? err.message : String(err)}`,
        0,
        "UNREACHABLE",
        requestId,
      );
    }
    const echoed = res.headers["x-request-id"];
    const id = typeof echoed === "string" ? echoed : requestId;
    const text = await res.body.text();
    this.options.onRequest?.({ method, path: url.pathname, status: res.statusCode, requestId: id });
    if (res.statusCode >= 400) {
      let code = "UNKNOWN";
      let message = text.slice(0, 300);
      try {
        const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
        code = parsed.errors?.[0]?.code ?? code;
        message = parsed.errors?.[0]?.message ?? message;
      } catch {
        // not JSON: keep the text
      }
      // A HEAD (or a bare error page) has no body: say what the status means.
      if (!message.trim()) message = (STATUS_CODES[res.statusCode] ?? "").toLowerCase();
      throw new HarborError(
        `Harbor ${method} ${url.pathname}: ${res.statusCode} ${code}: ${message} (request ${id})`,
        res.statusCode,
        code,
        id,
      );
    }
    const location = res.headers.location;
    return {
      status: res.statusCode,
      data: text ? (JSON.parse(text) as unknown) : undefined,
      ...(typeof location === "string" ? { location } : {}),
    };
  }

  private static project(name: string): string {
    return `projects/${encodeURIComponent(name)}`;
  }

  async projectExists(name: string): Promise<boolean> {
    try {
      await this.call("HEAD", `projects?project_name=${encodeURIComponent(name)}`);
      return true;
    } catch (err) {
      if (HarborError.is(err, 404)) return false;
      throw err;
    }
  }

  /** Creates the project (private); false when it existed already. */
  async createProject(name: string): Promise<boolean> {
    try {
      await this.call("POST", "projects", { project_name: name, metadata: { public: "false" } });
      return true;
    } catch (err) {
      if (HarborError.is(err, 409)) return false;
      throw err;
    }
  }

  /** Repository names of the project (without the project prefix). */
  async repositories(project: string): Promise<string[]> {
    const names: string[] = [];
    for (let page = 1; ; page++) {
      const { data } = await this.call(
        "GET",
        `${HarborClient.project(project)}/repositories?page=${page}&page_size=100`,
      );
      const batch = (data ?? []) as { name: string }[];
      names.push(...batch.map((r) => r.name.slice(project.length + 1)));
      if (batch.length < 100) return names;
    }
  }

  async deleteRepository(project: string, repository: string): Promise<void> {
    // A repository name with "/" is encoded twice (Harbor decodes it once more).
    const encoded = encodeURIComponent(encodeURIComponent(repository));
    try {
      await this.call("DELETE", `${HarborClient.project(project)}/repositories/${encoded}`);
    } catch (err) {
      if (!HarborError.is(err, 404)) throw err;
    }
  }

  /** Deletes the project; false when it was not there. 412 (HarborError) while it holds repositories. */
  async deleteProject(name: string): Promise<boolean> {
    try {
      await this.call("DELETE", HarborClient.project(name), undefined, { "x-is-resource-name": "true" });
      return true;
    } catch (err) {
      if (HarborError.is(err, 404)) return false;
      throw err;
    }
  }

  /** The project-level robot robot$<project>+<name>, if it exists. */
  async findRobot(project: string, name: string): Promise<Robot | undefined> {
    const full = `robot$${project}+${name}`;
    const { data } = await this.call("GET", `robots?q=${encodeURIComponent(`name=${full}`)}`);
    return ((data ?? []) as Robot[]).find((r) => r.name === full);
  }

  /** Creates a project-level robot; its secret is returned only here. 409 when it exists. */
  async createRobot(
    project: string,
    name: string,
    actions: ("pull" | "push")[],
  ): Promise<Robot & { secret: string }> {
    const res = await this.call("POST", "robots", {
      name,
      description: "Outpost: pulls charts and images of this project",
      level: "project",
      duration: -1,
      disable: false,
      permissions: [
        {
          kind: "project",
          namespace: project,
          access: actions.map((action) => ({ resource: "repository", action })),
        },
      ],
    });
    const data = res.data as (Robot & { secret?: string }) | undefined;
    if (!data?.secret)
      throw new HarborError("Harbor created a robot but returned no secret", 500, "UNKNOWN", "");
    return { id: data.id, name: data.name, secret: data.secret };
  }

  /** A new secret for an existing robot (the old one stops working). */
  async regenerateRobotSecret(id: number): Promise<string> {
    const data = (await this.call("PATCH", `robots/${id}`, { secret: "" })).data as
      { secret?: string } | undefined;
    if (!data?.secret) throw new HarborError("Harbor returned no secret", 500, "UNKNOWN", "");
    return data.secret;
  }

  async deleteRobot(id: number): Promise<void> {
    try {
      await this.call("DELETE", `robots/${id}`);
    } catch (err) {
      if (!HarborError.is(err, 404)) throw err;
    }
  }
}
