// Synthesizes Outpost's install manifests into config/ with cdk8s:
//   config/base/crds.yaml, namespace.yaml, rbac.yaml, operators.yaml, kustomization.yaml;
//   config/kustomization.yaml (the base: `kubectl apply -k config/`), overlays beside it
//   (config/argocd/engine/), and config/install.yaml (all of the base in one file, in
//   apply order).
// `npm run synth -- --check` fails when config/ differs from what this program writes.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ApiObject, App, Chart, Duration, Include, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-34";
import { parse, stringify } from "yaml";
import { accessOf, edgeRules, operators, projectRoles, serviceProxy, type Rule } from "./rbac.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const configDir = join(root, "config");
const crdDir = join(root, "crds");

export const namespace = "outpost-system";
/** Where platform administrators keep edge credentials (operators/edge/edge-clusters.ts). */
export const edgesNamespace = "outpost-edges";
export const image = "ghcr.io/outpost-dev/outpost:0.1.0";
const metricsPort = 8080;
const labels = { "app.kubernetes.io/part-of": "outpost", "app.kubernetes.io/managed-by": "kustomize" };

function clusterRole(
  chart: Chart,
  name: string,
  rules: Rule[],
  extraLabels: Record<string, string> = {},
): void {
  new ApiObject(chart, `clusterrole-${name}`, {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name, labels: { ...labels, ...extraLabels } },
    rules,
  });
}

/**
 * Role `role` in `ns` with `rules`, bound to ServiceAccount `sa` of outpost-system (`id`
 * names the constructs); nothing when there are no rules.
 */
function boundRole(
  chart: Chart,
  id: string,
  role: string,
  ns: string,
  sa: string,
  rules: Rule[] | undefined,
): void {
  if (!rules?.length) return;
  new ApiObject(chart, `${id}-role`, {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: role, namespace: ns, labels },
    rules,
  });
  new ApiObject(chart, `${id}-rb`, {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: role, namespace: ns, labels },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role },
    subjects: [{ kind: "ServiceAccount", name: sa, namespace }],
  });
}

function crdsChart(app: App): Chart {
  const chart = new Chart(app, "crds", { disableResourceNameHashes: true });
  for (const file of readdirSync(crdDir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    new Include(chart, file, { url: join(crdDir, file) });
  }
  return chart;
}

function namespaceChart(app: App): Chart {
  const chart = new Chart(app, "namespace", { disableResourceNameHashes: true });
  new kplus.Namespace(chart, "ns", {
    metadata: { name: namespace, labels: { ...labels, "pod-security.kubernetes.io/enforce": "restricted" } },
  });
  // Secrets only: kubeconfigs of edge clusters, written by whoever registers clusters.
  new kplus.Namespace(chart, "edges", {
    metadata: {
      name: edgesNamespace,
      labels: { ...labels, "pod-security.kubernetes.io/enforce": "restricted" },
    },
  });
  return chart;
}

function rbacChart(app: App): Chart {
  const chart = new Chart(app, "rbac", { disableResourceNameHashes: true });
  for (const name of Object.keys(operators)) {
    const access = accessOf(name);
    const sa = `outpost-${name}`;
    new ApiObject(chart, `sa-${name}`, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: sa, namespace, labels },
    });
    const role = `outpost:${name}-operator`;
    clusterRole(chart, role, access.cluster);
    new ApiObject(chart, `crb-${name}`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: role, labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace }],
    });
    // Bound in each project namespace by the tenancy operator.
    clusterRole(chart, `outpost:${name}-operator-project`, access.project);
    new ApiObject(chart, `role-${name}`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: role, namespace, labels },
      rules: access.system,
    });
    boundRole(chart, `edges-${name}`, role, edgesNamespace, sa, access.edges);
    new ApiObject(chart, `rb-${name}`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: role, namespace, labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace }],
    });
  }
  // The service proxy's identity and rights (its Deployment ships with the proxy program).
  boundRole(
    chart,
    "edges-service-proxy",
    "outpost:service-proxy",
    edgesNamespace,
    "outpost-service-proxy",
    serviceProxy.edges,
  );
  new ApiObject(chart, "sa-service-proxy", {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: "outpost-service-proxy", namespace, labels },
  });
  clusterRole(chart, "outpost:service-proxy", serviceProxy.cluster);
  new ApiObject(chart, "crb-service-proxy", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "outpost:service-proxy", labels },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "outpost:service-proxy" },
    subjects: [{ kind: "ServiceAccount", name: "outpost-service-proxy", namespace }],
  });
  clusterRole(chart, "outpost:service-proxy-project", serviceProxy.project);
  for (const role of projectRoles) {
    const aggregateLabels: Record<string, string> = {};
    for (const r of [role.name, ...role.includedIn])
      aggregateLabels[`outpost.dev/aggregate-to-project-${r}`] = "true";
    for (const k of role.kubernetes) aggregateLabels[`rbac.authorization.k8s.io/aggregate-to-${k}`] = "true";
    clusterRole(chart, `outpost:project-${role.name}-rules`, role.rules, aggregateLabels);
    new ApiObject(chart, `project-${role.name}`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: `outpost:project-${role.name}`, labels },
      aggregationRule: {
        clusterRoleSelectors: [
          { matchLabels: { [`outpost.dev/aggregate-to-project-${role.name}`]: "true" } },
        ],
      },
      rules: [],
    });
  }
  return chart;
}

/**
 * Operator-specific flags. The catalog scans with clamd at outpost-clamd:3310 when one is
 * deployed there; permissive until then, so that an install without clamd still works
 * (see docs/operations.md to enforce scanning).
 */
const extraArgs: Record<string, string[]> = {
  catalog: [`--clamd-address=outpost-clamd.${namespace}.svc:3310`, "--scan-mode=permissive"],
};

/** Every Outpost container: non-root, read-only root file system, no privileges. */
/** Liveness on /healthz, readiness on /readyz, as the operators and the proxy serve them. */
function probes(port: number): Pick<kplus.ContainerProps, "liveness" | "readiness"> {
  return {
    liveness: kplus.Probe.fromHttpGet("/healthz", { port, periodSeconds: Duration.seconds(20) }),
    readiness: kplus.Probe.fromHttpGet("/readyz", { port, periodSeconds: Duration.seconds(10) }),
  };
}

const containerSecurity: kplus.ContainerSecurityContextProps = {
  ensureNonRoot: true,
  user: 65532,
  group: 65532,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: [kplus.Capability.ALL] },
  seccompProfile: { type: kplus.SeccompProfileType.RUNTIME_DEFAULT },
};

function operatorsChart(app: App): Chart {
  const chart = new Chart(app, "operators", { disableResourceNameHashes: true });
  for (const [name, access] of Object.entries(operators)) {
    const appLabels = {
      ...labels,
      "app.kubernetes.io/name": `outpost-${name}`,
      "app.kubernetes.io/component": "operator",
    };
    const serviceAccount = kplus.ServiceAccount.fromServiceAccountName(
      chart,
      `sa-ref-${name}`,
      `outpost-${name}`,
      {
        namespaceName: namespace,
      },
    );
    const deployment = new kplus.Deployment(chart, `deploy-${name}`, {
      metadata: {
        name: `outpost-${name}`,
        namespace,
        labels: appLabels,
        annotations: { "outpost.dev/description": access.description },
      },
      replicas: 2,
      serviceAccount,
      automountServiceAccountToken: true,
      select: false,
      podMetadata: { labels: appLabels },
      securityContext: { ensureNonRoot: true, user: 65532, group: 65532 },
      containers: [
        {
          name: "operator",
          image,
          imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
          args: [
            `--controllers=${name}`,
            "--leader-elect=true",
            `--leader-election-namespace=${namespace}`,
            `--leader-election-id=outpost-${name}`,
            `--metrics-bind-address=:${metricsPort}`,
            ...(extraArgs[name] ?? []),
          ],
          ports: [{ name: "metrics", number: metricsPort }],
          ...probes(metricsPort),
          resources: {
            cpu: { request: kplus.Cpu.millis(50), limit: kplus.Cpu.millis(1000) },
            memory: { request: Size.mebibytes(128), limit: Size.mebibytes(768) },
          },
          // The root file system is read-only; the TypeScript loader caches in /tmp.
          volumeMounts: [{ path: "/tmp", volume: kplus.Volume.fromEmptyDir(chart, `tmp-${name}`, "tmp") }],
          securityContext: containerSecurity,
        },
      ],
    });
    deployment.select(kplus.LabelSelector.of({ labels: { "app.kubernetes.io/name": `outpost-${name}` } }));
    new kplus.Service(chart, `svc-${name}`, {
      metadata: { name: `outpost-${name}-metrics`, namespace, labels: appLabels },
      selector: kplus.Pods.select(chart, `pods-${name}`, {
        labels: { "app.kubernetes.io/name": `outpost-${name}` },
      }),
      ports: [{ name: "metrics", port: metricsPort, targetPort: metricsPort }],
    });
  }
  serviceProxyDeployment(chart);
  return chart;
}

const proxyPort = 8443;

/**
 * A small young generation: the proxy allocates per request and keeps little. With V8's
 * default semi-space, scavenges under load paused it for up to 28 ms; with 2 MB, for up
 * to 11 ms (measured with --trace-gc in the proxy benchmark).
 */
export const proxyNodeFlags = ["--max-semi-space-size=2"];

/**
 * The service proxy: stateless, so several replicas serve at once (no leader election).
 * It speaks plain HTTP on 8443; put it behind an Ingress or Gateway that terminates TLS
 * (its session cookie is marked Secure) for the base domain and its wildcard. The base
 * domain is the installation's own: ConfigMap `outpost-service-proxy`, key `base-domain`,
 * which the administrator creates (the pods do not start without it).
 */
function serviceProxyDeployment(chart: Chart): void {
  const name = "outpost-service-proxy";
  const appLabels = {
    ...labels,
    "app.kubernetes.io/name": name,
    "app.kubernetes.io/component": "service-proxy",
  };
  const deployment = new kplus.Deployment(chart, "deploy-service-proxy", {
    metadata: {
      name,
      namespace,
      labels: appLabels,
      annotations: { "outpost.dev/description": serviceProxy.description },
    },
    replicas: 2,
    serviceAccount: kplus.ServiceAccount.fromServiceAccountName(chart, "sa-ref-service-proxy", name, {
      namespaceName: namespace,
    }),
    automountServiceAccountToken: true,
    select: false,
    podMetadata: { labels: appLabels },
    securityContext: { ensureNonRoot: true, user: 65532, group: 65532 },
    containers: [
      {
        name: "proxy",
        image,
        imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
        command: ["node", ...proxyNodeFlags, "--import", "tsx", "operators/proxy/main.ts"],
        args: [`--bind-address=:${proxyPort}`, "--base-domain=$(OUTPOST_PROXY_BASE_DOMAIN)"],
        envVariables: {
          OUTPOST_PROXY_BASE_DOMAIN: kplus.EnvValue.fromConfigMap(
            kplus.ConfigMap.fromConfigMapName(chart, "cm-ref-service-proxy", name),
            "base-domain",
          ),
        },
        ports: [{ name: "http", number: proxyPort }],
        ...probes(proxyPort),
        resources: {
          cpu: { request: kplus.Cpu.millis(100), limit: kplus.Cpu.millis(2000) },
          memory: { request: Size.mebibytes(128), limit: Size.mebibytes(512) },
        },
        volumeMounts: [
          { path: "/tmp", volume: kplus.Volume.fromEmptyDir(chart, "tmp-service-proxy", "tmp") },
        ],
        securityContext: containerSecurity,
      },
    ],
  });
  deployment.select(kplus.LabelSelector.of({ labels: { "app.kubernetes.io/name": name } }));
  new kplus.Service(chart, "svc-service-proxy", {
    metadata: { name, namespace, labels: appLabels },
    selector: kplus.Pods.select(chart, "pods-service-proxy", { labels: { "app.kubernetes.io/name": name } }),
    ports: [{ name: "http", port: 80, targetPort: proxyPort }],
  });
}

/**
 * A patch for Argo CD's argocd-cm adding the health check of every Outpost kind:
 *   kubectl -n argocd patch configmap argocd-cm --patch-file config/argocd/argocd-cm-patch.yaml
 */
function argocdPatch(): string {
  const lua = readFileSync(join(root, "integrations", "argocd", "health.lua"), "utf8");
  const data: Record<string, string> = {};
  for (const file of readdirSync(crdDir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    const crd = parse(readFileSync(join(crdDir, file), "utf8")) as {
      spec: { group: string; names: { kind: string } };
    };
    data[`resource.customizations.health.${crd.spec.group}_${crd.spec.names.kind}`] = lua;
  }
  return (
    "# Generated by `npm run synth` from integrations/argocd/health.lua. Apply with:\n" +
    "#   kubectl -n argocd patch configmap argocd-cm --patch-file config/argocd/argocd-cm-patch.yaml\n" +
    stringify({ data }, { lineWidth: 0 })
  );
}

/**
 * For each edge cluster (config/edge/): the ClusterRole `outpost:edge` and the
 * ServiceAccount kube-system/outpost-edge bound to it, whose token goes into the
 * cluster's kubeconfig Secret on the management cluster.
 */
function edgeChart(app: App): Chart {
  const chart = new Chart(app, "edge", { disableResourceNameHashes: true });
  clusterRole(chart, "outpost:edge", edgeRules);
  new ApiObject(chart, "edge-sa", {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: "outpost-edge", namespace: "kube-system", labels },
  });
  new ApiObject(chart, "edge-binding", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "outpost:edge", labels },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "outpost:edge" },
    subjects: [{ kind: "ServiceAccount", name: "outpost-edge", namespace: "kube-system" }],
  });
  return chart;
}

export const argocdNamespace = "argocd";

/**
 * For installations whose projects deliver with Argo CD (config/argocd/engine/): each
 * operator's Role in Argo CD's namespace, bound to its ServiceAccount.
 */
function argocdEngineChart(app: App): Chart {
  const chart = new Chart(app, "argocd-engine", { disableResourceNameHashes: true });
  const grants: [string, string, Rule[]][] = Object.keys(operators)
    .map((name): [string, string, Rule[]] => [name, `outpost-${name}`, accessOf(name).argocd ?? []])
    .concat([["service-proxy", "outpost-service-proxy", serviceProxy.argocd ?? []]])
    .filter(([, , rules]) => rules.length > 0);
  for (const [name, sa, rules] of grants)
    boundRole(chart, `argocd-${name}`, `outpost:${name}-argocd`, argocdNamespace, sa, rules);
  return chart;
}

/** Operators (and the proxy) that read Argo CD's objects, and the flags that say so. */
const argocdFlags: [string, string][] = [
  ["outpost-deploy", "--engines=fleet,argocd"],
  ["outpost-interconnect", "--engines=fleet,argocd"],
  ["outpost-ops", "--engines=fleet,argocd"],
  ["outpost-service-proxy", `--argocd-namespace=${argocdNamespace}`],
];

/** The files of config/, by name. */
export function synth(): Map<string, string> {
  const app = new App({ outdir: configDir });
  const charts: [string, Chart][] = [
    ["crds.yaml", crdsChart(app)],
    ["namespace.yaml", namespaceChart(app)],
    ["rbac.yaml", rbacChart(app)],
    ["operators.yaml", operatorsChart(app)],
  ];
  const files = new Map<string, string>();
  const header = "# Generated by `npm run synth` (cdk8s/main.ts). Do not edit.\n";
  const docs = (chart: Chart): string =>
    chart
      .toJson()
      .map((o: unknown) => stringify(o, { lineWidth: 0 }))
      .join("---\n");
  for (const [file, chart] of charts) files.set(`base/${file}`, header + docs(chart));
  files.set("install.yaml", header + charts.map(([, chart]) => docs(chart)).join("---\n"));
  files.set("argocd/argocd-cm-patch.yaml", argocdPatch());
  files.set("edge/rbac.yaml", header + docs(edgeChart(app)));
  files.set("argocd/engine/rbac.yaml", header + docs(argocdEngineChart(app)));
  files.set(
    "argocd/engine/kustomization.yaml",
    header +
      "# Outpost with both delivery engines, next to an Argo CD installed in namespace argocd:\n" +
      "#   kubectl apply -k config/argocd/engine\n" +
      stringify({
        apiVersion: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: ["../../base", "rbac.yaml"],
        patches: argocdFlags.map(([deployment, flag]) => ({
          target: { kind: "Deployment", name: deployment },
          patch: stringify([{ op: "add", path: "/spec/template/spec/containers/0/args/-", value: flag }]),
        })),
      }),
  );
  files.set(
    "edge/kustomization.yaml",
    header +
      stringify({
        apiVersion: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: ["rbac.yaml"],
      }),
  );
  files.set(
    "base/kustomization.yaml",
    header +
      stringify({
        apiVersion: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: charts.map(([file]) => file),
        images: [{ name: image.split(":")[0], newTag: image.split(":")[1] }],
      }),
  );
  // The base, from config/ itself; overlays (config/argocd/engine) build on base/, which
  // does not contain them (kustomize refuses a root that contains its overlay).
  files.set(
    "kustomization.yaml",
    header +
      stringify({
        apiVersion: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: ["base"],
      }),
  );
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes("--check");
  const stale: string[] = [];
  for (const [name, content] of synth()) {
    const path = join(configDir, name);
    const current = existsSync(path) ? readFileSync(path, "utf8") : undefined;
    if (current === content) continue;
    if (check) stale.push(name);
    else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
    }
  }
  if (check && stale.length > 0) {
    console.error(`config/ is out of date: ${stale.join(", ")}\nrun: npm run synth`);
    process.exit(1);
  }
  if (!check) console.log("wrote config/");
}
