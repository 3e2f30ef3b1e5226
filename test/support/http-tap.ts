// A plain-HTTP reverse proxy in front of a test service (Harbor, Gitea's API) that lets a
// test act at the exact moment a request has taken effect: `onceAfter(match, act)` runs
// `act` once the upstream has answered the first matching request, before the answer is
// passed on — and if `act` says so, the answer is never passed on (the connection is cut),
// as if the caller had died right after its write.
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Tapped {
  method: string;
  path: string;
  status: number;
}

interface Hook {
  match: (r: { method: string; path: string }) => boolean;
  act: (r: Tapped) => Promise<"drop" | "pass">;
  fired: (r: Tapped) => void;
}

export class HttpTap {
  private hooks: Hook[] = [];
  /** Every request answered upstream, in order. */
  readonly log: Tapped[] = [];

  private constructor(
    private readonly server: Server,
    private readonly upstream: URL,
  ) {}

  static async start(upstream: string): Promise<HttpTap> {
    const server = createServer();
    const tap = new HttpTap(server, new URL(upstream));
    server.on("request", (req, res) => {
      tap.forward(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return tap;
  }

  /** The tap's URL, with the upstream's path. */
  get url(): string {
    const port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${port}${this.upstream.pathname.replace(/\/$/, "")}`;
  }

  /**
   * Once the upstream answered the first request that `match`es, runs `act` before
   * passing the answer on (or dropping it). Resolves with that request.
   */
  onceAfter(
    match: (r: { method: string; path: string }) => boolean,
    act: (r: Tapped) => Promise<"drop" | "pass">,
  ): Promise<Tapped> {
    return new Promise((fired) => {
      this.hooks.push({ match, act, fired });
    });
  }

  private forward(req: IncomingMessage, res: import("node:http").ServerResponse): void {
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const up = request(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method,
        path: req.url,
        headers: { ...req.headers, host: this.upstream.host },
      },
      (answer) => {
        const tapped = { method, path, status: answer.statusCode ?? 0 };
        this.log.push(tapped);
        const i = this.hooks.findIndex((h) => h.match({ method, path }));
        const hook = i < 0 ? undefined : this.hooks.splice(i, 1)[0];
        const pass = (): void => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        };
        if (!hook) {
          pass();
          return;
        }
        void hook.act(tapped).then((what) => {
          hook.fired(tapped);
          if (what === "pass") {
            pass();
            return;
          }
          answer.resume();
          req.socket.destroy();
        });
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(up);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}
