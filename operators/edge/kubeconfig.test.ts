// The strict readers of edge credentials: what a kubeconfig or an Argo CD cluster Secret
// may hold, and every refused feature named by its field.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { KubeconfigRefused, kubeConfigOf, strictArgoCluster, strictKubeconfig } from "./kubeconfig.ts";

type Doc = Record<string, unknown>;
const yamlOf = (text: string): Doc => parse(text) as Doc;
const base = (cluster: Doc = {}, user: Doc = {}, extra: Doc = {}): string =>
  stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "edge",
        cluster: { server: "https://10.0.0.1:6443", "certificate-authority-data": "Y2E=", ...cluster },
      },
    ],
    users: [{ name: "outpost", user: { token: "secret-token", ...user } }],
    contexts: [{ name: "edge", context: { cluster: "edge", user: "outpost" } }],
    "current-context": "edge",
    ...extra,
  });

const refusedField = (kubeconfig: string): string => {
  try {
    strictKubeconfig(kubeconfig);
  } catch (err) {
    if (err instanceof KubeconfigRefused) return err.field;
    throw err;
  }
  assert.fail("the kubeconfig was accepted");
};

describe("strictKubeconfig", () => {
  it("accepts a server with CA data and a token, or client certificate data", () => {
    assert.deepEqual(strictKubeconfig(base()), {
      server: "https://10.0.0.1:6443",
      caData: "Y2E=",
      token: "secret-token",
    });
    assert.deepEqual(
      strictKubeconfig(
        base(
          { "tls-server-name": "edge.local" },
          { token: null, "client-certificate-data": "Y2VydA==", "client-key-data": "a2V5" },
        ),
      ),
      {
        server: "https://10.0.0.1:6443",
        caData: "Y2E=",
        tlsServerName: "edge.local",
        certData: "Y2VydA==",
        keyData: "a2V5",
      },
    );
    // What kubectl writes for unset fields, and a context namespace, change nothing.
    assert.equal(
      strictKubeconfig(base({ "insecure-skip-tls-verify": false, "proxy-url": "" }, {}, { preferences: {} }))
        .server,
      "https://10.0.0.1:6443",
    );
  });

  it("builds a client configuration that holds only those credentials", () => {
    const kc = kubeConfigOf("edge", strictKubeconfig(base()));
    assert.equal(kc.getCurrentCluster()?.server, "https://10.0.0.1:6443");
    assert.equal(kc.getCurrentCluster()?.skipTLSVerify, false);
    assert.equal(kc.getCurrentUser()?.token, "secret-token");
    assert.equal(kc.getCurrentUser()?.exec, undefined);
  });

  it("refuses every feature that runs a program, reads a file, redirects, skips TLS or impersonates", () => {
    const cases: [string, string][] = [
      [
        base(
          {},
          {
            exec: {
              command: "/bin/sh",
              args: ["-c", "touch /tmp/x"],
              apiVersion: "client.authentication.k8s.io/v1",
            },
          },
        ),
        "users[0].user.exec",
      ],
      [base({}, { "auth-provider": { name: "oidc", config: {} } }), "users[0].user.auth-provider"],
      [
        base({}, { tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token" }),
        "users[0].user.tokenFile",
      ],
      [
        base({}, { token: null, "client-certificate": "/etc/cert", "client-key": "/etc/key" }),
        "users[0].user.client-certificate",
      ],
      [base({ "certificate-authority": "/etc/ca.crt" }), "clusters[0].cluster.certificate-authority"],
      [base({ "proxy-url": "http://10.9.9.9:3128" }), "clusters[0].cluster.proxy-url"],
      [base({ "insecure-skip-tls-verify": true }), "clusters[0].cluster.insecure-skip-tls-verify"],
      [base({}, { as: "system:admin" }), "users[0].user.as"],
      [base({}, { "as-groups": ["system:masters"] }), "users[0].user.as-groups"],
      [base({}, { username: "u", password: "p" }), "users[0].user.username"],
      [base({ extensions: [{ name: "x", extension: {} }] }), "clusters[0].cluster.extensions"],
      [base({ server: "http://10.0.0.1:6443" }), "clusters[0].cluster.server"],
      [base({ server: "https://kubernetes.default.svc" }), "clusters[0].cluster.server"],
      [base({ server: "https://user:pw@10.0.0.1" }), "clusters[0].cluster.server"],
      [base({}, { token: null }), "users[0].user"],
      [base({}, { "client-certificate-data": "Y2VydA==", "client-key-data": "a2V5" }), "users[0].user"],
    ];
    for (const [kubeconfig, field] of cases) assert.equal(refusedField(kubeconfig), field, field);
    // The message says why, naming the field.
    assert.throws(
      () => strictKubeconfig(base({}, { exec: { command: "x" } })),
      /^KubeconfigRefused: users\[0\]\.user\.exec: would make the operator run a program/,
    );
  });

  it("refuses more than one cluster or user, and contexts that name others", () => {
    const two = (key: "clusters" | "users"): string => {
      const doc = yamlOf(base());
      const list = doc[key] as Doc[];
      doc[key] = [...list, { ...list[0], name: "other" }];
      return stringify(doc);
    };
    assert.equal(refusedField(two("clusters")), "clusters");
    assert.equal(refusedField(two("users")), "users");
    const doc = yamlOf(base());
    doc.contexts = [{ name: "edge", context: { cluster: "elsewhere", user: "outpost" } }];
    assert.equal(refusedField(stringify(doc)), "contexts[0].context.cluster");
    doc.contexts = [{ name: "edge", context: { cluster: "edge", user: "outpost" } }];
    doc["current-context"] = "other";
    assert.equal(refusedField(stringify(doc)), "current-context");
    assert.equal(refusedField("this: is: not yaml"), "kubeconfig");
    assert.equal(refusedField(stringify({ kind: "Config", clusters: [], users: [] })), "clusters");
  });
});

describe("strictArgoCluster", () => {
  const good = JSON.stringify({ tlsClientConfig: { caData: "Y2E=", certData: "Y2VydA==", keyData: "a2V5" } });
  it("accepts a server with CA and client certificate data, or a bearer token", () => {
    assert.deepEqual(strictArgoCluster("https://10.0.0.1:6443", good), {
      server: "https://10.0.0.1:6443",
      caData: "Y2E=",
      certData: "Y2VydA==",
      keyData: "a2V5",
    });
    assert.equal(strictArgoCluster("https://10.0.0.1:6443", '{"bearerToken":"t"}').token, "t");
  });
  it("refuses what would run a program, call a cloud, skip TLS or reach the management cluster", () => {
    const refused: [string, string, string][] = [
      ["https://10.0.0.1", '{"execProviderConfig":{"command":"/bin/sh"}}', "config.execProviderConfig"],
      ["https://10.0.0.1", '{"awsAuthConfig":{"clusterName":"x"},"bearerToken":"t"}', "config.awsAuthConfig"],
      [
        "https://10.0.0.1",
        '{"bearerToken":"t","tlsClientConfig":{"insecure":true}}',
        "config.tlsClientConfig.insecure",
      ],
      ["https://10.0.0.1", '{"bearerToken":"t","proxyUrl":"http://evil"}', "config.proxyUrl"],
      ["http://10.0.0.1", '{"bearerToken":"t"}', "server"],
      ["https://kubernetes.default.svc", '{"bearerToken":"t"}', "server"],
      ["https://10.0.0.1", "{}", "config"],
    ];
    for (const [server, config, field] of refused) {
      assert.throws(
        () => strictArgoCluster(server, config),
        (err: unknown) => err instanceof KubeconfigRefused && err.field === field,
        `${server} ${config}`,
      );
    }
  });
});
