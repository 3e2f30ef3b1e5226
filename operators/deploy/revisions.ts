// Revision history of a deployment as ControllerRevisions (the built-in kind Deployments
// and StatefulSets use): one per delivered spec, numbered in delivery order. Delivering a
// spec that has a revision already (a rollback) renumbers that revision as the newest,
// like a Deployment's rollout history. Pure functions; the reconciler does the I/O.
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import type { KubeObject } from "../runtime/client.ts";
import { deploymentLabel } from "./fleet.ts";
import { dnsName } from "../runtime/names.ts";

export const revisionHashLabel = "outpost.dev/revision-hash";
export const commitAnnotation = "outpost.dev/commit";
export const packageDigestAnnotation = "outpost.dev/package-digest";
export const defaultRevisionHistoryLimit = 10;

export interface ControllerRevision extends KubeObject {
  revision: number;
  data: { spec: AppDeployment["spec"] };
}

/** The spec a revision stores: all but `suspend` (pausing is not a new revision). */
export function deliveredSpec(spec: AppDeployment["spec"]): AppDeployment["spec"] {
  const { suspend: _suspend, ...rest } = structuredClone(spec);
  return rest;
}

export function revisionName(deployment: string, hash: string): string {
  return dnsName(`${deployment}-${hash}`, 253);
}

/** The revisions of a deployment, oldest first. */
export function sortRevisions(revisions: ControllerRevision[]): ControllerRevision[] {
  return [...revisions].sort((a, b) => a.revision - b.revision);
}

export interface RevisionPlan {
  /** The revision of the delivered spec. */
  revision: ControllerRevision;
  /** Create it, replace it (renumbered or re-annotated), or leave it. */
  write: "create" | "replace" | "none";
  /** Revisions beyond the history limit, oldest first. */
  prune: string[];
}

/**
 * What to write after delivering `dep`'s spec (hash `hash`): its revision, numbered one
 * past the newest unless it is the newest already, and the old ones over the limit.
 */
export function planRevision(
  dep: AppDeployment,
  hash: string,
  existing: ControllerRevision[],
  annotations: Record<string, string>,
): RevisionPlan {
  const name = dep.metadata.name ?? "";
  const sorted = sortRevisions(existing);
  const newest = sorted.at(-1);
  const mine = sorted.find((r) => r.metadata.labels?.[revisionHashLabel] === hash);
  const limit = Math.max(1, dep.spec.revisionHistoryLimit ?? defaultRevisionHistoryLimit);
  const ownName = mine?.metadata.name ?? revisionName(name, hash);
  const others = sorted.filter((r) => r.metadata.name !== ownName);
  const prune = others.slice(0, Math.max(0, others.length - (limit - 1))).map((r) => r.metadata.name ?? "");
  const isNewest = mine !== undefined && mine === newest;
  const annotated =
    mine !== undefined && Object.entries(annotations).every(([k, v]) => mine.metadata.annotations?.[k] === v);
  const revision: ControllerRevision = {
    apiVersion: "apps/v1",
    kind: "ControllerRevision",
    metadata: {
      name: ownName,
      namespace: dep.metadata.namespace,
      labels: {
        [deploymentLabel]: name,
        [revisionHashLabel]: hash,
        "app.kubernetes.io/managed-by": "outpost",
      },
      annotations: { ...mine?.metadata.annotations, ...annotations },
      ownerReferences: [
        {
          apiVersion: "deploy.outpost.dev/v1alpha1",
          kind: "AppDeployment",
          name,
          uid: dep.metadata.uid ?? "",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      ...(mine?.metadata.resourceVersion ? { resourceVersion: mine.metadata.resourceVersion } : {}),
    },
    revision: isNewest ? mine.revision : (newest?.revision ?? 0) + 1,
    // A revision's data is immutable: renumbering keeps it; a new one stores the spec
    // without `suspend`, which the hash leaves out too.
    data: mine?.data ?? { spec: deliveredSpec(dep.spec) },
  };
  return { revision, write: !mine ? "create" : isNewest && annotated ? "none" : "replace", prune };
}
