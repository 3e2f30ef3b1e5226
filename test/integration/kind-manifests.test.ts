// The kind end-to-end suite (test/kind/) cannot run without Docker, so what it applies is
// checked here against real API servers: every manifest in test/kind/manifests, after the
// scripts' own placeholder substitution (render in test/kind/lib.sh, run with bash), is
// applied with `kubectl apply --dry-run=server` to the cluster it is meant for (its
// "# Cluster:" line), with Outpost's CRDs installed — and Fleet's or Skupper's when the
// manifest uses their kinds (those tests are skipped, saying why, when the upstream CRDs
// are unavailable). The JSON patch e2e.sh makes revision 2 with is dry-run against the
// example AppDeployment; the Fleet Cluster labels are checked to make the examples target
// the clusters the way e2e.sh expects; every script passes shellcheck.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { before, describe, it, type TestContext } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import {
  installCRDs,
  upstream,
  upstreamCRDFiles,
  UpstreamUnavailableError,
  type Cluster,
} from "../controlplane/index.ts";
import type { UpstreamSource } from "../controlplane/upstream.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { installOutpost } from "../support/install.ts";
import { type LabelSelector, matches } from "../../operators/inventory/selector.ts";

const controlPlane = useControlPlane({ edges: 1 });
const repo = fileURLToPath(new URL("../../", import.meta.url));
const kindDir = join(repo, "test/kind");
const manifestDir = join(kindDir, "manifests");
const libSh = join(kindDir, "lib.sh");

const manifests = readdirSync(manifestDir)
  .filter((f) => f.endsWith(".yaml"))
  .sort();
const scripts = readdirSync(kindDir)
  .filter((f) => f.endsWith(".sh"))
  .sort();
const scriptText = scripts.map((f) => readFileSync(join(kindDir, f), "utf8")).join("\n");

type Doc = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } } & Record<
  string,
  unknown
>;

/** Values for placeholders the scripts compute at run time (credentials, kubeconfigs). */
function sampleValues(): Record<string, string> {
  const edgeKubeconfig = readFileSync(controlPlane().edges[0]?.kubeconfig ?? "", "utf8");
  return {
    FLEET_KUBECONFIG_BASE64: Buffer.from(edgeKubeconfig).toString("base64"),
    OUTPOST_KUBECONFIG_BASE64: Buffer.from(edgeKubeconfig).toString("base64"),
    GITEA_USERNAME: "outpost-admin",
    GITEA_TOKEN: "0123456789abcdef0123456789abcdef01234567",
    HARBOR_PASSWORD: "0123456789abcdef0123456789abcdef",
  };
}

/** Plain assignments NAME=value in lib.sh (the pinned versions and fixed names). */
function libAssignments(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of readFileSync(libSh, "utf8").matchAll(/^([A-Z][A-Z0-9_]*)=([^$\s(][^\s]*)$/gm)) {
    out[m[1] ?? ""] = m[2] ?? "";
  }
  return out;
}

const placeholdersOf = (text: string): string[] => [
  ...new Set([...text.matchAll(/@([A-Z][A-Z0-9_]*)@/g)].map((m) => m[1] ?? "")),
];

/** test/kind/lib.sh's render, run by bash: FILE with @NAME@ replaced. */
function render(
  file: string,
  values: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(
    "bash",
    [
      "-c",
      'source "$1" && shift && render "$@"',
      "render",
      libSh,
      file,
      ...Object.entries(values).map(([k, v]) => `${k}=${v}`),
    ],
    { encoding: "utf8", env: { ...process.env, OUTPOST_KIND_DIR: join(controlPlane().dir, "kind-state") } },
  );
}

/** A manifest rendered with lib.sh's values where it pins them, else sample values. */
function rendered(file: string): string {
  const text = readFileSync(join(manifestDir, file), "utf8");
  const lib = libAssignments();
  const samples = sampleValues();
  const values: Record<string, string> = {};
  for (const name of placeholdersOf(text)) {
    const value = lib[name] ?? samples[name];
    assert.ok(
      value !== undefined,
      `${file}: no value for @${name}@ in lib.sh or in this test's sample values`,
    );
    values[name] = value;
  }
  const res = render(join(manifestDir, file), values);
  assert.equal(res.status, 0, `render ${file}: ${res.stderr}`);
  return res.stdout;
}

function clusterOf(file: string): "management" | "edge" {
  const m = /^# Cluster: (management|edge)$/m.exec(readFileSync(join(manifestDir, file), "utf8"));
  assert.ok(m, `${file} says which cluster it is applied to in a "# Cluster: management|edge" line`);
  return m[1] as "management" | "edge";
}

function kubectl(
  cluster: Cluster,
  args: string[],
  input?: string,
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(controlPlane().binaries.kubectl, ["--kubeconfig", cluster.kubeconfig, ...args], {
    encoding: "utf8",
    ...(input === undefined ? {} : { input }),
  });
}

function ensureNamespace(cluster: Cluster, name: string): void {
  const res = kubectl(cluster, ["create", "namespace", name]);
  assert.ok(res.status === 0 || res.stderr.includes("AlreadyExists"), res.stderr);
}

const upstreamByGroup: Record<string, UpstreamSource> = {
  [upstream.fleet.group]: upstream.fleet,
  [upstream.skupper.group]: upstream.skupper,
};
const installedUpstream = new Set<string>();

/**
 * Installs the upstream CRDs of `group` on `cluster` once; false (the test skipped, saying
 * why) when they cannot be had.
 */
async function withUpstreamCRDs(t: TestContext, cluster: Cluster, group: string): Promise<boolean> {
  const source = upstreamByGroup[group];
  if (!source) return true;
  const key = `${cluster.name}/${group}`;
  if (installedUpstream.has(key)) return true;
  let files: string[];
  try {
    files = upstreamCRDFiles(source);
  } catch (err) {
    if (err instanceof UpstreamUnavailableError) {
      t.skip(`needs ${group}'s CRDs: ${err.message}`);
      return false;
    }
    throw err;
  }
  await installCRDs(cluster, files);
  installedUpstream.add(key);
  return true;
}

/** The fields e2e.sh reads in its waits and checks (jsonpaths), per cluster and kind. */
const readFields: { cluster: "management" | "edge"; apiVersion: string; plural: string; fields: string[] }[] =
  [
    {
      cluster: "management",
      apiVersion: "tenancy.outpost.dev/v1alpha1",
      plural: "projects",
      fields: ["status.conditions"],
    },
    {
      cluster: "management",
      apiVersion: "catalog.outpost.dev/v1alpha1",
      plural: "applications",
      fields: ["status.conditions"],
    },
    {
      cluster: "management",
      apiVersion: "catalog.outpost.dev/v1alpha1",
      plural: "deploymentpackages",
      fields: ["status.conditions"],
    },
    {
      cluster: "management",
      apiVersion: "deploy.outpost.dev/v1alpha1",
      plural: "appdeployments",
      fields: ["status.phase", "status.revision", "status.conditions", "spec.parameters.value"],
    },
    {
      cluster: "management",
      apiVersion: "interconnect.outpost.dev/v1alpha1",
      plural: "networks",
      fields: [
        "status.conditions",
        "status.summary.links",
        "status.summary.linksConnected",
        "status.summary.members",
      ],
    },
    {
      cluster: "management",
      apiVersion: "interconnect.outpost.dev/v1alpha1",
      plural: "networkservices",
      fields: ["status.conditions"],
    },
    {
      cluster: "management",
      apiVersion: "fleet.cattle.io/v1alpha1",
      plural: "clusters",
      fields: ["status.agent.lastSeen"],
    },
    {
      cluster: "edge",
      apiVersion: "skupper.io/v2alpha1",
      plural: "sites",
      fields: ["status.sitesInNetwork", "status.conditions"],
    },
    { cluster: "edge", apiVersion: "skupper.io/v2alpha1", plural: "links", fields: ["status.conditions"] },
  ];

const groupOf = (apiVersion = ""): string =>
  apiVersion.includes("/") ? (apiVersion.split("/")[0] ?? "") : "";

describe("kind end-to-end suite: what it applies", () => {
  before(() => {
    const cp = controlPlane();
    installOutpost(cp);
    // The Project's namespace (the tenancy operator makes it) and the Network's site
    // namespace on the edges (the interconnect operator makes it).
    ensureNamespace(cp.management, "retail");
    for (const edge of cp.edges) ensureNamespace(edge, "outpost-network-retail");
  });

  it("has manifests", () => {
    assert.ok(manifests.length >= 5, manifests.join(", "));
  });

  it("render replaces every placeholder and refuses a missing one", () => {
    const file = join(manifestDir, "tenancy-secret.yaml");
    const values = {
      GITEA_ORGANIZATION: "org",
      GITEA_USERNAME: "user",
      GITEA_TOKEN: "a&b/c|d#e",
      HARBOR_PASSWORD: "p@ss",
    };
    const ok = render(file, values);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(placeholdersOf(ok.stdout).length, 0, ok.stdout);
    const secret = parse(ok.stdout) as { stringData: Record<string, string> };
    assert.equal(secret.stringData["git.token"], "a&b/c|d#e");
    assert.equal(secret.stringData["harbor.password"], "p@ss");
    const missing = render(file, { GITEA_ORGANIZATION: "org" });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /no value given for @GITEA_USERNAME@/);
  });

  for (const file of manifests) {
    it(`${file}: every placeholder is given a value by the scripts`, () => {
      const names = placeholdersOf(readFileSync(join(manifestDir, file), "utf8"));
      for (const name of names) {
        assert.ok(
          new RegExp(`\\b${name}=`).test(scriptText),
          `@${name}@ in ${file}: no script passes ${name}=… to render`,
        );
      }
    });

    it(`${file} applies (server-side dry run) to the ${clusterOf(file)} cluster`, async (t) => {
      const cp = controlPlane();
      const cluster = clusterOf(file) === "management" ? cp.management : cp.edges[0];
      assert.ok(cluster);
      const text = rendered(file);
      const docs = parseAllDocuments(text).map((d) => d.toJSON() as Doc | null);
      assert.ok(docs.length > 0 && docs.every((d) => d?.kind), `${file}: every document is an object`);
      for (const group of new Set(docs.map((d) => groupOf(d?.apiVersion)))) {
        if (!(await withUpstreamCRDs(t, cluster, group))) return;
      }
      // A dry run creates no namespace: the ones the manifest makes are made first.
      for (const d of docs) if (d?.kind === "Namespace") ensureNamespace(cluster, d.metadata?.name ?? "");
      const res = kubectl(cluster, ["apply", "--dry-run=server", "-f", "-"], text);
      assert.equal(res.status, 0, `${file}:\n${res.stderr}`);
      for (const d of docs) {
        assert.match(
          res.stdout,
          new RegExp(`/${d?.metadata?.name ?? ""} (created|configured|unchanged) \\(server dry run\\)`),
          res.stdout,
        );
      }
    });
  }

  it("the revision-2 patch applies to the example AppDeployment and changes only replicaCount", () => {
    const cp = controlPlane();
    for (const f of readdirSync(join(repo, "examples"))
      .filter((x) => x.endsWith(".yaml"))
      .sort()) {
      const res = kubectl(cp.management, [
        "apply",
        "--server-side",
        "--field-manager=kind-test",
        "-f",
        join(repo, "examples", f),
      ]);
      assert.equal(res.status, 0, `${f}: ${res.stderr}`);
    }
    const res = kubectl(cp.management, [
      "patch",
      "appdeployments.deploy.outpost.dev",
      "storefront",
      "-n",
      "retail",
      "--type=json",
      "--patch-file",
      join(kindDir, "patches/storefront-revision-2.json"),
      "--dry-run=server",
      "-o",
      "json",
    ]);
    assert.equal(res.status, 0, res.stderr);
    const patched = JSON.parse(res.stdout) as {
      spec: { parameters: { application: string; name: string; value?: string }[] };
    };
    const web = patched.spec.parameters.find(
      (p) => p.application === "storefront-web" && p.name === "replicaCount",
    );
    assert.equal(web?.value, "1");
    const stored = kubectl(cp.management, [
      "get",
      "appdeployments.deploy.outpost.dev",
      "storefront",
      "-n",
      "retail",
      "-o",
      "json",
    ]);
    const original = JSON.parse(stored.stdout) as typeof patched;
    assert.deepEqual(
      patched.spec.parameters.filter((p) => p !== web),
      original.spec.parameters.filter(
        (p) => !(p.application === "storefront-web" && p.name === "replicaCount"),
      ),
    );
  });

  it("the Fleet Cluster labels make the examples target the clusters as e2e.sh expects", () => {
    const clusters = new Map<string, Record<string, string>>();
    for (const file of manifests) {
      for (const d of parseAllDocuments(readFileSync(join(manifestDir, file), "utf8"))) {
        const doc = d.toJSON() as (Doc & { metadata: { labels?: Record<string, string> } }) | null;
        if (doc?.kind === "Cluster" && doc.apiVersion?.startsWith("fleet.cattle.io/"))
          clusters.set(doc.metadata.name ?? "", doc.metadata.labels ?? {});
      }
    }
    const lib = readFileSync(libSh, "utf8");
    const listed = (name: string): string[] =>
      (new RegExp(`^${name}=\\(([^)]*)\\)$`, "m").exec(lib)?.[1] ?? "").split(/\s+/).filter(Boolean);
    const stores = listed("STORE_EDGES");
    const centrals = listed("CENTRAL_EDGES");
    assert.deepEqual([...clusters.keys()].sort(), [...stores, ...centrals].sort());

    const selected = (selector: LabelSelector): string[] =>
      [...clusters]
        .filter(([, labels]) => matches(selector, labels))
        .map(([name]) => name)
        .sort();
    const example = (file: string, kind: string): Record<string, unknown> => {
      const doc = parseAllDocuments(readFileSync(join(repo, "examples", file), "utf8"))
        .map((d) => d.toJSON() as Doc)
        .find((d) => d.kind === kind);
      assert.ok(doc, `${kind} in examples/${file}`);
      return doc.spec as Record<string, unknown>;
    };
    interface DeploymentSpec {
      targets: { clusterSelector: LabelSelector };
      applications: { name: string; targets: { clusterSelector: LabelSelector } }[];
      rollout: { waves: { clusterSelector: LabelSelector }[] };
    }
    const dep = example("50-deployment.yaml", "AppDeployment") as unknown as DeploymentSpec;
    assert.deepEqual(selected(dep.targets.clusterSelector), [...stores].sort(), "the web goes to the stores");
    const db = dep.applications.find((a) => a.name === "storefront-db");
    assert.ok(db);
    assert.deepEqual(
      selected(db.targets.clusterSelector),
      [...centrals].sort(),
      "the database goes to central",
    );
    for (const wave of dep.rollout.waves) {
      assert.ok(selected(wave.clusterSelector).length > 0, "every wave has a member");
    }
    interface NetworkSpec {
      members: { clusterSelector: LabelSelector };
      topology: { hubSelector: LabelSelector };
    }
    const network = example("40-network.yaml", "Network") as unknown as NetworkSpec;
    assert.deepEqual(selected(network.members.clusterSelector), [...stores, ...centrals].sort());
    assert.deepEqual(selected(network.topology.hubSelector), [...centrals].sort(), "central is the hub");
    const service = example("40-network.yaml", "NetworkService") as {
      consumers: { clusterSelector: LabelSelector };
    };
    assert.deepEqual(
      selected(service.consumers.clusterSelector),
      [...stores].sort(),
      "the stores consume the database",
    );
  });

  for (const group of [...new Set(readFields.map((r) => groupOf(r.apiVersion)))]) {
    it(`the ${group} fields e2e.sh reads exist in the CRDs`, async (t) => {
      const cp = controlPlane();
      for (const kind of readFields.filter((r) => groupOf(r.apiVersion) === group)) {
        const cluster = kind.cluster === "management" ? cp.management : cp.edges[0];
        assert.ok(cluster);
        if (!(await withUpstreamCRDs(t, cluster, group))) return;
        for (const field of kind.fields) {
          await eventually(
            `kubectl explain ${kind.plural}.${field} (${kind.apiVersion})`,
            () => {
              const res = kubectl(cluster, [
                "explain",
                `${kind.plural}.${field}`,
                `--api-version=${kind.apiVersion}`,
              ]);
              if (res.status !== 0) throw new Error(res.stderr.trim());
              return Promise.resolve(true);
            },
            15_000,
            500,
          );
        }
      }
    });
  }

  it("the tenancy Secret names the Gitea and Harbor the Helm values install", () => {
    const gitea = parse(readFileSync(join(kindDir, "values/gitea.yaml"), "utf8")) as {
      gitea: { config: { server: { ROOT_URL: string } } };
    };
    const harbor = parse(readFileSync(join(kindDir, "values/harbor.yaml"), "utf8")) as {
      externalURL: string;
    };
    const secret = parse(readFileSync(join(manifestDir, "tenancy-secret.yaml"), "utf8")) as {
      stringData: Record<string, string>;
    };
    assert.equal(secret.stringData["git.apiUrl"], new URL("api/v1", gitea.gitea.config.server.ROOT_URL).href);
    assert.equal(secret.stringData["harbor.url"], harbor.externalURL);
    // e2e.sh expects this clone URL in the project's outpost-git Secret.
    assert.ok(scriptText.includes(`"${gitea.gitea.config.server.ROOT_URL}$GITEA_ORGANIZATION/$PROJECT.git"`));
  });

  it("every script is bash with set -euo pipefail", () => {
    assert.deepEqual(scripts, ["down.sh", "e2e.sh", "lib.sh", "up.sh"]);
    for (const f of scripts) {
      const text = readFileSync(join(kindDir, f), "utf8");
      assert.ok(text.startsWith("#!/usr/bin/env bash\n"), `${f} starts with #!/usr/bin/env bash`);
      assert.match(text, /^set -euo pipefail$/m, `${f} sets -euo pipefail`);
    }
  });

  it("every script passes shellcheck", () => {
    const res = spawnSync("shellcheck", scripts, { cwd: kindDir, encoding: "utf8" });
    if (res.error && (res.error as NodeJS.ErrnoException).code === "ENOENT") {
      assert.fail(
        "shellcheck is not installed: install it (apt-get install shellcheck) to check test/kind/*.sh",
      );
    }
    assert.equal(res.status, 0, `shellcheck ${scripts.join(" ")}:\n${res.stdout}${res.stderr}`);
  });
});
