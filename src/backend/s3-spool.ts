// A pack bound for S3, spooled to a private temp file while it fills and sent by one PUT
// streamed from that file (restic spools its packs the same way): a pack being filled or
// uploaded costs a stream's buffer in memory, not the pack's size, so --upload-concurrency
// no longer multiplies 16 MiB. The files live in $TMPDIR (os.tmpdir()); where that is a
// tmpfs they take RAM after all: point TMPDIR at a disk. A spool file is 0600, created
// with O_EXCL (temp-file.ts), holds sealed blobs only, and loses its name as soon as it
// is created: it is read and written through its handle, and the kernel frees it when
// that closes, so a killed process leaves no spool behind.
import { createHash, type Hash, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { UserError } from "../errors.js";
import type { ObjectWriter } from "./backend.js";
import { TempFile } from "./temp-file.js";

/** A finished spool file, as its upload reads it. */
export interface SpooledBody {
  size: number;
  md5: Buffer;
  /** The whole file, a fresh stream each call: a retried PUT reads it again. */
  stream(): Readable;
  /** `length` bytes from `offset`, in memory: one part of a multipart upload. */
  read(offset: number, length: number): Promise<Buffer>;
}

/** What the spool needs from its backend: one checked, retried upload of a body it can re-read. */
export type SpooledPut = (body: SpooledBody) => Promise<void>;

export async function openSpool(put: SpooledPut): Promise<ObjectWriter> {
  const file = path.join(tmpdir(), `coffer-pack-${randomBytes(8).toString("hex")}`);
  const temp = await TempFile.create(file).catch(spoolError);
  try {
    await temp.unlink();
  } catch (err) {
    await temp.remove();
    spoolError(err as NodeJS.ErrnoException);
  }
  return new SpoolWriter(temp, put);
}

/** A spool that cannot be written is the machine's problem, not the repository's: say where. */
function spoolError(err: NodeJS.ErrnoException): never {
  throw new UserError(
    `cannot spool a pack in ${tmpdir()} (${err.code ?? err.message}): set TMPDIR to a writable folder with room for a few packs`,
  );
}

class SpoolWriter implements ObjectWriter {
  readonly #temp: TempFile;
  readonly #put: SpooledPut;
  /**
   * MD5 of the file's first `hashed` bytes, kept while pieces come in order (packs are
   * written front to back), so commit need not read the file twice; null once they do not.
   */
  #md5: Hash | null = createHash("md5");
  #hashed = 0;

  constructor(temp: TempFile, put: SpooledPut) {
    this.#temp = temp;
    this.#put = put;
  }

  async write(data: Buffer, offset: number): Promise<void> {
    if (this.#md5 !== null && offset === this.#hashed) {
      this.#md5.update(data);
      this.#hashed += data.length;
    } else this.#md5 = null;
    await this.#temp.write(data, offset).catch(spoolError);
  }

  /** The PUT, then the file goes; a failed PUT removes it too (the caller aborts the pack). */
  async commit(): Promise<void> {
    try {
      const size = await this.#temp.size();
      let md5 = this.#md5;
      if (md5 === null || this.#hashed !== size) {
        md5 = createHash("md5");
        for await (const chunk of this.read()) md5.update(chunk as Buffer);
      }
      await this.#put({
        size,
        md5: md5.digest(),
        stream: () => this.read(),
        read: (offset, length) => this.#temp.read(length, offset),
      });
    } finally {
      await this.abort();
    }
  }

  /** The file in 1 MiB pieces (the default 64 KiB makes 256 socket writes per pack). */
  private read(): Readable {
    return this.#temp.stream(1024 * 1024);
  }

  abort(): Promise<void> {
    return this.#temp.remove();
  }
}
