// Git delivery. `GitStore.sync` makes a folder of a branch hold exactly the given files,
// with one commit when — and only when — the tree differs from the branch head. A retry,
// or a restart after a crash that happened after the push, finds nothing to change and
// makes no second commit. `HttpGitStore` speaks Git's smart-HTTP protocol
// (isomorphic-git), so it works with any server: GitHub, Gitea, GitLab, git http-backend.
//
// It keeps a shallow bare copy of each branch on local disk and never checks files out:
// a change is written as blobs and trees straight into the object store, committed on
// top of the fetched head and pushed — a pack of exactly the objects the batch wrote, sent
// to git-receive-pack with the head it was built on, so the server refuses it if the
// branch moved meanwhile, and a push costs what the batch changed, not the repository's
// size. Changes that arrive while a push is under way are
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
async function writeFolder(
  gitdir: string,
  files: Map<string, string>,
  written: Set<string>,
): Promise<string | undefined> {
  if (files.size === 0) return undefined;
  const blobs: TreeEntry[] = [];
  const subfolders = new Map<string, Map<string, string>>();
  for (const [path, content] of files) {
    const slash = path.indexOf("/");
    if (slash === -1) {
      const oid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(content) });
      written.add(oid);
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
    const oid = await writeFolder(gitdir, inner, written);
    if (oid) trees.push({ mode: "040000", path: dir, oid, type: "tree" });
  }
  const oid = await git.writeTree({ fs, gitdir, tree: [...blobs, ...trees] });
  written.add(oid);
  return oid;
}

/** The tree `root` with the entry at `path` (a/b/c) replaced by `oid`, or removed. */
async function replaceAt(
  gitdir: string,
  root: string | undefined,
  path: string[],
  oid: string | undefined,
  written: Set<string>,
): Promise<string | undefined> {
  const [name, ...rest] = path;
  if (name === undefined) return oid;
  const entries: TreeEntry[] = root ? (await git.readTree({ fs, gitdir, oid: root })).tree : [];
  const current = entries.find((e) => e.path === name);
  const replaced = await replaceAt(
    gitdir,
    current?.type === "tree" ? current.oid : undefined,
    rest,
    oid,
    written,
  );
  const others = entries.filter((e) => e.path !== name);
  const next = replaced
    ? [...others, { mode: "040000", path: name, oid: replaced, type: "tree" as const }]
    : others;
  if (next.length === 0) return undefined;
  const tree = await git.writeTree({ fs, gitdir, tree: next });
  written.add(tree);
  return tree;
}

const zeroOid = "0".repeat(40);

/** A pkt-line (Git's framing: 4 hex digits of length, the length included). */
const pktLine = (text: string): Buffer => {
  const body = Buffer.from(text);
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, "0")), body]);
};

/** The payloads of a pkt-line stream, flushes ("0000") as null. */
function pktLines(data: Buffer): (string | null)[] {
  const out: (string | null)[] = [];
  let at = 0;
  while (at + 4 <= data.length) {
    const len = parseInt(data.subarray(at, at + 4).toString(), 16);
    if (Number.isNaN(len)) break;
    if (len === 0) {
      out.push(null);
      at += 4;
      continue;
    }
    out.push(data.subarray(at + 4, at + len).toString());
    at += len;
  }
  return out;
}

interface ReceivePack {
  url: string;
  branch: string;
  /** The head the pack was built on (undefined: the branch does not exist yet). */
  old: string | undefined;
  head: string;
  pack: Uint8Array;
  authorization?: string;
  signal: AbortSignal;
}

/**
 * Git's smart-HTTP push: the ref advertisement of git-receive-pack, then one command
 * (old → new head of the branch) and the pack, with report-status. The server updates the
 * branch only if it still points at `old`.
 */
async function receivePack(p: ReceivePack): Promise<void> {
  const base = p.url.replace(/\/+$/, "");
  const ref = `refs/heads/${p.branch}`;
  const headers: Record<string, string> = {
    "user-agent": "git/outpost",
    ...(p.authorization ? { authorization: p.authorization } : {}),
  };
  const failed = (status: number): GitStoreError =>
    status === 401 || status === 403
      ? new GitStoreError(`${p.url}: the Git server refused the credentials (HTTP ${status})`, "Unauthorized")
      : new GitStoreError(`${p.url}: the Git server answered HTTP ${status} to a push`, "Unreachable");
  const advertised = await fetch(`${base}/info/refs?service=git-receive-pack`, { headers, signal: p.signal });
  if (!advertised.ok) throw failed(advertised.status);
  const lines = pktLines(Buffer.from(await advertised.arrayBuffer())).filter((l): l is string => l !== null);
  const refs = lines.filter((l) => !l.startsWith("#"));
  const capabilities = new Set((refs[0]?.split("\0")[1] ?? "").trim().split(" "));
  const current = refs.map((l) => l.split("\0")[0]?.trim().split(" ") ?? []).find((x) => x[1] === ref)?.[0];
  if ((current ?? zeroOid) !== (p.old ?? zeroOid))
    throw new GitStoreError(
      `${p.url}: the push was rejected: ${ref} moved to ${current ?? "nothing"}`,
      "Rejected",
    );
  if (!capabilities.has("report-status"))
    throw new GitStoreError(
      `${p.url}: the Git server does not report push results (report-status)`,
      "Unreachable",
    );
  const body = Buffer.concat([
    pktLine(`${p.old ?? zeroOid} ${p.head} ${ref}\0report-status agent=outpost\n`),
    Buffer.from("0000"),
    p.pack,
  ]);
  const res = await fetch(`${base}/git-receive-pack`, {
    method: "POST",
    headers: {
      ...headers,
      "content-type": "application/x-git-receive-pack-request",
      accept: "application/x-git-receive-pack-result",
    },
    body,
    signal: p.signal,
  });
  if (!res.ok) throw failed(res.status);
  const report = pktLines(Buffer.from(await res.arrayBuffer()))
    .filter((l): l is string => l !== null)
    .map((l) => l.replace(/\n$/, ""));
  const unpack = report.find((l) => l.startsWith("unpack "));
  if (unpack !== "unpack ok")
    throw new GitStoreError(
      `${p.url}: the Git server could not unpack the push: ${unpack ?? "no report"}`,
      "Unreachable",
    );
  const status = report.find((l) => l.startsWith(`ok ${ref}`) || l.startsWith(`ng ${ref}`));
  if (status !== `ok ${ref}`)
    throw new GitStoreError(
      `${p.url}: the push was rejected: ${status?.slice(`ng ${ref} `.length) ?? "no status for the branch"}`,
      "Rejected",
    );
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
      const fetched = await this.withTimeout(
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
      // Another writer pushed between the listing and the fetch: the fetch brought the
      // newer head, which is what this attempt builds on (the push stays a fast-forward
      // of what it fetched, or is rejected and tried again).
      if (fetched.fetchHead && fetched.fetchHead !== head) return fetched.fetchHead;
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
    // Every object this attempt writes: the pack the push sends.
    const written = new Set<string>();
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
      written.add(tree);
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
      written.add(head);
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
      const folder = await writeFolder(gitdir, relative, written);
      const nextRoot = await replaceAt(gitdir, groupRoot, prefix.split("/"), folder, written);
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
      const { packfile } = await git.packObjects({ fs, gitdir, oids: [...written] });
      const { username, password } = this.options;
      const controller = new AbortController();
      await this.withTimeout(
        "pushing",
        repo,
        receivePack({
          url: repo,
          branch,
          old: fetched,
          head,
          pack: packfile ?? new Uint8Array(),
          ...(username !== undefined || password !== undefined
            ? {
                authorization: `Basic ${Buffer.from(`${username ?? ""}:${password ?? ""}`).toString("base64")}`,
              }
            : {}),
          signal: controller.signal,
        }),
      )
        .catch((err: unknown) => {
          throw err instanceof GitStoreError ? err : explain(err, repo);
        })
        .finally(() => {
          controller.abort();
        });
      await git.writeRef({ fs, gitdir, ref: `refs/heads/${branch}`, value: head, force: true });
    }
    return results;
  }
}
