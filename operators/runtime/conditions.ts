// Status conditions that follow kstatus (sigs.k8s.io/cli-utils/pkg/kstatus): `Ready` is
// the summary, `Reconciling` is True while work is under way, `Stalled` is True only for
// what retrying cannot fix. Every condition carries the generation it describes, and
// lastTransitionTime changes only when the status does.

export type ConditionStatus = "True" | "False" | "Unknown";

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface ConditionedStatus {
  observedGeneration?: number;
  conditions?: Condition[];
}

/** Condition messages are for people: one paragraph, bounded. */
export const maxMessageLength = 1024;

export function trimMessage(message: string): string {
  const flat = message.replace(/\s+/g, " ").trim();
  return flat.length <= maxMessageLength ? flat : `${flat.slice(0, maxMessageLength - 1)}…`;
}

export function getCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === "True";
}

/** Returns a new list with `next` set; lastTransitionTime is kept unless the status changed. */
export function setCondition(
  conditions: Condition[] | undefined,
  next: Omit<Condition, "lastTransitionTime">,
  now: Date = new Date(),
): Condition[] {
  const list = conditions ?? [];
  const old = getCondition(list, next.type);
  const condition: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: trimMessage(next.message),
    ...(next.observedGeneration !== undefined ? { observedGeneration: next.observedGeneration } : {}),
    lastTransitionTime:
      old?.status === next.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, "Z"),
  };
  return old ? list.map((c) => (c.type === next.type ? condition : c)) : [...list, condition];
}

export function removeCondition(conditions: Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/**
 * Summarizes the outcome of a reconcile into kstatus conditions for `generation`:
 * - ready: Ready=True, no Reconciling, no Stalled;
 * - progressing: Reconciling=True, Ready=Unknown (or False with a reason);
 * - failed (retrying): Ready=False, Reconciling=True: the error may go away;
 * - stalled: Stalled=True, Ready=False, no Reconciling: the user must change something.
 */
export function summarize(
  status: ConditionedStatus,
  generation: number | undefined,
  outcome:
    | { kind: "ready"; reason?: string; message: string }
    | { kind: "progressing"; reason: string; message: string }
    | { kind: "failed"; reason: string; message: string }
    | { kind: "stalled"; reason: string; message: string },
  now: Date = new Date(),
): ConditionedStatus {
  let conditions = status.conditions ?? [];
  const g = generation !== undefined ? { observedGeneration: generation } : {};
  const reason = outcome.reason ?? "Succeeded";
  // Per outcome: the Ready status, and the condition that accompanies it (the other goes).
  const shape = {
    ready: { ready: "True", extra: undefined },
    progressing: { ready: "Unknown", extra: { type: "Reconciling", reason } },
    failed: { ready: "False", extra: { type: "Reconciling", reason: "Retrying" } },
    stalled: { ready: "False", extra: { type: "Stalled", reason } },
  } as const satisfies Record<
    typeof outcome.kind,
    { ready: ConditionStatus; extra?: { type: string; reason: string } }
  >;
  const { ready, extra } = shape[outcome.kind];
  for (const type of ["Reconciling", "Stalled"]) {
    if (type !== extra?.type) conditions = removeCondition(conditions, type);
  }
  if (extra) {
    conditions = setCondition(
      conditions,
      { type: extra.type, status: "True", reason: extra.reason, message: outcome.message, ...g },
      now,
    );
  }
  conditions = setCondition(
    conditions,
    { type: "Ready", status: ready, reason, message: outcome.message, ...g },
    now,
  );
  return { ...status, observedGeneration: generation, conditions };
}

export type KStatus = "InProgress" | "Failed" | "Current" | "Terminating";

/** The kstatus of a custom resource, computed as cli-utils does for conditioned kinds. */
export function kstatus(obj: {
  metadata: { generation?: number; deletionTimestamp?: string };
  status?: ConditionedStatus;
}): KStatus {
  if (obj.metadata.deletionTimestamp) return "Terminating";
  const status = obj.status;
  if (obj.metadata.generation !== undefined) {
    if (status?.observedGeneration === undefined || status.observedGeneration < obj.metadata.generation) {
      return "InProgress";
    }
  }
  const conditions = status?.conditions;
  if (isTrue(conditions, "Reconciling")) return "InProgress";
  if (isTrue(conditions, "Stalled")) return "Failed";
  const ready = getCondition(conditions, "Ready");
  if (ready && ready.status !== "True") return "InProgress";
  return "Current";
}
