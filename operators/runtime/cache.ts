// An in-memory object cache with indexes, filled by an informer. Built-in indexes:
// namespace, owner (UID of each owner reference), label (`key=value` of each label);
// custom ones are added with `addIndex`.
import { keyOf, type KubeObject } from "./client.ts";

export type IndexFunc<T> = (obj: T) => string[];

export class Cache<T extends KubeObject> {
  private readonly objects = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc<T>>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();

  constructor() {
    this.addIndex("namespace", (o) => (o.metadata.namespace ? [o.metadata.namespace] : []));
    this.addIndex("owner", (o) => (o.metadata.ownerReferences ?? []).map((r) => r.uid));
    this.addIndex("label", (o) => Object.entries(o.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`));
  }

  addIndex(name: string, fn: IndexFunc<T>): void {
    if (this.indexers.has(name)) throw new Error(`index ${name} already exists`);
    this.indexers.set(name, fn);
    const index = new Map<string, Set<string>>();
    this.indices.set(name, index);
    for (const [key, obj] of this.objects) for (const v of fn(obj)) addTo(index, v, key);
  }

  get size(): number {
    return this.objects.size;
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  list(): T[] {
    return [...this.objects.values()];
  }

  keys(): string[] {
    return [...this.objects.keys()];
  }

  byIndex(name: string, value: string): T[] {
    const index = this.indices.get(name);
    if (!index) throw new Error(`no index ${name}`);
    return [...(index.get(value) ?? [])].flatMap((k) => {
      const o = this.objects.get(k);
      return o ? [o] : [];
    });
  }

  byNamespace(namespace: string): T[] {
    return this.byIndex("namespace", namespace);
  }

  byOwner(uid: string): T[] {
    return this.byIndex("owner", uid);
  }

  /** Objects carrying every label of `selector` (equality selector). */
  byLabels(selector: Record<string, string>): T[] {
    const entries = Object.entries(selector);
    if (entries.length === 0) return this.list();
    // Walk the smallest label's set and look the others up: no set is copied.
    const sets = entries
      .map(([k, v]) => this.indices.get("label")?.get(`${k}=${v}`) ?? new Set<string>())
      .sort((a, b) => a.size - b.size);
    const [smallest, ...rest] = sets;
    const out: T[] = [];
    for (const k of smallest ?? []) {
      if (!rest.every((s) => s.has(k))) continue;
      const o = this.objects.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  /** Stores `obj`; returns the object it replaced, if any. */
  upsert(obj: T): T | undefined {
    const key = keyOf(obj);
    const old = this.objects.get(key);
    if (old) this.unindex(key, old);
    this.objects.set(key, obj);
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name);
      if (index) for (const v of fn(obj)) addTo(index, v, key);
    }
    return old;
  }

  remove(key: string): T | undefined {
    const old = this.objects.get(key);
    if (!old) return undefined;
    this.unindex(key, old);
    this.objects.delete(key);
    return old;
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name);
      if (!index) continue;
      for (const v of fn(obj)) {
        const set = index.get(v);
        set?.delete(key);
        if (set?.size === 0) index.delete(v);
      }
    }
  }
}

function addTo(index: Map<string, Set<string>>, value: string, key: string): void {
  let set = index.get(value);
  if (!set) {
    set = new Set();
    index.set(value, set);
  }
  set.add(key);
}
