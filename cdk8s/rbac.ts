// What each operator may do, as data: the rules of its ClusterRole, of the Role it gets
// in every project namespace (bound there by the tenancy operator), and of its Role in
// outpost-system. Least privilege: an operator reads Secrets only in project namespaces,
// in outpost-system and (edge credentials, by name) in outpost-edges, never cluster-wide.

export interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface OperatorAccess {
  /** One line for people: what the operator does. */
  description: string;
  /** Cluster-wide. */
  cluster: Rule[];
  /** In each project namespace (RoleBinding made by the tenancy operator). */
  project: Rule[];
  /** In outpost-system (its configuration Secrets, its Lease). */
  system: Rule[];
  /**
   * In outpost-edges, where platform administrators keep the kubeconfigs Outpost reaches
   * edge clusters with (no project role reaches there).
   */
  edges?: Rule[];
  /**
   * In Argo CD's namespace, when projects deliver with Argo CD (config/argocd/engine/):
   * Outpost's ApplicationSets, AppProjects and repository Secrets, and the cluster Secrets
   * that register edges.
   */
  argocd?: Rule[];
}

const read = ["get", "list", "watch"];
const write = ["create", "update", "patch", "delete"];
const all = [...read, ...write];

const own = (group: string, kinds: string[]): Rule[] => [
  { apiGroups: [group], resources: kinds, verbs: [...read, "update", "patch"] },
  { apiGroups: [group], resources: kinds.map((k) => `${k}/status`), verbs: ["get", "update", "patch"] },
  { apiGroups: [group], resources: kinds.map((k) => `${k}/finalizers`), verbs: ["update"] },
];

/** Every operator: events about its objects, and its leader-election Lease. */
const common = {
  cluster: [{ apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] }] as Rule[],
  system: [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
  ] as Rule[],
};

/** Reads an edge cluster's kubeconfig Secret (by name: no list, no watch). */
const edgeCredentials: Rule[] = [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }];

const fleetRead: Rule = {
  apiGroups: ["fleet.cattle.io"],
  resources: ["clusters", "clustergroups", "bundles", "bundledeployments"],
  verbs: read,
};

export const operators: Record<string, OperatorAccess> = {
  catalog: {
    description: "Registries, applications, deployment packages, artifacts and malware scanning",
    cluster: [
      ...own("catalog.outpost.dev", ["registries", "applications", "deploymentpackages", "artifacts"]),
      { apiGroups: ["deploy.outpost.dev"], resources: ["appdeployments"], verbs: read },
      { apiGroups: [""], resources: ["configmaps"], verbs: read },
    ],
    project: [{ apiGroups: [""], resources: ["secrets"], verbs: read }],
    system: [{ apiGroups: [""], resources: ["secrets"], verbs: read, resourceNames: ["outpost-catalog"] }],
  },
  deploy: {
    description: "AppDeployments and Approvals rendered to Git and Fleet GitRepos",
    cluster: [
      ...own("deploy.outpost.dev", ["appdeployments", "approvals"]),
      {
        apiGroups: ["catalog.outpost.dev"],
        resources: ["registries", "applications", "deploymentpackages"],
        verbs: read,
      },
      { apiGroups: ["fleet.cattle.io"], resources: ["gitrepos"], verbs: all },
      fleetRead,
      // A project's engine and approval policy.
      { apiGroups: ["tenancy.outpost.dev"], resources: ["projects"], verbs: read },
      {
        apiGroups: ["apps"],
        resources: ["controllerrevisions"],
        verbs: [...read, "create", "update", "delete"],
      },
    ],
    project: [
      { apiGroups: [""], resources: ["secrets"], verbs: [...read, "create", "update", "patch", "delete"] },
    ],
    system: [{ apiGroups: [""], resources: ["secrets"], verbs: read, resourceNames: ["outpost-deploy"] }],
    // Argo CD's reachability probes.
    edges: edgeCredentials,
    argocd: [
      { apiGroups: ["argoproj.io"], resources: ["applicationsets", "appprojects"], verbs: all },
      { apiGroups: ["argoproj.io"], resources: ["applications"], verbs: read },
      // Repository Secrets it writes; cluster Secrets it reads (and annotates for a refresh).
      { apiGroups: [""], resources: ["secrets"], verbs: all },
    ],
  },
  interconnect: {
    description:
      "Networks and NetworkServices as Skupper sites, links, listeners and connectors on edge clusters",
    cluster: [
      ...own("interconnect.outpost.dev", ["networks", "networkservices"]),
      // The NetworkServices of AppDeployments that name a Network.
      {
        apiGroups: ["interconnect.outpost.dev"],
        resources: ["networkservices"],
        verbs: ["create", "delete"],
      },
      { apiGroups: ["deploy.outpost.dev"], resources: ["appdeployments"], verbs: read },
      { apiGroups: ["catalog.outpost.dev"], resources: ["applications", "deploymentpackages"], verbs: read },
      { apiGroups: ["fleet.cattle.io"], resources: ["gitrepos"], verbs: read },
      fleetRead,
    ],
    project: [{ apiGroups: [""], resources: ["secrets"], verbs: read }],
    system: [],
    edges: edgeCredentials,
    argocd: [
      { apiGroups: ["argoproj.io"], resources: ["applicationsets"], verbs: read },
      { apiGroups: [""], resources: ["secrets"], verbs: read },
    ],
  },
  ops: {
    description: "ResourceActions on edge workloads and virtual machines",
    cluster: [
      ...own("ops.outpost.dev", ["resourceactions"]),
      { apiGroups: ["ops.outpost.dev"], resources: ["resourceactions"], verbs: ["delete"] },
      { apiGroups: ["deploy.outpost.dev"], resources: ["appdeployments"], verbs: read },
      { apiGroups: ["fleet.cattle.io"], resources: ["gitrepos"], verbs: read },
      fleetRead,
    ],
    project: [{ apiGroups: [""], resources: ["secrets"], verbs: read }],
    system: [],
    edges: edgeCredentials,
    argocd: [
      { apiGroups: ["argoproj.io"], resources: ["applicationsets"], verbs: read },
      { apiGroups: [""], resources: ["secrets"], verbs: read },
    ],
  },
  tenancy: {
    description: "Projects: namespaces, RBAC, quota, Harbor, Git and base extensions",
    cluster: [
      ...own("tenancy.outpost.dev", ["projects"]),
      { apiGroups: [""], resources: ["namespaces"], verbs: all },
      { apiGroups: ["rbac.authorization.k8s.io"], resources: ["rolebindings"], verbs: all },
      {
        // Binding the project roles requires `bind` on them (RBAC escalation check).
        apiGroups: ["rbac.authorization.k8s.io"],
        resources: ["clusterroles"],
        verbs: ["bind"],
        resourceNames: [
          "outpost:project-admin",
          "outpost:project-deployer",
          "outpost:project-approver",
          "outpost:project-viewer",
          ...["catalog", "deploy", "interconnect", "ops", "tenancy"].map(
            (o) => `outpost:${o}-operator-project`,
          ),
          "outpost:service-proxy-project",
        ],
      },
      { apiGroups: [""], resources: ["resourcequotas"], verbs: all },
      {
        apiGroups: ["catalog.outpost.dev"],
        resources: ["registries", "deploymentpackages", "applications"],
        verbs: all,
      },
      { apiGroups: ["deploy.outpost.dev"], resources: ["appdeployments"], verbs: all },
      // Project deletion removes networks first, so their finalizers can clean the edges.
      {
        apiGroups: ["interconnect.outpost.dev"],
        resources: ["networks", "networkservices"],
        verbs: [...read, "delete"],
      },
    ],
    project: [
      { apiGroups: [""], resources: ["secrets"], verbs: [...read, "create", "update", "patch", "delete"] },
    ],
    system: [{ apiGroups: [""], resources: ["secrets"], verbs: read, resourceNames: ["outpost-tenancy"] }],
  },
};

/**
 * The service proxy (a process of its own): it authenticates users with TokenReview,
 * authorizes them with SubjectAccessReview, and reaches edge clusters with their
 * kubeconfig Secrets in project namespaces.
 */
export const serviceProxy: OperatorAccess = {
  description: "HTTP and WebSocket proxy to web UIs on edge clusters",
  cluster: [
    { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
    { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
    { apiGroups: ["deploy.outpost.dev"], resources: ["appdeployments"], verbs: read },
    { apiGroups: ["catalog.outpost.dev"], resources: ["applications", "deploymentpackages"], verbs: read },
    { apiGroups: ["fleet.cattle.io"], resources: ["gitrepos"], verbs: read },
    fleetRead,
  ],
  project: [{ apiGroups: [""], resources: ["secrets"], verbs: read }],
  system: [],
  edges: edgeCredentials,
  argocd: [
    { apiGroups: ["argoproj.io"], resources: ["applicationsets"], verbs: read },
    { apiGroups: [""], resources: ["secrets"], verbs: read },
  ],
};

export function accessOf(name: string): OperatorAccess {
  const access = operators[name];
  if (!access) throw new Error(`unknown operator ${name}`);
  return {
    ...access,
    cluster: [...common.cluster, ...access.cluster],
    system: [...common.system, ...access.system],
  };
}

const outpostKinds: Record<string, string[]> = {
  "catalog.outpost.dev": ["registries", "applications", "deploymentpackages", "artifacts"],
  "deploy.outpost.dev": ["appdeployments", "approvals"],
  "interconnect.outpost.dev": ["networks", "networkservices"],
  "ops.outpost.dev": ["resourceactions"],
};

/**
 * The project roles bound to members in project namespaces. Each role's own rules sit in
 * `outpost:project-<role>-rules`, labelled to aggregate into the roles that include it
 * (admin ⊇ deployer, approver ⊇ viewer) and into Kubernetes' admin/edit/view; the role
 * `outpost:project-<role>` aggregates them.
 */
export const projectRoles: { name: string; includedIn: string[]; kubernetes: string[]; rules: Rule[] }[] = [
  {
    name: "viewer",
    includedIn: ["deployer", "approver", "admin"],
    kubernetes: ["view", "edit", "admin"],
    rules: Object.entries(outpostKinds).map(([g, kinds]) => ({
      apiGroups: [g],
      resources: [...kinds, ...kinds.map((k) => `${k}/status`)],
      verbs: read,
    })),
  },
  {
    name: "deployer",
    includedIn: ["admin"],
    kubernetes: ["edit", "admin"],
    rules: [
      {
        apiGroups: ["catalog.outpost.dev"],
        resources: outpostKinds["catalog.outpost.dev"] ?? [],
        verbs: write,
      },
      { apiGroups: ["deploy.outpost.dev"], resources: ["appdeployments"], verbs: write },
      // The service proxy's authorization: open the web UIs a deployment exports.
      { apiGroups: ["deploy.outpost.dev"], resources: ["appdeployments/proxy"], verbs: ["get", "create"] },
      { apiGroups: ["interconnect.outpost.dev"], resources: ["networks", "networkservices"], verbs: write },
      { apiGroups: ["ops.outpost.dev"], resources: ["resourceactions"], verbs: ["create", "delete"] },
      // Registry credentials, secret parameters, artifact content.
      { apiGroups: [""], resources: ["secrets", "configmaps"], verbs: all },
    ],
  },
  {
    name: "approver",
    includedIn: ["admin"],
    kubernetes: ["admin"],
    rules: [{ apiGroups: ["deploy.outpost.dev"], resources: ["approvals"], verbs: ["create", "delete"] }],
  },
  {
    name: "admin",
    includedIn: [],
    kubernetes: [],
    rules: [{ apiGroups: ["rbac.authorization.k8s.io"], resources: ["rolebindings"], verbs: read }],
  },
];

/**
 * What the interconnect and ops operators do on an edge cluster, with the identity of the
 * kubeconfig Secret the management cluster holds for it (ClusterRole `outpost:edge`,
 * bound to ServiceAccount kube-system/outpost-edge by config/edge/). Secrets may be
 * deleted (the link credentials Skupper made from a token the operator removes), never
 * read.
 */
export const edgeRules: Rule[] = [
  { apiGroups: [""], resources: ["namespaces"], verbs: ["get", "create", "patch", "delete"] },
  {
    apiGroups: ["skupper.io"],
    resources: [
      "sites",
      "accessgrants",
      "accesstokens",
      "links",
      "listeners",
      "connectors",
      "attachedconnectors",
      "attachedconnectorbindings",
    ],
    verbs: ["get", "list", "create", "patch", "delete"],
  },
  { apiGroups: [""], resources: ["services"], verbs: ["get", "list"] },
  // The service proxy: the edge API server's proxy to Services (verbs by HTTP method).
  { apiGroups: [""], resources: ["services/proxy"], verbs: ["get", "create", "update", "patch", "delete"] },
  // ResourceActions: restart (delete) pods, roll workloads, start/stop/restart VMs, delete.
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "delete"] },
  {
    apiGroups: ["apps"],
    resources: ["deployments", "statefulsets", "daemonsets"],
    verbs: ["get", "list", "patch", "delete"],
  },
  { apiGroups: ["apps"], resources: ["replicasets"], verbs: ["get", "list"] },
  { apiGroups: ["batch"], resources: ["jobs", "cronjobs"], verbs: ["get"] },
  { apiGroups: ["kubevirt.io"], resources: ["virtualmachines"], verbs: ["get", "list", "delete"] },
  { apiGroups: ["kubevirt.io"], resources: ["virtualmachineinstances"], verbs: ["get", "list"] },
  {
    apiGroups: ["subresources.kubevirt.io"],
    resources: ["virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart"],
    verbs: ["update"],
  },
  { apiGroups: [""], resources: ["secrets"], verbs: ["delete"] },
];
