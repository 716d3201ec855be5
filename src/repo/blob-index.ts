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

/**
 * The in-memory index: blob id → where the sealed blob lives. Entries live in typed
 * arrays (49 bytes each) with an open-addressing table of entry numbers (4 bytes per slot,
 * at most half full), so a repository of millions of blobs costs tens of MB, not GBs of
 * JavaScript objects. Blob ids are uniformly random (keyed HMACs): their first 4 bytes
 * are a good hash.
 */
export class BlobIndex {
  #count = 0;
  #ids = new Uint8Array(initialCapacity * idLength);
  #packs = new Uint32Array(initialCapacity);
  #offsets = new Uint32Array(initialCapacity);
  #lengths = new Uint32Array(initialCapacity);
  #rawLengths = new Uint32Array(initialCapacity);
  #kinds = new Uint8Array(initialCapacity);
  /** Entry number + 1 per slot; 0 is empty. */
  #slots = new Uint32Array(initialCapacity * 2);
  readonly #packIds: string[] = [];
  readonly #packNumbers = new Map<string, number>();

  get size(): number {
    return this.#count;
  }

  has(id: string): boolean {
    return this.find(Buffer.from(id, "hex")) >= 0;
  }

  /** As has, with the id as bytes: the backup path has them already. */
  hasRaw(id: Buffer): boolean {
    return this.find(id) >= 0;
  }

  get(id: string): IndexEntry | undefined {
    const i = this.find(Buffer.from(id, "hex"));
    return i < 0 ? undefined : this.entryAt(i);
  }

  /** Adds a blob's location; a blob already indexed keeps its first location. */
  add(id: string, e: IndexEntry): void {
    this.addRaw(Buffer.from(id, "hex"), e.packId, e);
  }

  /** As add, with the id as bytes: loading an index adds millions, hex costs there. */
  addRaw(raw: Buffer, packId: string, e: Omit<IndexEntry, "packId">): void {
    if (raw.length !== idLength) throw new Error("blob-index: internal error: id must be 32 bytes");
    if (this.find(raw) >= 0) return;
    if (this.#count === this.#packs.length) this.growEntries();
    if ((this.#count + 1) * 2 > this.#slots.length) this.growSlots();
    const i = this.#count++;
    this.#ids.set(raw, i * idLength);
    this.#packs[i] = this.packNumber(packId);
    this.#offsets[i] = e.offset;
    this.#lengths[i] = e.length;
    this.#rawLengths[i] = e.rawLength;
    this.#kinds[i] = e.kind;
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
      const n = this.#packs[i] as number;
      counts[n] = (counts[n] as number) + 1;
    }
    return new Map(this.#packIds.map((id, n) => [id, counts[n] as number]));
  }

  /** The entries of one pack (a scan of the whole index: for the rare damaged pack). */
  *entriesOfPack(packId: string): IterableIterator<[string, IndexEntry]> {
    const n = this.#packNumbers.get(packId);
    if (n === undefined) return;
    for (let i = 0; i < this.#count; i++) {
      if (this.#packs[i] !== n) continue;
      const id = Buffer.from(this.#ids.buffer, this.#ids.byteOffset + i * idLength, idLength);
      yield [id.toString("hex"), this.entryAt(i)];
    }
  }

  private entryAt(i: number): IndexEntry {
    return {
      kind: this.#kinds[i] as BlobKind,
      packId: this.#packIds[this.#packs[i] as number] as string,
      offset: this.#offsets[i] as number,
      length: this.#lengths[i] as number,
      rawLength: this.#rawLengths[i] as number,
    };
  }

  private packNumber(packId: string): number {
    let n = this.#packNumbers.get(packId);
    if (n === undefined) {
      n = this.#packIds.length;
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
  private find(id: Buffer): number {
    const mask = this.#slots.length - 1;
    for (let s = this.hash(id, 0) & mask; ; s = (s + 1) & mask) {
      const v = this.#slots[s] as number;
      if (v === 0) return -1;
      const i = v - 1;
      if (this.sameId(i, id)) return i;
    }
  }

  private sameId(i: number, id: Buffer): boolean {
    const base = i * idLength;
    const ids = this.#ids;
    for (let k = 0; k < idLength; k++) if (ids[base + k] !== id[k]) return false;
    return true;
  }

  private insertSlot(i: number): void {
    const mask = this.#slots.length - 1;
    let s = this.hash(this.#ids, i * idLength) & mask;
    while (this.#slots[s] !== 0) s = (s + 1) & mask;
    this.#slots[s] = i + 1;
  }

  private growEntries(): void {
    const cap = this.#packs.length * 2;
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
    this.#kinds = grow(this.#kinds, cap);
  }

  private growSlots(): void {
    this.#slots = new Uint32Array(this.#slots.length * 2);
    for (let i = 0; i < this.#count; i++) this.insertSlot(i);
  }
}
