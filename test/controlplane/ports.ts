// Loopback ports for the control plane.
import { createServer } from "node:net";

/** A port that was free on 127.0.0.1 a moment ago (callers retry if they lose a race). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => {
      resolve(false);
    });
    server.listen(port, "127.0.0.1", () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

/** Fails with a message naming each occupied port and what needed it. */
export async function assertPortsFree(ports: number[], purpose: (port: number) => string): Promise<void> {
  const busy: number[] = [];
  for (const port of ports) if (!(await portFree(port))) busy.push(port);
  if (busy.length > 0) {
    const list = busy.map((p) => `127.0.0.1:${p} (for ${purpose(p)})`).join(", ");
    throw new Error(
      `port${busy.length > 1 ? "s" : ""} already in use: ${list}. ` +
        "Stop what listens there (ss -ltnp shows it) or choose another base port.",
    );
  }
}
