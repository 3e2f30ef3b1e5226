// The ResourceAction reconciler: one restart, start, stop or delete of a workload or
// KubeVirt virtual machine of a deployment, on one edge cluster, at most once.
//
// Before anything is done the target must belong to the deployment on that cluster: the
// cluster is one the deployment's GitRepos target, and the target (or a controller above
// it: ReplicaSet → Deployment, VirtualMachineInstance → VirtualMachine…) carries the Helm
// release annotations of one of the deployment's applications there. Otherwise the action
// fails (Stalled) and nothing on the cluster is touched.
//
// At most once: the phase turns Running — with the target's uid — before the call, with
// the status write guarded by the object's resourceVersion. Each call is idempotent for
// that uid (a pod or object deleted only while it is still that uid; the rollout restart
// annotation set to the action's start time; a VM started or stopped that already is), so
// a crash after the call and before the status write repeats nothing — except a VM
// restart, which is not repeated: it fails, saying so.
import type { ResourceAction } from "../api/resource-action.generated.ts";
import { AppDeploymentResource, ResourceActionResource } from "../api/resources.generated.ts";
import { deliveriesOf } from "../deploy/delivered.ts";
import { inventoryOf } from "../inventory/inventory.ts";
import { EdgeUnreachableError, type EdgeClusters } from "../edge/edge-clusters.ts";
import { ApiError, type KubeClient, type KubeObject } from "../runtime/client.ts";
import { removeCondition, setCondition, summarize } from "../runtime/conditions.ts";
import type { Request, Result } from "../runtime/controller.ts";
import type { Manager } from "../runtime/manager.ts";
import { patchStatus } from "../runtime/reconcile.ts";
import {
  controllerOf,
  edgeKinds,
  installedOn,
  kubevirtActionPath,
  owningRelease,
  restartedAtAnnotation,
  type Owned,
} from "./targets.ts";

type Status = NonNullable<ResourceAction["status"]>;

/** How long an action waits for an unreachable cluster before it fails. */
const defaultDeadlineMs = 10 * 60_000;

class Refused extends Error {
  override name = "Refused";
}

export class ResourceActionReconciler {
  constructor(
    private readonly manager: Manager,
    private readonly edges: EdgeClusters,
    private readonly options: { deadlineMs?: number; now?: () => Date } = {},
  ) {}

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  async reconcile(req: Request): Promise<Result | undefined> {
    const { client } = this.manager;
    const action = await client.get<ResourceAction>(ResourceActionResource, req.name, req.namespace);
    if (!action || action.metadata.deletionTimestamp) return undefined;
    const phase = action.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") return this.expire(action);

    const deadline =
      Date.parse(action.metadata.creationTimestamp ?? this.now().toISOString()) +
      (this.options.deadlineMs ?? defaultDeadlineMs);
    try {
      const chain = await this.check(action);
      return await this.execute(action, chain);
    } catch (err) {
      if (err instanceof Refused) return this.finish(action, "Failed", err.message, "Refused");
      if (err instanceof EdgeUnreachableError) {
        if (this.now().getTime() > deadline) {
          return this.finish(
            action,
            "Failed",
            `${err.message}; gave up after waiting ${this.deadlineText()}`,
            "Unreachable",
          );
        }
        await this.write(action, {
          ...this.base(action),
          phase: phase ?? "Pending",
          message: `waiting for the cluster: ${err.message}`,
          conditions: setCondition(action.status?.conditions, {
            type: "Unreachable",
            status: "True",
            reason: err.reason,
            message: err.message,
          }),
        });
        return { requeueAfterMs: 5_000 };
      }
      throw err;
    }
  }

  private deadlineText(): string {
    return `${Math.round((this.options.deadlineMs ?? defaultDeadlineMs) / 60_000)}m`;
  }

  private base(action: ResourceAction): Status {
    return { ...(action.status ?? {}), observedGeneration: action.metadata.generation };
  }

  /** Whether the target belongs to the deployment on the cluster; returns it and its owners. */
  private async check(action: ResourceAction): Promise<Owned[]> {
    const ns = action.metadata.namespace ?? "";
    const { deploymentRef, cluster, target } = action.spec;
    const dep = await this.manager.client.get(AppDeploymentResource, deploymentRef.name, ns);
    if (!dep) throw new Refused(`AppDeployment ${deploymentRef.name} does not exist in namespace ${ns}`);
    const delivered = deliveriesOf(this.manager).apps(ns, deploymentRef.name);
    const clusters = inventoryOf(this.manager).clusters(ns);
    if (!clusters.some((c) => c.metadata.name === cluster)) {
      throw new Refused(`cluster ${cluster} is not a cluster of namespace ${ns}`);
    }
    const installed = installedOn(delivered, clusters, cluster);
    if (installed.releases.length === 0) {
      throw new Refused(`deployment ${deploymentRef.name} does not run on cluster ${cluster}`);
    }
    const namespaces = [...new Set(installed.releases.map((r) => r.namespace))].sort();
    if (!namespaces.includes(target.namespace)) {
      throw new Refused(
        `namespace ${target.namespace} is not one of deployment ${deploymentRef.name} on ${cluster} (its applications run in ${namespaces.join(", ")})`,
      );
    }
    return this.edges.call(ns, cluster, async (edge) => {
      const first = await edge.get<KubeObject & Owned>(edgeKinds[target.kind], target.name, target.namespace);
      if (!first)
        throw new Refused(`${target.kind} ${target.namespace}/${target.name} does not exist on ${cluster}`);
      const chain: Owned[] = [{ ...first, kind: target.kind }];
      for (let next = controllerOf(first); next && chain.length < 5;) {
        const r = edgeKinds[next.kind];
        const owner = await edge.get<KubeObject & Owned>(r, next.name, target.namespace);
        if (!owner) break;
        chain.push({ ...owner, kind: next.kind });
        next = controllerOf(owner);
      }
      if (!owningRelease(chain, target.namespace, installed)) {
        throw new Refused(
          `${target.kind} ${target.namespace}/${target.name} on ${cluster} does not belong to deployment ${deploymentRef.name}: it is not part of its Helm releases (${installed.releases
            .filter((r) => r.namespace === target.namespace)
            .map((r) => r.release)
            .join(", ")})`,
        );
      }
      return chain;
    });
  }

  private async execute(action: ResourceAction, chain: Owned[]): Promise<Result | undefined> {
    const ns = action.metadata.namespace ?? "";
    const { cluster, target } = action.spec;
    const uid = (chain[0] as KubeObject).metadata.uid ?? "";
    let current = action;
    const resumed = action.status?.phase === "Running";
    if (!resumed) {
      // Running before the call; a second operator (or worker) loses the write.
      const started = this.now().toISOString();
      current = await this.manager.client.mergePatch<ResourceAction>(
        ResourceActionResource,
        action.metadata.name ?? "",
        ns,
        {
          metadata: { resourceVersion: action.metadata.resourceVersion },
          status: {
            ...this.base(action),
            phase: "Running",
            startTime: started,
            targetUID: uid,
            message: `${action.spec.action} of ${target.kind} ${target.namespace}/${target.name} on ${cluster}`,
            conditions: removeCondition(action.status?.conditions, "Unreachable"),
          },
        },
        { subresource: "status", fieldManager: this.manager.fieldManager },
      );
    } else if (target.kind === "VirtualMachine" && action.spec.action === "restart") {
      return this.finish(
        current,
        "Failed",
        `the operator stopped while restarting VirtualMachine ${target.namespace}/${target.name}; it may or may not have restarted — check it, and create a new ResourceAction if needed`,
        "Interrupted",
      );
    }
    const targetUID = current.status?.targetUID ?? uid;
    if (targetUID !== uid) {
      return this.finish(
        current,
        "Succeeded",
        `${target.kind} ${target.namespace}/${target.name} was already replaced by a new one (${action.spec.action} done)`,
      );
    }
    const startedAt = current.status?.startTime ?? this.now().toISOString();
    const message = await this.edges.call(ns, cluster, (edge) =>
      this.call(edge, action, targetUID, startedAt),
    );
    const done = await this.finish(current, "Succeeded", message);
    void this.manager.events.record(ResourceActionResource, current, "Normal", "Executed", message);
    return done;
  }

  /** The call on the edge; idempotent for `uid` (see the header). Returns what was done. */
  private async call(
    edge: KubeClient,
    action: ResourceAction,
    uid: string,
    startedAt: string,
  ): Promise<string> {
    const { target, cluster } = action.spec;
    const what = `${target.kind} ${target.namespace}/${target.name} on ${cluster}`;
    const r = edgeKinds[target.kind];
    const deleteOnce = async (): Promise<void> => {
      try {
        await edge.delete(r, target.name, target.namespace, { uid, propagationPolicy: "Background" });
      } catch (err) {
        // 409: the uid precondition failed — already deleted and replaced.
        if (!(err instanceof ApiError && err.code === 409)) throw err;
      }
    };
    if (action.spec.action === "delete" || (action.spec.action === "restart" && target.kind === "Pod")) {
      await deleteOnce();
      return action.spec.action === "delete"
        ? `deleted ${what}`
        : `restarted ${what} (deleted; its controller makes a new pod)`;
    }
    if (target.kind === "VirtualMachine") {
      const verb = action.spec.action;
      try {
        await edge.request("PUT", kubevirtActionPath(target.namespace, target.name, verb), { body: {} });
      } catch (err) {
        // KubeVirt answers 409 when the VM already is where start or stop would take it.
        if (err instanceof ApiError && err.code === 409 && verb !== "restart")
          return `${what}: ${err.message} (nothing to do)`;
        throw err;
      }
      return `${verb === "stop" ? "stopped" : verb === "start" ? "started" : "restarted"} ${what}`;
    }
    // Deployment, StatefulSet, DaemonSet: what `kubectl rollout restart` does, with the
    // action's start time — setting it again changes nothing.
    await edge.mergePatch(r, target.name, target.namespace, {
      metadata: { uid },
      spec: { template: { metadata: { annotations: { [restartedAtAnnotation]: startedAt } } } },
    });
    return `restarted ${what} (a new rollout)`;
  }

  private async finish(
    action: ResourceAction,
    phase: "Succeeded" | "Failed",
    message: string,
    reason?: string,
  ): Promise<Result | undefined> {
    const status: Status = {
      ...this.base(action),
      phase,
      message,
      completionTime: this.now().toISOString(),
      conditions: removeCondition(action.status?.conditions, "Unreachable"),
    };
    status.startTime ??= status.completionTime;
    Object.assign(
      status,
      phase === "Succeeded"
        ? summarize(status, action.metadata.generation, { kind: "ready", reason: "Succeeded", message })
        : summarize(status, action.metadata.generation, {
            kind: "stalled",
            reason: reason ?? "Failed",
            message,
          }),
    );
    await this.write(action, status);
    if (phase === "Failed") {
      void this.manager.events.record(ResourceActionResource, action, "Warning", reason ?? "Failed", message);
    }
    return this.expire({ ...action, status });
  }

  private async write(action: ResourceAction, status: Status): Promise<void> {
    try {
      await patchStatus(
        this.manager.client,
        ResourceActionResource,
        action,
        status,
        this.manager.fieldManager,
      );
    } catch (err) {
      if (!ApiError.isNotFound(err)) throw err;
    }
  }

  /** Deletes a finished action `ttlSecondsAfterFinished` after it finished. */
  private async expire(action: ResourceAction): Promise<Result | undefined> {
    const ttl = action.spec.ttlSecondsAfterFinished ?? 3600;
    const done = action.status?.completionTime;
    if (ttl === 0 || !done) return undefined;
    const left = Date.parse(done) + ttl * 1000 - this.now().getTime();
    if (left > 0) return { requeueAfterMs: left };
    await this.manager.client.delete(
      ResourceActionResource,
      action.metadata.name ?? "",
      action.metadata.namespace,
      {
        uid: action.metadata.uid,
      },
    );
    return undefined;
  }
}
