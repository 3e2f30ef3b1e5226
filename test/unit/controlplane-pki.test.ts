// Certificates and kubeconfigs of the local control plane, checked with Node's own X.509.
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { createCertificateAuthority } from "../controlplane/pki.ts";
import { kubeconfigYaml } from "../controlplane/kubeconfig.ts";

describe("pki", () => {
  it("issues client certificates whose CN is the user and O the groups", async () => {
    const ca = await createCertificateAuthority("test-ca");
    const client = await ca.issue({ commonName: "alice", organizations: ["devs", "ops"], usage: "client" });
    const caCert = new X509Certificate(ca.certPem);
    const cert = new X509Certificate(client.certPem);
    assert.ok(caCert.ca);
    assert.ok(cert.checkIssued(caCert));
    assert.ok(cert.verify(caCert.publicKey));
    assert.equal(cert.subject, "CN=alice\nO=devs\nO=ops");
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2"]);
    assert.ok(cert.checkPrivateKey(createPrivateKey(client.keyPem)));
  });

  it("issues serving certificates for IPs and DNS names", async () => {
    const ca = await createCertificateAuthority("test-ca");
    const server = await ca.issue({ commonName: "srv", hosts: ["127.0.0.1", "localhost"], usage: "server" });
    const cert = new X509Certificate(server.certPem);
    assert.equal(cert.subjectAltName, "IP Address:127.0.0.1, DNS:localhost");
    assert.equal(cert.checkIP("127.0.0.1"), "127.0.0.1");
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.1"]);
    const other = await createCertificateAuthority("other-ca");
    assert.equal(cert.checkIssued(new X509Certificate(other.certPem)), false);
  });
});

describe("kubeconfig", () => {
  it("has one context per cluster and the first one current", () => {
    const user = { name: "admin", certPem: "CERT", keyPem: "KEY" };
    const config = parse(
      kubeconfigYaml([
        { name: "management", server: "https://127.0.0.1:1", caPem: "CA1", user },
        { name: "edge-1", server: "https://127.0.0.1:2", caPem: "CA2", user },
      ]),
    ) as {
      "current-context": string;
      contexts: { name: string; context: { cluster: string; user: string } }[];
      clusters: { name: string; cluster: { server: string; "certificate-authority-data": string } }[];
      users: { name: string; user: { "client-key-data": string } }[];
    };
    assert.equal(config["current-context"], "management");
    assert.deepEqual(
      config.contexts.map((c) => [c.name, c.context.cluster, c.context.user]),
      [
        ["management", "management", "admin@management"],
        ["edge-1", "edge-1", "admin@edge-1"],
      ],
    );
    assert.equal(
      Buffer.from(config.clusters[1]?.cluster["certificate-authority-data"] ?? "", "base64").toString(),
      "CA2",
    );
    assert.equal(Buffer.from(config.users[0]?.user["client-key-data"] ?? "", "base64").toString(), "KEY");
  });
});
