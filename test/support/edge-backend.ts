// A web application "running on an edge cluster" for service proxy tests: an HTTP and
// WebSocket server on this machine's non-loopback address (the API server's service
// proxy refuses loopback backends), published on the edge API server as a Service
// without selector, a Pod with that address, and its Endpoints and EndpointSlice — so
// requests really go through the edge API server's service proxy, and all traffic stays
// on this machine.
//
// Routes: /echo (method, path, headers and body back as JSON), /stream (two chunks 600 ms
// apart), /redirect?to=… (302 there), /set-cookie?c=…&c=… (each `c` sent as a Set-Cookie
// header, as a hostile application would), /ws (WebSocket echo), anything else 200 "hello".
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import type { KubeClient, KubeObject, ResourceType } from "../../operators/runtime/client.ts";
import { hostAddress } from "./host-address.ts";

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
}

export interface EdgeBackend {
  address: string;
  port: number;
  /** Every request that reached the backend. */
  seen: Seen[];
  /** Publishes it on an edge as Service `name` (port `servicePort`) in `namespace`. */
  publish(edge: KubeClient, namespace: string, name: string, servicePort: number): Promise<void>;
  stop(): Promise<void>;
}

const r = (group: string, version: string, kind: string, plural: string): ResourceType => ({
  group,
  version,
  kind,
  plural,
  namespaced: true,
});

export async function startEdgeBackend(): Promise<EdgeBackend> {
  const address = hostAddress();
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const url = new URL(req.url ?? "/", "http://backend");
    if (url.pathname.endsWith("/echo")) {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json", "set-cookie": "app=1; Path=/" });
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
      });
      return;
    }
    if (url.pathname.endsWith("/stream")) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first\n");
      setTimeout(() => res.end("second\n"), 600);
      return;
    }
    if (url.pathname.endsWith("/set-cookie")) {
      res.writeHead(200, { "content-type": "text/plain", "set-cookie": url.searchParams.getAll("c") });
      res.end("cookies");
      return;
    }
    if (url.pathname.endsWith("/redirect")) {
      res.writeHead(302, { location: url.searchParams.get("to") ?? "/" });
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("hello");
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    seen.push({ method: "UPGRADE", url: req.url ?? "", headers: req.headers });
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("message", (data: Buffer, isBinary) => {
        ws.send(isBinary ? data : `echo: ${data.toString()}`);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    address,
    port,
    seen,
    async publish(edge, namespace, name, servicePort) {
      const apply = (res: ResourceType, obj: object): Promise<KubeObject> =>
        edge.apply(res, obj as KubeObject, { fieldManager: "test" });
      await apply(r("", "v1", "Service", "services"), {
        metadata: { name, namespace },
        spec: { ports: [{ name: "http", port: servicePort, targetPort: port }] },
      });
      // The API server proxies only to endpoint addresses that are pods with that IP (as
      // the kubelet and the endpoints controller would have made them).
      const pod = `${name}-0`;
      await apply(r("", "v1", "Pod", "pods"), {
        metadata: { name: pod, namespace, labels: { app: name } },
        spec: { containers: [{ name: "app", image: "outpost.test/edge-backend" }] },
      });
      await edge.mergePatch(
        r("", "v1", "Pod", "pods"),
        pod,
        namespace,
        {
          status: {
            phase: "Running",
            podIP: address,
            podIPs: [{ ip: address }],
            conditions: [{ type: "Ready", status: "True" }],
          },
        },
        { subresource: "status" },
      );
      await apply(r("", "v1", "Endpoints", "endpoints"), {
        metadata: { name, namespace },
        subsets: [
          {
            addresses: [{ ip: address, targetRef: { kind: "Pod", namespace, name: pod } }],
            ports: [{ name: "http", port }],
          },
        ],
      });
      await apply(r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"), {
        metadata: { name: `${name}-1`, namespace, labels: { "kubernetes.io/service-name": name } },
        addressType: "IPv4",
        endpoints: [
          {
            addresses: [address],
            conditions: { ready: true },
            targetRef: { kind: "Pod", namespace, name: pod },
          },
        ],
        ports: [{ name: "http", port, protocol: "TCP" }],
      });
    },
    async stop() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => {
        wss.close(() => {
          resolve();
        });
      });
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}
