// A pack bound for S3, spooled to a private temp file while it fills and sent by one PUT
// streamed from that file (restic spools its packs the same way): a pack being filled or
// uploaded costs a stream's buffer in memory, not the pack's size, so --upload-concurrency
// no longer multiplies 16 MiB. The files live in $TMPDIR (os.tmpdir()); where that is a
// tmpfs they take RAM after all: point TMPDIR at a disk. A spool file is 0600, created
// with O_EXCL (temp-file.ts), and holds sealed blobs only.
import { createHash, type Hash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
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
  return new SpoolWriter(await TempFile.create(file).catch(spoolError), put);
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
      await this.#temp.close();
      let md5 = this.#md5;
      if (md5 === null || this.#hashed !== size) {
        md5 = createHash("md5");
        for await (const chunk of this.read()) md5.update(chunk as Buffer);
      }
      const file = this.#temp.path;
      await this.#put({
        size,
        md5: md5.digest(),
        stream: () => this.read(),
        read: (offset, length) => readRange(file, offset, length),
      });
    } finally {
      await this.abort();
    }
  }

  /** The file in 1 MiB pieces (the default 64 KiB makes 256 socket writes per pack). */
  private read(): Readable {
    return createReadStream(this.#temp.path, { highWaterMark: 1024 * 1024 });
  }

  abort(): Promise<void> {
    return this.#temp.remove();
  }
}

async function readRange(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.allocUnsafe(length);
    for (let got = 0; got < length; ) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) throw new Error(`spool file ${file} ended at ${offset + got} bytes`);
      got += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}
