import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import type { Readable } from "node:stream";

/**
 * A private file written at positions: a local object being written (renamed into place
 * on commit) and an S3 pack's spool (unlinked at once, read back through the handle)
 * share it. Created with O_EXCL (never writes
 * through a file or link someone else placed at its name) and mode 0600: repository files
 * are readable by the owner only (they are sealed, but names and sizes leak).
 */
export class TempFile {
  readonly path: string;
  readonly #fh: fs.FileHandle;
  #closed = false;
  /** Set by unlink: the name is gone (and may be someone else's now); only the handle is ours. */
  #unlinked = false;

  private constructor(path: string, fh: fs.FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  static async create(path: string): Promise<TempFile> {
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL;
    return new TempFile(path, await fs.open(path, flags, 0o600));
  }

  async write(data: Buffer, offset: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  }

  /**
   * Removes the file's name and keeps it through the handle: the kernel frees it when the
   * handle closes, so a process killed meanwhile leaves nothing behind (restic's temp
   * files are unlinked the same way).
   */
  async unlink(): Promise<void> {
    await fs.unlink(this.path);
    this.#unlinked = true;
  }

  /** Exactly `length` bytes from `position`. */
  async read(length: number, position: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    for (let got = 0; got < length; ) {
      const { bytesRead } = await this.#fh.read(buf, got, length - got, position + got);
      if (bytesRead === 0) throw new Error(`${this.path} ended at ${position + got} bytes`);
      got += bytesRead;
    }
    return buf;
  }

  /** The file from its start, in highWaterMark pieces; a fresh stream each call. */
  stream(highWaterMark: number): Readable {
    return this.#fh.createReadStream({ start: 0, autoClose: false, highWaterMark });
  }

  async size(): Promise<number> {
    return (await this.#fh.stat()).size;
  }

  async sync(): Promise<void> {
    await this.#fh.sync();
  }

  /** Closes the file (once; the handle waits for writes still running). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }

  /** Closes and deletes it; safe to call again. */
  async remove(): Promise<void> {
    await this.close().catch(() => {});
    if (!this.#unlinked) await fs.rm(this.path, { force: true });
  }
}
