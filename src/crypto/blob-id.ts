import { createHmac, timingSafeEqual } from "node:crypto";

/** A blob's id: HMAC-SHA256 keyed by the repository's id key, never a plain content hash. */
export function blobId(idKey: Buffer, plaintext: Buffer): Buffer {
  return createHmac("sha256", idKey).update(plaintext).digest();
}

export function sameId(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
