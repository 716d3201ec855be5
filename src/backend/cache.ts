// A local cache of index deltas and snapshots in front of a remote backend. Both are
// immutable by name (written once under a fresh random id), so a cached copy is good for
// as long as the object is listed; listing a big repository then costs LIST requests, not
// a GET per object. Entries carry a SHA-256 of their bytes: a damaged entry (disk error,
// an interrupted write) is dropped and fetched again, never reported as repository damage.
// What is cached is sealed, so the cache reveals no more than the bucket does.
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";
import type { Backend, FileType, Handle, ObjectInfo, ObjectWriter } from "./backend.js";
import { debugLog } from "./retry.js";

const cachedTypes = new Set<FileType>(["index", "snapshot"]);
const hashLength = 32;

/** $XDG_CACHE_HOME/coffer, or ~/.cache/coffer. */
export function defaultCacheRoot(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), ".cache"), "coffer");
}

export class CachingBackend implements Backend {
  readonly location: string;
  readonly inner: Backend;
  readonly #root: string;
  readonly #repoIdOf: (config: Buffer) => string;
  #dir: string | null = null;
  /** Cache hits and misses of this run (COFFER_DEBUG). */
  readonly stats = { hits: 0, misses: 0, dropped: 0 };
  /** The inner backend's, for objects the cache does not keep (packs); see Backend. */
  readonly openWriter?: (h: Handle) => Promise<ObjectWriter>;
  readonly sweepTempFiles?: Backend["sweepTempFiles"];

  /**
   * @param root folder holding one cache folder per repository
   * @param repoIdOf reads the repository id from the config's bytes (the cache folder's name)
   */
  constructor(inner: Backend, root: string, repoIdOf: (config: Buffer) => string) {
    this.inner = inner;
    this.location = inner.location;
    this.#root = root;
    this.#repoIdOf = repoIdOf;
    this.sweepTempFiles = inner.sweepTempFiles?.bind(inner);
    const openWriter = inner.openWriter?.bind(inner);
    if (openWriter !== undefined) {
      this.openWriter = (h) => {
        // A cached type written in pieces would miss the cache: those go through save.
        if (cachedTypes.has(h.type)) throw new Error(`cache: internal error: ${h.type} in pieces`);
        return openWriter(h);
      };
    }
  }

  private async dir(): Promise<string> {
    if (this.#dir === null) {
      const id = this.#repoIdOf(await this.inner.load({ type: "config", name: "" }));
      this.#dir = path.join(this.#root, id);
    }
    return this.#dir;
  }

  private async pathOf(h: Handle): Promise<string> {
    return path.join(await this.dir(), h.type, h.name);
  }

  /** The cached bytes when present and intact; a damaged entry is removed. */
  private async readEntry(h: Handle): Promise<Buffer | null> {
    let p: string;
    let raw: Buffer;
    try {
      p = await this.pathOf(h);
      raw = await fs.readFile(p);
    } catch {
      return null;
    }
    const body = raw.subarray(hashLength);
    const want = raw.subarray(0, hashLength);
    if (raw.length < hashLength || !createHash("sha256").update(body).digest().equals(want)) {
      this.stats.dropped++;
      debugLog(`cache: ${h.type} ${h.name} is damaged in the cache; fetching it again`);
      await fs.rm(p, { force: true });
      return null;
    }
    return body;
  }

  /** Best effort: a cache that cannot be written only costs the next run a download. */
  private async writeEntry(h: Handle, data: Buffer): Promise<void> {
    try {
      const p = await this.pathOf(h);
      await fs.mkdir(path.dirname(p), { recursive: true, mode: 0o700 });
      const tmp = `${p}.tmp-${randomBytes(6).toString("hex")}`;
      const hash = createHash("sha256").update(data).digest();
      await fs.writeFile(tmp, Buffer.concat([hash, data]), { mode: 0o600, flag: "wx" });
      await fs.rename(tmp, p);
    } catch (err) {
      debugLog(`cache: cannot store ${h.type} ${h.name}: ${(err as Error).message}`);
    }
  }

  async save(h: Handle, data: Buffer): Promise<void> {
    await this.inner.save(h, data);
    if (cachedTypes.has(h.type)) await this.writeEntry(h, data);
  }

  async load(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    const whole = (offset ?? 0) === 0 && length === undefined;
    if (whole && h.type === "config" && this.#dir === null) {
      // Repository.open reads the config first: learn the cache folder from it.
      const config = await this.inner.load(h);
      try {
        this.#dir = path.join(this.#root, this.#repoIdOf(config));
      } catch {
        // A damaged config: Repository.open reports it.
      }
      return config;
    }
    if (!whole || !cachedTypes.has(h.type)) return this.inner.load(h, offset, length);
    const cached = await this.readEntry(h);
    if (cached !== null) {
      this.stats.hits++;
      return cached;
    }
    this.stats.misses++;
    const data = await this.inner.load(h);
    await this.writeEntry(h, data);
    return data;
  }

  stat(h: Handle): Promise<ObjectInfo | null> {
    return this.inner.stat(h);
  }

  /**
   * Lists from the backend (the truth); once a listing of a cached type has run to its
   * end, entries for objects no longer listed (forgotten snapshots, pruned index deltas)
   * are removed from the cache.
   */
  async *list(type: FileType): AsyncIterable<ObjectInfo> {
    if (!cachedTypes.has(type)) {
      yield* this.inner.list(type);
      return;
    }
    const seen = new Set<string>();
    for await (const o of this.inner.list(type)) {
      seen.add(o.name);
      yield o;
    }
    const folder = path.join(await this.dir(), type);
    let names: string[] = [];
    try {
      names = await fs.readdir(folder);
    } catch {
      return;
    }
    for (const n of names) {
      if (!seen.has(n)) await fs.rm(path.join(folder, n), { force: true });
    }
  }

  async remove(h: Handle): Promise<void> {
    await this.inner.remove(h);
    if (cachedTypes.has(h.type)) await fs.rm(await this.pathOf(h), { force: true });
  }

  exists(): Promise<boolean> {
    return this.inner.exists();
  }

  create(): Promise<void> {
    return this.inner.create();
  }

  close(): void {
    debugLog(
      `cache: ${this.stats.hits} hits, ${this.stats.misses} misses, ${this.stats.dropped} damaged entries dropped`,
    );
    (this.inner as { close?: () => void }).close?.();
  }
}
