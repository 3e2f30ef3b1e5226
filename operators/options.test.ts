// Command-line options of outpost-operator.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration, parseOptions } from "./options.ts";

describe("operator options", () => {
  it("parses durations", () => {
    assert.equal(parseDuration("500ms", "x"), 500);
    assert.equal(parseDuration("15s", "x"), 15_000);
    assert.equal(parseDuration("1.5m", "x"), 90_000);
    assert.throws(() => parseDuration("15", "lease-duration"), /--lease-duration: "15" is not a duration/);
  });

  it("applies defaults and checks controllers", () => {
    const o = parseOptions(["--controllers=all", "--scan-mode=off"], ["catalog", "deploy"]);
    assert.deepEqual(o.controllers, ["catalog", "deploy"]);
    assert.equal(o.leaderElect, true);
    assert.equal(o.leaseDurationMs, 15_000);
    assert.equal(o.metricsPort, 8080);
    assert.equal(o.metricsBindAddress, "0.0.0.0");
    assert.throws(
      () => parseOptions(["--controllers=catalog,nope"], ["catalog"]),
      /unknown nope; available: catalog/,
    );
    assert.throws(() => parseOptions([], ["catalog"]), /--controllers is required/);
  });

  it("needs clamd for the catalog unless scanning is off", () => {
    assert.throws(
      () => parseOptions(["--controllers=catalog"], ["catalog"]),
      /--clamd-address=host:port is required/,
    );
    assert.equal(parseOptions(["--controllers=catalog", "--scan-mode=off"], ["catalog"]).scanMode, "off");
    const o = parseOptions(["--controllers=catalog", "--clamd-address=clamd:3310"], ["catalog"]);
    assert.equal(o.clamdAddress, "clamd:3310");
    assert.throws(
      () => parseOptions(["--controllers=catalog", "--scan-mode=lax"], ["catalog"]),
      /--scan-mode must be/,
    );
  });

  it("rejects inconsistent leader-election timings", () => {
    assert.throws(
      () => parseOptions(["--controllers=all", "--renew-deadline=20s"], []),
      /--retry-period < --renew-deadline < --lease-duration/,
    );
  });
});
