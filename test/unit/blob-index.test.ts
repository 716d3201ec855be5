import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BlobIndex } from "../../src/repo/blob-index.js";

describe("BlobIndex", () => {
  it("finds every added blob with its location after growing, and nothing else", () => {
    const index = new BlobIndex();
    const added = new Map<string, { packId: string; offset: number; kind: number }>();
    const packs = Array.from({ length: 7 }, () => randomBytes(32).toString("hex"));
    for (let i = 0; i < 20_000; i++) {
      const id = randomBytes(32).toString("hex");
      const packId = packs[i % packs.length] as string;
      index.add(id, {
        kind: i % 3 === 0 ? 2 : 1,
        packId,
        offset: i * 7,
        length: i + 100,
        rawLength: i,
      });
      added.set(id, { packId, offset: i * 7, kind: i % 3 === 0 ? 2 : 1 });
    }
    expect(index.size).toBe(20_000);
    for (const [id, want] of added) {
      const e = index.get(id);
      expect(e?.packId).toBe(want.packId);
      expect(e?.offset).toBe(want.offset);
      expect(e?.kind).toBe(want.kind);
    }
    for (let i = 0; i < 1000; i++) expect(index.has(randomBytes(32).toString("hex"))).toBe(false);
    expect(new Set(index.packs())).toEqual(new Set(packs));
    const listed = [...index.entries()];
    expect(listed).toHaveLength(20_000);
    expect(listed.every(([id, e]) => added.get(id)?.offset === e.offset)).toBe(true);
  });

  it("keeps the first location of a blob added twice", () => {
    const index = new BlobIndex();
    const id = randomBytes(32).toString("hex");
    index.add(id, { kind: 1, packId: "a".repeat(64), offset: 1, length: 2, rawLength: 3 });
    index.add(id, { kind: 1, packId: "b".repeat(64), offset: 9, length: 9, rawLength: 9 });
    expect(index.size).toBe(1);
    expect(index.get(id)?.packId).toBe("a".repeat(64));
  });

  it("costs under 64 bytes per blob at every size, whatever the growth step", () => {
    const index = new BlobIndex();
    const id = Buffer.alloc(32);
    const packId = "c".repeat(64);
    let worst = 0;
    for (let i = 0; i < 400_000; i++) {
      id.writeUInt32LE(Math.floor(Math.random() * 2 ** 32), 0);
      id.writeUInt32LE(i, 4);
      index.addRaw(id, packId, { kind: 1, offset: i, length: 1, rawLength: 1 });
      if (i >= 20_000 && i % 101 === 0) worst = Math.max(worst, index.byteSize / index.size);
    }
    expect(index.size).toBe(400_000);
    expect(worst).toBeLessThan(64);
    expect(index.has(id.toString("hex"))).toBe(true);
  });
});
