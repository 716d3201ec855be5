import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readChunks, streamReader } from "../../src/chunker/chunk-reader.js";
import { type ChunkerParams, FastCDC } from "../../src/chunker/fastcdc.js";
import { gearTable } from "../../src/chunker/gear.js";

const params: ChunkerParams = { min: 2 * 1024, avg: 8 * 1024, max: 64 * 1024 };
const key = randomBytes(32);
const cdc = new FastCDC(gearTable(key), params);

/** End offsets of every chunk of buf, cutting the whole buffer at once. */
function cutPoints(c: FastCDC, buf: Buffer): number[] {
  const out: number[] = [];
  for (let s = 0; s < buf.length; ) {
    const len = c.cut(buf, s, buf.length);
    if (len <= 0) throw new Error(`cut returned ${len} at ${s}`);
    s += len;
    out.push(s);
  }
  return out;
}

/**
 * Random-looking data from a seed: fast to make in large sizes, shrinkable by fast-check.
 * Sometimes with long runs of one byte, where no content-defined cut is found and the
 * max size must apply.
 */
const dataArb = fc
  .record({
    seed: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    size: fc.integer({ min: 0, max: 400_000 }),
    zeroRun: fc.option(fc.record({ at: fc.nat(), len: fc.integer({ min: 1, max: 200_000 }) })),
  })
  .map(({ seed, size, zeroRun }) => {
    const b = seeded(Buffer.from(seed), size);
    if (zeroRun) {
      const at = zeroRun.at % (size + 1);
      b.fill(0, at, Math.min(size, at + zeroRun.len));
    }
    return b;
  });

/** Deterministic pseudo-random bytes (xorshift32 seeded from 16 bytes). */
function seeded(seed: Buffer, size: number): Buffer {
  let x = seed.readUInt32LE(0) ^ seed.readUInt32LE(4) ^ seed.readUInt32LE(8) ^ 0x9e3779b9;
  if (x === 0) x = 1;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (; o + 4 <= size; o += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, o);
  }
  for (; o < size; o++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[o] = x & 0xff;
  }
  return out;
}

describe("FastCDC", () => {
  it("cuts cover the input exactly; every chunk but the last is within [min, max]", () => {
    fc.assert(
      fc.property(dataArb, (data) => {
        const cuts = cutPoints(cdc, data);
        expect(cuts.at(-1) ?? 0).toBe(data.length);
        let prev = 0;
        for (const [i, c] of cuts.entries()) {
          const len = c - prev;
          expect(len).toBeGreaterThan(0);
          expect(len).toBeLessThanOrEqual(params.max);
          if (i < cuts.length - 1) expect(len).toBeGreaterThanOrEqual(params.min);
          prev = c;
        }
      }),
      { numRuns: 60 },
    );
  });

  it("cuts a long run of one byte at exactly max", () => {
    const cuts = cutPoints(cdc, Buffer.alloc(params.max * 3 + 5));
    expect(cuts).toEqual([params.max, 2 * params.max, 3 * params.max, 3 * params.max + 5]);
  });

  it("is deterministic: a second chunker from the same key cuts the same places", () => {
    const again = new FastCDC(gearTable(Buffer.from(key)), { ...params });
    fc.assert(
      fc.property(dataArb, (data) => {
        expect(cutPoints(again, data)).toEqual(cutPoints(cdc, data));
      }),
      { numRuns: 30 },
    );
  });

  it("chunk sizes cluster around avg on random data", () => {
    const data = randomBytes(4 * 1024 * 1024);
    const cuts = cutPoints(cdc, data);
    const mean = data.length / cuts.length;
    expect(mean).toBeGreaterThan(params.avg * 0.7);
    expect(mean).toBeLessThan(params.avg * 1.6);
  });

  it("a different key gives a different gear table and different cut points", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (otherKey, seed) => {
          fc.pre(!Buffer.from(otherKey).equals(key));
          const other = new FastCDC(gearTable(Buffer.from(otherKey)), params);
          const data = seeded(Buffer.from(seed), 300_000);
          const a = cutPoints(cdc, data);
          const b = cutPoints(other, data);
          expect(b).not.toEqual(a);
          // Not just shifted at the end: most boundaries differ.
          const shared = b.filter((c) => a.includes(c)).length;
          expect(shared).toBeLessThan(a.length / 2);
        },
      ),
      { numRuns: 20 },
    );
  });

  const insertionArb = fc.record({
    seed: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    size: fc.integer({ min: 300_000, max: 600_000 }),
    at: fc.double({ min: 0, max: 0.5, noNaN: true }),
    inserted: fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.integer({ min: 1, max: 100_000 }).map((n) => new Uint8Array(randomBytes(n))),
    ),
  });

  function insertionCase(c: { seed: Uint8Array; size: number; at: number; inserted: Uint8Array }): {
    before: number[];
    after: number[];
    p: number;
    n: number;
  } {
    const data = seeded(Buffer.from(c.seed), c.size);
    const p = Math.floor(c.at * c.size);
    const n = c.inserted.length;
    const edited = Buffer.concat([data.subarray(0, p), c.inserted, data.subarray(p)]);
    return { before: cutPoints(cdc, data), after: cutPoints(cdc, edited), p, n };
  }

  /**
   * How many chunks ending after the inserted bytes end at a new place before one ends at
   * an old one (shifted by the insertion's length).
   */
  function chunksToResync(before: number[], after: number[], p: number, n: number): number {
    const old = new Set(before.filter((c) => c > p).map((c) => c + n));
    const k = after.filter((c) => c > p + n).findIndex((c) => old.has(c));
    return k < 0 ? Number.POSITIVE_INFINITY : k;
  }

  it("an insertion leaves every cut point before it unchanged and the cuts after it resynchronise", () => {
    fc.assert(
      fc.property(insertionArb, (c) => {
        const { before, after, p, n } = insertionCase(c);
        // A cut at or before p depends only on bytes before it: it must survive.
        const kept = before.filter((x) => x <= p);
        expect(after.slice(0, kept.length)).toEqual(kept);
        // The cuts after p line up again with the old ones (shifted by n), and from the
        // first shared cut on, every later cut is shared: the rest of the file dedups.
        const k = chunksToResync(before, after, p, n);
        expect(k).toBeLessThanOrEqual(25);
        const tailAfter = after.filter((x) => x > p + n).slice(k);
        const first = tailAfter[0] as number;
        const tailBefore = before.filter((x) => x + n >= first).map((x) => x + n);
        expect(tailAfter).toEqual(tailBefore);
      }),
      { numRuns: 60 },
    );
  });

  it("resynchronises within a few chunks on average (normalized chunking slows it a little)", () => {
    // Measured here over 5,000 insertions each: after a short insertion 98% resync at the
    // first cut past it (mean 0.04 extra chunks); after a long random one, which is like
    // starting anywhere, 47% at the first cut, 92% within 4 (mean 1.2). The bounds below
    // are several standard deviations away for 300 samples of the mix.
    const ks: number[] = [];
    fc.assert(
      fc.property(insertionArb, (c) => {
        const { before, after, p, n } = insertionCase(c);
        ks.push(chunksToResync(before, after, p, n));
      }),
      { numRuns: 300 },
    );
    const mean = ks.reduce((a, b) => a + b, 0) / ks.length;
    const withinFour = ks.filter((k) => k <= 3).length / ks.length;
    expect(mean).toBeLessThan(1.5);
    expect(withinFour).toBeGreaterThan(0.85);
  });

  it("readChunks over a stream split anywhere yields the same chunks as cutting the whole buffer", async () => {
    await fc.assert(
      fc.asyncProperty(
        dataArb,
        fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 40 }),
        fc.option(fc.integer({ min: 1, max: 3 * params.max })),
        async (data, sizes, initialBuffer) => {
          const pieces: Buffer[] = [];
          for (let o = 0, i = 0; o < data.length; i++) {
            const n = Math.min(sizes[i % sizes.length] as number, data.length - o);
            pieces.push(Buffer.from(data.subarray(o, o + n)));
            o += n;
          }
          async function* stream(): AsyncGenerator<Buffer> {
            for (const p of pieces) yield p;
          }
          const chunks: Buffer[] = [];
          const buffer = initialBuffer === null ? undefined : Buffer.alloc(initialBuffer);
          for await (const ch of readChunks(streamReader(stream()), cdc, buffer)) chunks.push(ch);
          const cuts = cutPoints(cdc, data);
          expect(chunks.map((ch) => ch.length)).toEqual(cuts.map((c, i) => c - (cuts[i - 1] ?? 0)));
          expect(Buffer.concat(chunks).equals(data)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("readChunks yields fresh copies: later reads do not overwrite earlier chunks", async () => {
    const data = randomBytes(1_000_000);
    async function* stream(): AsyncGenerator<Buffer> {
      for (let o = 0; o < data.length; o += 7_777) yield data.subarray(o, o + 7_777);
    }
    const chunks: Buffer[] = [];
    for await (const ch of readChunks(streamReader(stream()), cdc)) chunks.push(ch);
    expect(chunks.length).toBeGreaterThan(10);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it("readChunks of an empty stream yields nothing", async () => {
    async function* empty(): AsyncGenerator<Buffer> {}
    const chunks: Buffer[] = [];
    for await (const ch of readChunks(streamReader(empty()), cdc)) chunks.push(ch);
    expect(chunks).toEqual([]);
  });
});
