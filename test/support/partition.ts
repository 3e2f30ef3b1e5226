// A loopback TCP proxy that can cut a process off its API server the way a network
// partition does: `freeze()` turns every connection into a black hole (bytes either way
// are read and dropped, nothing answers, nothing is reset), also connections opened while
// frozen; `heal()` lets new connections through again and resets the ones that lived
// through the freeze — what was sent into the black hole is never delivered late.
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

interface Pair {
  client: Socket;
  upstream?: Socket;
  cut: boolean;
}

export class Partition {
  private readonly pairs = new Set<Pair>();
  private frozen = false;

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {}

  /** Listens on 127.0.0.1 and forwards to `target`. */
  static async start(target: { host: string; port: number }): Promise<Partition> {
    const server = createServer();
    const partition = new Partition(server, target);
    server.on("connection", (client) => {
      partition.accept(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return partition;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, cut: this.frozen };
    this.pairs.add(pair);
    const drop = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on("error", drop);
    client.on("close", drop);
    client.on("data", (chunk: Buffer) => {
      if (!pair.cut) pair.upstream?.write(chunk);
    });
    if (pair.cut) return;
    const upstream = connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    client.pause();
    upstream.on("connect", () => client.resume());
    upstream.on("error", drop);
    upstream.on("close", () => {
      if (!pair.cut) drop();
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!pair.cut) client.write(chunk);
    });
  }

  /** Every connection, open or new, becomes a black hole. */
  freeze(): void {
    this.frozen = true;
    for (const pair of this.pairs) pair.cut = true;
  }

  /** New connections pass again; the ones cut are reset. */
  heal(): void {
    this.frozen = false;
    for (const pair of [...this.pairs]) {
      if (!pair.cut) continue;
      this.pairs.delete(pair);
      pair.client.resetAndDestroy();
      pair.upstream?.destroy();
    }
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    await new Promise<void>((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
  }
}
