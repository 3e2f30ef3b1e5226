// The local control plane for tests and the demo: see controlplane.ts.
export { startControlPlane, ControlPlaneError } from "./controlplane.ts";
export type { ControlPlane, Cluster, StartOptions } from "./controlplane.ts";
export { brokenImage, gpuResource, gpuPresentLabel } from "./workloads.ts";
export type { WorkloadOptions, WorkloadsOption } from "./workloads.ts";
export { kubeconfigFor } from "./kubeconfig.ts";
export { installCRDs, readCRDs, kubeConfigFromFile } from "./crds.ts";
export { upstream, upstreamCRDFiles, UpstreamUnavailableError } from "./upstream.ts";
export { groupAlive } from "./processes.ts";
