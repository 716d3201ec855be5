// The ring of directory listings the lister thread (lister-worker.ts) writes and the walk
// (dir-lister.ts) reads: shared memory and two counters, so a listing costs no thread
// message. One writer, one reader.
//
// Memory: a control block of 4 int32 (write and read byte counters, mod 2^32; state; a
// progress counter the writer bumps while it works on a listing not yet written) and a
// data area of `capacity` bytes, a power of two. Records are 8-byte aligned:
//
//   u32 length (bytes of the whole record, a multiple of 8; 0 = wrap to the area's start)
//   u32 kind   (listed | unreadable | listedPart: more of this directory follows)
//   u32 pathLength, u32 count
//   path bytes, padded to 8
//   count × u32 end of name i in the name bytes, padded to 8
//   name bytes, padded to 8
//   count × statFields × i64: lstat fields (mode 0: lstat failed, the walk lstats it)

export const RecordKind = { listed: 1, unreadable: 2, listedPart: 3 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

const ListerState = { running: 0, done: 1 } as const;

/** lstat fields per entry, in this order. */
export const statFields = 10;

const writeAt = 0;
const readAt = 1;
const stateAt = 2;
const progressAt = 3;
const controlBytes = 16;
const headerBytes = 16;

const pad8 = (n: number) => (n + 7) & ~7;

function recordLength(pathLength: number, count: number, nameBytes: number): number {
  return (
    headerBytes + pad8(pathLength) + pad8(4 * count) + pad8(nameBytes) + 8 * statFields * count
  );
}

/** One listed directory as the walk receives it (copied out of the ring). */
export interface RingListing {
  kind: RecordKind;
  path: Buffer;
  names: Buffer[];
  /** statFields values per name. */
  stats: BigInt64Array;
}

/**
 * The entries a writer puts in a listing: raw names as latin1 strings (one character per
 * byte, so any name survives; a string costs a fraction of a Buffer per name), and
 * statFields values per name.
 */
export interface ListingEntries {
  names: readonly string[];
  stats: BigInt64Array;
}

export function ringBuffer(capacity: number): SharedArrayBuffer {
  if (capacity < 4096 || (capacity & (capacity - 1)) !== 0) {
    throw new Error("listing-ring: internal error: capacity must be a power of two >= 4096");
  }
  return new SharedArrayBuffer(controlBytes + capacity);
}

class Ring {
  protected readonly control: Int32Array;
  protected readonly bytes: Buffer;
  protected readonly view: DataView;
  protected readonly words: BigInt64Array;
  protected readonly capacity: number;

  constructor(shared: SharedArrayBuffer) {
    this.control = new Int32Array(shared, 0, 4);
    this.capacity = shared.byteLength - controlBytes;
    this.bytes = Buffer.from(shared, controlBytes, this.capacity);
    this.view = new DataView(shared, controlBytes, this.capacity);
    this.words = new BigInt64Array(shared, controlBytes, this.capacity / 8);
  }

  protected counter(at: number): number {
    return Atomics.load(this.control, at) >>> 0;
  }
}

export class RingWriter extends Ring {
  /** The largest record the ring takes: a bigger directory is left to the walk. */
  get maxRecord(): number {
    return this.capacity / 4;
  }

  /**
   * Appends a directory's listing, waiting while the reader has not made room. A listing
   * larger than maxRecord goes as several records, all but the last of kind listedPart;
   * with `more`, the last too: the rest of the directory follows in later writes.
   */
  write(kind: RecordKind, path: Buffer, entries: ListingEntries | null, more = false): void {
    const names = entries?.names ?? [];
    const stats = entries?.stats ?? new BigInt64Array(0);
    let from = 0;
    for (;;) {
      // As many names as fit one record (at least one: a name is at most 255 bytes).
      let to = from;
      let nameBytes = 0;
      while (
        to < names.length &&
        recordLength(path.length, to + 1 - from, nameBytes + (names[to] as string).length) <=
          this.maxRecord
      ) {
        nameBytes += (names[to] as string).length;
        to++;
      }
      if (to === from && from < names.length) {
        throw new Error("listing-ring: internal error: a name does not fit a record");
      }
      const last = to === names.length;
      this.writeRecord(
        last && !more ? kind : RecordKind.listedPart,
        path,
        names.slice(from, to),
        nameBytes,
        stats.subarray(statFields * from, statFields * to),
      );
      if (last) return;
      from = to;
    }
  }

  private writeRecord(
    kind: RecordKind,
    path: Buffer,
    names: readonly string[],
    nameBytes: number,
    stats: BigInt64Array,
  ): void {
    const length = recordLength(path.length, names.length, nameBytes);
    if (length > this.maxRecord) throw new Error("listing-ring: internal error: path too long");
    const start = this.reserve(length);
    const v = this.view;
    v.setUint32(start, length, true);
    v.setUint32(start + 4, kind, true);
    v.setUint32(start + 8, path.length, true);
    v.setUint32(start + 12, names.length, true);
    let o = start + headerBytes;
    this.bytes.set(path, o);
    o += pad8(path.length);
    let end = 0;
    for (let i = 0; i < names.length; i++) {
      end += (names[i] as string).length;
      v.setUint32(o + 4 * i, end, true);
    }
    o += pad8(4 * names.length);
    let n = o;
    for (const name of names) n += this.bytes.write(name, n, "latin1");
    o += pad8(nameBytes);
    this.words.set(stats, o / 8);
    this.publish(length);
  }

  /**
   * Tells the reader the writer is still at work on a listing it has not written yet (a
   * large directory's readdir, sort or lstat calls), so it goes on waiting for it.
   */
  progress(): void {
    Atomics.add(this.control, progressAt, 1);
  }

  /** Marks the end: the reader then stops waiting for more. */
  finish(): void {
    Atomics.store(this.control, stateAt, ListerState.done);
    Atomics.notify(this.control, writeAt);
  }

  /** Offset to write `length` bytes at, after a wrap marker if the area's end is too near. */
  private reserve(length: number): number {
    for (;;) {
      const write = this.counter(writeAt);
      const read = this.counter(readAt);
      const used = (write - read) >>> 0;
      const at = write & (this.capacity - 1);
      const tail = this.capacity - at;
      const need = length <= tail ? length : tail + length;
      if (this.capacity - used >= need) {
        if (length <= tail) return at;
        this.view.setUint32(at, 0, true); // wrap marker
        Atomics.store(this.control, writeAt, (write + tail) | 0);
        Atomics.notify(this.control, writeAt);
        return 0;
      }
      Atomics.wait(this.control, readAt, read | 0, 100);
    }
  }

  private publish(length: number): void {
    const write = this.counter(writeAt);
    Atomics.store(this.control, writeAt, (write + length) | 0);
    Atomics.notify(this.control, writeAt);
  }
}

export class RingReader extends Ring {
  /** True once the writer has finished and every record has been read. */
  get drained(): boolean {
    return (
      Atomics.load(this.control, stateAt) === ListerState.done &&
      this.counter(readAt) === this.counter(writeAt)
    );
  }

  /** A number that changes whenever the writer writes, finishes or reports progress. */
  get progress(): number {
    return (
      (this.counter(writeAt) +
        Atomics.load(this.control, progressAt) +
        Atomics.load(this.control, stateAt)) |
      0
    );
  }

  /** The next record, or null when none is ready yet. */
  next(): RingListing | null {
    for (;;) {
      const read = this.counter(readAt);
      if (read === this.counter(writeAt)) return null;
      const at = read & (this.capacity - 1);
      const v = this.view;
      const length = v.getUint32(at, true);
      if (length === 0) {
        this.advance(read, this.capacity - at);
        continue;
      }
      const kind = v.getUint32(at + 4, true) as RecordKind;
      const pathLength = v.getUint32(at + 8, true);
      const count = v.getUint32(at + 12, true);
      let o = at + headerBytes;
      const path = Buffer.from(this.bytes.subarray(o, o + pathLength));
      o += pad8(pathLength);
      const ends = o;
      o += pad8(4 * count);
      const nameBytes = count > 0 ? v.getUint32(ends + 4 * (count - 1), true) : 0;
      // One copy of the names; each name is a view of it.
      const all = Buffer.from(this.bytes.subarray(o, o + nameBytes));
      const names: Buffer[] = new Array(count);
      let start = 0;
      for (let i = 0; i < count; i++) {
        const end = v.getUint32(ends + 4 * i, true);
        names[i] = all.subarray(start, end);
        start = end;
      }
      o += pad8(nameBytes);
      const stats = this.words.slice(o / 8, o / 8 + statFields * count);
      this.advance(read, length);
      return { kind, path, names, stats };
    }
  }

  /** Waits up to ms for the writer to add a record or finish. */
  wait(ms: number): void {
    Atomics.wait(this.control, writeAt, this.counter(writeAt) | 0, ms);
  }

  private advance(read: number, by: number): void {
    Atomics.store(this.control, readAt, (read + by) | 0);
    Atomics.notify(this.control, readAt);
  }
}
