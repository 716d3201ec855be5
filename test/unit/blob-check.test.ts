import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { blobId } from "../../src/crypto/blob-id.js";
import { deriveKeys } from "../../src/crypto/keys.js";
import { ObjectKind } from "../../src/crypto/seal.js";
import { IntegrityError } from "../../src/errors.js";
import { type BlobKind, openBlob, sealBlob } from "../../src/repo/blob.js";
import { BlobChecker, type BlobSlice } from "../../src/repo/blob-check.js";

// verify --read-data checks blobs with BlobChecker (scratch buffers, no plaintext kept),
// and restore opens chunks with it (each plaintext written before the next is opened)
// instead of openBlob: it must accept exactly what openBlob accepts and refuse damage.

const repositoryId = randomBytes(32);
const keys = deriveKeys(randomBytes(32), repositoryId, 1);

/** Text-like bytes: zstd shrinks them, and no two calls give the same bytes. */
function compressible(n: number): Buffer {
  const words = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta ", "eta ", "theta "];
  const r = randomBytes(n);
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < n; i++) {
    const w = words[(r[i % n] as number) & 7] as string;
    parts.push(w);
    length += w.length;
  }
  return Buffer.from(parts.join("")).subarray(0, n);
}

function sealed(kind: BlobKind, plaintext: Buffer) {
  const id = blobId(keys.id, plaintext);
  return {
    id,
    kind,
    rawLength: plaintext.length,
    sealed: sealBlob(repositoryId, keys, kind, id, plaintext).sealed,
  };
}

function check(
  b: ReturnType<typeof sealed>,
  sealedBytes = b.sealed,
  rawLength = b.rawLength,
): void {
  new BlobChecker(repositoryId).open(keys.data, keys.id, 1, b.kind, b.id, sealedBytes, rawLength);
}

function flipped(b: Buffer, bit: number): Buffer {
  const c = Buffer.from(b);
  c[bit >> 3] = (c[bit >> 3] as number) ^ (1 << (bit & 7));
  return c;
}

describe("BlobChecker", () => {
  const blobs = {
    zstd: sealed(ObjectKind.data, compressible(3_000_000)),
    raw: sealed(ObjectKind.data, randomBytes(1_500_000)),
    tree: sealed(ObjectKind.tree, compressible(20_000)),
    tiny: sealed(ObjectKind.data, Buffer.from("x")),
    empty: sealed(ObjectKind.data, Buffer.alloc(0)),
  };

  it("accepts what openBlob opens, compressed or not", () => {
    expect(blobs.zstd.sealed.length).toBeLessThan(blobs.zstd.rawLength / 2);
    expect(blobs.raw.sealed.length).toBeGreaterThan(blobs.raw.rawLength);
    for (const b of Object.values(blobs)) {
      expect(openBlob(repositoryId, keys, b.kind, b.id, b.sealed, b.rawLength).length).toBe(
        b.rawLength,
      );
      expect(() => check(b)).not.toThrow();
    }
  });

  it("refuses a flipped bit anywhere in a sealed blob", () => {
    for (const b of [blobs.zstd, blobs.raw, blobs.tree, blobs.tiny]) {
      const bits = b.sealed.length * 8;
      for (const bit of [0, 40, 100, 130, Math.floor(bits / 2), bits - 130, bits - 1]) {
        expect(() => check(b, flipped(b.sealed, bit)), `bit ${bit}`).toThrow(IntegrityError);
      }
    }
  });

  it("opens blob after blob into reused scratch: each plaintext is the original's bytes", () => {
    const plain = {
      zstd: compressible(2_000_000),
      raw: randomBytes(700_000),
      tree: compressible(30_000),
      tiny: Buffer.from("y"),
      empty: Buffer.alloc(0),
    };
    const opener = new BlobChecker(repositoryId);
    const order = ["zstd", "tiny", "raw", "tree", "empty", "zstd", "raw"] as const;
    for (const name of order) {
      const p = plain[name];
      const b = sealed(name === "tree" ? ObjectKind.tree : ObjectKind.data, p);
      const got = opener.open(keys.data, keys.id, 1, b.kind, b.id, b.sealed, b.rawLength);
      expect(got.equals(p), name).toBe(true);
      expect(() =>
        opener.open(keys.data, keys.id, 1, b.kind, b.id, flipped(b.sealed, 200), b.rawLength),
      ).toThrow(IntegrityError);
    }
  });

  it("refuses a blob whose length is not the index's, without inflating past it", () => {
    for (const b of [blobs.zstd, blobs.raw]) {
      expect(() => check(b, b.sealed, b.rawLength - 1)).toThrow(/the index says/);
      expect(() => check(b, b.sealed, b.rawLength + 1)).toThrow(/the index says/);
    }
  });

  it("refuses the wrong kind or id: the associated data binds them", () => {
    const b = blobs.zstd;
    const c = new BlobChecker(repositoryId);
    expect(() =>
      c.open(keys.data, keys.id, 1, ObjectKind.tree, b.id, b.sealed, b.rawLength),
    ).toThrow(/failed authentication/);
    expect(() =>
      c.open(keys.data, keys.id, 1, b.kind, randomBytes(32), b.sealed, b.rawLength),
    ).toThrow(/failed authentication/);
  });

  it("checks a slice blob by blob with reused scratch: one message per damaged blob", () => {
    const list = [blobs.zstd, blobs.tiny, blobs.raw, blobs.tree, blobs.empty, blobs.zstd];
    const data = Buffer.concat(list.map((b) => b.sealed));
    const offsets: number[] = [];
    let o = 0;
    for (const b of list) {
      offsets.push(o);
      o += b.sealed.length;
    }
    const slice = (bytes: Buffer): BlobSlice => ({
      packId: "ab".repeat(32),
      data: bytes,
      ids: Buffer.concat(list.map((b) => b.id)),
      kinds: Uint8Array.from(list, (b) => b.kind),
      offsets: Uint32Array.from(offsets),
      lengths: Uint32Array.from(list, (b) => b.sealed.length),
      rawLengths: Uint32Array.from(list, (b) => b.rawLength),
      generations: Uint32Array.from(list, () => 1),
      keys: [{ generation: 1, data: keys.data, id: keys.id }],
    });
    const checker = new BlobChecker(repositoryId);
    expect(checker.checkSlice(slice(data))).toEqual([]);
    // Damage the last blob (after the scratch held larger ones) and the third.
    const at = (offsets[5] as number) + 1000;
    const bad = flipped(flipped(data, at * 8), ((offsets[2] as number) + 77) * 8);
    const problems = checker.checkSlice(slice(bad));
    expect(problems).toHaveLength(2);
    for (const p of problems) expect(p).toMatch(new RegExp(`^pack ${"ab".repeat(32)}: data blob`));
    expect(problems[0]).toContain(blobs.raw.id.toString("hex"));
    expect(problems[1]).toContain(blobs.zstd.id.toString("hex"));
    // A slice cut short names the pack as truncated.
    expect(checker.checkSlice(slice(data.subarray(0, data.length - 1)))).toEqual([
      `pack ${"ab".repeat(32)} is truncated`,
    ]);
    expect(checker.checkSlice(slice(data))).toEqual([]);
  });
});
