// A real Argo CD for tests and the demo: see argocd.ts.
export {
  startArgoCD,
  ensureArgoCDBinaries,
  argoCDVersion,
  argoCDModuleDir,
  argoCDCRDFiles,
  clusterSecret,
  ociHelmRepositorySecret,
  ApplicationResource,
  ApplicationSetResource,
  AppProjectResource,
  ArgoCDError,
  secretTypeLabel,
  partOfLabel,
  resourcesFinalizer,
  refreshAnnotation,
} from "./argocd.ts";
export type { ArgoCD, ArgoCDBinaries, ArgoCDPorts, ArgoApplication, StartArgoCDOptions } from "./argocd.ts";
