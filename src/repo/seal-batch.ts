import type { BlobKind } from "./blob.js";

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
 * more than sealing it, so small files' blobs travel a megabyte at a time.
 */
export class SealBatch {
  #kinds: BlobKind[] = [];
  #ids: Buffer[] = [];
  #parts: Buffer[] = [];
  #bytes = 0;

  get size(): number {
    return this.#kinds.length;
  }

  get full(): boolean {
    return this.#bytes >= batchBytes || this.#kinds.length >= batchBlobs;
  }

  add(kind: BlobKind, id: Buffer, plaintext: Buffer): void {
    this.#kinds.push(kind);
    this.#ids.push(id);
    this.#parts.push(plaintext);
    this.#bytes += plaintext.length;
  }

  /** The batch's blobs in fresh buffers (safe to transfer); the batch is empty after. */
  take(): BlobBatch {
    const n = this.#kinds.length;
    const batch: BlobBatch = {
      kinds: Uint8Array.from(this.#kinds),
      ids: new Uint8Array(n * 32),
      data: new Uint8Array(this.#bytes),
      lengths: new Uint32Array(n),
    };
    let offset = 0;
    for (let i = 0; i < n; i++) {
      const part = this.#parts[i] as Buffer;
      batch.ids.set(this.#ids[i] as Buffer, i * 32);
      batch.data.set(part, offset);
      batch.lengths[i] = part.length;
      offset += part.length;
    }
    this.#kinds = [];
    this.#ids = [];
    this.#parts = [];
    this.#bytes = 0;
    return batch;
  }
}
