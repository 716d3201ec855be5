import type { RepositoryKeys } from "../crypto/keys.js";
import { associatedData, ObjectKind, open, seal } from "../crypto/seal.js";
import { IntegrityError } from "../errors.js";
import type { BlobKind } from "./blob.js";

// Pack layout (docs/FORMAT.md §Packs):
//   sealed blob 1 || ... || sealed blob n || sealed header || header length (u32 LE)
// Header plaintext: version (u8) || count (u32 LE) || count × entry, where an entry is
//   kind (u8) || blob id (32) || offset (u32 LE) || sealed length (u32 LE) || raw length (u32 LE)

const headerVersion = 1;
const packEntryLength = 1 + 32 + 4 + 4 + 4;
const trailerLength = 4;

export interface PackEntry {
  kind: BlobKind;
  id: Buffer;
  offset: number;
  length: number;
  rawLength: number;
}

export function encodePackHeader(entries: readonly PackEntry[]): Buffer {
  const out = Buffer.alloc(5 + entries.length * packEntryLength);
  out.writeUInt8(headerVersion, 0);
  out.writeUInt32LE(entries.length, 1);
  let o = 5;
  for (const e of entries) {
    o = out.writeUInt8(e.kind, o);
    o += e.id.copy(out, o);
    o = out.writeUInt32LE(e.offset, o);
    o = out.writeUInt32LE(e.length, o);
    o = out.writeUInt32LE(e.rawLength, o);
  }
  return out;
}

/** Checks a pack header's version, length and blob kinds; returns its entry count. */
export function checkPackHeader(b: Buffer, what: string): number {
  if (b.length < 5 || b[0] !== headerVersion) throw new IntegrityError(`${what}: bad header`);
  const n = b.readUInt32LE(1);
  if (b.length !== 5 + n * packEntryLength) throw new IntegrityError(`${what}: bad header length`);
  for (let o = 5; o < b.length; o += packEntryLength) {
    const kind = b[o];
    if (kind !== ObjectKind.data && kind !== ObjectKind.tree) {
      throw new IntegrityError(`${what}: unknown blob kind ${kind}`);
    }
  }
  return n;
}

/**
 * Calls fn for each entry of a header that passed checkPackHeader, with the id's position
 * in b (not a view: loading an index visits millions of entries).
 */
export function forEachCheckedEntry(
  b: Buffer,
  fn: (kind: BlobKind, idAt: number, offset: number, length: number, rawLength: number) => void,
): void {
  for (let o = 5; o < b.length; o += packEntryLength) {
    fn(
      b[o] as BlobKind,
      o + 1,
      b.readUInt32LE(o + 33),
      b.readUInt32LE(o + 37),
      b.readUInt32LE(o + 41),
    );
  }
}

/** A pack header's entries; a bad header throws before any is decoded. */
export function decodePackHeader(b: Buffer, what: string): PackEntry[] {
  checkPackHeader(b, what);
  const entries: PackEntry[] = [];
  forEachCheckedEntry(b, (kind, at, offset, length, rawLength) => {
    entries.push({ kind, id: Buffer.from(b.subarray(at, at + 32)), offset, length, rawLength });
  });
  return entries;
}

/** The end of a pack: its sealed header and the trailer giving the header's length. */
export function packTail(
  repositoryId: Buffer,
  keys: RepositoryKeys,
  packId: Buffer,
  entries: readonly PackEntry[],
): Buffer {
  const aad = associatedData(repositoryId, ObjectKind.packHeader, packId, keys.generation);
  const header = seal(keys.metadata, aad, keys.generation, encodePackHeader(entries));
  const tail = Buffer.allocUnsafe(header.length + trailerLength);
  header.copy(tail, 0);
  tail.writeUInt32LE(header.length, header.length);
  return tail;
}

/** Where a pack's sealed header sits, from the pack's total size and its last 4 bytes. */
export function headerLocation(
  packSize: number,
  trailer: Buffer,
  what: string,
): { offset: number; length: number } {
  if (packSize < trailerLength || trailer.length !== trailerLength) {
    throw new IntegrityError(`${what} is truncated`);
  }
  const length = trailer.readUInt32LE(0);
  const offset = packSize - trailerLength - length;
  if (offset < 0) throw new IntegrityError(`${what} is truncated or its trailer is damaged`);
  return { offset, length };
}

export function openPackHeader(
  repositoryId: Buffer,
  keysForSealed: (sealed: Buffer, what: string) => RepositoryKeys,
  packId: Buffer,
  sealedHeader: Buffer,
): PackEntry[] {
  const what = `pack ${packId.toString("hex")}`;
  const keys = keysForSealed(sealedHeader, `${what} header`);
  const aad = associatedData(repositoryId, ObjectKind.packHeader, packId, keys.generation);
  return decodePackHeader(open(keys.metadata, aad, sealedHeader, `${what} header`), what);
}

export { trailerLength as packTrailerLength };
