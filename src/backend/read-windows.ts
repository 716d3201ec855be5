// Read-ahead for packs on a remote backend: restore and tree loading read many small,
// mostly adjacent blobs of one pack, and one ranged GET per blob costs a round trip each.
// Packs are read in aligned blocks (default 1 MiB): a read fetches the blocks it spans
// in one GET, and later reads inside those blocks need no request. Blocks never overlap,
// so a read that jumps around fetches each byte once; at most `blocks` are kept, least
// recently used out, so memory is bounded by blocks × block size whatever the data.

export interface ReadWindowOptions {
  /** Size of an aligned block; 0 turns read-ahead off. */
  blockBytes: number;
  /** Blocks kept at once. */
  blocks: number;
}

export class ReadWindows {
  readonly #o: ReadWindowOptions;
  /** "pack/block number" → bytes; the map's order is least recently used first. */
  readonly #blocks = new Map<string, Buffer>();
  readonly #inFlight = new Map<string, Promise<void>>();

  constructor(o: ReadWindowOptions) {
    this.#o = o;
  }

  /**
   * Bytes [offset, offset + length) of pack `name`, fetched by `fetch(offset, max)`
   * (which returns up to max bytes: fewer only at the end of the object). Near the end
   * of the object the result may be shorter than length; the caller checks.
   */
  async read(
    name: string,
    offset: number,
    length: number,
    fetch: (offset: number, max: number) => Promise<Buffer>,
  ): Promise<Buffer> {
    const size = this.#o.blockBytes;
    const first = Math.floor(offset / size);
    const last = Math.floor((offset + length - 1) / size);
    if (!this.haveAll(name, first, last)) {
      const key = `${name}/${first}-${last}`;
      let pending = this.#inFlight.get(key);
      if (!pending) {
        pending = fetch(first * size, (last - first + 1) * size).then((data) => {
          for (let b = first; b <= last; b++) {
            const part = data.subarray((b - first) * size, (b - first + 1) * size);
            if (part.length > 0) this.keep(`${name}/${b}`, part);
          }
        });
        const done = pending.finally(() => this.#inFlight.delete(key));
        done.catch(() => {});
        this.#inFlight.set(key, pending);
      }
      await pending;
    }
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    for (let b = first; b <= last && got < length; b++) {
      const block = this.#blocks.get(`${name}/${b}`);
      // Gone: evicted by other reads meanwhile, or past the end of the object. Read
      // directly; the backend reports a range past the end.
      if (!block) return got === 0 ? fetch(offset, length) : out.subarray(0, got);
      const from = b === first ? offset - first * size : 0;
      if (from >= block.length) break;
      got += block.copy(out, got, from, Math.min(block.length, from + length - got));
      if (block.length < size) break; // the object's last block
    }
    return got === length ? out : out.subarray(0, got);
  }

  private haveAll(name: string, first: number, last: number): boolean {
    for (let b = first; b <= last; b++) {
      const block = this.#blocks.get(`${name}/${b}`);
      if (!block) return false;
      this.#blocks.delete(`${name}/${b}`);
      this.#blocks.set(`${name}/${b}`, block);
      if (block.length < this.#o.blockBytes) return true; // the object ends in this block
    }
    return true;
  }

  private keep(key: string, block: Buffer): void {
    this.#blocks.delete(key);
    this.#blocks.set(key, block);
    while (this.#blocks.size > this.#o.blocks) {
      const oldest = this.#blocks.keys().next().value as string;
      this.#blocks.delete(oldest);
    }
  }

  forget(name: string): void {
    for (const k of [...this.#blocks.keys()]) if (k.startsWith(`${name}/`)) this.#blocks.delete(k);
  }
}
