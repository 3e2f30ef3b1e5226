// Registry clients against a real OCI registry (distribution) and a Helm HTTP repository.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RegistryClient, RegistryError } from "../../operators/catalog/registry-client.ts";
import { freePort } from "../controlplane/ports.ts";
import { createCertificateAuthority } from "../controlplane/pki.ts";
import {
  makeChart,
  pushChart,
  startHelmRepo,
  startOciRegistry,
  type Chart,
  type HelmRepo,
  type OciRegistry,
} from "../support/services.ts";

let oci: OciRegistry;
let helm: HelmRepo;
let privateHelm: HelmRepo;
let web: Chart;
let db: Chart;

const rejectsWith = async (p: Promise<unknown>, reason: string, message: RegExp): Promise<void> => {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof RegistryError, String(err));
    assert.equal(err.reason, reason);
    assert.match(err.message, message);
    return true;
  });
};

describe("RegistryClient", () => {
  before(async () => {
    web = await makeChart({ name: "web", version: "1.2.0" });
    db = await makeChart({ name: "db", version: "16.4.1", values: { auth: { database: "shop" } } });
    oci = await startOciRegistry();
    await pushChart(oci.url, "charts", web);
    await pushChart(oci.url, "charts", db);
    helm = await startHelmRepo([web, db]);
    privateHelm = await startHelmRepo([web], { basicAuth: "robot:s3cret" });
  });
  after(async () => {
    await Promise.all([oci.stop(), helm.stop(), privateHelm.stop()]);
  });

  it("resolves and fetches charts from an OCI registry", async () => {
    const client = new RegistryClient({ type: "oci", url: `${oci.url}/charts` });
    await client.check();
    const chart = await client.resolveChart("web", "1.2.0");
    assert.equal(chart.digest, web.digest);
    assert.deepEqual(await chart.fetch(), web.archive);
    await rejectsWith(
      client.resolveChart("web", "9.9.9"),
      "NotFound",
      /chart web 9\.9\.9 is not in .* \(it has 1\.2\.0\)/,
    );
    await rejectsWith(client.resolveChart("nope", "1.0.0"), "NotFound", /no repository charts\/nope/);
  });

  it("resolves and fetches charts from a Helm repository", async () => {
    const client = new RegistryClient({ type: "helm", url: helm.url });
    await client.check();
    const chart = await client.resolveChart("db", "16.4.1");
    assert.equal(chart.digest, db.digest);
    assert.deepEqual(await chart.fetch(), db.archive);
    await rejectsWith(
      client.resolveChart("db", "1.0.0"),
      "NotFound",
      /chart db 1\.0\.0 is not in .* \(it has 16\.4\.1\)/,
    );
  });

  it("sends credentials, and says when they are refused", async () => {
    const good = new RegistryClient({
      type: "helm",
      url: privateHelm.url,
      username: "robot",
      password: "s3cret",
    });
    await good.check();
    assert.equal((await good.resolveChart("web", "1.2.0")).digest, web.digest);
    const bad = new RegistryClient({
      type: "helm",
      url: privateHelm.url,
      username: "robot",
      password: "wrong",
    });
    await rejectsWith(
      bad.check(),
      "Unauthorized",
      /refused the credentials; check the Secret in credentialsSecretRef/,
    );
    const none = new RegistryClient({ type: "helm", url: privateHelm.url });
    await rejectsWith(none.check(), "Unauthorized", /HTTP 401/);
  });

  it("sends a token as a bearer credential", async () => {
    const tokenRepo = await startHelmRepo([web], { bearerToken: "t0ken" });
    try {
      await new RegistryClient({ type: "helm", url: tokenRepo.url, token: "t0ken" }).check();
      await rejectsWith(
        new RegistryClient({ type: "helm", url: tokenRepo.url, token: "other" }).check(),
        "Unauthorized",
        /HTTP 401/,
      );
    } finally {
      await tokenRepo.stop();
    }
  });

  it("trusts a private CA from the access settings, and only then", async () => {
    const ca = await createCertificateAuthority("registry-ca");
    const serving = await ca.issue({ commonName: "charts", hosts: ["127.0.0.1"], usage: "server" });
    const tlsRepo = await startHelmRepo([web], { tls: serving });
    try {
      const trusted = new RegistryClient({ type: "helm", url: tlsRepo.url, caPem: ca.certPem });
      assert.equal((await trusted.resolveChart("web", "1.2.0")).digest, web.digest);
      await trusted.close();
      await rejectsWith(
        new RegistryClient({ type: "helm", url: tlsRepo.url }).check(),
        "Unreachable",
        /self-signed|unable to verify|certificate/i,
      );
    } finally {
      await tlsRepo.stop();
    }
  });

  it("names the URL of an unreachable registry", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await rejectsWith(
      new RegistryClient({ type: "oci", url }).check(),
      "Unreachable",
      new RegExp(`GET ${url}/v2/ failed`),
    );
  });
});
