// Read-ahead for packs on a remote backend: restore and tree loading read many small,
// mostly adjacent blobs of one pack, and one ranged GET per blob costs a round trip each.
// A read that misses fetches a window (default 8 MiB) from its offset; the next reads
// of the same pack are served from it. A few windows are kept, least recently used first
// out, so memory is bounded by windows × window size, whatever the data.

export interface ReadWindowOptions {
  /** Bytes fetched from the offset of a read that misses. */
  windowBytes: number;
  /** Windows kept at once. */
  windows: number;
}

interface Window {
  start: number;
  data: Buffer;
}

export class ReadWindows {
  readonly #o: ReadWindowOptions;
  /** pack name → window; the map's order is least recently used first. */
  readonly #cache = new Map<string, Window[]>();
  readonly #inFlight = new Map<string, Promise<Window>>();
  #count = 0;
  readonly stats = { hits: 0, fetches: 0 };

  constructor(o: ReadWindowOptions) {
    this.#o = o;
  }

  /**
   * Bytes [offset, offset + length) of pack `name`, or null when they are not inside a
   * window fetched by `fetch(offset, max)` (which returns up to max bytes; fewer only
   * at the end of the object). The caller checks the length it gets.
   */
  async read(
    name: string,
    offset: number,
    length: number,
    fetch: (offset: number, max: number) => Promise<Buffer>,
  ): Promise<Buffer> {
    const hit = this.find(name, offset, length);
    if (hit) {
      this.stats.hits++;
      return hit;
    }
    const key = `${name}@${offset}`;
    let pending = this.#inFlight.get(key);
    if (!pending) {
      this.stats.fetches++;
      pending = fetch(offset, Math.max(length, this.#o.windowBytes)).then((data) => {
        const w = { start: offset, data };
        this.keep(name, w);
        return w;
      });
      pending.finally(() => this.#inFlight.delete(key)).catch(() => {});
      this.#inFlight.set(key, pending);
    }
    const w = await pending;
    const from = offset - w.start;
    return Buffer.from(w.data.subarray(from, Math.min(from + length, w.data.length)));
  }

  private find(name: string, offset: number, length: number): Buffer | null {
    const ws = this.#cache.get(name);
    if (!ws) return null;
    for (const w of ws) {
      if (offset >= w.start && offset + length <= w.start + w.data.length) {
        this.#cache.delete(name);
        this.#cache.set(name, ws);
        const from = offset - w.start;
        return Buffer.from(w.data.subarray(from, from + length));
      }
    }
    return null;
  }

  private keep(name: string, w: Window): void {
    const ws = this.#cache.get(name) ?? [];
    ws.push(w);
    this.#cache.delete(name);
    this.#cache.set(name, ws);
    this.#count++;
    while (this.#count > this.#o.windows) {
      const [oldest, list] = this.#cache.entries().next().value as [string, Window[]];
      list.shift();
      this.#count--;
      if (list.length === 0) this.#cache.delete(oldest);
    }
  }

  forget(name: string): void {
    this.#count -= this.#cache.get(name)?.length ?? 0;
    this.#cache.delete(name);
  }
}
