// What each deployment delivers, whichever engine delivers it: the application, the
// namespace and Helm release it is installed as, and the clusters it targets — read back
// from the engines' objects (Fleet GitRepos in the project namespace; Outpost's Argo CD
// ApplicationSets in Argo CD's namespace). Ops, interconnect, the service proxy and the
// CLI ask this, never an engine's objects directly.
import { argocdNamespaceOf } from "../inventory/inventory.ts";
import type { KubeObject } from "../runtime/client.ts";
import type { Informer } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  ApplicationSetResource,
  deliveredFromApplicationSet,
  projectLabel,
  type ApplicationSet,
} from "./argocd.ts";
import type { DeliveredApp } from "./engines/engine.ts";
import {
  applicationLabel,
  deploymentLabel,
  GitRepoResource,
  namespaceAnnotation,
  releaseAnnotation,
  type GitRepo,
} from "./fleet.ts";

/** What an Outpost GitRepo delivers. */
export function deliveredFromGitRepo(r: GitRepo): DeliveredApp | undefined {
  const deployment = r.metadata.labels?.[deploymentLabel];
  const application = r.metadata.labels?.[applicationLabel];
  const namespace = r.metadata.annotations?.[namespaceAnnotation];
  const releaseName = r.metadata.annotations?.[releaseAnnotation];
  if (!deployment || !application || !namespace || !releaseName) return undefined;
  return { deployment, application, namespace, releaseName, targets: r.spec.targets };
}

/** The informer of Outpost's ApplicationSets in Argo CD's namespace (shared with the engine). */
export function outpostApplicationSets(manager: Manager, argocdNamespace: string): Informer<ApplicationSet> {
  return manager.informer<ApplicationSet>(ApplicationSetResource, {
    namespace: argocdNamespace,
    labelSelector: "app.kubernetes.io/managed-by=outpost",
    optional: true,
  });
}

/** A source of delivered applications: its informer, and the project namespace of an object. */
export interface DeliverySource {
  informer: Informer<KubeObject>;
  namespaceOf(obj: KubeObject): string | undefined;
}

export class Deliveries {
  private readonly gitRepos: Informer<GitRepo>;
  private readonly appSets: Informer<ApplicationSet> | undefined;

  constructor(manager: Manager) {
    this.gitRepos = manager.informer<GitRepo>(GitRepoResource, { optional: true });
    const argo = argocdNamespaceOf(manager);
    this.appSets = argo ? outpostApplicationSets(manager, argo) : undefined;
  }

  /** The informers, for controllers to watch (and so to start). */
  get sources(): DeliverySource[] {
    const out: DeliverySource[] = [
      {
        informer: this.gitRepos as unknown as Informer<KubeObject>,
        namespaceOf: (o) => o.metadata.namespace,
      },
    ];
    if (this.appSets) {
      out.push({
        informer: this.appSets as unknown as Informer<KubeObject>,
        namespaceOf: (o) => o.metadata.labels?.[projectLabel],
      });
    }
    return out;
  }

  /** The applications delivered in project `namespace` (by one deployment, if given). */
  apps(namespace: string, deployment?: string): DeliveredApp[] {
    const selector: Record<string, string> = deployment ? { [deploymentLabel]: deployment } : {};
    const fromFleet = this.gitRepos.cache
      .byLabels(selector)
      .filter((r) => r.metadata.namespace === namespace)
      .map(deliveredFromGitRepo);
    const fromArgo = (this.appSets?.cache.byLabels({ ...selector, [projectLabel]: namespace }) ?? []).map(
      deliveredFromApplicationSet,
    );
    return [...fromFleet, ...fromArgo].filter((d): d is DeliveredApp => d !== undefined);
  }
}

const perManager = new WeakMap<Manager, Deliveries>();

/** The Deliveries of an operator process, shared by its controllers. */
export function deliveriesOf(manager: Manager): Deliveries {
  let d = perManager.get(manager);
  if (!d) {
    d = new Deliveries(manager);
    perManager.set(manager, d);
  }
  return d;
}
