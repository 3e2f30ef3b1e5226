// Built-in Kubernetes kinds the operators read and write.
import type { ResourceType } from "./client.ts";

const core = (kind: string, plural: string, namespaced = true): ResourceType => ({
  group: "",
  version: "v1",
  kind,
  plural,
  namespaced,
});

export const namespacesResource = core("Namespace", "namespaces", false);
export const secretsResource = core("Secret", "secrets");
export const configMapsResource = core("ConfigMap", "configmaps");
export const servicesResource = core("Service", "services");
export const podsResource = core("Pod", "pods");
