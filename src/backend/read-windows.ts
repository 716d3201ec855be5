// Read-ahead for packs: restore and tree loading read many small, mostly adjacent blobs
// of one pack, and one ranged GET per blob costs a round trip each on S3 (one pread each
// on local disk, which uses these blocks for reads up to 64 KiB: local.ts).
// Packs are read in aligned blocks (default 1 MiB): a read fetches the blocks it spans
// that are not held yet in one GET, and later reads inside them need no request. When
// reads of a pack go forward, the next few blocks are fetched in the background, so the
// round trip overlaps with the caller's work. Blocks never overlap, so a read pattern
// that jumps around fetches each byte about once; at most `blocks` are kept, least
// recently used out, so memory is bounded by blocks × block size whatever the data.

export interface ReadWindowOptions {
  /** Size of an aligned block; 0 turns read-ahead off. */
  blockBytes: number;
  /** Blocks kept at once. */
  blocks: number;
  /** Blocks fetched ahead in the background when reads of a pack go forward (0: none). */
  ahead?: number;
}

/** Returns up to max bytes from offset: fewer only at the end of the object. */
export type RangeFetch = (offset: number, max: number) => Promise<Buffer>;

export class ReadWindows {
  readonly #o: ReadWindowOptions;
  /** "pack/block number" → bytes; the map's order is least recently used first. */
  readonly #blocks = new Map<string, Buffer>();
  /** Blocks being fetched, by key: a read waits for them instead of asking again. */
  readonly #pending = new Map<string, Promise<void>>();
  /** Per pack: the block after the last one read (forward reads start prefetching). */
  readonly #next = new Map<string, number>();
  /** Per pack: its last block, once a short block has shown where it ends. */
  readonly #lastBlock = new Map<string, number>();

  constructor(o: ReadWindowOptions) {
    this.#o = o;
  }

  /**
   * Bytes [offset, offset + length) of pack `name`. Near the end of the object the result
   * may be shorter than length; the caller checks.
   */
  async read(name: string, offset: number, length: number, fetch: RangeFetch): Promise<Buffer> {
    const size = this.#o.blockBytes;
    const first = Math.floor(offset / size);
    const last = Math.floor((offset + length - 1) / size);
    const waits: Promise<void>[] = [];
    let from = -1;
    let to = -1;
    for (let b = first; b <= last; b++) {
      if (this.beyondEnd(name, b)) break;
      const key = `${name}/${b}`;
      if (this.touch(key)) continue;
      const pending = this.#pending.get(key);
      // A failed prefetch is not this read's failure: assemble() reads directly instead.
      if (pending) waits.push(pending.catch(() => {}));
      else {
        if (from < 0) from = b;
        to = b;
      }
    }
    if (from >= 0) waits.push(this.fetchBlocks(name, from, to, fetch));
    await Promise.all(waits);
    const forward = this.#next.get(name) === first || this.#next.get(name) === first + 1;
    this.#next.delete(name);
    this.#next.set(name, last + 1);
    if (this.#next.size > 1024) this.#next.delete(this.#next.keys().next().value as string);
    if (this.#lastBlock.size > 1024) {
      this.#lastBlock.delete(this.#lastBlock.keys().next().value as string);
    }
    if (forward) this.prefetch(name, last + 1, fetch);
    return this.assemble(name, offset, length, first, last, fetch);
  }

  private async assemble(
    name: string,
    offset: number,
    length: number,
    first: number,
    last: number,
    fetch: RangeFetch,
  ): Promise<Buffer> {
    const size = this.#o.blockBytes;
    const blocks: Buffer[] = [];
    for (let b = first; b <= last; b++) {
      const block = this.#blocks.get(`${name}/${b}`);
      if (block) blocks.push(block);
      else if (!this.beyondEnd(name, b)) {
        // Evicted by other reads meanwhile, a failed prefetch, or an object shorter than
        // the range: read the range directly (the backend reports a range past the end).
        return fetch(offset, length);
      }
      if (!block || block.length < size) break;
    }
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    for (let i = 0; i < blocks.length && got < length; i++) {
      const block = blocks[i] as Buffer;
      const b = first + i;
      const at = b === first ? offset - first * size : 0;
      if (at >= block.length) break;
      got += block.copy(out, got, at, Math.min(block.length, at + length - got));
      if (block.length < size) break; // the object's last block
    }
    return got === length ? out : out.subarray(0, got);
  }

  /** Fetches blocks from..to of a pack in one request and keeps them. */
  private fetchBlocks(name: string, from: number, to: number, fetch: RangeFetch): Promise<void> {
    const size = this.#o.blockBytes;
    const job = fetch(from * size, (to - from + 1) * size).then((data) => {
      for (let b = from; b <= to; b++) {
        const part = data.subarray((b - from) * size, (b - from + 1) * size);
        if (part.length > 0) this.keep(`${name}/${b}`, part);
        if (part.length < size) {
          this.#lastBlock.set(name, b);
          break;
        }
      }
    });
    const settled = job.finally(() => {
      for (let b = from; b <= to; b++) {
        if (this.#pending.get(`${name}/${b}`) === job) this.#pending.delete(`${name}/${b}`);
      }
    });
    settled.catch(() => {});
    for (let b = from; b <= to; b++) this.#pending.set(`${name}/${b}`, job);
    return job;
  }

  /** Background fetch of the blocks after `start` that are neither held nor on their way. */
  private prefetch(name: string, start: number, fetch: RangeFetch): void {
    const ahead = this.#o.ahead ?? 0;
    let from = -1;
    let to = -1;
    for (let b = start; b < start + ahead; b++) {
      if (this.beyondEnd(name, b)) break;
      const key = `${name}/${b}`;
      if (this.#blocks.has(key) || this.#pending.has(key)) {
        if (from >= 0) break;
        continue;
      }
      if (from < 0) from = b;
      to = b;
    }
    // Failures are ignored: a read that needs the block fetches it again and reports.
    if (from >= 0) this.fetchBlocks(name, from, to, fetch).catch(() => {});
  }

  /** Records a pack's size (from a ranged GET's Content-Range): no block past it is asked for. */
  noteSize(name: string, total: number): void {
    this.#lastBlock.set(name, Math.floor((total - 1) / this.#o.blockBytes));
  }

  private beyondEnd(name: string, block: number): boolean {
    const lastBlock = this.#lastBlock.get(name);
    return lastBlock !== undefined && block > lastBlock;
  }

  /** True when the block is held; marks it recently used. */
  private touch(key: string): boolean {
    const block = this.#blocks.get(key);
    if (!block) return false;
    this.#blocks.delete(key);
    this.#blocks.set(key, block);
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
    this.#next.delete(name);
    this.#lastBlock.delete(name);
  }
}
