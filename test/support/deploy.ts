// A namespace ready for AppDeployments: Outpost installed from config/, Fleet's CRDs, a
// Git server and repository named by Secret outpost-git, an OCI registry with two
// charts, a Registry, two Applications (web with a number parameter, db with a secret
// one) and a package shop 1.0.0 (web requires db), the catalog operator, and the Fleet
// test driver with clusters store-1, store-2 (tier=store) and central (tier=central).
import { createHash } from "node:crypto";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import {
  AppDeploymentResource,
  ApplicationResource,
  DeploymentPackageResource,
  RegistryResource,
} from "../../operators/api/resources.generated.ts";
import { registerCatalog } from "../../operators/catalog/index.ts";
import { gitSecretName } from "../../operators/deploy/app-deployment.ts";
import { KubeClient, type KubeObject } from "../../operators/runtime/client.ts";
import type { Manager } from "../../operators/runtime/manager.ts";
import { kubeConfigFromFile, type ControlPlane } from "../controlplane/index.ts";
import { FleetDriver } from "../drivers/fleet.ts";
import { installFleetCRDs } from "../drivers/fleet-crds.ts";
import { eventually } from "./controlplane.ts";
import { startGitServer, type GitServer } from "./git-server.ts";
import { installOutpost } from "./install.ts";
import { startOperator } from "./operator.ts";
import { makeChart, pushChart, startOciRegistry, type OciRegistry } from "./services.ts";
import { namespacesResource, secretsResource } from "../../operators/runtime/core.ts";

export interface DeployFixture {
  ns: string;
  client: KubeClient;
  git: GitServer;
  /** The repository's name on the Git server. */
  repo: string;
  oci: OciRegistry;
  fleet: FleetDriver;
  catalog: Manager;
  /** Fleet CRDs installed: the upstream ones or the stand-ins. */
  fleetCRDs: "upstream" | "stand-in";
  stop(): Promise<void>;
}

/**
 * An Application `name` 1.0.0 of chart `name` 1.0.0 (or `chart`) in Registry charts, with one
 * profile; `spec` adds to its spec.
 */
export const app = (
  ns: string,
  name: string,
  parameters: object[],
  values: object,
  { chart = name, ...spec }: { chart?: string } & Record<string, unknown> = {},
): KubeObject =>
  ({
    metadata: { name: `${name}-1.0.0`, namespace: ns },
    spec: {
      name,
      version: "1.0.0",
      chart: { registryRef: { name: "charts" }, name: chart, version: "1.0.0" },
      defaultProfile: "standard",
      profiles: [{ name: "standard", values, parameters }],
      ...spec,
    },
  }) as KubeObject;

/**
 * An AppDeployment's revisionHash as its API reference defines it (status.revisionHash):
 * the first 16 hexadecimal digits of the SHA-256 of the spec without suspend, as JSON
 * with object keys sorted and no whitespace. Written here from that definition.
 */
export function specHash(spec: AppDeployment["spec"]): string {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v !== null && typeof v === "object"
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
          )
        : v;
  const { suspend: _suspend, ...delivered } = spec;
  return createHash("sha256")
    .update(JSON.stringify(sorted(delivered)))
    .digest("hex")
    .slice(0, 16);
}

/**
 * Namespace `ns` ready for the shop: Secret outpost-git naming repository `git`, Secret
 * db-password, Registry charts at `registry` (OCI), Applications web (a number parameter
 * replicaCount, default 2) and db (a secret, mandatory auth.password), and package shop
 * 1.0.0 (web requires db). `profileValues` are the standard profiles' values.
 */
export async function createShop(
  client: KubeClient,
  ns: string,
  options: {
    git: string;
    registry: string;
    profileValues?: object;
    /** Secret keys the Registry's credentials Secret (charts-credentials) holds. */
    registryCredentials?: Record<string, string>;
  },
): Promise<void> {
  const values = options.profileValues ?? { replicaCount: 1 };
  await client.create(namespacesResource, { metadata: { name: ns } });
  await client.create(secretsResource, {
    metadata: { name: gitSecretName, namespace: ns },
    type: "Opaque",
    stringData: { url: options.git, branch: "main" },
  } as KubeObject);
  await client.create(secretsResource, {
    metadata: { name: "db-password", namespace: ns },
    stringData: { password: "s3cret-value" },
  } as KubeObject);
  if (options.registryCredentials) {
    await client.create(secretsResource, {
      metadata: { name: "charts-credentials", namespace: ns },
      stringData: options.registryCredentials,
    } as KubeObject);
  }
  await client.create(RegistryResource, {
    metadata: { name: "charts", namespace: ns },
    spec: {
      type: "oci",
      url: options.registry,
      ...(options.registryCredentials ? { credentialsSecretRef: { name: "charts-credentials" } } : {}),
    },
  } as KubeObject);
  await client.create(
    ApplicationResource,
    app(ns, "web", [{ name: "replicaCount", type: "number", default: "2" }], values),
  );
  await client.create(
    ApplicationResource,
    app(ns, "db", [{ name: "auth.password", type: "string", secret: true, mandatory: true }], values),
  );
  await client.create(DeploymentPackageResource, {
    metadata: { name: "shop-1.0.0", namespace: ns },
    spec: {
      name: "shop",
      version: "1.0.0",
      applications: [
        { name: "web", version: "1.0.0" },
        { name: "db", version: "1.0.0" },
      ],
      dependencies: [{ application: "web", requires: "db" }],
    },
  } as KubeObject);
}

/** An AppDeployment of shop 1.0.0 to tier=store, the db password from Secret db-password. */
export const shopDeployment = (
  ns: string,
  name: string,
  spec: Partial<AppDeployment["spec"]> = {},
): AppDeployment => ({
  metadata: { name, namespace: ns },
  spec: {
    packageRef: { name: "shop", version: "1.0.0" },
    targets: { clusterSelector: { matchLabels: { tier: "store" } } },
    parameters: [
      { application: "db", name: "auth.password", secretKeyRef: { name: "db-password", key: "password" } },
    ],
    ...spec,
  },
});

export async function startDeployFixture(cp: ControlPlane, ns = "retail"): Promise<DeployFixture> {
  installOutpost(cp);
  const fleetCRDs = await installFleetCRDs(cp.management.kubeconfig);
  const kubeConfig = kubeConfigFromFile(cp.management.kubeconfig);
  const client = new KubeClient(kubeConfig);
  const [git, oci] = await Promise.all([startGitServer(), startOciRegistry()]);
  const repo = ns;
  git.createRepo(repo);
  await pushChart(
    oci.url,
    "charts",
    await makeChart({ name: "web", version: "1.0.0", values: { replicaCount: 1 } }),
  );
  await pushChart(
    oci.url,
    "charts",
    await makeChart({ name: "db", version: "1.0.0", values: { auth: { password: "" } } }),
  );
  await createShop(client, ns, { git: `${git.url}/${repo}.git`, registry: `${oci.url}/charts` });

  const fleet = new FleetDriver(client, { namespace: ns });
  await fleet.registerCluster("store-1", { tier: "store" });
  await fleet.registerCluster("store-2", { tier: "store" });
  await fleet.registerCluster("central", { tier: "central" });
  fleet.start(150);
  const catalog = await startOperator("outpost-catalog", kubeConfig, (m) => {
    registerCatalog(m, { scanMode: "off" });
  });
  await packageResolved(client, ns, "shop-1.0.0");
  return {
    ns,
    client,
    git,
    repo,
    oci,
    fleet,
    catalog,
    fleetCRDs,
    async stop() {
      await fleet.stop();
      await catalog.stop();
      await client.close();
      await Promise.all([git.stop(), oci.stop()]);
    },
  };
}

/** Resolves with a DeploymentPackage's content digest once the catalog has resolved it. */
export function packageResolved(
  client: KubeClient,
  ns: string,
  name: string,
  timeoutMs?: number,
): Promise<string> {
  return eventually(
    `package ${name} resolved`,
    async () =>
      (
        await client.get<KubeObject & { status?: { contentDigest?: string } }>(
          DeploymentPackageResource,
          name,
          ns,
        )
      )?.status?.contentDigest,
    timeoutMs,
  );
}

/**
 * Package shop 2.0.0: shop 1.0.0 with `app` at version 2.0.0, which exports `exports`
 * (Application spec.serviceExports). Resolves once the catalog has resolved the package.
 */
export async function shopExporting(
  client: KubeClient,
  ns: string,
  app: "web" | "db",
  exports: { service: string; port: number; displayName?: string }[],
): Promise<void> {
  const v1 = await client.get<KubeObject & { spec: Record<string, unknown> }>(
    ApplicationResource,
    `${app}-1.0.0`,
    ns,
  );
  if (!v1) throw new Error(`Application ${app}-1.0.0 is missing`);
  await client.create(ApplicationResource, {
    metadata: { name: `${app}-2.0.0`, namespace: ns },
    spec: { ...v1.spec, version: "2.0.0", serviceExports: exports },
  } as KubeObject);
  await client.create(DeploymentPackageResource, {
    metadata: { name: "shop-2.0.0", namespace: ns },
    spec: {
      name: "shop",
      version: "2.0.0",
      applications: ["web", "db"].map((name) => ({ name, version: name === app ? "2.0.0" : "1.0.0" })),
      dependencies: [{ application: "web", requires: "db" }],
    },
  } as KubeObject);
  await packageResolved(client, ns, "shop-2.0.0");
}

/** The deployment once its status describes its current generation and satisfies `test`. */
export function waitForDeployment(
  client: KubeClient,
  ns: string,
  name: string,
  what: string,
  test: (d: AppDeployment) => boolean,
  timeoutMs = 30_000,
): Promise<AppDeployment> {
  return eventually(
    `${name}: ${what}`,
    async () => {
      const d = await client.get<AppDeployment>(AppDeploymentResource, name, ns);
      if (d && d.status?.observedGeneration === d.metadata.generation && test(d)) return d;
      // Becomes the timeout's message: what the status said last.
      throw new Error(`status: ${JSON.stringify(d?.status ?? null)}`);
    },
    timeoutMs,
  );
}
