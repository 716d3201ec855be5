import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import type * as ZstdBinding from "zstd-napi/binding.js";
import { sameId } from "../crypto/blob-id.js";
import { associatedData, blobKey, decipherFor } from "../crypto/seal.js";
import { IntegrityError } from "../errors.js";
import type { BlobKind } from "./blob.js";

// verify --read-data opens every blob of the repository once and throws the plaintext
// away; restore writes each plaintext to its file before it opens the next. openBlob
// (blob.ts) allocates a fresh ciphertext-sized and a plaintext-sized buffer per blob; at
// ~1 MiB a blob that is an mmap and a page fault per page for each, and garbage the
// thread's GC frees late. Neither needs a plaintext that outlives the next blob, so a
// BlobChecker decrypts and decompresses into two scratch buffers it keeps, and nothing
// per blob is larger than one small decipher output.

/** zstd's context with caller-provided output (the high-level API allocates per call). */
const zstd = createRequire(import.meta.url)("zstd-napi/binding") as typeof ZstdBinding;

/** Ciphertext is deciphered this many bytes per call: small outputs reuse the heap. */
const decipherStep = 32 * 1024;
/** Scratch buffers above this size (a huge tree blob) are not kept after the blob. */
const keepScratch = 9 * 1024 * 1024;

/** Blobs of one stretch of one pack, to open and check (verify --read-data). */
export interface BlobSlice {
  packId: string;
  /** The pack's bytes that hold the blobs (not necessarily from its start). */
  data: Uint8Array;
  /** Per blob: 32-byte id, kind, offset in `data`, sealed length, raw length, generation. */
  ids: Uint8Array;
  kinds: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  rawLengths: Uint32Array;
  generations: Uint32Array;
  /** The data and id keys of each generation the blobs claim. */
  keys: { generation: number; data: Uint8Array; id: Uint8Array }[];
}

function view(a: Uint8Array, offset = 0, length = a.byteLength - offset): Buffer {
  return Buffer.from(a.buffer, a.byteOffset + offset, length);
}

const uncompressed = 0;
const zstdCompressed = 1;

/**
 * Opens sealed blobs as blob.ts openBlob does (tag, compression flag, length, keyed id),
 * into scratch memory reused from blob to blob. Not for concurrent use.
 */
export class BlobChecker {
  readonly #repositoryId: Buffer;
  #body = Buffer.alloc(0);
  #plain = Buffer.alloc(0);
  readonly #dctx = new zstd.DCtx();

  constructor(repositoryId: Buffer) {
    this.#repositoryId = repositoryId;
  }

  /** Checks every blob of the slice; returns one message per blob that fails. */
  checkSlice(s: BlobSlice): string[] {
    const problems: string[] = [];
    const keys = new Map(s.keys.map((k) => [k.generation, { data: view(k.data), id: view(k.id) }]));
    const data = view(s.data);
    for (let i = 0; i < s.kinds.length; i++) {
      const offset = s.offsets[i] as number;
      const length = s.lengths[i] as number;
      try {
        if (offset + length > data.length)
          throw new IntegrityError(`pack ${s.packId} is truncated`);
        const k = keys.get(s.generations[i] as number);
        if (k === undefined) throw new Error("verify job without the blob's keys");
        this.open(
          k.data,
          k.id,
          s.generations[i] as number,
          s.kinds[i] as BlobKind,
          view(s.ids, i * 32, 32),
          data.subarray(offset, offset + length),
          s.rawLengths[i] as number,
        );
      } catch (err) {
        const message = (err as Error).message;
        problems.push(message.startsWith("pack ") ? message : `pack ${s.packId}: ${message}`);
      } finally {
        this.trim();
      }
    }
    return problems;
  }

  /**
   * Opens one sealed blob and checks it (tag, compression flag, length, keyed id); throws
   * IntegrityError when it is damaged. The plaintext is a view of scratch memory, valid
   * until the next call (or `trim`): verify drops it, restore writes it out first.
   */
  open(
    dataKey: Buffer,
    idKey: Buffer,
    generation: number,
    kind: BlobKind,
    id: Buffer,
    sealed: Buffer,
    rawLength: number,
  ): Buffer {
    const what = `${kind === 2 ? "tree" : "data"} blob ${id.toString("hex")}`;
    const aad = associatedData(this.#repositoryId, kind, id, generation);
    const body = this.decrypt(blobKey(dataKey, id), aad, sealed, what);
    let plaintext: Buffer;
    if (body[0] === uncompressed) plaintext = body.subarray(1);
    else if (body[0] === zstdCompressed) {
      plaintext = this.decompress(body.subarray(1), rawLength, what);
    } else throw new IntegrityError(`${what} has an unknown compression flag ${body[0]}`);
    if (plaintext.length !== rawLength) {
      throw new IntegrityError(
        `${what} has ${plaintext.length} bytes, the index says ${rawLength}`,
      );
    }
    if (!sameId(createHmac("sha256", idKey).update(plaintext).digest(), id)) {
      throw new IntegrityError(`${what} does not match its id`);
    }
    return plaintext;
  }

  /** As crypto/seal.ts open, into the body scratch buffer; the result is a view of it. */
  private decrypt(key: Buffer, aad: Buffer, sealed: Buffer, what: string): Buffer {
    const { decipher, ciphertext: ct } = decipherFor(key, aad, sealed, what);
    if (this.#body.length < ct.length) this.#body = Buffer.allocUnsafe(ct.length);
    const body = this.#body;
    let o = 0;
    try {
      for (let at = 0; at < ct.length; at += decipherStep) {
        o += decipher.update(ct.subarray(at, at + decipherStep)).copy(body, o);
      }
      o += decipher.final().copy(body, o);
    } catch {
      throw new IntegrityError(`${what} failed authentication (damaged, truncated or forged)`);
    }
    return body.subarray(0, o);
  }

  /**
   * Decompresses into the plain scratch buffer; the result is a view of it. Output is
   * capped at one byte more than the index says: a blob that would grow past that is
   * damaged, and is not inflated.
   */
  private decompress(src: Buffer, rawLength: number, what: string): Buffer {
    let declared: number | null = null;
    try {
      declared = zstd.getFrameContentSize(src);
    } catch {
      throw new IntegrityError(`${what} does not decompress`);
    }
    if (declared !== null && declared !== rawLength) {
      throw new IntegrityError(`${what} has ${declared} bytes, the index says ${rawLength}`);
    }
    if (this.#plain.length < rawLength + 1) this.#plain = Buffer.allocUnsafe(rawLength + 1);
    let n: number;
    try {
      n = this.#dctx.decompress(this.#plain.subarray(0, rawLength + 1), src);
    } catch {
      throw new IntegrityError(`${what} does not decompress`);
    }
    return this.#plain.subarray(0, n);
  }

  /** Drops scratch buffers grown past the usual blob size by one huge blob. */
  trim(): void {
    if (this.#body.length > keepScratch) this.#body = Buffer.alloc(0);
    if (this.#plain.length > keepScratch) this.#plain = Buffer.alloc(0);
  }
}
