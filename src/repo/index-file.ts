import { compress, decompress } from "zstd-napi";
import { IntegrityError } from "../errors.js";
import type { PackEntry } from "./pack.js";
import { decodePackHeader, encodePackHeader } from "./pack.js";

// An index delta lists the blobs of the packs one backup wrote (docs/FORMAT.md §Index).
// Plaintext before sealing is zstd( version (u8) || pack count (u32 LE) ||
//   per pack: pack id (32) || pack header plaintext as in §Packs ).

const indexVersion = 1;

export interface IndexedPack {
  packId: Buffer;
  entries: PackEntry[];
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(5);
  head.writeUInt8(indexVersion, 0);
  head.writeUInt32LE(packs.length, 1);
  parts.push(head);
  for (const p of packs) {
    const header = encodePackHeader(p.entries);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length, 0);
    parts.push(p.packId, len, header);
  }
  return compress(Buffer.concat(parts), { compressionLevel: 3 });
}

/**
 * Calls fn with each pack's id and header plaintext (views into the decompressed index,
 * valid only during the call). Structure errors throw before fn sees anything.
 */
export function forEachIndexedPack(
  compressed: Buffer,
  what: string,
  fn: (packId: Buffer, header: Buffer) => void,
): void {
  let b: Buffer;
  try {
    b = decompress(compressed);
  } catch {
    throw new IntegrityError(`${what} does not decompress`);
  }
  if (b.length < 5 || b[0] !== indexVersion) throw new IntegrityError(`${what}: bad version`);
  const n = b.readUInt32LE(1);
  const packs: [number, number][] = [];
  let o = 5;
  for (let i = 0; i < n; i++) {
    if (o + 36 > b.length) throw new IntegrityError(`${what} is truncated`);
    const len = b.readUInt32LE(o + 32);
    if (o + 36 + len > b.length) throw new IntegrityError(`${what} is truncated`);
    packs.push([o, len]);
    o += 36 + len;
  }
  if (o !== b.length) throw new IntegrityError(`${what} has trailing bytes`);
  for (const [at, len] of packs) fn(b.subarray(at, at + 32), b.subarray(at + 36, at + 36 + len));
}

export function decodeIndex(compressed: Buffer, what: string): IndexedPack[] {
  const packs: IndexedPack[] = [];
  forEachIndexedPack(compressed, what, (packId, header) => {
    packs.push({ packId: Buffer.from(packId), entries: decodePackHeader(header, what) });
  });
  return packs;
}
