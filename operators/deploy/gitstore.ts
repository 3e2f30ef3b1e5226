// Git delivery. `GitStore.sync` makes a folder of a branch hold exactly the given files,
// with one commit when — and only when — the tree differs from the branch head. A retry,
// or a restart after a crash that happened after the push, finds nothing to change and
// makes no second commit. `HttpGitStore` speaks Git's smart-HTTP protocol
// (isomorphic-git), so it works with any server: GitHub, Gitea, GitLab, git http-backend.
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import git from "isomorphic-git";
import http from "isomorphic-git/http/node";

export interface SyncRequest {
  /** Clone URL (http or https). */
  repo: string;
  branch: string;
  /** The folder this change owns, e.g. the deployment's name; files outside stay as they are. */
  prefix: string;
  /** The folder's files, by path relative to the repository root (all under prefix). */
  files: Map<string, string>;
  message: string;
}

export interface SyncResult {
  /** The branch head after the sync. */
  commit: string;
  /** Whether this call made a commit. */
  changed: boolean;
}

export interface GitStore {
  sync(request: SyncRequest): Promise<SyncResult>;
}

export class GitStoreError extends Error {
  override name = "GitStoreError";
  constructor(
    message: string,
    readonly reason: "Unreachable" | "Unauthorized" | "Rejected",
  ) {
    super(message);
  }
}

export interface HttpGitStoreOptions {
  username?: string;
  password?: string;
  author?: { name: string; email: string };
  /** Attempts when another writer pushed meanwhile. Default 8. */
  attempts?: number;
}

function explain(err: unknown, repo: string): GitStoreError {
  const e = err as { code?: string; data?: { statusCode?: number }; message?: string };
  const status = e.data?.statusCode;
  if (status === 401 || status === 403 || (e.code === "HttpError" && /401|403/.test(e.message ?? ""))) {
    return new GitStoreError(
      `${repo}: the Git server refused the credentials (HTTP ${status ?? "401"})`,
      "Unauthorized",
    );
  }
  // Another writer moved the branch: not fast-forward, or the server refused the ref update.
  if (e.code === "PushRejectedError" || e.code === "GitPushError") {
    return new GitStoreError(`${repo}: the push was rejected: ${e.message ?? ""}`, "Rejected");
  }
  return new GitStoreError(`${repo}: ${e.message ?? String(err)}`, "Unreachable");
}

export class HttpGitStore implements GitStore {
  constructor(private readonly options: HttpGitStoreOptions = {}) {}

  private auth = (): { username?: string; password?: string } => ({
    username: this.options.username,
    password: this.options.password,
  });

  async sync(request: SyncRequest): Promise<SyncResult> {
    const attempts = this.options.attempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.syncOnce(request);
      } catch (err) {
        const e = err instanceof GitStoreError ? err : explain(err, request.repo);
        // Someone else pushed in between: start again from the new head.
        if (e.reason !== "Rejected" || attempt >= attempts) throw e;
        await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100));
      }
    }
  }

  private async syncOnce(request: SyncRequest): Promise<SyncResult> {
    const dir = await mkdtemp(join(tmpdir(), "outpost-git-"));
    const author = this.options.author ?? { name: "Outpost", email: "outpost@outpost.dev" };
    try {
      let exists = true;
      try {
        await git.clone({
          fs,
          http,
          dir,
          url: request.repo,
          ref: request.branch,
          singleBranch: true,
          depth: 1,
          noTags: true,
          onAuth: this.auth,
        });
        // Cloning an empty repository succeeds with no commit at all.
        await git.resolveRef({ fs, dir, ref: "HEAD" });
      } catch (err) {
        const e = err as { code?: string };
        // An empty repository, or a branch not there yet: start it.
        if (e.code !== "NotFoundError" && e.code !== "NoRefspecError") throw explain(err, request.repo);
        exists = false;
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
        await git.init({ fs, dir, defaultBranch: request.branch });
        await git.addRemote({ fs, dir, remote: "origin", url: request.repo });
      }

      // Make the prefix folder hold exactly the requested files.
      const tracked = exists ? await git.listFiles({ fs, dir, ref: "HEAD" }) : [];
      const prefix = `${request.prefix.replace(/\/+$/, "")}/`;
      for (const path of tracked) {
        if (path.startsWith(prefix) && !request.files.has(path)) {
          await git.remove({ fs, dir, filepath: path });
          await rm(join(dir, path), { force: true });
        }
      }
      for (const [path, content] of request.files) {
        if (!path.startsWith(prefix)) throw new Error(`${path} is outside ${prefix}`);
        const full = join(dir, path);
        const current = await readFile(full, "utf8").catch(() => undefined);
        if (current === content) continue;
        await mkdir(dirname(full), { recursive: true });
        await writeFile(full, content);
        await git.add({ fs, dir, filepath: path });
      }
      const status = await git.statusMatrix({ fs, dir, filepaths: [request.prefix] });
      const changed = status.some(([, head, workdir, stage]) => head !== workdir || workdir !== stage);
      if (!changed && exists) {
        return { commit: await git.resolveRef({ fs, dir, ref: "HEAD" }), changed: false };
      }
      const commit = await git.commit({ fs, dir, message: request.message, author });
      const push = await git
        .push({
          fs,
          http,
          dir,
          remote: "origin",
          ref: request.branch,
          remoteRef: request.branch,
          onAuth: this.auth,
        })
        .catch((err: unknown) => {
          throw explain(err, request.repo);
        });
      if (!push.ok)
        throw new GitStoreError(`${request.repo}: the push was rejected: ${push.error ?? ""}`, "Rejected");
      return { commit, changed: true };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
