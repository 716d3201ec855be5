import type { RepositoryKeys } from "../crypto/keys.js";
import type { BlobKind } from "./blob.js";
import { sealBlob } from "./blob.js";

/** A batch is sent at this many plaintext bytes or blobs, whichever comes first. */
const batchBytes = 1024 * 1024;
const batchBlobs = 512;

/** Small blobs bound for a seal worker in one message, in transferable buffers. */
export interface BlobBatch {
  kinds: Uint8Array;
  /** 32 bytes per blob. */
  ids: Uint8Array;
  /** The plaintexts back to back; lengths[i] bytes each. */
  data: Uint8Array;
  lengths: Uint32Array;
}

/**
 * Collects small blobs for the seal pool. One thread message per small blob would cost
 * more than sealing it, so small files' blobs travel a megabyte at a time. Plaintexts are
 * copied in as they are added: callers may reuse their buffers once add returns.
 */
export class SealBatch {
  /** Only blobs smaller than this are batched. */
  readonly #maxBlob: number;
  #batch: BlobBatch | null = null;
  #count = 0;
  #bytes = 0;

  constructor(maxBlob: number) {
    this.#maxBlob = maxBlob;
  }

  get size(): number {
    return this.#count;
  }

  get full(): boolean {
    return this.#bytes >= batchBytes || this.#count >= batchBlobs;
  }

  add(kind: BlobKind, id: Buffer, plaintext: Buffer): void {
    if (plaintext.length >= this.#maxBlob)
      throw new Error("seal-batch: internal error: blob too large");
    this.#batch ??= {
      kinds: new Uint8Array(batchBlobs),
      ids: new Uint8Array(batchBlobs * 32),
      data: new Uint8Array(batchBytes + this.#maxBlob),
      lengths: new Uint32Array(batchBlobs),
    };
    const b = this.#batch;
    b.kinds[this.#count] = kind;
    b.ids.set(id, this.#count * 32);
    b.data.set(plaintext, this.#bytes);
    b.lengths[this.#count] = plaintext.length;
    this.#count++;
    this.#bytes += plaintext.length;
  }

  /** The batch, trimmed to its blobs (data keeps its whole buffer, to be transferred). */
  take(): BlobBatch {
    const b = this.#batch;
    if (b === null) throw new Error("seal-batch: internal error: empty batch");
    const n = this.#count;
    const batch: BlobBatch = {
      kinds: b.kinds.slice(0, n),
      ids: b.ids.slice(0, n * 32),
      data: b.data,
      lengths: b.lengths.slice(0, n),
    };
    this.#batch = null;
    this.#count = 0;
    this.#bytes = 0;
    return batch;
  }
}

/** Seals every blob of a batch, in order (on a seal worker, or on the caller's thread). */
export function sealEach(repositoryId: Buffer, keys: RepositoryKeys, b: BlobBatch): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < b.lengths.length; i++) {
    const length = b.lengths[i] as number;
    const id = Buffer.from(b.ids.buffer, b.ids.byteOffset + i * 32, 32);
    const plaintext = Buffer.from(b.data.buffer, b.data.byteOffset + offset, length);
    out.push(sealBlob(repositoryId, keys, b.kinds[i] as BlobKind, id, plaintext).sealed);
    offset += length;
  }
  return out;
}
