// KubeVirt on an edge API server, as far as the ops operator uses it: a stand-in
// VirtualMachine CRD (kubevirt.io/v1; KubeVirt's own controllers cannot run here) and
// KubeVirt's subresource API (`PUT /apis/subresources.kubevirt.io/v1/namespaces/<ns>/
// virtualmachines/<name>/start|stop|restart`) served by a small HTTPS server registered
// through a real APIService, so calls go through the edge API server's aggregation layer
// — authentication, RBAC on `virtualmachines/start` etc., and proxying — as in a cluster.
//
// The server answers as virt-api does (pkg/virt-api/rest/subresource.go): 404 for an
// unknown VM, 409 when start finds it running or stop finds it stopped, 202 otherwise —
// and then sets the VM's `spec.runStrategy` (Always / Halted) and `status.printableStatus`
// as virt-controller would.
//
// The API server reaches the server at this machine's non-loopback address (the
// aggregator, like the service proxy, does not proxy to loopback), through a Service
// without selector and its Endpoints: all traffic stays on this machine.
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { stringify } from "yaml";
import { loadAllYaml, type V1CustomResourceDefinition } from "@kubernetes/client-node";
import { KubeClient, type KubeObject, type ResourceType } from "../../operators/runtime/client.ts";
import { kubeConfigFromFile, installCRDs, type Cluster } from "../controlplane/index.ts";
import { createCertificateAuthority } from "../controlplane/pki.ts";
import { eventually } from "./controlplane.ts";
import { hostAddress } from "./host-address.ts";

export const VirtualMachineResource: ResourceType = {
  group: "kubevirt.io",
  version: "v1",
  kind: "VirtualMachine",
  plural: "virtualmachines",
  namespaced: true,
};

const apiServiceResource: ResourceType = {
  group: "apiregistration.k8s.io",
  version: "v1",
  kind: "APIService",
  plural: "apiservices",
  namespaced: false,
};

export interface KubevirtCall {
  verb: "start" | "stop" | "restart";
  namespace: string;
  name: string;
  /** The user the API server authenticated (X-Remote-User from the aggregator). */
  user: string;
  status: number;
}

export interface Kubevirt {
  calls: KubevirtCall[];
  stop(): Promise<void>;
}

function standInCRD(): V1CustomResourceDefinition {
  const anything = { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  return loadAllYaml(
    stringify({
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "virtualmachines.kubevirt.io" },
      spec: {
        group: "kubevirt.io",
        scope: "Namespaced",
        names: {
          kind: "VirtualMachine",
          plural: "virtualmachines",
          singular: "virtualmachine",
          listKind: "VirtualMachineList",
        },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: { openAPIV3Schema: { type: "object", properties: { spec: anything, status: anything } } },
          },
        ],
      },
    }),
  )[0] as V1CustomResourceDefinition;
}

interface VM extends KubeObject {
  spec?: { runStrategy?: string };
  status?: { printableStatus?: string };
}

/** Installs the stand-in CRD and registers the subresource server on `cluster`. */
export async function startKubevirt(cluster: Cluster): Promise<Kubevirt> {
  await installCRDs(cluster, [standInCRD()]);
  const client = new KubeClient(kubeConfigFromFile(cluster.kubeconfig));
  const ca = await createCertificateAuthority("kubevirt-test");
  const host = hostAddress();
  const serving = await ca.issue({
    commonName: "virt-api",
    hosts: [host, "virt-api.kubevirt.svc"],
    usage: "server",
  });
  const calls: KubevirtCall[] = [];
  const discovery = {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: "subresources.kubevirt.io/v1",
    resources: ["start", "stop", "restart"].map((verb) => ({
      name: `virtualmachines/${verb}`,
      namespaced: true,
      kind: "VirtualMachine",
      verbs: ["update"],
    })),
  };

  const server: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? "/", "https://virt-api");
    if (req.method === "GET" && /^\/apis\/subresources\.kubevirt\.io\/v1\/?$/.test(url.pathname)) {
      send(200, discovery);
      return;
    }
    const m =
      /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([^/]+)\/virtualmachines\/([^/]+)\/(start|stop|restart)$/.exec(
        url.pathname,
      );
    if (!m || req.method !== "PUT") {
      send(404, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404 });
      return;
    }
    const [, namespace = "", name = "", verb = "start"] = m;
    const user = String(req.headers["x-remote-user"] ?? "");
    req.resume();
    req.on("end", () => {
      void (async () => {
        const vm = await client.get<VM>(VirtualMachineResource, name, namespace);
        const record = (status: number, message: string): void => {
          calls.push({ verb: verb as KubevirtCall["verb"], namespace, name, user, status });
          send(
            status,
            status < 300
              ? {}
              : { kind: "Status", apiVersion: "v1", status: "Failure", message, code: status },
          );
        };
        if (!vm) {
          record(404, `virtualmachine.kubevirt.io "${name}" not found`);
          return;
        }
        const running = vm.spec?.runStrategy !== "Halted";
        if (verb === "start" && running) {
          record(409, "VM is already running");
          return;
        }
        if ((verb === "stop" || verb === "restart") && !running) {
          record(409, "VM is not running");
          return;
        }
        const strategy = verb === "stop" ? "Halted" : "Always";
        await client.mergePatch(VirtualMachineResource, name, namespace, { spec: { runStrategy: strategy } });
        await client.mergePatch(
          VirtualMachineResource,
          name,
          namespace,
          { status: { printableStatus: strategy === "Halted" ? "Stopped" : "Running" } },
          { subresource: "status" },
        );
        record(202, "");
      })().catch((err: unknown) => {
        send(500, { kind: "Status", status: "Failure", message: String(err), code: 500 });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;

  const ns = "kubevirt";
  await client.apply(
    { group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false },
    { metadata: { name: ns } },
    { fieldManager: "test" },
  );
  await client.apply(
    { group: "", version: "v1", kind: "Service", plural: "services", namespaced: true },
    {
      metadata: { name: "virt-api", namespace: ns },
      spec: { ports: [{ name: "https", port: 443, targetPort: port }] },
    } as KubeObject,
    { fieldManager: "test" },
  );
  await client.apply(
    { group: "", version: "v1", kind: "Endpoints", plural: "endpoints", namespaced: true },
    {
      metadata: { name: "virt-api", namespace: ns },
      subsets: [{ addresses: [{ ip: host }], ports: [{ name: "https", port }] }],
    } as KubeObject,
    { fieldManager: "test" },
  );
  // The aggregator resolves endpoints through EndpointSlices (no controller mirrors
  // Endpoints here): both are written.
  await client.apply(
    {
      group: "discovery.k8s.io",
      version: "v1",
      kind: "EndpointSlice",
      plural: "endpointslices",
      namespaced: true,
    },
    {
      metadata: { name: "virt-api-1", namespace: ns, labels: { "kubernetes.io/service-name": "virt-api" } },
      addressType: "IPv4",
      endpoints: [{ addresses: [host], conditions: { ready: true } }],
      ports: [{ name: "https", port, protocol: "TCP" }],
    } as KubeObject,
    { fieldManager: "test" },
  );
  await client.apply(
    apiServiceResource,
    {
      metadata: { name: "v1.subresources.kubevirt.io" },
      spec: {
        group: "subresources.kubevirt.io",
        version: "v1",
        service: { namespace: ns, name: "virt-api", port: 443 },
        caBundle: Buffer.from(ca.certPem).toString("base64"),
        groupPriorityMinimum: 1000,
        versionPriority: 15,
      },
    } as KubeObject,
    { fieldManager: "test" },
  );
  await eventually("the KubeVirt subresource APIService available", async () => {
    const s = await client.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(
      apiServiceResource,
      "v1.subresources.kubevirt.io",
    );
    return s?.status?.conditions?.some((c) => c.type === "Available" && c.status === "True")
      ? true
      : undefined;
  });
  return {
    calls,
    async stop() {
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
      server.closeAllConnections();
      await client.close();
    },
  };
}
