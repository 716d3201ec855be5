// A pack bound for S3, spooled to a private temp file while it fills and sent by one PUT
// streamed from that file (restic spools its packs the same way): a pack being filled or
// uploaded costs a stream's buffer in memory, not the pack's size, so --upload-concurrency
// no longer multiplies 16 MiB. The files live in $TMPDIR (os.tmpdir()); where that is a
// tmpfs they take RAM after all: point TMPDIR at a disk.
import { createHash, type Hash, randomBytes } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { UserError } from "../errors.js";
import type { ObjectWriter } from "./backend.js";

/** What the spool needs from its backend: one checked, retried PUT of a body it can re-read. */
export type SpooledPut = (body: () => Readable, size: number, md5: Buffer) => Promise<void>;

export async function openSpool(put: SpooledPut): Promise<ObjectWriter> {
  const file = path.join(tmpdir(), `coffer-pack-${randomBytes(8).toString("hex")}`);
  // O_EXCL and 0600: never write through a file someone placed there, and only we read it.
  const fh = await fs
    .open(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600)
    .catch(spoolError);
  return new SpoolWriter(fh, file, put);
}

/** A spool that cannot be written is the machine's problem, not the repository's: say where. */
function spoolError(err: NodeJS.ErrnoException): never {
  throw new UserError(
    `cannot spool a pack in ${tmpdir()} (${err.code ?? err.message}): set TMPDIR to a writable folder with room for a few packs`,
  );
}

class SpoolWriter implements ObjectWriter {
  readonly #fh: fs.FileHandle;
  readonly #file: string;
  readonly #put: SpooledPut;
  #closed = false;
  /**
   * MD5 of the file's first `hashed` bytes, kept while pieces come in order (packs are
   * written front to back), so commit need not read the file twice; null once they do not.
   */
  #md5: Hash | null = createHash("md5");
  #hashed = 0;

  constructor(fh: fs.FileHandle, file: string, put: SpooledPut) {
    this.#fh = fh;
    this.#file = file;
    this.#put = put;
  }

  async write(data: Buffer, offset: number): Promise<void> {
    if (this.#md5 !== null && offset === this.#hashed) {
      this.#md5.update(data);
      this.#hashed += data.length;
    } else this.#md5 = null;
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#fh
        .write(data, done, data.length - done, offset + done)
        .catch(spoolError);
      done += bytesWritten;
    }
  }

  /** The PUT, then the file goes; a failed PUT removes it too (the caller aborts the pack). */
  async commit(): Promise<void> {
    try {
      const size = (await this.#fh.stat()).size;
      await this.close();
      let md5 = this.#md5;
      if (md5 === null || this.#hashed !== size) {
        md5 = createHash("md5");
        for await (const chunk of this.read()) md5.update(chunk as Buffer);
      }
      await this.#put(() => this.read(), size, md5.digest());
    } finally {
      await this.abort();
    }
  }

  /** The file in 1 MiB pieces (the default 64 KiB makes 256 socket writes per pack). */
  private read(): Readable {
    return createReadStream(this.#file, { highWaterMark: 1024 * 1024 });
  }

  async abort(): Promise<void> {
    await this.close().catch(() => {});
    await fs.rm(this.#file, { force: true });
  }

  private async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }
}
