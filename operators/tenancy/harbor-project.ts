// A project's Harbor project and robot account, and what the namespace gets from them:
// Secret outpost-harbor (kubernetes.io/dockerconfigjson, with username and password too,
// so a Registry can use it) and a Registry `harbor` (OCI charts and images). Settings
// come from Secret outpost-tenancy in outpost-system:
//
//   harbor.url       https://harbor.example.com
//   harbor.username  an account that may create projects and robots (an admin)
//   harbor.password  its password
//   harbor.registry  the registry host name images and charts are pulled from (default:
//                    the host of harbor.url)
//   harbor.timeout   how long one Harbor request may take, e.g. 30s (default)
//
// The robot's secret is returned by Harbor only when it is created: when the Secret is
// missing but the robot exists (a crash in between), the secret is regenerated rather
// than a second robot made.
import { HarborClient, HarborError, harborNamePattern } from "./harbor.ts";

export interface HarborSettings {
  url: string;
  username: string;
  password: string;
  registry: string;
  timeoutMs: number;
}

export const robotName = "outpost";
export const harborSecretName = "outpost-harbor";
export const harborRegistryName = "harbor";

export function harborSettingsFrom(data: Record<string, string>): HarborSettings | undefined {
  const get = (k: string): string | undefined => data[k]?.trim();
  const url = get("harbor.url");
  if (!url) return undefined;
  const username = get("harbor.username");
  const password = get("harbor.password");
  if (!username || !password) {
    throw new Error(
      "Secret outpost-tenancy: harbor.url is set, so harbor.username and harbor.password are required",
    );
  }
  const timeout = get("harbor.timeout") ?? "30s";
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(timeout);
  if (!m)
    throw new Error(`Secret outpost-tenancy: harbor.timeout "${timeout}" is not a duration such as 30s`);
  const timeoutMs = Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as "ms" | "s" | "m"];
  return { url, username, password, registry: get("harbor.registry") ?? new URL(url).host, timeoutMs };
}

/** The Harbor project of a project, or why it cannot have one. */
export function harborProjectName(project: string): { name: string } | { problem: string } {
  if (!harborNamePattern.test(project)) {
    return {
      problem: `project name ${project} is not a valid Harbor project name (lowercase letters and digits, separated by single ".", "_" or "-"); rename the project or set spec.harbor.enabled: false`,
    };
  }
  return { name: project };
}

/** The dockerconfigjson Secret data for a robot. */
export function pullSecretData(registry: string, username: string, password: string): Record<string, string> {
  const b64 = (v: string): string => Buffer.from(v).toString("base64");
  const config = { auths: { [registry]: { username, password, auth: b64(`${username}:${password}`) } } };
  return {
    ".dockerconfigjson": b64(JSON.stringify(config)),
    username: b64(username),
    password: b64(password),
  };
}

export interface HarborProvisioned {
  project: string;
  /** Whether this call created the Harbor project. */
  createdProject: boolean;
  robot: { id: number; name: string };
  /** Set when the robot's secret is new (created or regenerated): store it. */
  secret?: string;
  /** Whether this call created the robot. */
  createdRobot: boolean;
}

/** The full name Harbor gives the project's robot. */
export const robotFullName = (project: string): string => `robot$${project}+${robotName}`;

/**
 * Makes sure the Harbor project and its robot exist. `haveSecret` says whether the
 * namespace already holds a working secret for robot `robotName`. `beforeCreate` runs
 * before the project, or the robot, is created: the caller records there that it is
 * about to create it, so a crash right after the creation leaves a record to clean up by.
 */
export async function ensureHarborProject(
  client: HarborClient,
  project: string,
  haveSecret: (robot: string) => boolean,
  beforeCreate: (what: "project" | "robot") => Promise<void> = () => Promise.resolve(),
): Promise<HarborProvisioned> {
  let createdProject = false;
  if (!(await client.projectExists(project))) {
    await beforeCreate("project");
    createdProject = await client.createProject(project);
  }
  let robot = await client.findRobot(project, robotName);
  if (robot) {
    if (haveSecret(robot.name)) return { project, createdProject, robot, createdRobot: false };
    const secret = await client.regenerateRobotSecret(robot.id);
    return { project, createdProject, robot, secret, createdRobot: false };
  }
  await beforeCreate("robot");
  try {
    const created = await client.createRobot(project, robotName, ["pull", "push"]);
    return { project, createdProject, robot: created, secret: created.secret, createdRobot: true };
  } catch (err) {
    if (!HarborError.is(err, 409)) throw err;
    // Created meanwhile: take it over with a fresh secret.
    robot = await client.findRobot(project, robotName);
    if (!robot) throw err;
    const secret = await client.regenerateRobotSecret(robot.id);
    return { project, createdProject, robot, secret, createdRobot: false };
  }
}

/** Empties and deletes a Harbor project the operator created (or meant to: it may be missing). */
export async function deleteHarborProject(client: HarborClient, project: string): Promise<void> {
  if (!(await client.projectExists(project))) return;
  for (const repository of await client.repositories(project))
    await client.deleteRepository(project, repository);
  await client.deleteProject(project);
}
