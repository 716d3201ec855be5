import { randomBytes, randomInt } from "node:crypto";
import { readdir } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ObjectKind } from "../../src/crypto/seal.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { initRepo, openRepo, tempDirPerTest } from "./inprocess.js";

// A pack is written before the blob that would take it past the pack size: packs hold at
// most the pack size of blobs (a pack buffer never grows past it), and every blob saved,
// however the saves interleave with slow uploads, is in exactly one pack and reads back.
// Both ways a pack reaches a backend: built in memory and saved whole (a backend without
// openWriter of its own: src/backend/buffered-writer.ts), and written piece by piece as
// it fills (a local file).

const newDir = tempDirPerTest();
const slow = () => new Promise((r) => setTimeout(r, 5));

describe("pack size", () => {
  it.each([
    ["built in memory", false],
    ["written as they fill", true],
  ])(
    "packs %s hold no more than the pack size of blobs, and every blob reads back",
    async (_, inPieces) => {
      const dir = await newDir();
      const packSize = 64 * 1024;
      const { repo, backend } = await initRepo(dir, { packSize });
      const packsWritten = { whole: 0, inPieces: 0 };
      const save = backend.save.bind(backend);
      backend.save = async (h, data) => {
        if (h.type === "data") {
          packsWritten.whole++;
          await slow();
        }
        return save(h, data);
      };
      if (inPieces) {
        const openWriter = backend.openWriter.bind(backend);
        backend.openWriter = async (h) => {
          packsWritten.inPieces++;
          const w = await openWriter(h);
          return {
            write: async (data, offset) => {
              await slow();
              return w.write(data, offset);
            },
            commit: async () => {
              await slow();
              return w.commit();
            },
            abort: () => w.abort(),
          };
        };
      } else {
        (backend as { openWriter?: unknown }).openWriter = undefined;
      }
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
      expect(packsWritten.whole === 0).toBe(inPieces);
      expect(packsWritten.inPieces > 0).toBe(inPieces);

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
    },
    60_000,
  );

  it("a pack whose write fails fails the backup's flush and leaves no pack and no temp file", async () => {
    const dir = await newDir();
    const { repo, backend } = await initRepo(dir);
    const openWriter = backend.openWriter.bind(backend);
    let writes = 0;
    backend.openWriter = async (h) => {
      const w = await openWriter(h);
      return {
        write: async (data, offset) => {
          if (++writes === 2) throw new Error("ENOSPC: no space left on device");
          return w.write(data, offset);
        },
        commit: () => w.commit(),
        abort: () => w.abort(),
      };
    };
    const store = new BlobStore(repo);
    // Random blobs of 300 kB: staged a megabyte at a time, so the second write is blob 4's.
    for (let i = 0; i < 12; i++) await store.save(ObjectKind.data, randomBytes(300_000));
    await expect(store.flush()).rejects.toThrow(/ENOSPC/);
    backend.close();
    const left = await readdir(path.join(dir, "data"), { recursive: true, withFileTypes: true });
    expect(left.filter((e) => e.isFile()).map((e) => e.name)).toEqual([]);
    expect(await readdir(path.join(dir, "index"))).toEqual([]);
  }, 60_000);
});
