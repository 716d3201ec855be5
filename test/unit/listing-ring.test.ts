import { describe, expect, it } from "vitest";
import { listerPaysOff } from "../../src/archiver/dir-lister.js";
import {
  RecordKind,
  type RingListing,
  RingReader,
  RingWriter,
  ringBuffer,
  statFields,
} from "../../src/archiver/listing-ring.js";

// The ring that carries directory listings from the lister thread to the walk: what the
// walk reads must be exactly what the lister wrote, across wraps of the ring and for
// directories too large for one record.

/** Names as the lister passes them: latin1, one character per byte; some not UTF-8. */
function listing(seed: number, count: number, nameLength = 12) {
  const names = Array.from(
    { length: count },
    (_, i) =>
      `${String(seed).padStart(4, "0")}-${String(i).padStart(nameLength, "x")}${i % 3 === 0 ? "\xe9\xff" : ""}`,
  );
  const stats = new BigInt64Array(count * statFields);
  for (let i = 0; i < stats.length; i++) stats[i] = BigInt(seed) * 1_000_000_007n + BigInt(i);
  // Values a real lstat gives: nanosecond times past 2^53, and a negative (signed) dev.
  if (count > 0) {
    stats[4] = 1_764_000_000_123_456_789n;
    stats[6] = -2n;
  }
  return { path: Buffer.from(`/data/dir-${seed}`), names, stats };
}

function expectSame(got: RingListing | null, want: ReturnType<typeof listing>, kind: number) {
  expect(got).not.toBeNull();
  const g = got as RingListing;
  expect(g.kind).toBe(kind);
  expect(g.path.equals(want.path)).toBe(true);
  expect(g.names.map((n) => n.toString("latin1"))).toEqual(want.names);
  expect([...g.stats]).toEqual([...want.stats]);
}

describe("listing ring", () => {
  it("hands over listings byte for byte, in order, across many wraps of the ring", () => {
    const shared = ringBuffer(4096);
    const writer = new RingWriter(shared);
    const reader = new RingReader(shared);
    expect(reader.next()).toBeNull();
    // Records of varying size (0 to 7 entries) so the wrap point moves around the ring.
    for (let seed = 0; seed < 500; seed++) {
      const l = listing(seed, seed % 8);
      writer.write(RecordKind.listed, l.path, l);
      if (seed % 3 === 0) writer.write(RecordKind.unreadable, Buffer.from(`/x/${seed}`), null);
      expectSame(reader.next(), l, RecordKind.listed);
      if (seed % 3 === 0) {
        const u = reader.next();
        expect(u?.kind).toBe(RecordKind.unreadable);
        expect(u?.path.toString()).toBe(`/x/${seed}`);
        expect(u?.names).toEqual([]);
      }
      expect(reader.next()).toBeNull();
    }
    expect(reader.drained).toBe(false);
    writer.finish();
    expect(reader.drained).toBe(true);
  });

  it("splits a directory larger than a record into parts that join to the whole", () => {
    const shared = ringBuffer(64 * 1024);
    const writer = new RingWriter(shared);
    const reader = new RingReader(shared);
    const big = listing(7, 400); // about 40 KB of entries: three 16 KiB records
    writer.write(RecordKind.listed, big.path, big);
    const parts: RingListing[] = [];
    for (let r = reader.next(); r !== null; r = reader.next()) parts.push(r);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.slice(0, -1).every((p) => p.kind === RecordKind.listedPart)).toBe(true);
    expect(parts.at(-1)?.kind).toBe(RecordKind.listed);
    expect(parts.every((p) => p.path.equals(big.path))).toBe(true);
    const names = parts.flatMap((p) => p.names.map((n) => n.toString("latin1")));
    expect(names).toEqual(big.names);
    expect(parts.flatMap((p) => [...p.stats])).toEqual([...big.stats]);
  });

  it("carries a directory written batch by batch as parts, the last batch ending it", () => {
    const shared = ringBuffer(64 * 1024);
    const writer = new RingWriter(shared);
    const reader = new RingReader(shared);
    const big = listing(9, 300);
    const progress = reader.progress;
    writer.progress(); // readdir and sort done, nothing written yet
    expect(reader.progress).not.toBe(progress);
    expect(reader.next()).toBeNull();
    const kinds: number[] = [];
    const names: string[] = [];
    for (let from = 0; from < 300; from += 100) {
      const batch = {
        names: big.names.slice(from, from + 100),
        stats: big.stats.subarray(from * statFields, (from + 100) * statFields),
      };
      writer.write(RecordKind.listed, big.path, batch, from + 100 < 300);
      for (let r = reader.next(); r !== null; r = reader.next()) {
        kinds.push(r.kind);
        names.push(...r.names.map((n) => n.toString("latin1")));
      }
    }
    expect(kinds.slice(0, -1).every((k) => k === RecordKind.listedPart)).toBe(true);
    expect(kinds.at(-1)).toBe(RecordKind.listed);
    expect(names).toEqual(big.names);
  });

  it("keeps what the reader took intact when the writer reuses the ring", () => {
    const shared = ringBuffer(4096);
    const writer = new RingWriter(shared);
    const reader = new RingReader(shared);
    const first = listing(1, 5);
    writer.write(RecordKind.listed, first.path, first);
    const taken = reader.next();
    for (let seed = 2; seed < 100; seed++) {
      const l = listing(seed, 5);
      writer.write(RecordKind.listed, l.path, l);
      reader.next();
    }
    expectSame(taken, first, RecordKind.listed);
  });

  it("refuses a ring size that is not a power of two", () => {
    expect(() => ringBuffer(5000)).toThrow(/power of two/);
  });
});

describe("when the walk uses a lister thread", () => {
  it("always for a re-run; for a full read only with a core beyond the seal workers and the walk", () => {
    expect(listerPaysOff(true, 2, 2)).toBe(true);
    expect(listerPaysOff(false, 1, 1)).toBe(false);
    expect(listerPaysOff(false, 2, 2)).toBe(false);
    expect(listerPaysOff(false, 4, 4)).toBe(false);
    expect(listerPaysOff(false, 8, 4)).toBe(true);
  });
});
