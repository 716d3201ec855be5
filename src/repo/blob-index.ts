import type { BlobKind } from "./blob.js";

export interface IndexEntry {
  kind: BlobKind;
  packId: string;
  offset: number;
  length: number;
  rawLength: number;
}

/**
 * The in-memory index: blob id → where the sealed blob lives. Keyed by the id's hex form;
 * pack ids are interned so each entry holds a reference, not a copy.
 */
export class BlobIndex {
  readonly #entries = new Map<string, IndexEntry>();
  readonly #packIds = new Map<string, string>();

  get size(): number {
    return this.#entries.size;
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  get(id: string): IndexEntry | undefined {
    return this.#entries.get(id);
  }

  add(id: string, e: IndexEntry): void {
    let packId = this.#packIds.get(e.packId);
    if (packId === undefined) {
      packId = e.packId;
      this.#packIds.set(packId, packId);
    }
    this.#entries.set(id, { ...e, packId });
  }

  packs(): IterableIterator<string> {
    return this.#packIds.keys();
  }

  entries(): IterableIterator<[string, IndexEntry]> {
    return this.#entries.entries();
  }
}
