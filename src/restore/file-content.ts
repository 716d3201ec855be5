import { ObjectKind } from "../crypto/seal.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { SealPool } from "../repo/seal-pool.js";

/**
 * Yields a file's chunks in order, each authenticated and re-checked against its id;
 * large ones are opened in the pool's workers when a pool is given.
 */
export async function* fileChunks(
  store: BlobStore,
  content: readonly string[],
  pool: SealPool | null = null,
): AsyncGenerator<Buffer> {
  for (const id of content) yield await store.loadWith(pool, ObjectKind.data, id);
}

export function isAllZero(b: Buffer): boolean {
  // Compare against a shared zero page: native memcmp instead of a JS byte loop.
  for (let o = 0; o < b.length; o += zeroPage.length) {
    const n = Math.min(zeroPage.length, b.length - o);
    if (b.compare(zeroPage, 0, n, o, o + n) !== 0) return false;
  }
  return true;
}

const zeroPage = Buffer.alloc(64 * 1024);
