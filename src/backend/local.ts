import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { IntegrityError, UserError } from "../errors.js";
import type { Backend, FileType, Handle, ObjectInfo } from "./backend.js";

const folders: Record<Exclude<FileType, "config">, string> = {
  key: "keys",
  data: "data",
  index: "index",
  snapshot: "snapshots",
  lock: "locks",
};

/** Repository files are readable by the owner only: they are sealed, but names and sizes leak. */
const fileMode = 0o600;
const dirMode = 0o700;

/** A repository in a local directory. Writes are temp file + fsync + rename + dir fsync. */
export class LocalBackend implements Backend {
  readonly location: string;

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
    const final = this.pathOf(h);
    const dir = path.dirname(final);
    const tmp = path.join(dir, `.tmp-${randomBytes(8).toString("hex")}`);
    // O_EXCL: never write through a file or link someone else placed at the temp name.
    const fh = await fs.open(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      fileMode,
    );
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    try {
      await fs.rename(tmp, final);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await syncDir(dir);
  }

  async load(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const p = this.pathOf(h);
    const fh = await fs.open(p, "r");
    try {
      const size = length ?? (await fh.stat()).size - offset;
      if (size < 0) throw new IntegrityError(`${h.type} ${h.name} is shorter than expected`);
      const buf = Buffer.allocUnsafe(size);
      let got = 0;
      while (got < size) {
        const { bytesRead } = await fh.read(buf, got, size - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== size) {
        throw new IntegrityError(
          `${h.type} ${h.name || "config"} is truncated: wanted ${size} bytes at offset ${offset}, got ${got}`,
        );
      }
      return buf;
    } finally {
      await fh.close();
    }
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
    await fs.rm(this.pathOf(h), { force: true });
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

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
