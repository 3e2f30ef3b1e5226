// The install manifests in config/ apply to a real API server with `kubectl apply -k`,
// and RBAC holds: each operator's ServiceAccount can do its work and nothing beyond;
// the project roles aggregate as documented.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { before, describe, it } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { kubeConfigFromFile } from "../controlplane/index.ts";
import { eventually, useControlPlane } from "../support/controlplane.ts";
import { join } from "node:path";
import { configDir, installOutpost } from "../support/install.ts";
import { roleBindingsResource } from "../../operators/tenancy/project.ts";

const controlPlane = useControlPlane();
let admin: KubeClient;

const reviews: ResourceType = {
  group: "authorization.k8s.io",
  version: "v1",
  kind: "SubjectAccessReview",
  plural: "subjectaccessreviews",
  namespaced: false,
};
const namespaces: ResourceType = {
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
};

interface Access {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  subresource?: string;
  name?: string;
}

/** Asks the API server's authorizer whether `user` (in `groups`) may do `a`. */
async function allowed(user: string, a: Access, groups: string[] = []): Promise<boolean> {
  const review = await admin.create<KubeObject & { status?: { allowed: boolean } }>(reviews, {
    metadata: {},
    spec: {
      user,
      groups,
      resourceAttributes: {
        verb: a.verb,
        resource: a.resource,
        group: a.group ?? "",
        namespace: a.namespace,
        subresource: a.subresource,
        name: a.name,
      },
    },
  } as KubeObject);
  return review.status?.allowed ?? false;
}

const sa = (name: string): string => `system:serviceaccount:outpost-system:outpost-${name}`;

/** A client authenticated as a ServiceAccount, with a token from the TokenRequest API. */
async function clientAs(serviceAccount: string): Promise<KubeClient> {
  const res = await admin.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/outpost-system/serviceaccounts/${serviceAccount}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 600 },
      },
    },
  );
  const base = kubeConfigFromFile(controlPlane().management.kubeconfig);
  const cluster = base.getCurrentCluster();
  assert.ok(cluster);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: serviceAccount, token: res.status.token }],
    contexts: [{ name: "sa", cluster: cluster.name, user: serviceAccount }],
    currentContext: "sa",
  });
  return new KubeClient(kc);
}

describe("install manifests", () => {
  before(() => {
    const cp = controlPlane();
    installOutpost(cp);
    admin = new KubeClient(kubeConfigFromFile(cp.management.kubeconfig));
  });

  it("apply with kubectl -k and create every object", () => {
    const cp = controlPlane();
    const res = spawnSync(
      cp.binaries.kubectl,
      [
        "--kubeconfig",
        cp.management.kubeconfig,
        "get",
        "deployments,serviceaccounts,services",
        "-n",
        "outpost-system",
        "-o",
        "name",
      ],
      { encoding: "utf8" },
    );
    assert.equal(res.status, 0, res.stderr);
    for (const op of ["catalog", "deploy", "interconnect", "ops", "tenancy"]) {
      assert.match(res.stdout, new RegExp(`deployment.apps/outpost-${op}\\n`));
      assert.match(res.stdout, new RegExp(`serviceaccount/outpost-${op}\\n`));
      assert.match(res.stdout, new RegExp(`service/outpost-${op}-metrics\\n`));
    }
    const crds = spawnSync(
      cp.binaries.kubectl,
      ["--kubeconfig", cp.management.kubeconfig, "--cache-dir", cp.dir, "get", "outpost", "-A"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(crds.status, 0, `the outpost category lists every kind: ${crds.stderr}`);
  });

  it("apply with both engines from config/argocd/engine: the flags, and each operator's Role in Argo CD's namespace", async () => {
    const cp = controlPlane();
    const kubectl = (...args: string[]) =>
      spawnSync(cp.binaries.kubectl, ["--kubeconfig", cp.management.kubeconfig, ...args], {
        encoding: "utf8",
      });
    assert.equal(kubectl("create", "namespace", "argocd").status, 0);
    const apply = kubectl("apply", "-k", join(configDir, "argocd", "engine"));
    assert.equal(apply.status, 0, apply.stderr);
    const args = (deployment: string): string =>
      kubectl(
        "get",
        "deployment",
        deployment,
        "-n",
        "outpost-system",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
      ).stdout;
    for (const op of ["deploy", "interconnect", "ops"])
      assert.match(args(`outpost-${op}`), /--engines=fleet,argocd/);
    assert.match(args("outpost-service-proxy"), /--argocd-namespace=argocd/);
    assert.doesNotMatch(args("outpost-catalog"), /--engines/);
    // The deploy operator writes Argo CD's objects there; the others only read.
    const inArgo = (verb: string, resource: string, group = "argoproj.io") => ({
      verb,
      resource,
      group,
      namespace: "argocd",
    });
    assert.equal(await allowed(sa("deploy"), inArgo("create", "applicationsets")), true);
    assert.equal(await allowed(sa("deploy"), inArgo("update", "appprojects")), true);
    assert.equal(await allowed(sa("deploy"), inArgo("create", "secrets", "")), true);
    assert.equal(await allowed(sa("deploy"), inArgo("delete", "applications")), false);
    assert.equal(await allowed(sa("ops"), inArgo("list", "secrets", "")), true);
    assert.equal(await allowed(sa("ops"), inArgo("create", "applicationsets")), false);
    assert.equal(
      await allowed(sa("deploy"), {
        verb: "create",
        resource: "applicationsets",
        group: "argoproj.io",
        namespace: "default",
      }),
      false,
    );
  });

  it("lets each operator do its work", async () => {
    const checks: [string, Access][] = [
      [
        "catalog",
        {
          verb: "patch",
          group: "catalog.outpost.dev",
          resource: "applications",
          subresource: "status",
          namespace: "team-a",
        },
      ],
      [
        "catalog",
        {
          verb: "update",
          group: "catalog.outpost.dev",
          resource: "registries",
          subresource: "finalizers",
          namespace: "team-a",
        },
      ],
      ["catalog", { verb: "list", resource: "configmaps", namespace: "team-a" }],
      ["catalog", { verb: "create", group: "events.k8s.io", resource: "events", namespace: "team-a" }],
      [
        "catalog",
        {
          verb: "update",
          group: "coordination.k8s.io",
          resource: "leases",
          namespace: "outpost-system",
          name: "outpost-catalog",
        },
      ],
      ["catalog", { verb: "get", resource: "secrets", namespace: "outpost-system", name: "outpost-catalog" }],
      ["deploy", { verb: "create", group: "fleet.cattle.io", resource: "gitrepos", namespace: "team-a" }],
      ["deploy", { verb: "create", group: "apps", resource: "controllerrevisions", namespace: "team-a" }],
      [
        "interconnect",
        { verb: "watch", group: "fleet.cattle.io", resource: "clusters", namespace: "team-a" },
      ],
      ["ops", { verb: "delete", group: "ops.outpost.dev", resource: "resourceactions", namespace: "team-a" }],
      ["tenancy", { verb: "create", resource: "namespaces" }],
      [
        "tenancy",
        { verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: "team-a" },
      ],
      ["tenancy", { verb: "create", resource: "resourcequotas", namespace: "team-a" }],
      ["service-proxy", { verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" }],
      ["service-proxy", { verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews" }],
    ];
    for (const [op, access] of checks) {
      assert.ok(await allowed(sa(op), access), `${op} must be allowed to ${JSON.stringify(access)}`);
    }
  });

  it("denies each operator what it must not do", async () => {
    const checks: [string, Access][] = [
      ["catalog", { verb: "get", resource: "secrets", namespace: "kube-system" }],
      ["catalog", { verb: "list", resource: "secrets" }],
      ["catalog", { verb: "get", resource: "secrets", namespace: "outpost-system", name: "outpost-tenancy" }],
      ["catalog", { verb: "delete", resource: "namespaces" }],
      [
        "catalog",
        { verb: "create", group: "deploy.outpost.dev", resource: "appdeployments", namespace: "team-a" },
      ],
      ["deploy", { verb: "list", resource: "secrets" }],
      [
        "deploy",
        { verb: "delete", group: "catalog.outpost.dev", resource: "applications", namespace: "team-a" },
      ],
      [
        "interconnect",
        { verb: "create", group: "fleet.cattle.io", resource: "gitrepos", namespace: "team-a" },
      ],
      ["ops", { verb: "get", resource: "secrets", namespace: "team-a" }],
      ["tenancy", { verb: "list", resource: "secrets" }],
      ["tenancy", { verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings" }],
      [
        "tenancy",
        { verb: "bind", group: "rbac.authorization.k8s.io", resource: "clusterroles", name: "cluster-admin" },
      ],
      ["service-proxy", { verb: "list", resource: "secrets" }],
      [
        "service-proxy",
        { verb: "create", group: "deploy.outpost.dev", resource: "appdeployments", namespace: "team-a" },
      ],
    ];
    for (const [op, access] of checks) {
      assert.equal(await allowed(sa(op), access), false, `${op} must be denied ${JSON.stringify(access)}`);
    }
  });

  it("lets the tenancy operator bind project roles, and only those", async () => {
    await admin.create(namespaces, { metadata: { name: "team-rbac" } });
    const tenancy = await clientAs("outpost-tenancy");
    const alice = { apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "alice" };
    const binding = (name: string, role: string, subject: object = alice): KubeObject =>
      ({
        metadata: { name, namespace: "team-rbac" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
        subjects: [subject],
      }) as KubeObject;
    await tenancy.create(roleBindingsResource, binding("alice-deployer", "outpost:project-deployer"));
    await tenancy.create(
      roleBindingsResource,
      binding("catalog-secrets", "outpost:catalog-operator-project", {
        kind: "ServiceAccount",
        name: "outpost-catalog",
        namespace: "outpost-system",
      }),
    );
    await assert.rejects(
      tenancy.create(roleBindingsResource, binding("alice-admin", "cluster-admin")),
      /forbidden/i,
    );
    // The binding works: the catalog operator now reads Secrets in this project only.
    assert.ok(await allowed(sa("catalog"), { verb: "list", resource: "secrets", namespace: "team-rbac" }));
    assert.equal(
      await allowed(sa("catalog"), { verb: "list", resource: "secrets", namespace: "team-a" }),
      false,
    );
    await tenancy.close();
  });

  it("aggregates the project roles", async () => {
    const ns = "team-roles";
    await admin.create(namespaces, { metadata: { name: ns } });
    for (const role of ["viewer", "deployer", "approver", "admin"]) {
      await admin.create(roleBindingsResource, {
        metadata: { name: role, namespace: ns },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: `outpost:project-${role}`,
        },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: `${role}s` }],
      } as KubeObject);
    }
    const can = (group: string, a: Access): Promise<boolean> =>
      allowed("someone", { namespace: ns, ...a }, [group]);
    const deploy = { verb: "create", group: "deploy.outpost.dev", resource: "appdeployments" };
    const approve = { verb: "create", group: "deploy.outpost.dev", resource: "approvals" };
    const read = { verb: "list", group: "catalog.outpost.dev", resource: "applications" };
    const proxy = {
      verb: "get",
      group: "deploy.outpost.dev",
      resource: "appdeployments",
      subresource: "proxy",
    };
    // The aggregation controller fills the roles shortly after they are created.
    await eventually("aggregated project roles", async () =>
      (await can("admins", approve)) ? true : undefined,
    );
    assert.deepEqual(
      await Promise.all(
        ["viewers", "deployers", "approvers", "admins"].map((g) =>
          Promise.all([can(g, read), can(g, deploy), can(g, approve), can(g, proxy)]),
        ),
      ),
      [
        [true, false, false, false],
        [true, true, false, true],
        [true, false, true, false],
        [true, true, true, true],
      ],
    );
  });
});
