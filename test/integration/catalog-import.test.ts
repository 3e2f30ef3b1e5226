// kubectl outpost import/export of the Edge Orchestrator catalog format, against a real
// API server and a real clamd: all or nothing, clear errors naming file and field, a
// round trip through export.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tar from "tar";
import { stringify } from "yaml";
import {
  ApplicationResource,
  DeploymentPackageResource,
  RegistryResource,
} from "../../operators/api/resources.generated.ts";
import { CatalogError } from "../../operators/catalog/format.ts";
import { ClamdScanner } from "../../operators/catalog/scanner.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { exportCatalog, importCatalog } from "../../cli/catalog.ts";
import { collectFiles, readBundle } from "../../cli/files.ts";
import { installCRDs, kubeConfigFromFile } from "../controlplane/index.ts";
import { crdFiles } from "../support/crds.ts";
import { useControlPlane } from "../support/controlplane.ts";
import { eicar, startClamd, type Service } from "../support/services.ts";

const controlPlane = useControlPlane();
let client: KubeClient;
let clamd: Service;
let scanner: ClamdScanner;
const namespaces: ResourceType = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};
const dirs: string[] = [];

/** A catalog folder: a registry, two applications (values in separate files), a package, an artifact. */
function catalog(overrides: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "outpost-catalog-"));
  dirs.push(dir);
  const files: Record<string, unknown> = {
    "registry.yaml": {
      specSchema: "Registry",
      schemaVersion: "0.1",
      name: "harbor-helm",
      rootUrl: "oci://harbor.example.com/catalog",
      type: "HELM",
      userName: "robot",
      authToken: "t0ken",
    },
    "apps/web.yaml": {
      specSchema: "Application",
      schemaVersion: "0.1",
      name: "web",
      version: "1.2.0",
      helmRegistry: "harbor-helm",
      chartName: "web",
      chartVersion: "1.2.0",
      defaultProfile: "default",
      profiles: [
        {
          name: "default",
          valuesFileName: "web-values.yaml",
          parameterTemplates: [
            { name: "image.tag", type: "string", default: "1.2.0" },
            { name: "admin.password", type: "string", secret: true, mandatory: true },
          ],
        },
      ],
    },
    "apps/web-values.yaml": { replicaCount: 2, image: { tag: "1.2.0" } },
    "apps/db.yaml": {
      specSchema: "Application",
      schemaVersion: "0.1",
      name: "db",
      version: "2.0.0",
      helmRegistry: "harbor-helm",
      chartName: "postgresql",
      chartVersion: "16.4.1",
    },
    "package.yaml": {
      specSchema: "Deployment-Package",
      schemaVersion: "0.1",
      name: "shop",
      version: "1.0.0",
      applications: [
        { name: "web", version: "1.2.0" },
        { name: "db", version: "2.0.0" },
      ],
      applicationDependencies: [{ name: "web", requires: "db" }],
      deploymentProfiles: [
        { name: "edge", applicationProfiles: [{ application: "web", profile: "default" }] },
      ],
      defaultProfile: "edge",
      artifactReferences: [{ name: "shop-readme", purpose: "readme" }],
    },
    "readme.yaml": {
      specSchema: "Artifact",
      schemaVersion: "0.1",
      name: "shop-readme",
      mimeType: "text/plain",
      artifact: Buffer.from("Shop notes\n").toString("base64"),
    },
    ...overrides,
  };
  for (const [path, content] of Object.entries(files)) {
    if (content === undefined) continue;
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), typeof content === "string" ? content : stringify(content));
  }
  return dir;
}

async function newNamespace(name: string): Promise<string> {
  await client.create(namespaces, { metadata: { name } });
  return name;
}

async function count(ns: string): Promise<number> {
  let n = 0;
  for (const r of [RegistryResource, ApplicationResource, DeploymentPackageResource])
    n += (await client.list(r, { namespace: ns })).items.length;
  return n;
}

async function refused(ns: string, paths: string[], message: RegExp): Promise<void> {
  await assert.rejects(
    async () => importCatalog(client, await collectFiles(paths), ns, { scanner }),
    (err: unknown) => {
      assert.ok(err instanceof CatalogError, String(err));
      assert.match(err.message, message);
      return true;
    },
  );
  assert.equal(await count(ns), 0, "nothing was applied");
}

describe("catalog import and export", () => {
  before(async () => {
    await installCRDs(controlPlane().management, crdFiles());
    client = new KubeClient(kubeConfigFromFile(controlPlane().management.kubeconfig));
    clamd = await startClamd();
    scanner = new ClamdScanner({ host: clamd.host, port: clamd.port });
  });
  after(async () => {
    await client.close();
    await clamd.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("imports a catalog folder and exports it back (round trip)", async () => {
    const ns = await newNamespace("shop");
    const result = await importCatalog(client, await collectFiles([catalog()]), ns, { scanner });
    assert.deepEqual(result.applied.sort(), [
      "application/db-2.0.0",
      "application/web-1.2.0",
      "artifact/shop-readme",
      "configmap/artifact-shop-readme",
      "deploymentpackage/shop-1.0.0",
      "registry/harbor-helm",
      "secret/harbor-helm-credentials",
    ]);
    const web = await client.get<
      KubeObject & { spec: { profiles: { values: unknown; parameters: unknown[] }[] } }
    >(ApplicationResource, "web-1.2.0", ns);
    assert.deepEqual(web?.spec.profiles[0]?.values, { replicaCount: 2, image: { tag: "1.2.0" } });
    assert.equal(web.spec.profiles[0].parameters.length, 2);

    const out = mkdtempSync(join(tmpdir(), "outpost-export-"));
    dirs.push(out);
    const written = await exportCatalog(client, ns, out);
    assert.ok(written.includes("packages/shop-1.0.0.yaml"), written.join(", "));
    assert.match(
      readFileSync(join(out, "applications/web-1.2.0.yaml"), "utf8"),
      /valuesFileName: web-1\.2\.0-default-values\.yaml/,
    );

    const copy = await newNamespace("shop-copy");
    await importCatalog(client, await collectFiles([out]), copy, { scanner });
    for (const [r, name] of [
      [ApplicationResource, "web-1.2.0"],
      [DeploymentPackageResource, "shop-1.0.0"],
    ] as const) {
      const a = await client.get<KubeObject & { spec: unknown }>(r, name, ns);
      const b = await client.get<KubeObject & { spec: unknown }>(r, name, copy);
      assert.deepEqual(b?.spec, a?.spec, `${r.kind} ${name} survives the round trip`);
    }
  });

  it("imports a .tar.gz bundle and refuses one with malware inside", async () => {
    const dir = catalog();
    const bundle = join(dirs[0] ?? tmpdir(), "catalog.tar.gz");
    await tar.c({ gzip: true, cwd: dir, file: bundle, portable: true }, ["."]);
    const ns = await newNamespace("bundled");
    await importCatalog(client, await collectFiles([bundle]), ns, { scanner });
    assert.equal(await count(ns), 4);

    const infected = catalog({ "notes.txt": `notes ${eicar().toString("latin1")}` });
    const bad = join(infected, "..", `${infected.split("/").pop() ?? "x"}.tgz`);
    await tar.c({ gzip: true, cwd: infected, file: bad, portable: true }, ["."]);
    await refused(
      await newNamespace("infected"),
      [bad],
      /notes\.txt: contains Outpost\.Test\.EICAR\.UNOFFICIAL/,
    );
  });

  it("refuses bad input with a message naming the file and field, applying nothing", async () => {
    const ns = await newNamespace("bad-input");
    await refused(ns, [catalog({ "broken.yaml": "name: [unclosed" })], /broken\.yaml: not valid YAML/);
    await refused(
      ns,
      [catalog({ "odd.yaml": { specSchema: "Widget", schemaVersion: "0.1", name: "x" } })],
      /odd\.yaml: unknown specSchema "Widget"/,
    );
    await refused(
      ns,
      [catalog({ "apps/web-values.yaml": undefined })],
      /apps\/web\.yaml: profiles\[0\]\.valuesFileName: file web-values\.yaml is not among the imported files/,
    );
    await refused(
      ns,
      [catalog({ "apps/web-values.yaml": "- a\n- b\n" })],
      /web-values\.yaml: the values of profile default are not a map/,
    );
    await refused(
      ns,
      [
        catalog({
          "package.yaml": {
            specSchema: "DeploymentPackage",
            schemaVersion: "0.1",
            name: "shop",
            version: "1.0.0",
            applications: [
              { name: "web", version: "1.2.0" },
              { name: "web", version: "1.2.0" },
            ],
          },
        }),
      ],
      /package\.yaml: DeploymentPackage shop-1\.0\.0: .*each application may be listed only once/,
    );
    await refused(
      ns,
      [
        catalog({
          "package.yaml": {
            specSchema: "DeploymentPackage",
            schemaVersion: "0.1",
            name: "shop",
            version: "1.0.0",
            applications: [
              { name: "web", version: "1.2.0" },
              { name: "db", version: "2.0.0" },
            ],
            applicationDependencies: [
              { name: "web", requires: "db" },
              { name: "db", requires: "web" },
            ],
          },
        }),
      ],
      /package\.yaml: applicationDependencies: dependency cycle (db → web → db|web → db → web)/,
    );
    await refused(
      ns,
      [catalog({ "registry.yaml": undefined })],
      /apps\/(web|db)\.yaml: helmRegistry: Registry harbor-helm is neither imported nor in namespace bad-input/,
    );
    await refused(
      ns,
      [catalog({ "apps/db.yaml": undefined })],
      /package\.yaml: applications: Application db 2\.0\.0 is neither imported nor in namespace bad-input/,
    );
    await refused(
      ns,
      [
        catalog({
          "readme.yaml": {
            specSchema: "Artifact",
            schemaVersion: "0.1",
            name: "shop-readme",
            mimeType: "image/png",
            artifact: Buffer.from("not a png").toString("base64"),
          },
        }),
      ],
      /readme\.yaml: artifact: mimeType is image\/png, but the content is not a PNG image/,
    );
    await refused(
      ns,
      [
        catalog({
          "apps/db.yaml": {
            specSchema: "Application",
            schemaVersion: "0.1",
            name: "db",
            version: "2.0.0",
            chartName: "pg",
          },
        }),
      ],
      /apps\/db\.yaml: \(file\): missing field "chartVersion"/,
    );
  });

  it("refuses bundles with unsafe entries or beyond the limits", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-evil-"));
    dirs.push(dir);
    mkdirSync(join(dir, "inner"));
    writeFileSync(join(dir, "x.yaml"), "a: 1\n");
    const traversal = join(dir, "traversal.tgz");
    await tar.c({ gzip: true, cwd: join(dir, "inner"), file: traversal, preservePaths: true }, ["../x.yaml"]);
    await assert.rejects(
      async () => readBundle("traversal.tgz", readFileSync(traversal)),
      /traversal\.tgz: entry \.\.\/x\.yaml points outside the bundle/,
    );
    // Random bytes: a run of zeros would trip tar's decompression-ratio guard first.
    writeFileSync(join(dir, "big.bin"), randomBytes(17 * 1024 * 1024));
    const big = join(dir, "big.tgz");
    await tar.c({ gzip: true, cwd: dir, file: big }, ["big.bin"]);
    await assert.rejects(
      async () => readBundle("big.tgz", readFileSync(big)),
      /big\.tgz: entry big\.bin is larger than 16 MiB/,
    );
    await assert.rejects(
      async () => readBundle("junk.tgz", Buffer.from("not a tarball at all")),
      /junk\.tgz: not a readable \.tar\.gz bundle/,
    );
  });
});
