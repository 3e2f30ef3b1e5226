// Upstream CRDs (Fleet, Skupper) for tests, read from their pinned Go modules with
// `go mod download`, the way envtest suites load CRDs from the module cache. Nothing of
// theirs is copied into this repository.
//
// OUTPOST_UPSTREAM_CRDS=<dir>[:<dir>…] reads the CRDs from folders instead (for example
// a checkout of each project); every *.yaml below them is searched for CRDs of the group.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { readCRDs } from "./crds.ts";

export interface UpstreamSource {
  /** API group whose CRDs we want. */
  group: string;
  module: string;
  /** A release tag, or the commit of a release whose tag is not a Go version. */
  version: string;
  /** Paths of the CRD files inside the module. */
  paths: string[];
}

export const upstream = {
  fleet: {
    group: "fleet.cattle.io",
    module: "github.com/rancher/fleet",
    version: "v0.16.1",
    paths: ["charts/fleet-crd/templates/crds.yaml"],
  },
  skupper: {
    group: "skupper.io",
    module: "github.com/skupperproject/skupper",
    // Release 2.2.1 (its tag has no "v", so Go addresses it by commit).
    version: "5f1ada1125b877826d789cc587582a78167d0e99",
    paths: ["config/crd/bases"],
  },
} satisfies Record<string, UpstreamSource>;

export class UpstreamUnavailableError extends Error {
  override name = "UpstreamUnavailableError";
}

function yamlFiles(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return /\.ya?ml$/.test(path) ? [path] : [];
  return readdirSync(path)
    .sort()
    .flatMap((entry) => (entry.startsWith(".") ? [] : yamlFiles(join(path, entry))));
}

/** Files holding the CRDs of `source`'s group that have a CustomResourceDefinition in them. */
export function upstreamCRDFiles(source: UpstreamSource): string[] {
  const override = process.env.OUTPOST_UPSTREAM_CRDS;
  let candidates: string[];
  if (override) {
    candidates = override.split(":").flatMap(yamlFiles);
  } else {
    let dir: string;
    try {
      const out = execFileSync("go", ["mod", "download", "-json", `${source.module}@${source.version}`], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, GOFLAGS: "-mod=mod" },
      });
      dir = (JSON.parse(out) as { Dir?: string }).Dir ?? "";
    } catch (err) {
      const detail =
        (err as { stdout?: string }).stdout?.match(/"Error": "([^"]*)"/)?.[1] ?? (err as Error).message;
      throw new UpstreamUnavailableError(
        `cannot download ${source.module}@${source.version} with the Go module proxy (${detail.replace(/\\n\\t/g, " ").replace(/\.$/, "")}). ` +
          "Set OUTPOST_UPSTREAM_CRDS to a folder holding its CRDs to test against them.",
      );
    }
    candidates = source.paths.flatMap((p) => yamlFiles(join(dir, p)));
  }
  const files = candidates.filter((f) => readCRDs([f]).some((crd) => crd.spec.group === source.group));
  if (files.length === 0) {
    throw new UpstreamUnavailableError(`no ${source.group} CRDs found in ${override ?? source.module}`);
  }
  return files;
}
