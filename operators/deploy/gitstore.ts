// Git delivery. `GitStore.sync` makes a folder of a branch hold exactly the given files,
// with one commit when — and only when — the tree differs from the branch head. A retry,
// or a restart after a crash that happened after the push, finds nothing to change and
// makes no second commit. `HttpGitStore` speaks Git's smart-HTTP protocol
// (isomorphic-git), so it works with any server: GitHub, Gitea, GitLab, git http-backend.
//
// It keeps a shallow bare copy of each branch on local disk and never checks files out:
// a change is written as blobs and trees straight into the object store, committed on
// top of the fetched head and pushed. Changes that arrive while a push is under way are
// queued and sent together, as one commit, one fetch and one push for the batch — so a
// thousand deployments changing at once make neither a thousand clones nor a thousand
// commits. Each result names the commit that holds its folder's tree.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
  /** Where the local copies of branches live. Default: <tmpdir>/outpost-git-<pid>. */
  cacheDir?: string;
  /** A fetch or push taking longer fails. Default 60 s. */
  timeoutMs?: number;
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

interface Pending {
  request: SyncRequest;
  resolve: (r: SyncResult) => void;
  reject: (e: unknown) => void;
}

interface TreeEntry {
  mode: string;
  path: string;
  oid: string;
  type: "blob" | "tree" | "commit";
}

/** Writes `files` (paths relative to the folder) as a tree; returns its oid, or undefined when empty. */
async function writeFolder(gitdir: string, files: Map<string, string>): Promise<string | undefined> {
  if (files.size === 0) return undefined;
  const blobs: TreeEntry[] = [];
  const subfolders = new Map<string, Map<string, string>>();
  for (const [path, content] of files) {
    const slash = path.indexOf("/");
    if (slash === -1) {
      const oid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(content) });
      blobs.push({ mode: "100644", path, oid, type: "blob" });
    } else {
      const dir = path.slice(0, slash);
      const inner = subfolders.get(dir) ?? new Map<string, string>();
      inner.set(path.slice(slash + 1), content);
      subfolders.set(dir, inner);
    }
  }
  const trees: TreeEntry[] = [];
  for (const [dir, inner] of subfolders) {
    const oid = await writeFolder(gitdir, inner);
    if (oid) trees.push({ mode: "040000", path: dir, oid, type: "tree" });
  }
  return git.writeTree({ fs, gitdir, tree: [...blobs, ...trees] });
}

/** The tree `root` with the entry at `path` (a/b/c) replaced by `oid`, or removed. */
async function replaceAt(
  gitdir: string,
  root: string | undefined,
  path: string[],
  oid: string | undefined,
): Promise<string | undefined> {
  const [name, ...rest] = path;
  if (name === undefined) return oid;
  const entries: TreeEntry[] = root ? (await git.readTree({ fs, gitdir, oid: root })).tree : [];
  const current = entries.find((e) => e.path === name);
  const replaced = await replaceAt(gitdir, current?.type === "tree" ? current.oid : undefined, rest, oid);
  const others = entries.filter((e) => e.path !== name);
  const next = replaced
    ? [...others, { mode: "040000", path: name, oid: replaced, type: "tree" as const }]
    : others;
  if (next.length === 0) return undefined;
  return git.writeTree({ fs, gitdir, tree: next });
}

export class HttpGitStore implements GitStore {
  /** Per repository and branch: changes waiting for the next push, and whether one runs. */
  private readonly queues = new Map<string, { pending: Pending[]; running: boolean }>();

  constructor(private readonly options: HttpGitStoreOptions = {}) {}

  private auth = (): { username?: string; password?: string } => ({
    username: this.options.username,
    password: this.options.password,
  });

  sync(request: SyncRequest): Promise<SyncResult> {
    for (const path of request.files.keys()) {
      if (!path.startsWith(`${request.prefix.replace(/\/+$/, "")}/`)) {
        return Promise.reject(new Error(`${path} is outside ${request.prefix}/`));
      }
    }
    const key = `${request.repo}#${request.branch}`;
    const queue = this.queues.get(key) ?? { pending: [], running: false };
    this.queues.set(key, queue);
    return new Promise<SyncResult>((resolve, reject) => {
      queue.pending.push({ request, resolve, reject });
      if (!queue.running) void this.drain(key, queue);
    });
  }

  /** Pushes everything queued for one branch, batch after batch, until the queue is empty. */
  private async drain(key: string, queue: { pending: Pending[]; running: boolean }): Promise<void> {
    queue.running = true;
    try {
      while (queue.pending.length > 0) {
        const batch = queue.pending.splice(0);
        try {
          const results = await this.pushBatch(batch.map((p) => p.request));
          for (const [i, p] of batch.entries()) {
            const result = results[i];
            if (result) p.resolve(result);
            else p.reject(new Error("no result for a queued Git change"));
          }
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      queue.running = false;
      if (queue.pending.length === 0) this.queues.delete(key);
    }
  }

  private async pushBatch(requests: SyncRequest[]): Promise<SyncResult[]> {
    const attempts = this.options.attempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.pushOnce(requests);
      } catch (err) {
        const e = err instanceof GitStoreError ? err : explain(err, requests[0]?.repo ?? "");
        // Someone else pushed in between: start again from the new head.
        if (e.reason !== "Rejected" || attempt >= attempts) throw e;
        await new Promise((r) => setTimeout(r, 50 * attempt + Math.random() * 100));
      }
    }
  }

  private gitdir(repo: string, branch: string): string {
    const id = createHash("sha256").update(`${repo}#${branch}`).digest("hex").slice(0, 24);
    return join(this.options.cacheDir ?? join(tmpdir(), `outpost-git-${process.pid}`), id);
  }

  private withTimeout<T>(what: string, repo: string, work: Promise<T>): Promise<T> {
    const ms = this.options.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new GitStoreError(`${repo}: ${what} took longer than ${ms / 1000}s`, "Unreachable"));
        }, ms);
      }),
    ]).finally(() => {
      clearTimeout(timer);
    });
  }

  /** The head of the branch on the server, fetched into the local copy (undefined: no branch yet). */
  private async fetchHead(gitdir: string, repo: string, branch: string): Promise<string | undefined> {
    if (!fs.existsSync(join(gitdir, "HEAD"))) {
      await mkdir(gitdir, { recursive: true });
      await git.init({ fs, gitdir, bare: true, defaultBranch: branch });
      await git.addRemote({ fs, gitdir, remote: "origin", url: repo });
    }
    const remote = await this.withTimeout(
      "listing the branches",
      repo,
      git.listServerRefs({ http, url: repo, prefix: `refs/heads/${branch}`, onAuth: this.auth }),
    ).catch((err: unknown) => {
      throw err instanceof GitStoreError ? err : explain(err, repo);
    });
    const head = remote.find((r) => r.ref === `refs/heads/${branch}`)?.oid;
    if (!head) return undefined;
    const have = await git.readCommit({ fs, gitdir, oid: head }).then(
      () => true,
      () => false,
    );
    if (!have) {
      await this.withTimeout(
        "fetching",
        repo,
        git.fetch({
          fs,
          http,
          gitdir,
          remote: "origin",
          ref: branch,
          singleBranch: true,
          depth: 1,
          tags: false,
          onAuth: this.auth,
        }),
      ).catch((err: unknown) => {
        throw err instanceof GitStoreError ? err : explain(err, repo);
      });
    }
    return head;
  }

  private async pushOnce(requests: SyncRequest[]): Promise<SyncResult[]> {
    const first = requests[0];
    if (!first) return [];
    const { repo, branch } = first;
    const gitdir = this.gitdir(repo, branch);
    const author = this.options.author ?? { name: "Outpost", email: "outpost@outpost.dev" };
    let head: string | undefined;
    try {
      head = await this.fetchHead(gitdir, repo, branch);
    } catch (err) {
      // A damaged local copy is thrown away; the next attempt starts afresh.
      if (!(err instanceof GitStoreError)) await rm(gitdir, { recursive: true, force: true });
      throw err;
    }
    const fetched = head;
    let root = head ? (await git.readCommit({ fs, gitdir, oid: head })).commit.tree : undefined;
    // One commit for every change of the batch (the folders are distinct: a deployment
    // waits for its sync before it can queue another). A folder queued twice closes the
    // commit so far, so that each result's commit holds exactly that request's tree.
    const results: SyncResult[] = [];
    let group: { index: number; prefix: string; message: string }[] = [];
    let groupRoot = root;
    const commitGroup = async (): Promise<void> => {
      if (group.length === 0) return;
      const now = Math.floor(Date.now() / 1000);
      const signature = { ...author, timestamp: now, timezoneOffset: 0 };
      const tree = groupRoot ?? (await git.writeTree({ fs, gitdir, tree: [] }));
      const message =
        group.length === 1
          ? (group[0]?.message ?? "")
          : `Deliver ${group.length} changes: ${group.map((g) => g.prefix).join(", ")}\n\n${group.map((g) => `- ${g.message.trim()}`).join("\n")}`;
      head = await git.writeCommit({
        fs,
        gitdir,
        commit: {
          message: message.endsWith("\n") ? message : `${message}\n`,
          tree,
          parent: head ? [head] : [],
          author: signature,
          committer: signature,
        },
      });
      root = groupRoot;
      for (const g of group) results[g.index] = { commit: head, changed: true };
      group = [];
    };
    const unchanged: number[] = [];
    for (const [index, request] of requests.entries()) {
      const prefix = request.prefix.replace(/\/+$/, "");
      if (group.some((g) => g.prefix === prefix)) await commitGroup();
      const relative = new Map(
        [...request.files].map(([path, content]) => [path.slice(prefix.length + 1), content] as const),
      );
      const folder = await writeFolder(gitdir, relative);
      const nextRoot = await replaceAt(gitdir, groupRoot, prefix.split("/"), folder);
      if ((head || group.length > 0) && nextRoot === groupRoot) {
        unchanged.push(index);
        continue;
      }
      groupRoot = nextRoot;
      group.push({ index, prefix, message: request.message });
    }
    await commitGroup();
    // An unchanged folder is the same in every commit of the batch: the last one names it.
    for (const index of unchanged) results[index] = { commit: head ?? "", changed: false };
    if (head && head !== fetched) {
      await git.writeRef({ fs, gitdir, ref: `refs/heads/${branch}`, value: head, force: true });
      const push = await this.withTimeout(
        "pushing",
        repo,
        git.push({ fs, http, gitdir, url: repo, ref: branch, remoteRef: branch, onAuth: this.auth }),
      ).catch((err: unknown) => {
        throw err instanceof GitStoreError ? err : explain(err, repo);
      });
      if (!push.ok)
        throw new GitStoreError(`${repo}: the push was rejected: ${push.error ?? ""}`, "Rejected");
    }
    return results;
  }
}
