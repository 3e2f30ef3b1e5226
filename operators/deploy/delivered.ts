// What each deployment delivers, whichever engine delivers it: the application, the
// namespace and Helm release it is installed as, and the clusters it targets — read back
// from the engines' objects (Fleet GitRepos in the project namespace; Outpost's Argo CD
// ApplicationSets in Argo CD's namespace). Ops, interconnect, the service proxy and the
// CLI ask this, never an engine's objects directly.
import { argocdNamespaceOf } from "../inventory/inventory.ts";
import type { ClusterTarget } from "../inventory/selector.ts";
import type { KubeObject, ResourceType } from "../runtime/client.ts";
import type { Informer } from "../runtime/informer.ts";
import type { Manager } from "../runtime/manager.ts";
import {
  ApplicationSetResource,
  argoApplicationName,
  deliveredFromApplicationSet,
  type ApplicationSet,
} from "./argocd.ts";
import {
  applicationLabel,
  deploymentLabel,
  GitRepoResource,
  namespaceAnnotation,
  releaseAnnotation,
  type GitRepo,
} from "./fleet.ts";
import { projectLabel } from "../inventory/registrations.ts";

/** An application a deployment delivers, as ops, interconnect and the proxy need it. */
export interface DeliveredApp {
  deployment: string;
  application: string;
  /** The namespace it is installed in on its clusters. */
  namespace: string;
  /** The Helm release name it is installed as. */
  releaseName: string;
  /** The clusters it is delivered to. */
  targets: ClusterTarget[];
  /** Argo CD: the ApplicationSet generating its Applications (argoApplicationName). */
  argoApplicationSet?: string;
}

/**
 * The engine's own application for `d` on `cluster`, where the engine has one per cluster
 * (Argo CD: the Application its ApplicationSet generates, which Argo CD's tracking
 * annotation names); undefined for Fleet, whose agent installs Helm releases.
 */
export function engineApplicationOn(d: DeliveredApp, cluster: string): string | undefined {
  return d.argoApplicationSet === undefined ? undefined : argoApplicationName(d.argoApplicationSet, cluster);
}

/** What an Outpost GitRepo delivers. */
export function deliveredFromGitRepo(r: GitRepo): DeliveredApp | undefined {
  const deployment = r.metadata.labels?.[deploymentLabel];
  const application = r.metadata.labels?.[applicationLabel];
  const namespace = r.metadata.annotations?.[namespaceAnnotation];
  const releaseName = r.metadata.annotations?.[releaseAnnotation];
  if (!deployment || !application || !namespace || !releaseName) return undefined;
  return { deployment, application, namespace, releaseName, targets: r.spec.targets };
}

/** Makes an informer: a Manager's (shared by its controllers), or a process's own. */
export type InformerFactory = <T extends KubeObject>(
  r: ResourceType,
  options: { namespace?: string; labelSelector?: string; optional?: boolean },
) => Informer<T>;

const appSetOptions = (argocdNamespace: string) => ({
  namespace: argocdNamespace,
  labelSelector: "app.kubernetes.io/managed-by=outpost",
  optional: true,
});

/** The informer of Outpost's ApplicationSets in Argo CD's namespace (shared with the engine). */
export function outpostApplicationSets(manager: Manager, argocdNamespace: string): Informer<ApplicationSet> {
  return manager.informer<ApplicationSet>(ApplicationSetResource, appSetOptions(argocdNamespace));
}

/** A source of delivered applications: its informer, and the project namespace of an object. */
export interface DeliverySource {
  informer: Informer<KubeObject>;
  namespaceOf(obj: KubeObject): string | undefined;
  /** The deployment that delivers the object. */
  deploymentOf(obj: KubeObject): string | undefined;
}

const deploymentOf = (o: KubeObject): string | undefined => o.metadata.labels?.[deploymentLabel];

export class Deliveries {
  private readonly gitRepos: Informer<GitRepo>;
  private readonly appSets: Informer<ApplicationSet> | undefined;

  /** Fleet's GitRepos in every namespace; with Argo CD, Outpost's ApplicationSets in its namespace. */
  constructor(informer: InformerFactory, argocdNamespace?: string) {
    // Both kinds are optional: an installation may run one engine only.
    this.gitRepos = informer<GitRepo>(GitRepoResource, { optional: true });
    this.appSets = argocdNamespace
      ? informer<ApplicationSet>(ApplicationSetResource, appSetOptions(argocdNamespace))
      : undefined;
  }

  /** The informers, for controllers to watch (and so to start). */
  get sources(): DeliverySource[] {
    const out: DeliverySource[] = [
      {
        informer: this.gitRepos as unknown as Informer<KubeObject>,
        namespaceOf: (o) => o.metadata.namespace,
        deploymentOf,
      },
    ];
    if (this.appSets) {
      out.push({
        informer: this.appSets as unknown as Informer<KubeObject>,
        namespaceOf: (o) => o.metadata.labels?.[projectLabel],
        deploymentOf,
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
    d = new Deliveries((r, o) => manager.informer(r, o), argocdNamespaceOf(manager));
    perManager.set(manager, d);
  }
  return d;
}
