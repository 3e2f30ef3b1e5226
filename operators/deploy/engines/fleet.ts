// The Fleet delivery engine: one GitRepo per (deployment, application) in the project
// namespace (Fleet's workspace), owned by the AppDeployment, and a Secret beside it with
// the secret parameters (Fleet copies it to the clusters: downstreamResources +
// valuesFrom). Per-cluster state is read from Fleet's BundleDeployments, never from
// labels alone (status.ts fleetStates).
import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type { AppDeployment } from "../../api/app-deployment.generated.ts";
import type { Registry } from "../../api/registry.generated.ts";
import type { KubeObject } from "../../runtime/client.ts";
import { secretsResource } from "../../runtime/core.ts";
import type { Informer } from "../../runtime/informer.ts";
import type { Manager } from "../../runtime/manager.ts";
import {
  applicationLabel,
  BundleDeploymentResource,
  deploymentLabel,
  fleetValueProblems,
  gitRepoError,
  gitRepoFor,
  GitRepoResource,
  helmAccessFor,
  type HelmAccess,
  type GitRepo,
} from "../fleet.ts";
import type { RenderedBundle } from "../render.ts";
import { fleetStates, slimBundleDeployment, type FleetBundleDeployment } from "../status.ts";
import type { Delivery, DeliveryEngine, EngineWatch } from "./engine.ts";
import type { ClusterTarget } from "../../inventory/selector.ts";

type SecretObject = KubeObject & { type?: string; data?: Record<string, string> };

/** Whether `dep` is the controller owner of `obj` (what the operator may change or delete). */
export function ownedBy(obj: KubeObject, dep: AppDeployment): boolean {
  return (obj.metadata.ownerReferences ?? []).some(
    (o) => o.controller === true && o.kind === "AppDeployment" && o.uid === dep.metadata.uid,
  );
}

/** On a secret-values Secret: how many times its values changed (GitRepoOptions.valuesGeneration). */
const valuesGenerationAnnotation = "outpost.dev/values-generation";

function sameGitRepo(have: GitRepo, want: GitRepo): boolean {
  const labels = have.metadata.labels ?? {};
  return (
    isDeepStrictEqual(
      Object.fromEntries(Object.keys(want.spec).map((k) => [k, (have.spec as Record<string, unknown>)[k]])),
      want.spec,
    ) &&
    Object.entries(want.metadata.labels ?? {}).every(([k, v]) => labels[k] === v) &&
    Object.entries(want.metadata.annotations ?? {}).every(([k, v]) => have.metadata.annotations?.[k] === v) &&
    (have.metadata.ownerReferences ?? []).some(
      (o) => o.controller && o.uid === want.metadata.ownerReferences?.[0]?.uid,
    )
  );
}

export class FleetEngine implements DeliveryEngine {
  readonly name = "fleet" as const;
  readonly clusters = "fleet" as const;
  private readonly repos;
  /** Helm Secrets written by this process: `<namespace>/<name>` → content digest and when. */
  private readonly helmWritten = new Map<string, { digest: string; at: number }>();
  private readonly bundleDeployments;

  constructor(private readonly manager: Manager) {
    // Optional: an installation whose projects all use Argo CD need not have Fleet.
    this.repos = manager.informer<GitRepo>(GitRepoResource, { optional: true });
    this.bundleDeployments = manager.informer<FleetBundleDeployment & KubeObject>(BundleDeploymentResource, {
      transform: slimBundleDeployment,
      optional: true,
    });
  }

  unavailable(): string | undefined {
    for (const i of [this.repos, this.bundleDeployments]) {
      if (i.notServed)
        return `Fleet is not installed on the management cluster: the API server does not serve ${i.resource.plural}.${i.resource.group}/${i.resource.version}; install Fleet (its CRDs and controllers), or choose another engine for the project`;
      if (!i.hasSynced) return `waiting for the first list of Fleet's ${i.resource.plural}`;
    }
    return undefined;
  }

  extraFiles(): Record<string, string> {
    return {};
  }

  private owned(dep: AppDeployment): GitRepo[] {
    return this.repos.cache
      .byLabels({ [deploymentLabel]: dep.metadata.name ?? "" })
      .filter((r) => r.metadata.namespace === dep.metadata.namespace && ownedBy(r, dep));
  }

  async apply({ deployment: dep, bundles, git, commit, registries, access }: Delivery): Promise<void> {
    const { client, fieldManager } = this.manager;
    const ns = dep.metadata.namespace ?? "";
    const name = dep.metadata.name ?? "";
    // Secret parameters: a Secret per bundle next to its GitRepo (Fleet copies it).
    // Only Secrets this deployment owns: Fleet's own Secrets carry the bundle labels too.
    const ownSecrets = (
      await client.list<SecretObject>(secretsResource, {
        namespace: ns,
        labelSelector: `${deploymentLabel}=${name},app.kubernetes.io/managed-by=outpost`,
      })
    ).items.filter((o) => ownedBy(o, dep));
    const wanted = new Set<string>();
    // Each change of a Secret's values counts up its generation (valuesGeneration).
    const writeSecret = async (
      b: RenderedBundle,
      secretName: string,
      text: Record<string, string>,
    ): Promise<number> => {
      wanted.add(secretName);
      const data = Object.fromEntries(
        Object.entries(text).map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
      );
      const have = ownSecrets.find((s) => s.metadata.name === secretName);
      const generation = Number(have?.metadata.annotations?.[valuesGenerationAnnotation] ?? "0") || 0;
      if (have && isDeepStrictEqual(have.data, data)) return generation;
      const next = have ? generation + 1 : 0;
      await client.apply(
        secretsResource,
        {
          metadata: {
            name: secretName,
            namespace: ns,
            labels: {
              [deploymentLabel]: name,
              [applicationLabel]: b.application,
              "app.kubernetes.io/managed-by": "outpost",
            },
            annotations: { [valuesGenerationAnnotation]: String(next) },
            ownerReferences: gitRepoFor(dep, b, git, commit).metadata.ownerReferences,
          },
          type: "Opaque",
          data,
        },
        { fieldManager },
      );
      return next;
    };
    // Chart credentials: the helm Secret Fleet's gitjob fetches the chart with, one per
    // Registry, kept equal to the Registry's Secrets on every delivery.
    const helm = new Map<string, HelmAccess>();
    for (const b of bundles) {
      const registry = registries.get(b.chart.registry);
      const h = registry && helmAccessFor(registry, access.get(b.chart.registry));
      if (!registry || !h) continue;
      helm.set(b.bundleName, h);
      await this.writeHelmSecret(registry, h);
    }
    const generations = new Map<string, number>();
    for (const b of bundles) {
      if (b.secret)
        generations.set(
          b.bundleName,
          await writeSecret(b, b.secret.name, { "values.yaml": b.secret.valuesYaml }),
        );
    }
    for (const s of ownSecrets) {
      if (!wanted.has(s.metadata.name ?? "")) await client.delete(secretsResource, s.metadata.name ?? "", ns);
    }

    // GitRepos: one per application with targets; the others go.
    const existing = new Map(this.owned(dep).map((r) => [r.metadata.name ?? "", r]));
    const keep = new Set<string>();
    for (const b of bundles) {
      if (b.targets.length === 0) continue;
      keep.add(b.bundleName);
      const desired = gitRepoFor(dep, b, git, commit, {
        helm: helm.get(b.bundleName),
        valuesGeneration: generations.get(b.bundleName) ?? 0,
      });
      const have = existing.get(b.bundleName);
      if (have && sameGitRepo(have, desired)) continue;
      await client.apply(GitRepoResource, desired, { fieldManager });
    }
    for (const [repoName, r] of existing) {
      if (!keep.has(repoName) && !r.metadata.deletionTimestamp)
        await client.delete(GitRepoResource, repoName, ns);
    }
  }

  /**
   * A Registry's helm Secret, owned by the Registry (it goes with it). Written when its
   * content differs from what this process wrote last, and at least every 10 minutes.
   */
  private async writeHelmSecret(registry: Registry, h: HelmAccess): Promise<void> {
    const ns = registry.metadata.namespace ?? "";
    const key = `${ns}/${h.secretName}`;
    const digest = createHash("sha256")
      .update(JSON.stringify([registry.metadata.uid, h.data]))
      .digest("hex");
    const last = this.helmWritten.get(key);
    if (last?.digest === digest && Date.now() - last.at < 10 * 60_000) return;
    await this.manager.client.apply(
      secretsResource,
      {
        metadata: {
          name: h.secretName,
          namespace: ns,
          labels: {
            "app.kubernetes.io/managed-by": "outpost",
            "outpost.dev/registry": registry.metadata.name ?? "",
          },
          ownerReferences: [
            {
              apiVersion: "catalog.outpost.dev/v1alpha1",
              kind: "Registry",
              name: registry.metadata.name ?? "",
              uid: registry.metadata.uid ?? "",
            },
          ],
        },
        type: "Opaque",
        data: Object.fromEntries(
          Object.entries(h.data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
        ),
      } as KubeObject,
      { fieldManager: this.manager.fieldManager, force: true },
    );
    this.helmWritten.set(key, { digest, at: Date.now() });
  }

  async pause(dep: AppDeployment, paused: boolean): Promise<void> {
    for (const r of this.owned(dep)) {
      if (r.spec.paused === paused) continue;
      await this.manager.client.mergePatch(GitRepoResource, r.metadata.name ?? "", r.metadata.namespace, {
        spec: { paused },
      });
    }
  }

  states(dep: AppDeployment): ReturnType<DeliveryEngine["states"]> {
    return fleetStates(
      this.bundleDeployments.cache.byLabels({
        [deploymentLabel]: dep.metadata.name ?? "",
        "fleet.cattle.io/bundle-namespace": dep.metadata.namespace ?? "",
      }),
      new Map(this.owned(dep).map((r) => [r.metadata.name ?? "", r.spec.forceSyncGeneration ?? 0])),
    );
  }

  problems(dep: AppDeployment): Map<string, string> {
    const out = new Map<string, string>();
    // Fleet's own errors (a clone or a fleet.yaml it refused) name the application.
    for (const r of this.owned(dep)) {
      const error = gitRepoError(r);
      const app = r.metadata.labels?.[applicationLabel];
      if (error && app) out.set(app, `Fleet: ${error}`);
    }
    return out;
  }

  deliveredTargets(dep: AppDeployment): Map<string, ClusterTarget[]> {
    return new Map(this.owned(dep).map((r) => [r.metadata.name ?? "", r.spec.targets]));
  }

  refusals(bundles: RenderedBundle[]): string[] {
    return bundles.flatMap(fleetValueProblems);
  }

  limits(dep: AppDeployment): string[] {
    const rollout = dep.spec.rollout;
    const out: string[] = [];
    // Fleet's default maxUnavailable is 100% (internal/cmd/controller/target/rollout.go):
    // partitions then gate nothing.
    if (rollout?.waves?.length && rollout.maxUnavailable === undefined)
      out.push(
        "spec.rollout.waves: without spec.rollout.maxUnavailable Fleet updates every wave at once (its default is 100%); set maxUnavailable (such as 1 or 10%) for a wave to wait for the one before",
      );
    if (rollout?.waves?.some((w) => w.pauseAfter))
      out.push("spec.rollout.waves[].pauseAfter: the Fleet engine does not pause between waves yet");
    return out;
  }

  holds(dep: AppDeployment): boolean {
    return this.owned(dep).length > 0;
  }

  /** GitRepos first: Fleet uninstalls what they delivered. Read from the API, not the cache. */
  async remove(dep: AppDeployment): Promise<number> {
    const { client } = this.manager;
    const ns = dep.metadata.namespace ?? "";
    if (this.repos.notServed) return 0;
    const repos = (
      await client.list<GitRepo>(GitRepoResource, {
        namespace: ns,
        labelSelector: `${deploymentLabel}=${dep.metadata.name ?? ""}`,
      })
    ).items.filter((r) => ownedBy(r, dep));
    for (const r of repos) {
      if (!r.metadata.deletionTimestamp) await client.delete(GitRepoResource, r.metadata.name ?? "", ns);
    }
    return repos.length;
  }

  watches(): EngineWatch[] {
    const ownerKeys = (o: KubeObject): string[] =>
      (o.metadata.ownerReferences ?? [])
        .filter((r) => r.controller && r.kind === "AppDeployment")
        .map((r) => `${o.metadata.namespace ?? ""}/${r.name}`);
    return [
      { informer: this.repos as unknown as Informer<KubeObject>, map: ownerKeys },
      {
        informer: this.bundleDeployments,
        map: (bd) => {
          const l = bd.metadata.labels ?? {};
          const dep = l[deploymentLabel];
          const ns = l["fleet.cattle.io/bundle-namespace"];
          return dep && ns ? [`${ns}/${dep}`] : [];
        },
      },
    ];
  }
}
