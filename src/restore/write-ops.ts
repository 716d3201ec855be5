import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { IntegrityError } from "../errors.js";
import type { BlobKind } from "../repo/blob.js";
import { BlobChecker } from "../repo/blob-check.js";
import { isAllZero } from "./file-content.js";

// The file-writing half of a directory restore (restorer.ts plans, this writes). A batch
// carries sealed pack bytes and a list of operations on files: create a temp file, open a
// sealed chunk and write it at its position, finish (metadata, then rename into place).
// It runs in a restore worker (write-worker.ts) or, without one, on the main thread.
// Everything here is synchronous: one batch is many small operations on local files.
// Paths travel as latin1 strings: a byte-exact round trip that clones cheaply.

/** The keys of one key generation, as much as opening a data blob needs. */
export interface WriteKeys {
  generation: number;
  data: Uint8Array;
  id: Uint8Array;
}

export type WriteOp =
  /** Creates the file's temp name with O_EXCL|O_NOFOLLOW. */
  | { t: "begin"; file: number; tmp: string }
  /** Opens bytes [off, off + len) of buffer `buf` (blob `id` of pack `pack`) and writes them at `pos`. */
  | {
      t: "chunk";
      file: number;
      pos: number;
      buf: number;
      off: number;
      len: number;
      id: string;
      kind: BlobKind;
      rawLength: number;
      generation: number;
      pack: string;
    }
  /** The planner could not get a chunk (missing pack, short read, bad key generation). */
  | { t: "fail"; file: number; message: string; integrity: boolean }
  /** Sets size, owner, mode and times, closes, and renames the temp file to `at`. */
  | {
      t: "finish";
      file: number;
      size: number;
      mode: number;
      uid: number;
      gid: number;
      chown: boolean;
      mtime: number;
      at: string;
    };

export interface WriteBatch {
  buffers: Uint8Array[];
  keys: WriteKeys[];
  ops: WriteOp[];
}

/** The result of one file, reported by the batch holding its finish op. */
export interface FileOutcome {
  file: number;
  /** Bytes restored, when the file is in place. */
  bytes?: number;
  error?: string;
  integrity?: boolean;
}

interface OpenFile {
  fd: number;
  tmp: Buffer;
  /** End of the last byte written: a file ending in a hole needs ftruncate. */
  end: number;
  error: { message: string; integrity: boolean } | null;
}

/**
 * Executes write batches. Files may span batches (a large file's chunks come in several);
 * the caller sends all batches of one file to the same FileWriter, in order.
 */
export class FileWriter {
  readonly #files = new Map<number, OpenFile>();
  /** Per key generation, the data and id keys (all that opening a chunk needs). */
  readonly #keys = new Map<number, { data: Buffer; id: Buffer }>();
  /** Opens chunks into scratch memory: each plaintext is written before the next is opened. */
  readonly #opener: BlobChecker;

  constructor(repositoryId: Uint8Array) {
    this.#opener = new BlobChecker(view(repositoryId));
  }

  run(batch: WriteBatch): FileOutcome[] {
    for (const k of batch.keys) {
      if (this.#keys.has(k.generation)) continue;
      this.#keys.set(k.generation, { data: Buffer.from(k.data), id: Buffer.from(k.id) });
    }
    const buffers = batch.buffers.map((b) => view(b));
    const outcomes: FileOutcome[] = [];
    for (const op of batch.ops) {
      switch (op.t) {
        case "begin":
          this.begin(op.file, Buffer.from(op.tmp, "latin1"));
          break;
        case "chunk":
          this.chunk(op, buffers[op.buf]);
          break;
        case "fail":
          this.abort(op.file, op);
          break;
        case "finish":
          outcomes.push(this.finish(op));
          break;
      }
    }
    return outcomes;
  }

  private begin(file: number, tmp: Buffer): void {
    const f: OpenFile = { fd: -1, tmp, end: 0, error: null };
    this.#files.set(file, f);
    try {
      f.fd = openSync(
        tmp,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
    } catch (err) {
      f.error = { message: (err as Error).message, integrity: false };
    }
  }

  private chunk(op: Extract<WriteOp, { t: "chunk" }>, buffer: Buffer | undefined): void {
    const f = this.#files.get(op.file);
    if (f === undefined || f.error !== null) return;
    try {
      if (buffer === undefined || op.off + op.len > buffer.length) {
        throw new Error("restore: internal error: chunk outside its buffer");
      }
      const keys = this.#keys.get(op.generation);
      if (keys === undefined) throw new Error("restore: internal error: chunk without its keys");
      let plaintext: Buffer;
      try {
        plaintext = this.#opener.open(
          keys.data,
          keys.id,
          op.generation,
          op.kind,
          Buffer.from(op.id, "hex"),
          buffer.subarray(op.off, op.off + op.len),
          op.rawLength,
        );
      } catch (err) {
        if (err instanceof IntegrityError)
          throw new IntegrityError(`pack ${op.pack}: ${err.message}`);
        throw err;
      }
      // All-zero chunks are left as holes: sparse files stay sparse.
      if (!isAllZero(plaintext)) {
        writeAll(f.fd, plaintext, op.pos);
        f.end = Math.max(f.end, op.pos + plaintext.length);
      }
    } catch (err) {
      this.abort(op.file, {
        message: (err as Error).message,
        integrity: err instanceof IntegrityError,
      });
    } finally {
      this.#opener.trim();
    }
  }

  /** Records the file's first error and removes its temp file. */
  private abort(file: number, error: { message: string; integrity: boolean }): void {
    const f = this.#files.get(file);
    if (f === undefined || f.error !== null) return;
    f.error = { message: error.message, integrity: error.integrity };
    this.discard(f);
  }

  private discard(f: OpenFile): void {
    if (f.fd < 0) return;
    try {
      closeSync(f.fd);
    } catch {}
    f.fd = -1;
    rmSync(f.tmp, { force: true });
  }

  private finish(op: Extract<WriteOp, { t: "finish" }>): FileOutcome {
    const f = this.#files.get(op.file);
    this.#files.delete(op.file);
    if (f === undefined) return { file: op.file, error: "restore: internal error: no such file" };
    if (f.error !== null) return { file: op.file, ...outcomeError(f.error) };
    try {
      if (f.end < op.size) ftruncateSync(f.fd, op.size);
      if (op.chown) fchownSync(f.fd, op.uid, op.gid);
      fchmodSync(f.fd, op.mode);
      futimesSync(f.fd, op.mtime, op.mtime);
      const fd = f.fd;
      f.fd = -1;
      closeSync(fd);
      renameSync(f.tmp, Buffer.from(op.at, "latin1"));
    } catch (err) {
      this.discard(f);
      rmSync(f.tmp, { force: true });
      return { file: op.file, error: (err as Error).message, integrity: false };
    }
    return { file: op.file, bytes: op.size };
  }

  /** Closes and removes every file still open (the restore stopped midway). */
  close(): void {
    for (const f of this.#files.values()) this.discard(f);
    this.#files.clear();
  }
}

function outcomeError(e: { message: string; integrity: boolean }): {
  error: string;
  integrity: boolean;
} {
  return { error: e.message, integrity: e.integrity };
}

function view(a: Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function writeAll(fd: number, data: Buffer, position: number): void {
  for (let done = 0; done < data.length; ) {
    done += writeSync(fd, data, done, data.length - done, position + done);
  }
}
