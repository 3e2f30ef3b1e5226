// Collects catalog files from paths: folders (recursively), single files and .tar.gz
// bundles, refusing bundles with unsafe entries or beyond the size limits.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import * as tar from "tar";
import { CatalogError, type CatalogFile } from "../operators/catalog/format.ts";

export const limits = { entries: 10_000, fileBytes: 16 * 1024 * 1024, totalBytes: 100 * 1024 * 1024 };

/** The files of a .tar.gz bundle, in memory, named `<bundle>/<entry>`. */
export async function readBundle(path: string, bytes: Buffer): Promise<CatalogFile[]> {
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b)
    throw new CatalogError(`${path}: not a readable .tar.gz bundle: no gzip header`);
  const files: CatalogFile[] = [];
  const problems: string[] = [];
  let total = 0;
  let entries = 0;
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      entries++;
      const name = entry.path;
      const unsafe = name.startsWith("/") || /^[a-zA-Z]:/.test(name) || name.split(/[\\/]/).includes("..");
      if (entries > limits.entries) problems.push(`${path}: more than ${limits.entries} entries`);
      else if (unsafe) problems.push(`${path}: entry ${name} points outside the bundle`);
      else if (entry.type !== "File" && entry.type !== "Directory" && entry.type !== "OldFile") {
        problems.push(`${path}: entry ${name} is a ${entry.type}, not a file`);
      } else if (entry.size > limits.fileBytes) problems.push(`${path}: entry ${name} is larger than 16 MiB`);
      if (problems.length > 0 || entry.type === "Directory") {
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on("data", (c: Buffer) => {
        total += c.length;
        chunks.push(c);
      });
      entry.on("end", () => {
        if (total > limits.totalBytes) problems.push(`${path}: more than 100 MiB unpacked`);
        else files.push({ path: `${path}/${name.replace(/^\.\//, "")}`, content: Buffer.concat(chunks) });
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on("end", resolve);
    parser.on("error", reject);
    Readable.from([bytes]).pipe(parser);
  }).catch((err: unknown) => {
    throw new CatalogError(`${path}: not a readable .tar.gz bundle: ${(err as Error).message}`);
  });
  if (problems.length > 0) throw new CatalogError(problems.join("\n"));
  return files;
}

/** Every file under the given paths; .tar.gz and .tgz bundles are unpacked. */
export async function collectFiles(paths: string[]): Promise<CatalogFile[]> {
  const files: CatalogFile[] = [];
  const add = async (path: string, shown: string): Promise<void> => {
    let st;
    try {
      st = statSync(path);
    } catch {
      throw new CatalogError(`${shown}: no such file or folder`);
    }
    if (st.isDirectory()) {
      for (const entry of readdirSync(path).sort()) {
        if (!entry.startsWith(".")) await add(join(path, entry), join(shown, entry));
      }
    } else if (/\.(tar\.gz|tgz)$/.test(path)) {
      const bytes = readFileSync(path);
      files.push(...(await readBundle(shown, bytes)));
      // The bundle itself is scanned too (as data: it is not a catalog file).
      files.push({ path: shown, content: bytes });
    } else {
      files.push({ path: shown, content: readFileSync(path) });
    }
  };
  for (const p of paths) {
    const st = statSync(p, { throwIfNoEntry: false });
    await add(p, st?.isDirectory() ? "." : p);
    if (st?.isDirectory()) {
      // Paths inside a folder are shown relative to it.
      for (const f of files) if (f.path.startsWith("./")) f.path = relative(".", f.path);
    }
  }
  return files;
}
