import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { IntegrityError, UserError } from "../errors.js";
import type { Backend, FileType, Handle, ObjectInfo, ObjectWriter } from "./backend.js";
import { ReadWindows } from "./read-windows.js";
import { TempFile } from "./temp-file.js";

const folders: Record<Exclude<FileType, "config">, string> = {
  key: "keys",
  data: "data",
  index: "index",
  snapshot: "snapshots",
  lock: "locks",
};

const dirMode = 0o700;
const maxOpenReads = 64;
/** Objects are written under this prefix and renamed when whole. */
const tempPrefix = ".tmp-";
/**
 * Reads of packs up to this long go through aligned blocks kept in memory. Tree loading
 * (a re-run's parent, restore, ls) reads thousands of small blobs that lie side by side
 * in tree packs: one pread each cost 33 µs on a paravirtualised machine, 4,454 of them
 * for the bench corpus's parent snapshot. Packs are written once and never change.
 */
const smallReadBytes = 64 * 1024;
const readBlocks = { blockBytes: 128 * 1024, blocks: 32 };

/** A repository in a local directory. Writes are temp file + fsync + rename + dir fsync. */
export class LocalBackend implements Backend {
  readonly location: string;
  readonly #readFds = new Map<string, number>();
  readonly #windows = new ReadWindows(readBlocks);

  constructor(dir: string) {
    this.location = path.resolve(dir);
  }

  private pathOf(h: Handle): string {
    if (h.type === "config") return path.join(this.location, "config");
    if (!/^[0-9a-f]{64}$/.test(h.name))
      throw new Error(`local: internal error: bad name ${h.name}`);
    const folder = folders[h.type];
    if (h.type === "data") return path.join(this.location, folder, h.name.slice(0, 2), h.name);
    return path.join(this.location, folder, h.name);
  }

  async create(): Promise<void> {
    try {
      const entries = await fs.readdir(this.location);
      if (entries.length > 0) {
        throw new UserError(
          `${this.location} is not empty: choose a new or empty directory for the repository`,
        );
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    await fs.mkdir(this.location, { recursive: true, mode: dirMode });
    for (const f of Object.values(folders)) {
      await fs.mkdir(path.join(this.location, f), { mode: dirMode });
    }
    for (let i = 0; i < 256; i++) {
      await fs.mkdir(path.join(this.location, "data", i.toString(16).padStart(2, "0")), {
        mode: dirMode,
      });
    }
  }

  async exists(): Promise<boolean> {
    return (await this.stat({ type: "config", name: "" })) !== null;
  }

  async save(h: Handle, data: Buffer): Promise<void> {
    const w = await this.startObject(h);
    try {
      await w.write(data, 0);
    } catch (err) {
      await w.abort();
      throw err;
    }
    await w.commit();
  }

  openWriter(h: Handle): Promise<ObjectWriter> {
    return this.startObject(h);
  }

  /** A temp file beside the object's final name, renamed to it on commit. */
  private async startObject(h: Handle): Promise<LocalObjectWriter> {
    const final = this.pathOf(h);
    const tmp = path.join(path.dirname(final), `${tempPrefix}${randomBytes(8).toString("hex")}`);
    return new LocalObjectWriter(await TempFile.create(tmp), final);
  }

  /**
   * Reads are synchronous through a small cache of open descriptors: objects never change
   * once written, restore and verify read many small ranges of the same packs, and a
   * thread-pool round trip per open/read/close costs more than the read itself.
   */
  async load(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    if (h.type === "data" && length !== undefined && length > 0 && length <= smallReadBytes) {
      const body = await this.#windows.read(h.name, offset, length, async (at, max) =>
        this.readUpTo(h, at, max),
      );
      if (body.length !== length) throw truncated(h, length, offset, body.length);
      return body;
    }
    const fd = this.openForRead(h);
    const size = length ?? fstatSync(fd).size - offset;
    if (size < 0) throw new IntegrityError(`${h.type} ${h.name} is shorter than expected`);
    const buf = Buffer.allocUnsafe(size);
    this.readFully(fd, h, offset, buf);
    return buf;
  }

  async loadInto(h: Handle, offset: number, into: Buffer): Promise<void> {
    this.readFully(this.openForRead(h), h, offset, into);
  }

  private readFully(fd: number, h: Handle, offset: number, buf: Buffer): void {
    const got = readInto(fd, offset, buf);
    if (got !== buf.length) throw truncated(h, buf.length, offset, got);
  }

  /** Up to max bytes from offset: fewer only at the end of the object. */
  private readUpTo(h: Handle, offset: number, max: number): Buffer {
    const buf = Buffer.allocUnsafe(max);
    return buf.subarray(0, readInto(this.openForRead(h), offset, buf));
  }

  private openForRead(h: Handle): number {
    const p = this.pathOf(h);
    const cached = this.#readFds.get(p);
    if (cached !== undefined) {
      // Move to the back: the map's order is least recently used first.
      this.#readFds.delete(p);
      this.#readFds.set(p, cached);
      return cached;
    }
    const fd = openSync(p, "r");
    this.#readFds.set(p, fd);
    if (this.#readFds.size > maxOpenReads) {
      const [oldest, oldFd] = this.#readFds.entries().next().value as [string, number];
      this.#readFds.delete(oldest);
      closeSync(oldFd);
    }
    return fd;
  }

  async sweepTempFiles(remove: boolean, idleMs: number): Promise<{ files: number; bytes: number }> {
    const dirs = [this.location, ...Object.values(folders).map((f) => path.join(this.location, f))];
    const data = path.join(this.location, folders.data);
    for (const d of await readdirOrEmpty(data)) dirs.push(path.join(data, d));
    const found = { files: 0, bytes: 0 };
    for (const dir of dirs) {
      for (const name of await readdirOrEmpty(dir)) {
        if (!name.startsWith(tempPrefix)) continue;
        const p = path.join(dir, name);
        const st = await fs.lstat(p).catch(() => null);
        if (st === null || !st.isFile() || Date.now() - st.mtimeMs < idleMs) continue;
        found.files++;
        found.bytes += st.size;
        if (remove) await fs.rm(p, { force: true });
      }
    }
    return found;
  }

  /** Closes cached read descriptors. */
  close(): void {
    for (const fd of this.#readFds.values()) closeSync(fd);
    this.#readFds.clear();
  }

  async stat(h: Handle): Promise<ObjectInfo | null> {
    try {
      const st = await fs.stat(this.pathOf(h));
      return { name: h.name, size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  async *list(type: FileType): AsyncIterable<ObjectInfo> {
    if (type === "config") {
      const st = await this.stat({ type, name: "" });
      if (st) yield st;
      return;
    }
    const base = path.join(this.location, folders[type]);
    const dirs =
      type === "data" ? (await readdirOrEmpty(base)).map((d) => path.join(base, d)) : [base];
    for (const dir of dirs) {
      for (const name of await readdirOrEmpty(dir)) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue; // temp files of an interrupted write
        try {
          const st = await fs.stat(path.join(dir, name));
          yield { name, size: st.size };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        }
      }
    }
  }

  async remove(h: Handle): Promise<void> {
    const p = this.pathOf(h);
    if (h.type === "data") this.#windows.forget(h.name);
    const fd = this.#readFds.get(p);
    if (fd !== undefined) {
      this.#readFds.delete(p);
      closeSync(fd);
    }
    await fs.rm(p, { force: true });
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** Writes into a temp file; commit is fsync, rename, and fsync of the folder. */
class LocalObjectWriter implements ObjectWriter {
  readonly #temp: TempFile;
  readonly #final: string;

  constructor(temp: TempFile, final: string) {
    this.#temp = temp;
    this.#final = final;
  }

  write(data: Buffer, offset: number): Promise<void> {
    return this.#temp.write(data, offset);
  }

  async commit(): Promise<void> {
    try {
      await this.#temp.sync();
      await this.#temp.close();
      await fs.rename(this.#temp.path, this.#final);
    } catch (err) {
      await this.abort();
      throw err;
    }
    await syncDir(path.dirname(this.#final));
  }

  abort(): Promise<void> {
    return this.#temp.remove();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Fills buf from offset; returns the bytes read (fewer only at the end of the file). */
function readInto(fd: number, offset: number, buf: Buffer): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function truncated(h: Handle, size: number, offset: number, got: number): IntegrityError {
  return new IntegrityError(
    `${h.type} ${h.name || "config"} is truncated: wanted ${size} bytes at offset ${offset}, got ${got}`,
  );
}
