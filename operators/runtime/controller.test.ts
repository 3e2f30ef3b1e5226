// Watch predicates: what counts as a change worth a reconcile.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubeObject } from "./client.ts";
import { generationOrRequestChanged, requestedAtAnnotation, specOrReadinessChanged } from "./controller.ts";

const obj = (
  generation: number,
  extra: Partial<KubeObject["metadata"]> = {},
  ready?: string,
): KubeObject => ({
  metadata: { name: "x", generation, ...extra },
  ...(ready ? { status: { conditions: [{ type: "Ready", status: ready }] } } : {}),
});

describe("predicates", () => {
  it("reconcile on spec, requestedAt and deletion, not on status or labels", () => {
    assert.equal(generationOrRequestChanged(obj(2), obj(1)), true);
    assert.equal(
      generationOrRequestChanged(
        obj(1, { annotations: { [requestedAtAnnotation]: "b" } }),
        obj(1, { annotations: { [requestedAtAnnotation]: "a" } }),
      ),
      true,
    );
    assert.equal(
      generationOrRequestChanged(obj(1, { deletionTimestamp: "2026-01-01T00:00:00Z" }), obj(1)),
      true,
    );
    assert.equal(generationOrRequestChanged(obj(1, {}, "True"), obj(1, {}, "False")), false, "status only");
    assert.equal(generationOrRequestChanged(obj(1, { labels: { a: "b" } }), obj(1)), false, "labels only");
    const same = obj(1);
    assert.equal(generationOrRequestChanged(same, same), true, "periodic resync");
  });

  it("follow another kind's spec and readiness only", () => {
    assert.equal(specOrReadinessChanged(obj(1, {}, "True"), obj(1, {}, "False")), true);
    assert.equal(specOrReadinessChanged(obj(2, {}, "True"), obj(1, {}, "True")), true);
    assert.equal(
      specOrReadinessChanged(
        obj(1, { resourceVersion: "9" }, "True"),
        obj(1, { resourceVersion: "8" }, "True"),
      ),
      false,
    );
  });
});
