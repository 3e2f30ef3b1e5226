// kubectl-outpost: the Outpost kubectl plugin (catalog files, deployments, reconcile).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { draftFromChart } from "../operators/catalog/draft.ts";
import { KubeConfig } from "@kubernetes/client-node";
import { CatalogError } from "../operators/catalog/format.ts";
import { scannerFor } from "../operators/catalog/index.ts";
import { KubeClient } from "../operators/runtime/client.ts";
import { exportCatalog, importCatalog } from "./catalog.ts";
import {
  approve,
  deploymentStatus,
  diff,
  formatDiff,
  formatHistory,
  formatStatus,
  history,
  rollback,
} from "./deploy.ts";
import { explain } from "./errors.ts";
import { registerCluster } from "./clusters.ts";
import { collectFiles } from "./files.ts";
import { reconcileNow } from "./reconcile.ts";
import { deploymentResources, formatResources } from "./resources.ts";

const usage = `usage: kubectl outpost COMMAND [options]

commands:
  import PATH...     apply catalog files (Edge Orchestrator format: folders, files, .tar.gz),
                     all or nothing, after validation, malware scan and a server-side dry run
      --clamd-address=HOST:PORT   clamd to scan with (or set OUTPOST_CLAMD_ADDRESS)
      --no-scan                   do not scan (air-gapped labs)
  export             write the namespace's catalog as catalog files
      --dir=DIR                   where to write (default: .)
  reconcile KIND/NAME  ask the operator to reconcile an object now, and wait until it has
      --timeout=SECONDS           how long to wait (default: 60)
  status DEP         a deployment's phase, revision, per-application and not-ready clusters
      --clusters                  one row per (cluster, application), read from Fleet
      --app=NAME                  only this application (with --clusters)
  approve DEP        approve the deployment's current spec (needs the approver role)
      --comment=TEXT              recorded in the Approval
  history DEP        the delivered revisions
  rollback DEP       restore the spec of the previous revision
      --to-revision=N             restore revision N instead
  diff DEP           what delivering the current spec changes, per application: files in
                     Git (secrets redacted) and clusters added or removed
  resources DEP      the pods, workloads, VMs and services the deployment runs, read from
                     its edge clusters (needs read access to their kubeconfig Secrets)
      --cluster=NAME              only this cluster
  register-cluster NAME  register an edge cluster with the project, where its delivery
                     engine needs it (a Fleet Cluster, or an Argo CD cluster Secret), and
                     Outpost's own kubeconfig Secret for it (an administrator's task)
      --engine-kubeconfig=FILE    what the engine reaches the cluster with
      --outpost-kubeconfig=FILE   Outpost's edge identity there (config/edge/)
      --label=KEY=VALUE           a placement label (repeatable)
      --engine=fleet|argocd       default: the Project's spec.delivery.engine, else fleet
  version            this command's version, the server's Kubernetes version, and whether
                     Outpost's API is installed there
  package helm CHART.tgz
                     print a draft Application and a one-app DeploymentPackage for a chart
      --registry=NAME             the Registry holding the chart (required)

common options:
  -o, --output=FORMAT   table (default), yaml or json
  -n, --namespace=NS    the project namespace (default: the context's namespace, else default)
  --kubeconfig=PATH     kubeconfig (default: $KUBECONFIG, else ~/.kube/config)
  --context=NAME        kubeconfig context
  --as=USER             act as this user (impersonation, as kubectl --as)
  --as-group=GROUP      ... and this group (repeatable, with --as)
  --argocd-namespace=NS Argo CD's namespace, for deployments Argo CD delivers (default: argocd)`;

/** The API server the command talks to, for error messages. */
let server: string | undefined;

function client(values: { kubeconfig?: string; context?: string; as?: string; "as-group"?: string[] }): {
  client: KubeClient;
  namespace: string;
} {
  const kc = new KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromDefault();
  if (values.context) kc.setCurrentContext(values.context);
  const ns = kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
  server = kc.getCurrentCluster()?.server;
  if (values["as-group"]?.length && !values.as)
    throw new CatalogError("--as-group needs --as (the user to act as)");
  const impersonate = values.as ? { user: values.as, groups: values["as-group"] } : undefined;
  return { client: new KubeClient(kc, { impersonate }), namespace: ns };
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    console.log(usage);
    return command ? 0 : 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      namespace: { type: "string", short: "n" },
      kubeconfig: { type: "string" },
      context: { type: "string" },
      "clamd-address": { type: "string" },
      "no-scan": { type: "boolean" },
      dir: { type: "string", default: "." },
      registry: { type: "string" },
      timeout: { type: "string", default: "60" },
      output: { type: "string", short: "o", default: "table" },
      clusters: { type: "boolean" },
      app: { type: "string" },
      comment: { type: "string" },
      "to-revision": { type: "string" },
      cluster: { type: "string" },
      as: { type: "string" },
      "as-group": { type: "string", multiple: true },
      "argocd-namespace": { type: "string", default: "argocd" },
      "engine-kubeconfig": { type: "string" },
      "outpost-kubeconfig": { type: "string" },
      label: { type: "string", multiple: true },
      engine: { type: "string" },
    },
  });
  const output = values.output;
  if (output !== "table" && output !== "yaml" && output !== "json") {
    throw new CatalogError(`--output must be table, yaml or json, not "${output}"`);
  }
  const print = (data: unknown, asTable: () => string): void => {
    if (output === "json") console.log(JSON.stringify(data, null, 2));
    else if (output === "yaml") process.stdout.write(stringify(data));
    else console.log(asTable());
  };
  const progress = (line: string): void => {
    console.error(line);
  };
  if (command === "import") {
    if (positionals.length === 0)
      throw new CatalogError("import needs at least one PATH (folder, file or .tar.gz)");
    const clamd = values["clamd-address"] ?? process.env.OUTPOST_CLAMD_ADDRESS;
    if (!clamd && !values["no-scan"]) {
      throw new CatalogError(
        "import scans every file: give --clamd-address=HOST:PORT (or OUTPOST_CLAMD_ADDRESS), or --no-scan",
      );
    }
    const scanner = values["no-scan"] ? undefined : scannerFor({ clamdAddress: clamd, scanMode: "enforce" });
    const { client: c, namespace } = client(values);
    try {
      const files = await collectFiles(positionals);
      const result = await importCatalog(c, files, values.namespace ?? namespace, { scanner, progress });
      for (const a of result.applied) console.log(a);
    } finally {
      await c.close();
    }
    return 0;
  }
  if (command === "export") {
    const { client: c, namespace } = client(values);
    try {
      const written = await exportCatalog(c, values.namespace ?? namespace, values.dir);
      for (const w of written) console.log(w);
      progress(`wrote ${written.length} files to ${values.dir}`);
    } finally {
      await c.close();
    }
    return 0;
  }
  if (command === "register-cluster") {
    const name = positionals[0];
    const engineKubeconfig = values["engine-kubeconfig"];
    const outpostKubeconfig = values["outpost-kubeconfig"];
    if (!name || !engineKubeconfig || !outpostKubeconfig) {
      throw new CatalogError(
        "usage: kubectl outpost register-cluster NAME --engine-kubeconfig=FILE --outpost-kubeconfig=FILE [--label=K=V]... [-n PROJECT]",
      );
    }
    const engine = values.engine;
    if (engine !== undefined && engine !== "fleet" && engine !== "argocd")
      throw new CatalogError(`--engine must be fleet or argocd, not "${engine}"`);
    const labels: Record<string, string> = {};
    for (const l of values.label ?? []) {
      const i = l.indexOf("=");
      if (i <= 0) throw new CatalogError(`--label must be KEY=VALUE, not "${l}"`);
      labels[l.slice(0, i)] = l.slice(i + 1);
    }
    const { client: c, namespace } = client(values);
    try {
      const r = await registerCluster(c, {
        namespace: values.namespace ?? namespace,
        name,
        labels,
        ...(engine ? { engine } : {}),
        engineKubeconfig: readFileSync(engineKubeconfig, "utf8"),
        outpostKubeconfig: readFileSync(outpostKubeconfig, "utf8"),
        argocdNamespace: values["argocd-namespace"],
      });
      print(r, () =>
        [`registered ${name} for ${r.engine === "argocd" ? "Argo CD" : "Fleet"}:`, ...r.applied].join("\n  "),
      );
    } finally {
      await c.close();
    }
    return 0;
  }
  if (command === "reconcile") {
    const ref = positionals[0];
    if (!ref) throw new CatalogError("usage: kubectl outpost reconcile KIND/NAME [-n NS]");
    const { client: c, namespace } = client(values);
    try {
      const result = await reconcileNow(c, ref, values.namespace ?? namespace, {
        timeoutMs: Number(values.timeout) * 1000,
        progress,
      });
      console.log(result.ready ?? "reconciled");
    } finally {
      await c.close();
    }
    return 0;
  }
  if (command === "resources") {
    const name = positionals[0];
    if (!name) throw new CatalogError("usage: kubectl outpost resources DEPLOYMENT [--cluster=NAME] [-n NS]");
    const { client: c, namespace: contextNs } = client(values);
    try {
      const report = await deploymentResources(c, values.namespace ?? contextNs, name, {
        cluster: values.cluster,
        progress,
        argocdNamespace: values["argocd-namespace"],
      });
      print(report, () => formatResources(report));
      return report.unreachable.length > 0 ? 1 : 0;
    } finally {
      await c.close();
    }
  }
  if (["status", "approve", "history", "rollback", "diff"].includes(command)) {
    const name = positionals[0];
    if (!name) throw new CatalogError(`usage: kubectl outpost ${command} DEPLOYMENT [-n NS]`);
    const { client: c, namespace: contextNs } = client(values);
    const ns = values.namespace ?? contextNs;
    try {
      if (command === "status") {
        const report = await deploymentStatus(c, ns, name, {
          clusters: values.clusters,
          app: values.app,
          progress,
          argocdNamespace: values["argocd-namespace"],
        });
        print(
          report.clusters
            ? { status: report.deployment.status, clusters: report.clusters }
            : report.deployment.status,
          () => formatStatus(report),
        );
      } else if (command === "approve") {
        const r = await approve(c, ns, name, values.comment);
        print(r, () =>
          r.created
            ? `approved ${name} (revision hash ${r.revisionHash}) as Approval ${r.name}`
            : `${name} (revision hash ${r.revisionHash}) is already approved by Approval ${r.name}`,
        );
      } else if (command === "history") {
        const rows = await history(c, ns, name);
        print(rows, () => formatHistory(rows));
      } else if (command === "rollback") {
        const to = values["to-revision"];
        if (to !== undefined && !/^\d+$/.test(to))
          throw new CatalogError(`--to-revision must be a revision number, not "${to}"`);
        const r = await rollback(c, ns, name, to === undefined ? undefined : Number(to));
        print(
          r,
          () =>
            `${name}: restored the spec of revision ${r.revision} (revision hash ${r.hash}); follow it with kubectl outpost status ${name}`,
        );
      } else {
        const d = await diff(c, ns, name, { argocdNamespace: values["argocd-namespace"] });
        print(d, () => formatDiff(d));
      }
    } finally {
      await c.close();
    }
    return 0;
  }
  if (command === "version") {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    const { client: c } = client(values);
    try {
      const kube = await c.request<{ gitVersion: string }>("GET", "/version");
      const outpost = await c.request("GET", "/apis/deploy.outpost.dev/v1alpha1").then(
        () => true,
        () => false,
      );
      const report = {
        client: pkg.version,
        server: server ?? "",
        kubernetes: kube.gitVersion,
        outpostApi: outpost,
      };
      print(report, () =>
        [
          `kubectl-outpost ${pkg.version}`,
          `server ${report.server}: Kubernetes ${kube.gitVersion}, Outpost API ${outpost ? "installed" : "not installed (kubectl apply -k config/)"}`,
        ].join("\n"),
      );
    } finally {
      await c.close();
    }
    return 0;
  }
  if (command === "package" && positionals[0] === "helm") {
    const chart = positionals[1];
    if (!chart || !values.registry)
      throw new CatalogError("usage: kubectl outpost package helm CHART.tgz --registry=NAME");
    const objects = await draftFromChart(readFileSync(chart), values.registry, values.namespace);
    console.log(objects.map((o) => stringify(o)).join("---\n"));
    return 0;
  }
  throw new CatalogError(`unknown command "${command}"\n\n${usage}`);
}

/** main() with errors explained on stderr; resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (err) {
    const { message, exitCode } = explain(err, server);
    console.error(`error: ${message}`);
    return exitCode;
  }
}

if (import.meta.main) {
  void run(process.argv.slice(2)).then((code) => process.exit(code));
}
