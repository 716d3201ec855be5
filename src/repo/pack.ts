import { randomBytes } from "node:crypto";
import type { Backend } from "../backend/backend.js";
import type { RepositoryKeys } from "../crypto/keys.js";
import { associatedData, ObjectKind, open, seal } from "../crypto/seal.js";
import { IntegrityError } from "../errors.js";
import type { BlobKind, SealedBlob } from "./blob.js";

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

/** Bytes a pack of `count` blobs needs past its blobs: sealed header, trailer, and slack. */
export function packHeaderRoom(count: number): number {
  return count * packEntryLength + 4096;
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

/** A pack being filled: in memory (PackWriter) or written as it fills (PackStream). */
export interface OpenPack {
  readonly id: Buffer;
  readonly entries: PackEntry[];
  /** Bytes of blobs so far. */
  readonly size: number;
  readonly count: number;
  add(blob: SealedBlob): void;
  /** A promise to wait for before adding more, when writes are behind; else null. */
  room(): Promise<void> | null;
  /**
   * Writes the pack under its id; resolves once it is durable, with the pack's memory for
   * another pack to reuse, if it had any. The pack must not be used afterwards.
   */
  store(repositoryId: Buffer, keys: RepositoryKeys): Promise<Buffer | null>;
  /** Drops the pack unwritten (a backup that failed or was stopped leaves nothing of it). */
  discard(): Promise<void>;
}

/**
 * Collects sealed blobs in one growing buffer (at most one pack's worth) and serialises a
 * pack. Copying each blob in, rather than keeping the sealed buffers, matters: small
 * buffers are slices of Node's shared 8 KiB pool, and holding one keeps its whole slab.
 */
export class PackWriter implements OpenPack {
  readonly id = randomBytes(32);
  readonly entries: PackEntry[] = [];
  /** Grows by doubling up to the pack size it expects, then by a quarter. */
  readonly #expected: number;
  readonly #backend: Backend;
  #buf: Buffer;
  #size = 0;

  /**
   * `buffer` may be one a finished pack was written from: reusing it avoids faulting in
   * fresh pages for every pack, which costs more than copying the blobs in.
   */
  constructor(backend: Backend, expectedSize: number, buffer?: Buffer) {
    this.#backend = backend;
    this.#expected = expectedSize;
    this.#buf = buffer ?? Buffer.allocUnsafe(64 * 1024);
  }

  get size(): number {
    return this.#size;
  }

  get count(): number {
    return this.entries.length;
  }

  private reserve(need: number): void {
    const length = this.#buf.length;
    if (need <= length) return;
    // Past the expected size, grow by a quarter rather than by exactly `need`: packs end a
    // little over the pack size, and growing blob by blob there copied the whole pack for
    // each of its last small blobs.
    const next = length < this.#expected ? Math.min(length * 2, this.#expected) : length * 1.25;
    const bigger = Buffer.allocUnsafe(Math.max(need, Math.floor(next)));
    this.#buf.copy(bigger, 0, 0, this.#size);
    this.#buf = bigger;
  }

  add(blob: SealedBlob): void {
    const need = this.#size + blob.sealed.length;
    // Room for the sealed header and trailer too, so finish() need not copy the pack again.
    this.reserve(need + 64 + (this.entries.length + 1) * packEntryLength);
    blob.sealed.copy(this.#buf, this.#size);
    this.entries.push({
      kind: blob.kind,
      id: blob.id,
      offset: this.#size,
      length: blob.sealed.length,
      rawLength: blob.rawLength,
    });
    this.#size = need;
  }

  room(): null {
    return null;
  }

  async discard(): Promise<void> {
    this.#buf = Buffer.alloc(0);
  }

  async store(repositoryId: Buffer, keys: RepositoryKeys): Promise<Buffer> {
    const pack = this.finish(repositoryId, keys);
    await this.#backend.save({ type: "data", name: this.id.toString("hex") }, pack);
    return Buffer.from(pack.buffer, pack.byteOffset, pack.buffer.byteLength - pack.byteOffset);
  }

  /** The finished pack, in the writer's own buffer; the writer must not be used afterwards. */
  private finish(repositoryId: Buffer, keys: RepositoryKeys): Buffer {
    const tail = packTail(repositoryId, keys, this.id, this.entries);
    const total = this.#size + tail.length;
    this.reserve(total);
    tail.copy(this.#buf, this.#size);
    const pack = this.#buf.subarray(0, total);
    this.#buf = Buffer.alloc(0);
    return pack;
  }
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
