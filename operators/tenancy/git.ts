// A project's Git repository for its deployments. The tenancy operator's configuration
// (Secret outpost-tenancy in outpost-system) says where repositories live:
//
//   git.provider      gitea | github | http
//   git.apiUrl        the host's API root (gitea, github)
//   git.organization  the organization repositories go in (gitea: created when missing)
//   git.url           http: one repository; each project gets a branch of it
//   git.username      the account Fleet and the deploy operator push and clone with
//   git.token         its token (or password)
//
// The result is Secret outpost-git in the project's namespace, which the deploy operator
// commits to and Fleet clones with. Without git.provider, projects get no repository
// (deployments then need an outpost-git Secret made by hand).
import type { GitHost } from "../deploy/githost.ts";
import { OctokitGitHost } from "../deploy/githost.ts";

export type GitSettings =
  | { provider: "gitea" | "github"; apiUrl: string; organization: string; username: string; token: string }
  | { provider: "http"; url: string; username?: string; token?: string };

export class GitSettingsError extends Error {
  override name = "GitSettingsError";
}

/** The Git settings in the operator's configuration (decoded Secret data), or undefined. */
export function gitSettingsFrom(data: Record<string, string>): GitSettings | undefined {
  const get = (k: string): string | undefined => data[k]?.trim();
  const provider = get("git.provider");
  if (!provider) return undefined;
  const need = (k: string): string => {
    const v = get(k);
    if (!v)
      throw new GitSettingsError(`Secret outpost-tenancy: git.provider is ${provider}, so ${k} is required`);
    return v;
  };
  if (provider === "gitea" || provider === "github") {
    return {
      provider,
      apiUrl: need("git.apiUrl"),
      organization: need("git.organization"),
      username: need("git.username"),
      token: need("git.token"),
    };
  }
  if (provider === "http") {
    const username = get("git.username");
    const token = get("git.token");
    return { provider, url: need("git.url"), ...(username ? { username } : {}), ...(token ? { token } : {}) };
  }
  throw new GitSettingsError(
    `Secret outpost-tenancy: git.provider must be gitea, github or http, not "${provider}"`,
  );
}

export interface ProjectRepository {
  url: string;
  branch: string;
  username?: string;
  password?: string;
  /** owner/name of a repository this call created on the host (to delete with the project). */
  created?: string;
}

/**
 * The project's repository: created on a Git host, or a branch of the one configured
 * repository. `beforeCreate(owner/name)` runs before the host creates it.
 */
export async function ensureProjectRepository(
  project: string,
  settings: GitSettings,
  beforeCreate: (repository: string) => Promise<void> = () => Promise.resolve(),
  hostFor: (s: Extract<GitSettings, { apiUrl: string }>) => GitHost = (s) =>
    new OctokitGitHost({ kind: s.provider, baseUrl: s.apiUrl, token: s.token }),
): Promise<ProjectRepository> {
  if (settings.provider === "http") {
    return {
      url: settings.url,
      branch: `project/${project}`,
      ...(settings.username ? { username: settings.username } : {}),
      ...(settings.token ? { password: settings.token } : {}),
    };
  }
  const host = hostFor(settings);
  await host.ensureOrganization(settings.organization);
  const repo = await host.ensureRepository(settings.organization, project, {
    private: true,
    defaultBranch: "main",
    beforeCreate: () => beforeCreate(`${settings.organization}/${project}`),
  });
  return {
    url: repo.cloneUrl,
    branch: repo.defaultBranch,
    username: settings.username,
    password: settings.token,
    ...(repo.created ? { created: `${settings.organization}/${project}` } : {}),
  };
}

/** Deletes a repository the project created (owner/name), if the provider can. */
export async function deleteProjectRepository(
  created: string,
  settings: GitSettings,
  hostFor: (s: Extract<GitSettings, { apiUrl: string }>) => GitHost = (s) =>
    new OctokitGitHost({ kind: s.provider, baseUrl: s.apiUrl, token: s.token }),
): Promise<void> {
  if (settings.provider === "http") return;
  const [owner = "", name = ""] = created.split("/");
  await hostFor(settings).deleteRepository(owner, name);
}
