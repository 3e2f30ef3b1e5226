// `kubectl outpost package helm`: drafts from a chart archive are valid objects.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validate } from "../../operators/api/validate.ts";
import { draftFromChart } from "../../operators/catalog/draft.ts";
import { makeChart } from "../support/services.ts";

describe("draftFromChart", () => {
  it("drafts an Application with typed parameters and a one-app package", async () => {
    const chart = await makeChart({
      name: "Web_UI",
      version: "2.1.0+build.7",
      values: {
        replicaCount: 2,
        image: { repository: "nginx", tag: "1.27" },
        debug: false,
        resources: { limits: { cpu: "1" } },
      },
    });
    const [app, pkg] = await draftFromChart(chart.archive, "charts", "shop");
    assert.deepEqual(validate(app as never), []);
    assert.deepEqual(validate(pkg as never), []);
    assert.equal(app.metadata.name, "web-ui-2.1.0-build.7");
    assert.equal(app.spec.draft, true);
    assert.deepEqual(app.spec.chart, {
      registryRef: { name: "charts" },
      name: "Web_UI",
      version: "2.1.0+build.7",
    });
    assert.deepEqual(app.spec.profiles?.[0]?.parameters, [
      { name: "replicaCount", type: "number", default: "2" },
      { name: "image.repository", type: "string", default: "nginx" },
      { name: "image.tag", type: "string", default: "1.27" },
      { name: "debug", type: "boolean", default: "false" },
    ]);
    assert.deepEqual(pkg.spec.applications, [{ name: "web-ui", version: "2.1.0-build.7" }]);
    await assert.rejects(draftFromChart(Buffer.from("nope"), "charts"), /cannot be read|not a Helm chart/);
  });
});
