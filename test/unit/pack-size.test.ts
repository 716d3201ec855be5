import { randomBytes, randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ObjectKind } from "../../src/crypto/seal.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { initRepo, openRepo, tempDirPerTest } from "./inprocess.js";

// A pack is written before the blob that would take it past the pack size: packs hold at
// most the pack size of blobs (a pack buffer never grows past it), and every blob saved,
// however the saves interleave with slow uploads, is in exactly one pack and reads back.

const newDir = tempDirPerTest();

describe("pack size", () => {
  it("no pack holds more than the pack size of blobs, and every blob reads back", async () => {
    const dir = await newDir();
    const packSize = 64 * 1024;
    const { repo, backend } = await initRepo(dir, { packSize });
    const save = backend.save.bind(backend);
    backend.save = async (h, data) => {
      if (h.type === "data") await new Promise((r) => setTimeout(r, 5));
      return save(h, data);
    };
    const store = new BlobStore(repo, { packUploads: 2 });
    const saved = new Map<string, Buffer>();
    // Random bytes do not compress: a blob's sealed size is its size plus a few bytes.
    for (let round = 0; round < 20; round++) {
      const blobs = Array.from({ length: 10 }, () => randomBytes(randomInt(1_000, 30_000)));
      const ids = await Promise.all(blobs.map((b) => store.save(ObjectKind.data, b)));
      for (const [i, id] of ids.entries()) saved.set(id, blobs[i] as Buffer);
    }
    await store.flush();
    backend.close();

    const reopened = await openRepo(dir);
    const fresh = new BlobStore(reopened.repo);
    await fresh.loadIndex();
    try {
      const end = new Map<string, number>();
      for (const id of saved.keys()) {
        const e = fresh.index.get(id);
        expect(e, `blob ${id} is indexed`).toBeDefined();
        if (e === undefined) continue;
        end.set(e.packId, Math.max(end.get(e.packId) ?? 0, e.offset + e.length));
      }
      expect(Math.max(...end.values())).toBeLessThanOrEqual(packSize);
      // Packs are filled, not one blob each: 200 blobs of ~15 kB in 64 KiB packs.
      expect(end.size).toBeLessThan(100);
      for (const [id, plain] of saved) {
        expect((await fresh.load(ObjectKind.data, id)).equals(plain)).toBe(true);
      }
    } finally {
      reopened.backend.close();
    }
  }, 60_000);
});
