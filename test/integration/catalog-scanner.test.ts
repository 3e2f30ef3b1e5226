// Malware scanning against a real clamd with a test signature for EICAR.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ClamdScanner } from "../../operators/catalog/scanner.ts";
import { freePort } from "../controlplane/ports.ts";
import { eicar, makeChart, startClamd, type Service } from "../support/services.ts";

let clamd: Service;

describe("ClamdScanner", () => {
  before(async () => {
    clamd = await startClamd();
  });
  after(async () => {
    await clamd.stop();
  });

  it("finds EICAR in a file and inside a chart archive, and passes clean content", async () => {
    const scanner = new ClamdScanner({ host: clamd.host, port: clamd.port });
    assert.equal((await scanner.scan(Buffer.from("hello"))).result, "Clean");
    const infected = await scanner.scan(Buffer.concat([Buffer.from("readme: "), eicar()]));
    assert.equal(infected.result, "Infected");
    assert.equal(infected.signature, "Outpost.Test.EICAR.UNOFFICIAL");
    const chart = await makeChart({ name: "bad", version: "1.0.0", files: { "files/payload.txt": eicar() } });
    const inChart = await scanner.scan(chart.archive);
    assert.equal(inChart.result, "Infected", "clamd unpacks the .tgz");
    const clean = await makeChart({ name: "good", version: "1.0.0" });
    assert.equal((await scanner.scan(clean.archive)).result, "Clean");
  });

  it("caches verdicts by digest and reports an unreachable scanner", async () => {
    const other = await startClamd();
    const scanner = new ClamdScanner({ host: other.host, port: other.port });
    const content = Buffer.concat([eicar(), Buffer.from(" cached")]);
    assert.equal((await scanner.scan(content)).result, "Infected");
    await other.stop();
    assert.equal((await scanner.scan(content)).result, "Infected", "served from the cache");
    const fresh = await scanner.scan(Buffer.from("never scanned"));
    assert.equal(fresh.result, "Error");
    assert.match(fresh.message ?? "", /clamd at 127\.0\.0\.1:\d+ could not scan/);

    const nowhere = new ClamdScanner({ host: "127.0.0.1", port: await freePort() });
    assert.equal((await nowhere.scan(Buffer.from("x"))).result, "Error");
    const off = new ClamdScanner({ host: "127.0.0.1", port: 1, mode: "off" });
    assert.equal((await off.scan(eicar())).result, "Skipped");
  });
});
