// Real services for tests, started on loopback: clamd with a test signature database
// that detects the EICAR test string, an OCI registry (distribution, Debian's
// docker-registry), and a static Helm chart repository; plus Helm chart archives.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createHash } from "node:crypto";
import * as tar from "tar";
import { stringify } from "yaml";
import { ProcessGroup, type ManagedProcess } from "../controlplane/processes.ts";
import { freePort } from "../controlplane/ports.ts";

/** The EICAR anti-virus test string, built at run time: no infected sample is committed. */
export function eicar(): Buffer {
  return Buffer.from(
    ["X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!", "$H+H*"].join(""),
    "latin1",
  );
}

/** `dir`, created, or a new temp folder named `prefix…`. */
function made(dir: string | undefined, prefix: string): string {
  if (!dir) return mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface Service {
  host: string;
  port: number;
  stop(): Promise<void>;
  logs(): string;
}

async function waitFor(
  p: ManagedProcess,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!p.running) throw new Error(`${what} exited during start:\n${p.logTail(20)}`);
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what} was not ready after ${timeoutMs / 1000}s:\n${p.logTail(20)}`);
}

function clamdPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => socket.end("zPING\0"));
    let answer = "";
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    socket.on("close", () => {
      resolve(answer.startsWith("PONG"));
    });
    socket.on("error", () => {
      resolve(false);
    });
  });
}

/** clamd with one body signature, Outpost.Test.EICAR, that finds EICAR anywhere in a stream. */
export async function startClamd(options: { dir?: string } = {}): Promise<Service> {
  const dir = made(options.dir, "outpost-clamd-");
  mkdirSync(join(dir, "db"));
  writeFileSync(join(dir, "db", "outpost-test.ndb"), `Outpost.Test.EICAR:0:*:${eicar().toString("hex")}\n`);
  const port = await freePort();
  writeFileSync(
    join(dir, "clamd.conf"),
    [
      `DatabaseDirectory ${join(dir, "db")}`,
      `TCPSocket ${port}`,
      "TCPAddr 127.0.0.1",
      "Foreground yes",
      `PidFile ${join(dir, "clamd.pid")}`,
      "StreamMaxLength 25M",
      "",
    ].join("\n"),
  );
  const group = new ProcessGroup(dir);
  const clamd = group.start("clamd", existsSync("/usr/sbin/clamd") ? "/usr/sbin/clamd" : "clamd", [
    "-c",
    join(dir, "clamd.conf"),
  ]);
  try {
    await waitFor(clamd, "clamd", () => clamdPing(port));
  } catch (err) {
    await group.stopAll();
    throw err;
  }
  return {
    host: "127.0.0.1",
    port,
    logs: () => clamd.logTail(40),
    async stop() {
      await group.stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface OciRegistry extends Service {
  /** http://127.0.0.1:<port> */
  url: string;
}

/** An OCI registry (CNCF distribution) on loopback, storing in a temp folder. */
export async function startOciRegistry(
  options: { htpasswd?: string; dir?: string } = {},
): Promise<OciRegistry> {
  const dir = made(options.dir, "outpost-registry-");
  const port = await freePort();
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: "warn", accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(dir, "data") }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}` },
  };
  if (options.htpasswd) {
    writeFileSync(join(dir, "htpasswd"), options.htpasswd);
    config.auth = { htpasswd: { realm: "outpost-test", path: join(dir, "htpasswd") } };
  }
  writeFileSync(join(dir, "config.yml"), stringify(config));
  const group = new ProcessGroup(dir);
  const registry = group.start("registry", "docker-registry", ["serve", join(dir, "config.yml")]);
  try {
    await waitFor(registry, "docker-registry", async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      return res.status === 200 || res.status === 401;
    });
  } catch (err) {
    await group.stopAll();
    throw err;
  }
  return {
    host: "127.0.0.1",
    port,
    url: `http://127.0.0.1:${port}`,
    logs: () => registry.logTail(40),
    async stop() {
      await group.stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Chart {
  name: string;
  version: string;
  archive: Buffer;
  digest: string;
}

/** The chart folder `<parent>/<name>` as a chart archive (.tgz), as `helm package` lays it out. */
export async function packChart(parent: string, name: string, version: string): Promise<Chart> {
  const chunks: Buffer[] = [];
  const stream = tar.c({ gzip: true, cwd: parent, portable: true }, [name]);
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  const archive = Buffer.concat(chunks);
  return { name, version, archive, digest: `sha256:${createHash("sha256").update(archive).digest("hex")}` };
}

/** A Helm chart archive (.tgz) with Chart.yaml, values.yaml, templates and extra files. */
export async function makeChart(options: {
  name: string;
  version: string;
  values?: Record<string, unknown>;
  files?: Record<string, string | Buffer>;
}): Promise<Chart> {
  const dir = mkdtempSync(join(tmpdir(), "outpost-chart-"));
  try {
    const root = join(dir, options.name);
    mkdirSync(join(root, "templates"), { recursive: true });
    writeFileSync(
      join(root, "Chart.yaml"),
      stringify({
        apiVersion: "v2",
        name: options.name,
        version: options.version,
        appVersion: options.version,
      }),
    );
    writeFileSync(join(root, "values.yaml"), stringify(options.values ?? { replicaCount: 1 }));
    writeFileSync(
      join(root, "templates", "configmap.yaml"),
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  replicas: {{ .Values.replicaCount | quote }}\n",
    );
    for (const [path, content] of Object.entries(options.files ?? {})) {
      mkdirSync(join(root, path, ".."), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    return await packChart(dir, options.name, options.version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sha = (b: Buffer | string): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Pushes `chart` as a Helm OCI artifact to `<registry>/<repository>/<chart.name>:<version>`. */
export async function pushChart(
  registry: string,
  repository: string,
  chart: Chart,
  auth?: string,
): Promise<{ manifestDigest: string }> {
  const name = repository ? `${repository}/${chart.name}` : chart.name;
  const headers: Record<string, string> = auth ? { authorization: auth } : {};
  const upload = async (blob: Buffer): Promise<string> => {
    const digest = sha(blob);
    const start = await fetch(`${registry}/v2/${name}/blobs/uploads/`, { method: "POST", headers });
    if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status}`);
    const location = new URL(start.headers.get("location") ?? "", registry);
    location.searchParams.set("digest", digest);
    const put = await fetch(location, {
      method: "PUT",
      headers: { ...headers, "content-type": "application/octet-stream" },
      body: blob,
    });
    if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status}`);
    return digest;
  };
  const config = Buffer.from(JSON.stringify({ name: chart.name, version: chart.version, apiVersion: "v2" }));
  const configDigest = await upload(config);
  const layerDigest = await upload(chart.archive);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.cncf.helm.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers: [
      {
        mediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        digest: layerDigest,
        size: chart.archive.length,
      },
    ],
  });
  const res = await fetch(`${registry}/v2/${name}/manifests/${chart.version}`, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/vnd.oci.image.manifest.v1+json" },
    body: manifest,
  });
  if (res.status !== 201) throw new Error(`manifest upload: HTTP ${res.status} ${await res.text()}`);
  return { manifestDigest: sha(manifest) };
}

export interface HelmRepo extends Service {
  url: string;
  /** Requests seen, for assertions on credentials. */
  requests: { url: string; authorization?: string }[];
}

/** A static Helm HTTP repository (index.yaml + archives), optionally behind basic auth or over HTTPS. */
export async function startHelmRepo(
  charts: Chart[],
  options: { basicAuth?: string; bearerToken?: string; tls?: { certPem: string; keyPem: string } } = {},
): Promise<HelmRepo> {
  const port = await freePort();
  const base = `${options.tls ? "https" : "http"}://127.0.0.1:${port}`;
  const entries: Record<string, object[]> = {};
  for (const c of charts) {
    (entries[c.name] ??= []).push({
      apiVersion: "v2",
      name: c.name,
      version: c.version,
      digest: c.digest.replace("sha256:", ""),
      urls: [`charts/${c.name}-${c.version}.tgz`],
      created: "2026-01-01T00:00:00Z",
    });
  }
  const index = stringify({ apiVersion: "v1", entries, generated: "2026-01-01T00:00:00Z" });
  const requests: HelmRepo["requests"] = [];
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ url: req.url ?? "", authorization: req.headers.authorization });
    if (
      (options.basicAuth &&
        req.headers.authorization !== `Basic ${Buffer.from(options.basicAuth).toString("base64")}`) ||
      (options.bearerToken && req.headers.authorization !== `Bearer ${options.bearerToken}`)
    ) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="charts"' }).end();
      return;
    }
    if (req.url === "/index.yaml") {
      res.writeHead(200, { "content-type": "application/yaml" }).end(index);
      return;
    }
    const chart = charts.find((c) => req.url === `/charts/${c.name}-${c.version}.tgz`);
    if (chart) res.writeHead(200, { "content-type": "application/gzip" }).end(chart.archive);
    else res.writeHead(404).end();
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handler)
    : createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    host: "127.0.0.1",
    port,
    url: base,
    requests,
    logs: () => requests.map((r) => r.url).join("\n"),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
