import { ObjectKind } from "../crypto/seal.js";
import type { BlobKind } from "./blob.js";

export interface IndexEntry {
  kind: BlobKind;
  packId: string;
  offset: number;
  length: number;
  rawLength: number;
}

const idLength = 32;
const initialCapacity = 1024;
/** Entry arrays grow by an eighth: at most 12.5% of entry memory is ever unused. */
const entryGrowth = 1.125;
/** The slot table is rebuilt at this load, to the lower one: linear probing stays short. */
const maxLoad = 0.75;
const rebuildLoad = 0.5;
const hexScratch = Buffer.alloc(idLength);
/** A tree blob is marked in the top bit of its pack number (packs stay below 2^31). */
const treeBit = 0x8000_0000;

/**
 * The in-memory index: blob id → where the sealed blob lives. Entries live in typed
 * arrays (48 bytes each: id, pack number with the kind in its top bit, offset, length, raw
 * length) that grow by an eighth, with an open-addressing table of entry numbers (4 bytes
 * a slot, 50–75% full): at most about 62 bytes per blob, so a repository of 100 million
 * blobs fits in 6 GB, not the tens of GB of JavaScript objects. Blob ids are uniformly
 * random (keyed HMACs): their first 4 bytes are a good hash.
 */
export class BlobIndex {
  #count = 0;
  #ids = new Uint8Array(initialCapacity * idLength);
  #packs = new Uint32Array(initialCapacity);
  #offsets = new Uint32Array(initialCapacity);
  #lengths = new Uint32Array(initialCapacity);
  #rawLengths = new Uint32Array(initialCapacity);
  /** Entry number + 1 per slot; 0 is empty. */
  #slots = new Uint32Array(Math.ceil(initialCapacity / rebuildLoad));
  readonly #packIds: string[] = [];
  readonly #packNumbers = new Map<string, number>();

  /** Bytes held by the typed arrays: what the per-blob memory bound is measured on. */
  get byteSize(): number {
    return (
      this.#ids.byteLength +
      this.#packs.byteLength +
      this.#offsets.byteLength +
      this.#lengths.byteLength +
      this.#rawLengths.byteLength +
      this.#slots.byteLength
    );
  }

  get size(): number {
    return this.#count;
  }

  has(id: string): boolean {
    return this.findHex(id) >= 0;
  }

  /** As has, with the id as bytes: the backup path has them already. */
  hasRaw(id: Buffer): boolean {
    return this.find(id) >= 0;
  }

  get(id: string): IndexEntry | undefined {
    const i = this.findHex(id);
    return i < 0 ? undefined : this.entryAt(i);
  }

  /** Adds a blob's location; a blob already indexed keeps its first location. */
  add(id: string, e: IndexEntry): void {
    this.addRaw(Buffer.from(id, "hex"), e.packId, e);
  }

  /** Makes room for n more entries at once (an index file says how many it brings). */
  reserve(n: number): void {
    const need = this.#count + n;
    if (need > this.#packs.length) this.growEntries(need);
    if (need > this.#slots.length * maxLoad) this.growSlots(need);
  }

  /** As add, with the id as bytes: loading an index adds millions, hex costs there. */
  addRaw(raw: Uint8Array, packId: string, e: Omit<IndexEntry, "packId">): void {
    if (raw.length !== idLength) throw new Error("blob-index: internal error: id must be 32 bytes");
    this.addAt(raw, 0, packId, e.kind, e.offset, e.length, e.rawLength);
  }

  /**
   * As addRaw, with the id at bytes[at, at + 32): an index file's entries go in straight
   * from its bytes, with no object or view per entry.
   */
  addAt(
    bytes: Uint8Array,
    at: number,
    packId: string,
    kind: BlobKind,
    offset: number,
    length: number,
    rawLength: number,
  ): void {
    if (this.find(bytes, at) >= 0) return;
    if (this.#count === this.#packs.length) this.growEntries();
    if (this.#count + 1 > this.#slots.length * maxLoad) this.growSlots();
    const i = this.#count++;
    const ids = this.#ids;
    const base = i * idLength;
    for (let k = 0; k < idLength; k++) ids[base + k] = bytes[at + k] as number;
    this.#packs[i] = this.packNumber(packId) | (kind === ObjectKind.tree ? treeBit : 0);
    this.#offsets[i] = offset;
    this.#lengths[i] = length;
    this.#rawLengths[i] = rawLength;
    this.insertSlot(i);
  }

  packs(): IterableIterator<string> {
    return this.#packIds.values();
  }

  *entries(): IterableIterator<[string, IndexEntry]> {
    for (let i = 0; i < this.#count; i++) {
      const id = Buffer.from(this.#ids.buffer, this.#ids.byteOffset + i * idLength, idLength);
      yield [id.toString("hex"), this.entryAt(i)];
    }
  }

  /** Number of indexed blobs per pack id, counted without materialising entries. */
  countsByPack(): Map<string, number> {
    const counts = new Uint32Array(this.#packIds.length);
    for (let i = 0; i < this.#count; i++) {
      const n = ((this.#packs[i] as number) & ~treeBit) >>> 0;
      counts[n] = (counts[n] as number) + 1;
    }
    return new Map(this.#packIds.map((id, n) => [id, counts[n] as number]));
  }

  /** The entries of one pack (a scan of the whole index: for the rare damaged pack). */
  *entriesOfPack(packId: string): IterableIterator<[string, IndexEntry]> {
    const n = this.#packNumbers.get(packId);
    if (n === undefined) return;
    for (let i = 0; i < this.#count; i++) {
      if (((this.#packs[i] as number) & ~treeBit) >>> 0 !== n) continue;
      const id = Buffer.from(this.#ids.buffer, this.#ids.byteOffset + i * idLength, idLength);
      yield [id.toString("hex"), this.entryAt(i)];
    }
  }

  private entryAt(i: number): IndexEntry {
    const pack = this.#packs[i] as number;
    return {
      kind: pack & treeBit ? ObjectKind.tree : ObjectKind.data,
      packId: this.#packIds[(pack & ~treeBit) >>> 0] as string,
      offset: this.#offsets[i] as number,
      length: this.#lengths[i] as number,
      rawLength: this.#rawLengths[i] as number,
    };
  }

  private packNumber(packId: string): number {
    let n = this.#packNumbers.get(packId);
    if (n === undefined) {
      n = this.#packIds.length;
      if (n >= treeBit) throw new Error("blob-index: more than 2^31 packs");
      this.#packIds.push(packId);
      this.#packNumbers.set(packId, n);
    }
    return n;
  }

  private hash(id: Uint8Array, offset: number): number {
    return (
      ((id[offset] as number) |
        ((id[offset + 1] as number) << 8) |
        ((id[offset + 2] as number) << 16) |
        ((id[offset + 3] as number) << 24)) >>>
      0
    );
  }

  /** Entry number of id, or -1. */
  /**
   * Entry number of a hex id, or -1. The id is decoded into one reused buffer: an
   * unchanged re-run looks up every file's chunks, and a buffer per lookup is garbage.
   */
  private findHex(id: string): number {
    if (id.length !== 2 * idLength) return -1;
    if (hexScratch.write(id, 0, idLength, "hex") !== idLength) return -1;
    return this.find(hexScratch);
  }

  private find(id: Uint8Array, at = 0): number {
    const slots = this.#slots.length;
    for (let s = this.hash(id, at) % slots; ; s = s + 1 === slots ? 0 : s + 1) {
      const v = this.#slots[s] as number;
      if (v === 0) return -1;
      const i = v - 1;
      if (this.sameId(i, id, at)) return i;
    }
  }

  private sameId(i: number, id: Uint8Array, at: number): boolean {
    const base = i * idLength;
    const ids = this.#ids;
    for (let k = 0; k < idLength; k++) if (ids[base + k] !== id[at + k]) return false;
    return true;
  }

  private insertSlot(i: number): void {
    const slots = this.#slots.length;
    let s = this.hash(this.#ids, i * idLength) % slots;
    while (this.#slots[s] !== 0) s = s + 1 === slots ? 0 : s + 1;
    this.#slots[s] = i + 1;
  }

  private growEntries(atLeast = 0): void {
    const cap = Math.max(atLeast, Math.ceil(this.#packs.length * entryGrowth));
    const grow = <T extends Uint8Array | Uint32Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.#ids = grow(this.#ids, cap * idLength);
    this.#packs = grow(this.#packs, cap);
    this.#offsets = grow(this.#offsets, cap);
    this.#lengths = grow(this.#lengths, cap);
    this.#rawLengths = grow(this.#rawLengths, cap);
  }

  private growSlots(atLeast = 0): void {
    this.#slots = new Uint32Array(Math.ceil(Math.max(atLeast, this.#count + 1) / rebuildLoad));
    for (let i = 0; i < this.#count; i++) this.insertSlot(i);
  }
}
