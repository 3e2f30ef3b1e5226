// Git hosting: organizations and repositories on GitHub (github.com or Enterprise Server)
// and Gitea, through @octokit/rest. Commits go through GitStore (smart HTTP); this only
// creates and deletes the places they go. The two hosts share most routes but differ
// where it matters:
// - creating an organization: Gitea POST /orgs; github.com has no API for it (the
//   organization must exist);
// - "already exists": Gitea answers 409 (repository) or 422 (organization), GitHub 422;
// - deleting an organization that still owns repositories: Gitea answers 500.
import { Octokit } from "@octokit/rest";

export type GitHostKind = "github" | "gitea";

export interface GitHostOptions {
  kind: GitHostKind;
  /** API root: https://api.github.com, https://ghe.example.com/api/v3, https://gitea.example.com/api/v1. */
  baseUrl: string;
  /** A token with the rights to create repositories (and organizations on Gitea). */
  token: string;
  /** Request timeout. Default 30 s. */
  timeoutMs?: number;
}

export interface Repository {
  owner: string;
  name: string;
  cloneUrl: string;
  defaultBranch: string;
  /** Whether this call created it. */
  created: boolean;
}

export class GitHostError extends Error {
  override name = "GitHostError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface GitHost {
  /** The organization, created when missing and the host allows it. */
  ensureOrganization(org: string): Promise<{ created: boolean }>;
  /**
   * The repository under `owner` (an organization, or the token's own user). When it is
   * missing, `beforeCreate` runs first (to record the intent to create it) and then it is
   * created.
   */
  ensureRepository(
    owner: string,
    name: string,
    options?: { private?: boolean; defaultBranch?: string; beforeCreate?: () => Promise<void> },
  ): Promise<Repository>;
  /** Deletes the repository; false when it was not there. */
  deleteRepository(owner: string, name: string): Promise<boolean>;
  /** Deletes the organization; false when it was not there. Its repositories must be gone first. */
  deleteOrganization(org: string): Promise<boolean>;
}

const statusOf = (err: unknown): number | undefined =>
  typeof err === "object" && err !== null && "status" in err && typeof err.status === "number"
    ? err.status
    : undefined;

export class OctokitGitHost implements GitHost {
  private readonly octokit: Octokit;
  private login: string | undefined;

  constructor(private readonly options: GitHostOptions) {
    this.octokit = new Octokit({
      auth: options.token,
      baseUrl: options.baseUrl.replace(/\/+$/, ""),
      userAgent: "outpost",
      request: { timeout: options.timeoutMs ?? 30_000 },
      // Octokit's logger would print every 404 we expect.
      log: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    });
  }

  private fail(what: string, err: unknown): GitHostError {
    const status = statusOf(err);
    const message = err instanceof Error ? err.message : String(err);
    return new GitHostError(`${this.options.kind} ${this.options.baseUrl}: ${what}: ${message}`, status);
  }

  private async me(): Promise<string> {
    if (this.login === undefined) {
      const { data } = await this.octokit.users.getAuthenticated().catch((err: unknown) => {
        throw this.fail("the token was refused", err);
      });
      this.login = data.login;
    }
    return this.login;
  }

  async ensureOrganization(org: string): Promise<{ created: boolean }> {
    try {
      await this.octokit.orgs.get({ org });
      return { created: false };
    } catch (err) {
      if (statusOf(err) !== 404) throw this.fail(`reading organization ${org}`, err);
    }
    if (this.options.kind === "github") {
      throw new GitHostError(
        `github ${this.options.baseUrl}: organization ${org} does not exist, and GitHub has no API to create one; create it, or configure an existing organization`,
        404,
      );
    }
    try {
      await this.octokit.request("POST /orgs", { username: org, visibility: "private" });
      return { created: true };
    } catch (err) {
      // 422: created meanwhile (or a reserved or invalid name, which the next read tells apart).
      if (statusOf(err) === 422) {
        try {
          await this.octokit.orgs.get({ org });
          return { created: false };
        } catch {
          // fall through to the creation error
        }
      }
      throw this.fail(`creating organization ${org}`, err);
    }
  }

  async ensureRepository(
    owner: string,
    name: string,
    options: { private?: boolean; defaultBranch?: string; beforeCreate?: () => Promise<void> } = {},
  ): Promise<Repository> {
    const toRepository = (
      data: { clone_url?: string; default_branch?: string; owner: { login: string } | null },
      created: boolean,
    ): Repository => ({
      owner,
      name,
      cloneUrl: data.clone_url ?? "",
      defaultBranch: data.default_branch ?? options.defaultBranch ?? "main",
      created,
    });
    try {
      const { data } = await this.octokit.repos.get({ owner, repo: name });
      return toRepository(data, false);
    } catch (err) {
      if (statusOf(err) !== 404) throw this.fail(`reading repository ${owner}/${name}`, err);
    }
    const body = {
      name,
      private: options.private ?? true,
      // An empty repository has no branch; both hosts treat a first commit specially.
      auto_init: true,
      default_branch: options.defaultBranch ?? "main",
    };
    await options.beforeCreate?.();
    try {
      const { data } =
        owner === (await this.me())
          ? await this.octokit.repos.createForAuthenticatedUser(body)
          : await this.octokit.repos.createInOrg({ org: owner, ...body });
      return toRepository(data, true);
    } catch (err) {
      const status = statusOf(err);
      if (status === 409 || status === 422) {
        // Created meanwhile (Gitea 409, GitHub 422).
        const { data } = await this.octokit.repos.get({ owner, repo: name }).catch(() => {
          throw this.fail(`creating repository ${owner}/${name}`, err);
        });
        return toRepository(data, false);
      }
      throw this.fail(`creating repository ${owner}/${name}`, err);
    }
  }

  async deleteRepository(owner: string, name: string): Promise<boolean> {
    try {
      await this.octokit.repos.delete({ owner, repo: name });
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw this.fail(`deleting repository ${owner}/${name}`, err);
    }
  }

  async deleteOrganization(org: string): Promise<boolean> {
    try {
      await this.octokit.orgs.delete({ org });
      return true;
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) return false;
      if (this.options.kind === "gitea" && status === 500) {
        throw new GitHostError(
          `gitea ${this.options.baseUrl}: organization ${org} still owns repositories; delete them first`,
          500,
        );
      }
      throw this.fail(`deleting organization ${org}`, err);
    }
  }
}
