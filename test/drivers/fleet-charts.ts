// How Fleet v0.16.1's gitjob (`fleet apply`) downloads a bundle's remote charts, for the
// Fleet test driver. Paths inside github.com/rancher/fleet at tag v0.16.1:
//   - internal/cmd/controller/gitops/reconciler/gitjob.go: the GitRepo's helmSecretName
//     Secret is mounted at /etc/fleet/helm (volumesFromSecret); `username` reaches the job
//     as HELM_USERNAME (an optional key), `password` and `cacerts` as files, and the keys
//     `insecureSkipVerify` and `basicHTTP` become --helm-insecure-skip-tls /
//     --helm-basic-http (strconv.ParseBool; unparsable means false). A Secret that does
//     not exist cannot be mounted: the job's pod never starts.
//   - internal/cmd/cli/apply.go addAuthToOpts: username and password are used only when
//     both are given.
//   - internal/bundlereader/resources.go addRemoteCharts / shouldAddAuthToRequest: the
//     credentials go only to a chart whose repo (or, without a repo, chart) URL matches
//     `^(?:helmRepoURLRegex)`; an empty regex forwards them to nothing, and the error then
//     carries loaddirectory.go's helmRepoURLRegexUIHint. TLS settings are kept either way.
//   - internal/bundlereader/charturl.go ChartURL / getHelmRepoIndex: an http(s) repository
//     is read through its index.yaml; an oci:// chart is used as is.
//   - internal/bundlereader/loaddirectory.go downloadOCIChart: with username and password,
//     a registry login first (Helm's registry client, GET /v2/); HTTPS unless basicHTTP;
//     then the chart's manifest and its chart layer. httpDownload for http(s) charts.
// Not modelled, failing loudly: helmSecretNameForPaths (per-path credentials), SSH keys,
// version ranges (a chart version must be exact here), OCI token servers.
import { Agent, request, type Dispatcher } from "undici";
import { parse } from "yaml";

/** bundlereader.Auth, as the gitjob's arguments build it. */
export interface HelmAuth {
  username: string;
  password: string;
  caBundle?: string;
  insecureSkipVerify: boolean;
  basicHTTP: boolean;
}

export interface ChartRef {
  chart?: string;
  repo?: string;
  version?: string;
}

/** One chart download the driver made, for tests to check what was sent where. */
export interface ChartFetch {
  gitRepo: string;
  url: string;
  /** The username sent, if credentials were forwarded. */
  username?: string;
  error?: string;
}

const helmChartLayer = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const helmRepoURLRegexUIHint =
  "helmRepoURLRegex is empty, so Helm credentials were not forwarded; set spec.helmRepoURLRegex to allow credential forwarding";

const parseBool = (v: string | undefined): boolean => v !== undefined && /^(1|t|true)$/i.test(v.trim());

/** The Auth of a GitRepo's helm Secret (keys decoded), as gitjob.go and apply.go build it. */
export function helmAuthFromSecret(data: Record<string, string>): HelmAuth {
  const username = data.username ?? "";
  const password = data.password ?? "";
  return {
    username: username !== "" && "password" in data ? username : "",
    password: username !== "" && "password" in data ? password : "",
    ...(data.cacerts ? { caBundle: data.cacerts } : {}),
    insecureSkipVerify: parseBool(data.insecureSkipVerify),
    basicHTTP: parseBool(data.basicHTTP),
  };
}

/** resources.go shouldAddAuthToRequest (Go's RE2 and JavaScript agree on the patterns used here). */
export function shouldAddAuth(regex: string | undefined, chart: ChartRef): boolean {
  if (!regex) return false;
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${regex})`);
  } catch (err) {
    throw new Error(`failed to add auth to request for ${describe(chart)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return re.test(chart.repo !== undefined && chart.repo !== "" ? chart.repo : (chart.chart ?? ""));
}

const describe = (c: ChartRef): string =>
  `repo=${c.repo ?? ""} chart=${c.chart ?? ""} version=${c.version ?? ""}`;

/**
 * Downloads one chart as the gitjob would, with `auth` (credentials already stripped when
 * shouldAddAuth said no); returns the archive. Throws Fleet's error text.
 */
export async function downloadChart(
  chart: ChartRef,
  auth: HelmAuth,
  stripped: boolean,
): Promise<{ archive: Buffer; url: string }> {
  const dispatcher = new Agent({
    connect: {
      ...(auth.caBundle ? { ca: auth.caBundle } : {}),
      rejectUnauthorized: !auth.insecureSkipVerify,
    },
  });
  const hint = (err: unknown): Error =>
    new Error(stripped ? `${(err as Error).message}: ${helmRepoURLRegexUIHint}` : (err as Error).message);
  try {
    if (!/^\d+\.\d+\.\d+([-+].*)?$/.test(chart.version ?? ""))
      throw new Error(
        `the Fleet test driver downloads exact chart versions only, not ${JSON.stringify(chart.version ?? "")} (Fleet resolves ranges: charturl.go GetOCITag / repo index Get)`,
      );
    const oci = chart.repo ? (chart.repo.startsWith("oci://") ? chart.repo : undefined) : chart.chart;
    if (oci?.startsWith("oci://")) {
      try {
        return { archive: await ociDownload(oci, chart.version ?? "", auth, dispatcher), url: oci };
      } catch (err) {
        throw hint(
          new Error(
            `downloading OCI chart from ${JSON.stringify(oci)}: helm chart download: ${(err as Error).message}`,
          ),
        );
      }
    }
    if (!chart.repo)
      throw new Error(
        `the Fleet test driver does not download ${JSON.stringify(chart.chart)} (not a repository chart)`,
      );
    let url: string;
    try {
      url = await chartURL(chart, auth, dispatcher);
    } catch (err) {
      throw hint(new Error(`failed to resolve URL of ${describe(chart)}: ${(err as Error).message}`));
    }
    try {
      return { archive: await get(url, auth, dispatcher, {}), url };
    } catch (err) {
      throw hint(new Error(`retrieving file from ${JSON.stringify(url)}: ${(err as Error).message}`));
    }
  } finally {
    await dispatcher.close();
  }
}

const basic = (auth: HelmAuth): Record<string, string> =>
  auth.username !== ""
    ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}` }
    : {};

async function get(
  url: string,
  auth: HelmAuth,
  dispatcher: Dispatcher,
  headers: Record<string, string>,
): Promise<Buffer> {
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, { dispatcher, headers: { ...headers, ...basic(auth) } });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
    throw new Error(`Get ${JSON.stringify(url)}: ${cause}`, { cause: err });
  }
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode >= 300) {
    const challenge = String(res.headers["www-authenticate"] ?? "");
    if (res.statusCode === 401 && /^Bearer /i.test(challenge))
      throw new Error(`the Fleet test driver does not answer OCI token challenges (${challenge})`);
    throw new Error(
      `GET ${JSON.stringify(url)}: response status code ${res.statusCode}: ${body.toString("utf8").slice(0, 200).trim()}`,
    );
  }
  return body;
}

/** charturl.go ChartURL for an http(s) repository: its index.yaml, the entry's first URL. */
async function chartURL(chart: ChartRef, auth: HelmAuth, dispatcher: Dispatcher): Promise<string> {
  const repo = (chart.repo ?? "").replace(/\/+$/, "");
  const index = parse((await get(`${repo}/index.yaml`, auth, dispatcher, {})).toString("utf8")) as {
    entries?: Record<string, { version?: string; urls?: string[] }[]>;
  };
  const entry = (index.entries?.[chart.chart ?? ""] ?? []).find((e) => e.version === chart.version);
  if (!entry)
    throw new Error(
      `chart "${chart.chart ?? ""}" version "${chart.version ?? ""}" not found in ${repo} repository`,
    );
  const first = entry.urls?.[0];
  if (!first)
    throw new Error(`no URLs found for chart ${chart.chart ?? ""} ${chart.version ?? ""} at ${repo}`);
  return new URL(first, `${repo}/`).toString();
}

/** loaddirectory.go downloadOCIChart: login when both credentials are set, manifest, chart layer. */
async function ociDownload(
  ref: string,
  version: string,
  auth: HelmAuth,
  dispatcher: Dispatcher,
): Promise<Buffer> {
  const u = new URL(ref.replace(/^oci:\/\//, auth.basicHTTP ? "http://" : "https://"));
  const base = `${u.protocol}//${u.host}`;
  const repository = u.pathname.replace(/^\/+|\/+$/g, "");
  if (auth.username !== "" && auth.password !== "") {
    try {
      await get(`${base}/v2/`, auth, dispatcher, {});
    } catch (err) {
      throw new Error(`login attempt to ${base}/v2/ failed: ${(err as Error).message}`, { cause: err });
    }
  }
  const manifest = JSON.parse(
    (
      await get(`${base}/v2/${repository}/manifests/${version}`, auth, dispatcher, {
        accept: "application/vnd.oci.image.manifest.v1+json",
      })
    ).toString("utf8"),
  ) as { layers?: { mediaType?: string; digest?: string }[] };
  const layer = (manifest.layers ?? []).find((l) => l.mediaType === helmChartLayer);
  if (!layer?.digest) throw new Error(`${ref}:${version} is not a Helm chart (no ${helmChartLayer} layer)`);
  return get(`${base}/v2/${repository}/blobs/${layer.digest}`, auth, dispatcher, {});
}
