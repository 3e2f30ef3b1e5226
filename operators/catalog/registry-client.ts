// Clients for chart registries: Helm HTTP repositories (index.yaml) and OCI registries
// (the distribution API, Helm charts stored as OCI artifacts). Credentials are basic
// (username/password) or a bearer token; OCI token challenges (WWW-Authenticate: Bearer)
// are answered as Docker and Helm clients do. A private CA can be trusted.
import { createHash } from "node:crypto";
import { Agent, request, type Dispatcher } from "undici";
import { parse } from "yaml";

export interface RegistryAccess {
  type: "helm" | "oci" | "image";
  url: string;
  username?: string;
  password?: string;
  token?: string;
  /** PEM certificates to trust. */
  caPem?: string;
}

export interface ResolvedChart {
  name: string;
  version: string;
  /** sha256 of the chart archive, "sha256:<hex>". */
  digest: string;
  /** Where it was found (for messages). */
  location: string;
  /** Downloads the archive and checks it against `digest`. */
  fetch(): Promise<Buffer>;
}

export class RegistryError extends Error {
  override name = "RegistryError";
  constructor(
    message: string,
    /** A CamelCase reason for conditions. */
    readonly reason: "Unreachable" | "Unauthorized" | "NotFound" | "InvalidResponse",
  ) {
    super(message);
  }
}

const helmChartLayer = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const manifestTypes = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");
const maxArchiveBytes = 20 * 1024 * 1024;

/**
 * Whether a registry URL is reached over plain HTTP: http://, or oci:// to a loopback host
 * (as Docker and Helm treat local registries). Engines need it said (Fleet's helm secret
 * basicHTTP, Argo CD's insecureOCIForceHttp).
 */
export function plainHttp(url: string): boolean {
  return (
    url.startsWith("http://") || /^oci:\/\/(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?(\/|$)/.test(url)
  );
}

const sha = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export class RegistryClient {
  private readonly dispatcher: Dispatcher | undefined;
  private bearer: string | undefined;

  constructor(
    private readonly access: RegistryAccess,
    private readonly timeoutMs = 30_000,
  ) {
    this.dispatcher = access.caPem ? new Agent({ connect: { ca: access.caPem } }) : undefined;
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  /**
   * For OCI: the registry's base URL and the repository path prefix. oci:// means HTTPS,
   * except to a loopback host, which is plain HTTP as Docker and Helm treat local registries.
   */
  private oci(): { base: string; prefix: string } {
    const u = new URL(
      this.access.url.replace(/^oci:\/\//, plainHttp(this.access.url) ? "http://" : "https://"),
    );
    return { base: `${u.protocol}//${u.host}`, prefix: u.pathname.replace(/^\/+|\/+$/g, "") };
  }

  private basic(): string | undefined {
    if (this.access.username === undefined) return undefined;
    return `Basic ${Buffer.from(`${this.access.username}:${this.access.password ?? ""}`).toString("base64")}`;
  }

  private authorization(): string | undefined {
    if (this.bearer) return `Bearer ${this.bearer}`;
    if (this.access.token) return `Bearer ${this.access.token}`;
    return this.basic();
  }

  private async get(
    url: string,
    headers: Record<string, string> = {},
    retried = false,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    let res: Dispatcher.ResponseData;
    const auth = this.authorization();
    try {
      res = await request(url, {
        method: "GET",
        dispatcher: this.dispatcher,
        headers: { ...headers, ...(auth ? { authorization: auth } : {}) },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      const cause =
        (err as { cause?: { message?: string }; message?: string }).cause?.message ?? (err as Error).message;
      throw new RegistryError(`GET ${url} failed: ${cause}`, "Unreachable");
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxArchiveBytes) {
        res.body.destroy();
        throw new RegistryError(
          `GET ${url}: the response is larger than ${maxArchiveBytes / 1024 / 1024} MiB`,
          "InvalidResponse",
        );
      }
      chunks.push(chunk);
    }
    const challenge = String(res.headers["www-authenticate"] ?? "");
    if (res.statusCode === 401 && !retried && /^Bearer /i.test(challenge)) {
      this.bearer = await this.token(challenge);
      return this.get(url, headers, true);
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** Answers a Bearer challenge: asks the realm for a token with the basic credentials. */
  private async token(challenge: string): Promise<string> {
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? "", m[2] ?? ""]),
    );
    if (!params.realm)
      throw new RegistryError(
        `the registry asked for a token without a realm: ${challenge}`,
        "InvalidResponse",
      );
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set("service", params.service);
    if (params.scope) u.searchParams.set("scope", params.scope);
    const basic = this.basic();
    let res: Dispatcher.ResponseData;
    try {
      res = await request(u, {
        dispatcher: this.dispatcher,
        headers: basic ? { authorization: basic } : {},
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      throw new RegistryError(
        `token request to ${u.origin} failed: ${(err as Error).message}`,
        "Unreachable",
      );
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      throw new RegistryError(
        `the registry's token service ${u.origin} refused the credentials (HTTP ${res.statusCode})`,
        "Unauthorized",
      );
    }
    const body = JSON.parse(text) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`the token service ${u.origin} returned no token`, "InvalidResponse");
    return token;
  }

  private fail(status: number, url: string, what: string): never {
    if (status === 401 || status === 403) {
      throw new RegistryError(
        `${url}: HTTP ${status} - the registry refused the credentials; check the Secret in credentialsSecretRef`,
        "Unauthorized",
      );
    }
    if (status === 404) throw new RegistryError(`${url}: ${what} not found (HTTP 404)`, "NotFound");
    throw new RegistryError(`${url}: HTTP ${status}`, "InvalidResponse");
  }

  /** Reachable, and the credentials are accepted. */
  async check(): Promise<void> {
    if (this.access.type === "helm") {
      await this.helmIndex();
      return;
    }
    const { base } = this.oci();
    const url = `${base}/v2/`;
    const res = await this.get(url);
    if (res.status !== 200) this.fail(res.status, url, "the registry API");
  }

  private async helmIndex(): Promise<{
    entries?: Record<string, { version: string; digest?: string; urls?: string[] }[]>;
  }> {
    const url = `${this.access.url.replace(/\/+$/, "")}/index.yaml`;
    const res = await this.get(url);
    if (res.status !== 200) this.fail(res.status, url, "index.yaml");
    try {
      return parse(res.body.toString("utf8")) as {
        entries?: Record<string, { version: string; digest?: string; urls?: string[] }[]>;
      };
    } catch (err) {
      throw new RegistryError(
        `${url} is not a Helm repository index: ${(err as Error).message.split("\n")[0] ?? ""}`,
        "InvalidResponse",
      );
    }
  }

  /** Finds `name` at exactly `version`; fails with NotFound naming the versions it has. */
  async resolveChart(name: string, version: string): Promise<ResolvedChart> {
    if (this.access.type === "helm") {
      const index = await this.helmIndex();
      const versions = index.entries?.[name] ?? [];
      const entry = versions.find((v) => v.version === version);
      if (!entry) {
        const known = versions
          .map((v) => v.version)
          .slice(0, 10)
          .join(", ");
        throw new RegistryError(
          `chart ${name} ${version} is not in ${this.access.url}${known ? ` (it has ${known})` : versions.length === 0 ? ` (no chart named ${name})` : ""}`,
          "NotFound",
        );
      }
      const first = entry.urls?.[0];
      if (!first)
        throw new RegistryError(
          `chart ${name} ${version} in ${this.access.url} has no download URL`,
          "InvalidResponse",
        );
      const location = new URL(first, `${this.access.url.replace(/\/+$/, "")}/`).toString();
      const indexed = entry.digest ? `sha256:${entry.digest}` : undefined;
      const download = async (): Promise<Buffer> => {
        const res = await this.get(location);
        if (res.status !== 200) this.fail(res.status, location, "the chart archive");
        return res.body;
      };
      // Old indexes carry no digest: hash the archive then.
      const digest = indexed ?? sha(await download());
      return { name, version, digest, location, fetch: () => this.verified(download, digest, location) };
    }
    const { base, prefix } = this.oci();
    const repo = prefix ? `${prefix}/${name}` : name;
    const manifestUrl = `${base}/v2/${repo}/manifests/${encodeURIComponent(version)}`;
    const res = await this.get(manifestUrl, { accept: manifestTypes });
    if (res.status === 404) {
      const tags = await this.get(`${base}/v2/${repo}/tags/list`);
      const list =
        tags.status === 200
          ? ((JSON.parse(tags.body.toString()) as { tags?: string[] | null }).tags ?? [])
          : [];
      throw new RegistryError(
        `chart ${name} ${version} is not in ${this.access.url}${list.length ? ` (it has ${list.slice(0, 10).join(", ")})` : ` (no repository ${repo})`}`,
        "NotFound",
      );
    }
    if (res.status !== 200) this.fail(res.status, manifestUrl, "the chart manifest");
    const manifest = JSON.parse(res.body.toString()) as { layers?: { mediaType: string; digest: string }[] };
    const layer = manifest.layers?.find((l) => l.mediaType === helmChartLayer);
    if (!layer)
      throw new RegistryError(
        `${repo}:${version} in ${this.access.url} is not a Helm chart (no ${helmChartLayer} layer)`,
        "InvalidResponse",
      );
    const location = `${base}/v2/${repo}/blobs/${layer.digest}`;
    const download = async (): Promise<Buffer> => {
      const blob = await this.get(location);
      if (blob.status !== 200) this.fail(blob.status, location, "the chart archive");
      return blob.body;
    };
    return {
      name,
      version,
      digest: layer.digest,
      location,
      fetch: () => this.verified(download, layer.digest, location),
    };
  }

  private async verified(download: () => Promise<Buffer>, digest: string, location: string): Promise<Buffer> {
    const archive = await download();
    const actual = sha(archive);
    if (actual !== digest)
      throw new RegistryError(`${location}: digest ${actual} does not match ${digest}`, "InvalidResponse");
    return archive;
  }
}
