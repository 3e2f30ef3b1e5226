// The demo's story on a management cluster running Outpost: apply examples/, register
// the edge clusters with the project's engine (local fleet only), follow the objects until
// the example deployment is delivered (on the local fleet: running everywhere) -
// approving it as the project's approver - and summarize.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { deploymentStatus, formatStatus, approve } from "../../cli/deploy.ts";
import type { AppDeployment } from "../../operators/api/app-deployment.generated.ts";
import type { Network } from "../../operators/api/network.generated.ts";
import * as api from "../../operators/api/resources.generated.ts";
import { projectEngine } from "../../cli/clusters.ts";
import {
  ApplicationSetResource,
  ArgoApplicationResource,
  type ApplicationSet,
  type ArgoApplication,
} from "../../operators/deploy/argocd.ts";
import { GitRepoResource, deploymentLabel, type GitRepo } from "../../operators/deploy/fleet.ts";
import { registrationObjects } from "../../operators/inventory/register.ts";
import { getCondition, type ConditionedStatus } from "../../operators/runtime/conditions.ts";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { configMapsResource, secretsResource } from "../../operators/runtime/core.ts";
import { repoRoot } from "./layout.ts";

export const examplesDir = join(repoRoot, "examples");
const fieldManager = "outpost-demo";

/** Where each kind in examples/ is served. */
const resourceByKind: Record<string, ResourceType> = Object.fromEntries(
  [...Object.values(api), secretsResource, configMapsResource].map((r) => [r.kind, r]),
);

export interface ExampleObject extends KubeObject {
  kind: string;
  spec?: Record<string, unknown>;
}

/**
 * The objects of examples/*.yaml in file order. With `chartsUrl`, Registry "bitnami" is
 * pointed at it (the local demo's registry) instead of the internet.
 */
export function exampleObjects(files: { name: string; text: string }[], chartsUrl?: string): ExampleObject[] {
  const objects: ExampleObject[] = [];
  for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const doc of parseAllDocuments(f.text)) {
      if (doc.errors.length > 0) throw new Error(`${f.name}: ${doc.errors[0]?.message ?? "invalid YAML"}`);
      const o = doc.toJS() as ExampleObject | null;
      if (!o) continue;
      if (!resourceByKind[o.kind]) throw new Error(`${f.name}: kind ${o.kind} is not one the demo applies`);
      if (chartsUrl && o.kind === "Registry" && o.metadata.name === "bitnami") {
        o.spec = { ...o.spec, url: chartsUrl };
      }
      objects.push(o);
    }
  }
  return objects;
}

export function readExamples(chartsUrl?: string): ExampleObject[] {
  const files = readdirSync(examplesDir)
    .filter((f) => f.endsWith(".yaml"))
    .map((name) => ({ name, text: readFileSync(join(examplesDir, name), "utf8") }));
  return exampleObjects(files, chartsUrl);
}

interface WithStatus extends KubeObject {
  status?: ConditionedStatus;
}

/**
 * Whether an object is Ready, and why not: the reason and message of its Ready condition.
 * `stalled`: the operator gave up until the object (or what it names) changes.
 */
export function readiness(o: WithStatus | undefined): { ready: boolean; stalled?: boolean; text: string } {
  if (!o) return { ready: false, text: "not created yet" };
  const c = getCondition(o.status?.conditions, "Ready");
  if (!c || o.status?.observedGeneration !== o.metadata.generation)
    return { ready: false, text: "waiting for the operator" };
  if (c.status === "True") return { ready: true, text: c.message ? `Ready: ${c.message}` : "Ready" };
  const stalled = getCondition(o.status?.conditions, "Stalled")?.status === "True";
  return { ready: false, stalled, text: `${c.reason}: ${c.message}` };
}

/**
 * Why the deployment cannot go on without someone changing it, or undefined. Awaiting
 * approval is Stalled too by kstatus's rules (it waits for a person), but approving is
 * the demo's part, so it does not count.
 */
export function deploymentStall(d: AppDeployment | undefined): string | undefined {
  const r = readiness(d);
  return r.stalled && d?.status?.phase !== "AwaitingApproval" ? r.text : undefined;
}

/** Whether the deployment's current spec is delivered: committed to Git and its GitRepos written. */
export function delivered(d: AppDeployment | undefined): boolean {
  if (!d?.status || d.status.observedGeneration !== d.metadata.generation) return false;
  return getCondition(d.status.conditions, "Delivered")?.status === "True" && !!d.status.commit;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Story {
  client: KubeClient;
  /** Whose approval the example needs: the Project's approver (impersonated). */
  approver: string;
  /**
   * Local fleet: the edges to register with the project's engine (with the engine's and
   * Outpost's kubeconfigs), and the engine of projects that name none.
   */
  register?: {
    name: string;
    labels: Record<string, string>;
    kubeconfigs: { engine: string; outpost: string };
  }[];
  defaultEngine?: "fleet" | "argocd";
  /** Argo CD's namespace. */
  argocdNamespace?: string;
  /** Wait until every cluster runs the deployment (Running), not only until it is delivered. */
  untilRunning?: boolean;
  chartsUrl?: string;
  progress: (line: string) => void;
  timeoutMs: number;
}

export interface Delivered {
  deployment: AppDeployment;
  /** The engine objects: Fleet GitRepos, or Argo CD ApplicationSets and their Applications. */
  gitRepos: GitRepo[];
  appSets: ApplicationSet[];
  argoApplications: ArgoApplication[];
  network?: Network;
  statusText: string;
}

export async function deliverExamples(story: Story): Promise<Delivered> {
  const { client, progress } = story;
  const deadline = Date.now() + story.timeoutMs;
  const objects = readExamples(story.chartsUrl);
  const apply = async (o: ExampleObject): Promise<void> => {
    const r = resourceByKind[o.kind];
    if (!r) throw new Error(`no resource for ${o.kind}`);
    await client.apply(r, o, { fieldManager, force: true });
  };
  /** Polls until `poll` is done; prints its status whenever that changes. One read a poll. */
  const waitFor = async <T>(what: string, poll: () => Promise<{ done?: T; status?: string }>): Promise<T> => {
    let said = "";
    for (;;) {
      const { done, status } = await poll();
      if (done !== undefined) return done;
      if (status && status !== said) progress(`  ${what}: ${status}`);
      said = status ?? said;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}${said ? ` (last: ${said})` : ""}`);
      await sleep(500);
    }
  };

  /** Waits until the object is Ready; a Stalled one fails the demo with its message. */
  const waitReady = async (what: string, get: () => Promise<WithStatus | undefined>): Promise<WithStatus> => {
    const o = await waitFor(what, async () => {
      const got = await get();
      const r = readiness(got);
      if (r.stalled) throw new Error(`${what} is stalled - ${r.text}`);
      return r.ready ? { done: got } : { status: r.text };
    });
    progress(`${what}: ${readiness(o).text}`);
    return o;
  };

  const projects = objects.filter((o) => o.kind === "Project");
  for (const p of projects) await apply(p);
  const ns = projects[0]?.metadata.name ?? "retail";
  progress(`applied Project ${ns}`);
  await waitReady(`Project ${ns}`, () => client.get<WithStatus>(api.ProjectResource, ns));

  const engine = await projectEngine(client, ns, story.defaultEngine ?? "fleet");
  for (const c of story.register ?? []) {
    const objects = registrationObjects({
      namespace: ns,
      name: c.name,
      labels: c.labels,
      engine,
      engineKubeconfig: c.kubeconfigs.engine,
      outpostKubeconfig: c.kubeconfigs.outpost,
      argocdNamespace: story.argocdNamespace,
    });
    for (const { resource, object } of objects)
      await client.apply(resource, object, { fieldManager, force: true });
    progress(
      `registered ${c.name} with ${engine === "argocd" ? "Argo CD" : "Fleet"} (${Object.entries(c.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")})`,
    );
  }

  for (const o of objects.filter((o) => o.kind !== "Project")) await apply(o);
  progress(`applied ${objects.length - projects.length} objects of examples/ into ${ns}`);

  for (const [kind, resource] of [
    ["Registry", api.RegistryResource],
    ["Application", api.ApplicationResource],
    ["DeploymentPackage", api.DeploymentPackageResource],
  ] as const) {
    for (const o of objects.filter((x) => x.kind === kind)) {
      const name = o.metadata.name ?? "";
      await waitReady(`${kind} ${name}`, () => client.get<WithStatus>(resource, name, ns));
    }
  }

  const depName = objects.find((o) => o.kind === "AppDeployment")?.metadata.name ?? "";
  let approved = false;
  const dep = await waitFor(`AppDeployment ${depName}`, async () => {
    const d = await client.get<AppDeployment>(api.AppDeploymentResource, depName, ns);
    const stall = deploymentStall(d);
    if (stall) throw new Error(`AppDeployment ${depName} is stalled - ${stall}`);
    if (
      !approved &&
      d?.status?.phase === "AwaitingApproval" &&
      d.status.observedGeneration === d.metadata.generation
    ) {
      progress(
        `AppDeployment ${depName} awaits approval; approving as ${story.approver} (the project's approver role)`,
      );
      const asApprover = new KubeClient(client.kubeConfig, { impersonate: { user: story.approver } });
      try {
        const a = await approve(asApprover, ns, depName, "approved by make demo");
        progress(`  ${a.created ? "created" : "found"} Approval ${a.name}`);
      } finally {
        await asApprover.close();
      }
      approved = true;
    }
    if (delivered(d) && (!story.untilRunning || d?.status?.phase === "Running")) return { done: d };
    return {
      status: d?.status?.phase
        ? `${d.status.phase}: ${getCondition(d.status.conditions, "Ready")?.message ?? ""}`
        : "waiting for the operator",
    };
  });
  progress(
    `AppDeployment ${depName}: ${story.untilRunning ? "running" : "delivered"} revision ${dep.status?.revision ?? "?"} (commit ${dep.status?.commit?.slice(0, 12) ?? "?"})${dep.status?.engine ? `, delivered by ${dep.status.engine === "argocd" ? "Argo CD" : "Fleet"}` : ""}`,
  );

  const selector = `${deploymentLabel}=${depName}`;
  const argoNs = story.argocdNamespace ?? "argocd";
  const inArgo = `outpost.dev/project=${ns},${selector}`;
  const [gitRepos, appSets, argoApplications] =
    dep.status?.engine === "argocd"
      ? [
          [],
          (
            await client.list<ApplicationSet>(ApplicationSetResource, {
              namespace: argoNs,
              labelSelector: inArgo,
            })
          ).items,
          (
            await client.list<ArgoApplication>(ArgoApplicationResource, {
              namespace: argoNs,
              labelSelector: inArgo,
            })
          ).items,
        ]
      : [
          (await client.list<GitRepo>(GitRepoResource, { namespace: ns, labelSelector: selector })).items,
          [],
          [],
        ];
  const networkName = objects.find((o) => o.kind === "Network")?.metadata.name;
  let network: Network | undefined;
  if (networkName) {
    network = await waitFor(`Network ${networkName}`, async () => {
      const n = await client.get<Network>(api.NetworkResource, networkName, ns);
      return n?.status?.observedGeneration === n?.metadata.generation && n?.status?.summary
        ? { done: n }
        : {};
    });
  }
  const report = await deploymentStatus(client, ns, depName);
  return { deployment: dep, gitRepos, appSets, argoApplications, network, statusText: formatStatus(report) };
}
