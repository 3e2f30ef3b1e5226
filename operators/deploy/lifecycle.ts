// Lifecycle decisions of a deployment, as pure functions: the revision hash an Approval
// names, and the safety rail against mass removal on a bad inventory read.
import type { AppDeployment } from "../api/app-deployment.generated.ts";
import { sha256 } from "../catalog/digest.ts";

/**
 * The hash of the spec an Approval approves. Any edit changes it (and so needs a new
 * Approval) except pausing and resuming delivery, which changes nothing delivered.
 */
export function revisionHash(spec: AppDeployment["spec"]): string {
  const { suspend: _suspend, ...delivered } = spec;
  return sha256(delivered).slice("sha256:".length, "sha256:".length + 16);
}

export interface DropGuard {
  /** Clusters matched at the last delivery. */
  previous: number;
  /** Clusters matched now. */
  current: number;
  /** When the current drop was first seen (ISO time), if a drop is being held. */
  heldSince?: string;
  now: Date;
  /** How long a large drop must persist before it is accepted. */
  holdMs: number;
}

export type DropDecision =
  | { action: "deliver" }
  | { action: "hold"; since: string; message: string }
  | { action: "refuse"; message: string };

/**
 * A failed or empty cluster list never removes targets; a drop of more than half the
 * matched clusters in one step is held until it has persisted for `holdMs`.
 */
export function guardDrop(g: DropGuard): DropDecision {
  if (g.previous > 0 && g.current === 0) {
    return {
      action: "refuse",
      message: `no cluster matches any more (${g.previous} did): targets are kept; check the Fleet clusters and the selector`,
    };
  }
  if (g.previous > 0 && g.current < g.previous / 2) {
    const since = g.heldSince ?? g.now.toISOString();
    if (g.now.getTime() - Date.parse(since) < g.holdMs) {
      return {
        action: "hold",
        since,
        message: `the matched clusters dropped from ${g.previous} to ${g.current}; holding the change until the drop persists for ${Math.round(g.holdMs / 1000)}s`,
      };
    }
  }
  return { action: "deliver" };
}
