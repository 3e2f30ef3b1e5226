// Base extensions: DeploymentPackages of kind `extension` in outpost-system are copied
// into every project (or those `spec.extensions` names), with the Applications and
// Registries they need; packages annotated `outpost.dev/auto-deploy: "true"` also get an
// AppDeployment to every cluster of the project. Copies are labelled with the package
// they come from; a deployment the project already has is left as the user made it.
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { Application } from "../api/application.generated.ts";
import type { DeploymentPackage } from "../api/deployment-package.generated.ts";
import type { Registry } from "../api/registry.generated.ts";
import type { KubeObject } from "../runtime/client.ts";

export const extensionOfLabel = "outpost.dev/extension-of";
export const autoDeployAnnotation = "outpost.dev/auto-deploy";

export interface ExtensionCatalog {
  packages: DeploymentPackage[];
  applications: Application[];
  registries: Registry[];
}

export interface ExtensionPlan {
  /** Objects to apply into the project's namespace, registries first. */
  objects: { kind: "Registry" | "Application" | "DeploymentPackage"; object: KubeObject }[];
  /** AppDeployments to create when missing. */
  deployments: AppDeployment[];
  /** Packages copied, by spec.name. */
  names: string[];
  /** Extensions that could not be copied, and why. */
  problems: string[];
}

const copyOf = (
  obj: KubeObject & { spec: unknown },
  namespace: string,
  from: string,
): KubeObject & { spec: unknown } => ({
  metadata: {
    name: obj.metadata.name,
    namespace,
    labels: { [extensionOfLabel]: from, "app.kubernetes.io/managed-by": "outpost" },
  },
  spec: structuredClone(obj.spec),
});

/** What a project gets from the extension catalog (`wanted`: package names, default all). */
export function planExtensions(
  catalog: ExtensionCatalog,
  namespace: string,
  wanted?: string[],
): ExtensionPlan {
  const plan: ExtensionPlan = { objects: [], deployments: [], names: [], problems: [] };
  const extensions = catalog.packages.filter(
    (p) => p.spec.kind === "extension" && !p.spec.draft && (!wanted || wanted.includes(p.spec.name)),
  );
  for (const name of wanted ?? []) {
    if (!extensions.some((p) => p.spec.name === name)) {
      plan.problems.push(
        `spec.extensions: ${name} is not a released extension package in the system namespace`,
      );
    }
  }
  const seen = new Set<string>();
  const add = (
    kind: ExtensionPlan["objects"][number]["kind"],
    obj: KubeObject & { spec: unknown },
    from: string,
  ): void => {
    const key = `${kind}/${obj.metadata.name ?? ""}`;
    if (seen.has(key)) return;
    seen.add(key);
    plan.objects.push({ kind, object: copyOf(obj, namespace, from) });
  };
  for (const pkg of extensions) {
    const apps = pkg.spec.applications.map((ref) =>
      catalog.applications.find((a) => a.spec.name === ref.name && a.spec.version === ref.version),
    );
    const missing = pkg.spec.applications.filter((_, i) => !apps[i]).map((a) => `${a.name} ${a.version}`);
    const registries = apps.map((a) =>
      catalog.registries.find((r) => r.metadata.name === a?.spec.chart.registryRef.name),
    );
    const noRegistry = apps
      .filter((a, i) => a && !registries[i])
      .map((a) => a?.spec.chart.registryRef.name ?? "");
    const withCredentials = registries
      .filter((r) => r?.spec.credentialsSecretRef ?? r?.spec.caSecretRef)
      .map((r) => r?.metadata.name ?? "");
    if (missing.length || noRegistry.length || withCredentials.length) {
      plan.problems.push(
        `extension ${pkg.spec.name} ${pkg.spec.version}: ${[
          ...missing.map((m) => `Application ${m} is missing`),
          ...noRegistry.map((r) => `Registry ${r} is missing`),
          ...withCredentials.map(
            (r) =>
              `Registry ${r} uses Secrets, which are not copied into projects (use a public registry for extensions)`,
          ),
        ].join(", ")}`,
      );
      continue;
    }
    for (const r of registries) if (r) add("Registry", r, pkg.spec.name);
    for (const a of apps) if (a) add("Application", a, pkg.spec.name);
    add("DeploymentPackage", pkg, pkg.spec.name);
    plan.names.push(pkg.spec.name);
    if (pkg.metadata.annotations?.[autoDeployAnnotation] === "true") {
      plan.deployments.push({
        metadata: {
          name: pkg.spec.name,
          namespace,
          labels: { [extensionOfLabel]: pkg.spec.name, "app.kubernetes.io/managed-by": "outpost" },
        },
        spec: {
          packageRef: { name: pkg.spec.name, version: pkg.spec.version },
          // Every cluster of the project.
          targets: { clusterSelector: {} },
        },
      });
    }
  }
  return plan;
}
