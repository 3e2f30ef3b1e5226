// The delivery-engine interface: what the AppDeployment reconciler asks of the GitOps
// engine that takes a rendered, committed tree to the clusters — Rancher Fleet (pull
// agents, GitRepos) or Argo CD (push, ApplicationSets). The reconciler renders, guards
// the targets, commits to Git and records revisions; an engine renders its own objects
// for that commit, applies them, reports per-cluster state, pauses and deletes.
import type { AppDeployment } from "../../api/app-deployment.generated.ts";
import type { Registry } from "../../api/registry.generated.ts";
import type { RegistryAccess } from "../../catalog/registry-client.ts";
import type { KubeObject } from "../../runtime/client.ts";
import type { Informer } from "../../runtime/informer.ts";
import type { ClusterSourceName } from "../../inventory/inventory.ts";
import type { GitTargetRepo } from "../fleet.ts";
import type { RenderedBundle } from "../render.ts";
import type { EngineStates } from "../status.ts";
import type { ClusterTarget } from "../../inventory/selector.ts";

export const engineNames = ["fleet", "argocd"] as const;
export type EngineName = (typeof engineNames)[number];

/** One delivery: the rendered bundles (targets as the safety rail decided) at one commit. */
export interface Delivery {
  deployment: AppDeployment;
  bundles: RenderedBundle[];
  git: GitTargetRepo;
  /** Every engine object is pinned to this commit. */
  commit: string;
  /** The namespace's Registries, by name (chart repositories and their credentials). */
  registries: Map<string, Registry>;
  /** The credentials and CA of the Registries the bundles' charts come from, by name. */
  access: Map<string, RegistryAccess>;
}

/** A watch of an engine object kind: changes requeue the deployments `map` names. */
export interface EngineWatch {
  informer: Informer<KubeObject>;
  map: (obj: KubeObject) => string[];
  update?: (obj: KubeObject, old: KubeObject) => boolean;
}

export interface DeliveryEngine {
  readonly name: EngineName;
  /** The inventory registration whose clusters this engine delivers to. */
  readonly clusters: ClusterSourceName;
  /**
   * Undefined when the engine can deliver; otherwise what is missing (its API not served,
   * its namespace absent), said so that an administrator knows what to install.
   */
  unavailable(): string | undefined;
  /** Files the engine needs next to a bundle's fleet.yaml and values.yaml (paths in its folder). */
  extraFiles(bundle: RenderedBundle): Record<string, string>;
  /** Writes the delivery's engine objects, and removes those of the deployment it no longer has. */
  apply(delivery: Delivery): Promise<void>;
  /** Holds (suspend, awaiting approval) or releases what was delivered; nothing new is applied. */
  pause(deployment: AppDeployment, paused: boolean): Promise<void>;
  /** The per-cluster state of the deployment's applications, for status.ts's aggregate. */
  states(deployment: AppDeployment, commit: string | undefined): EngineStates;
  /** The engine's own errors per application (a clone it failed, a spec it refused). */
  problems(deployment: AppDeployment): Map<string, string>;
  /** The targets each bundle has now, by bundle name (what a held target change keeps). */
  deliveredTargets(deployment: AppDeployment): Map<string, ClusterTarget[]>;
  /** Whether the deployment has any engine object (it was delivered by this engine). */
  holds(deployment: AppDeployment): boolean;
  /** Deletes the deployment's engine objects; resolves with how many are still going away. */
  remove(deployment: AppDeployment): Promise<number>;
  /**
   * What of the rendered bundles this engine would not deliver as written (a value it would
   * rewrite, say), each said with the field to change: the deployment is refused before
   * anything is committed.
   */
  refusals(bundles: RenderedBundle[]): string[];
  /** What of the deployment's spec this engine does not apply, said so (never silently dropped). */
  limits(deployment: AppDeployment): string[];
  /** Engine object kinds the deployment controller watches. */
  watches(): EngineWatch[];
}
