// Drafts catalog objects from a Helm chart archive: an Application (draft) whose default
// profile offers the chart's top-level scalar values as typed parameters, and a one-app
// DeploymentPackage (draft). The user reviews, edits and releases them.
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import { readChart } from "./chart.ts";

type Parameter = NonNullable<NonNullable<Application["spec"]["profiles"]>[number]["parameters"]>[number];

const maxParameters = 32;

/** Scalar leaves of the values, as dotted paths (two levels deep at most). */
function scalarParameters(values: Record<string, unknown>, prefix = "", depth = 0): Parameter[] {
  const out: Parameter[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (!/^[A-Za-z0-9-]+$/.test(key)) continue;
    const name = prefix ? `${prefix}.${key}` : key;
    if (typeof value === "string") out.push({ name, type: "string", default: value.slice(0, 256) });
    else if (typeof value === "number") out.push({ name, type: "number", default: String(value) });
    else if (typeof value === "boolean") out.push({ name, type: "boolean", default: String(value) });
    else if (value && typeof value === "object" && !Array.isArray(value) && depth < 1) {
      out.push(...scalarParameters(value as Record<string, unknown>, name, depth + 1));
    }
  }
  return out.slice(0, maxParameters);
}

const dns = (s: string): string =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40) || "chart";
const ver = (s: string): string =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .slice(0, 40) || "0.0.0";

export async function draftFromChart(
  archive: Buffer,
  registry: string,
  namespace?: string,
): Promise<
  [
    Application & { apiVersion: string; kind: string },
    DeploymentPackage & { apiVersion: string; kind: string },
  ]
> {
  const chart = await readChart(archive);
  const chartName = typeof chart.chart?.name === "string" ? chart.chart.name : "";
  const chartVersion = typeof chart.chart?.version === "string" ? chart.chart.version : "";
  if (!chartName || !chartVersion) throw new Error("Chart.yaml needs name and version");
  const name = dns(chartName);
  const version = ver(chartVersion);
  const description =
    typeof chart.chart?.description === "string" ? chart.chart.description.slice(0, 4096) : undefined;
  const meta = (n: string): { name: string; namespace?: string } => ({
    name: n,
    ...(namespace ? { namespace } : {}),
  });
  const parameters = scalarParameters(chart.values);
  return [
    {
      apiVersion: "catalog.outpost.dev/v1alpha1",
      kind: "Application",
      metadata: meta(`${name}-${version}`),
      spec: {
        name,
        version,
        ...(description ? { description } : {}),
        draft: true,
        chart: { registryRef: { name: registry }, name: chartName, version: chartVersion },
        defaultProfile: "default",
        profiles: [{ name: "default", values: {}, ...(parameters.length ? { parameters } : {}) }],
      },
    },
    {
      apiVersion: "catalog.outpost.dev/v1alpha1",
      kind: "DeploymentPackage",
      metadata: meta(`${name}-${version}`),
      spec: {
        name,
        version,
        ...(description ? { description } : {}),
        draft: true,
        applications: [{ name, version }],
      },
    },
  ];
}
