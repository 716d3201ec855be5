import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ObjectKind } from "../../src/crypto/seal.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { initRepo, openRepo, tempDirPerTest } from "./inprocess.js";

// Index deltas are written while packs keep being uploaded: a pack whose upload ends while
// a delta is being saved must land in that delta or a later one, never in none. A blob in
// a pack but in no index is, for every later reader, a blob that is missing.

const newDir = tempDirPerTest();

describe("index deltas", () => {
  it("index every blob whose pack was uploaded while a delta was being written", async () => {
    const dir = await newDir();
    // Small packs: one closes every few dozen blobs, so uploads end all the time.
    const { repo, backend } = await initRepo(dir, { packSize: 4096 });
    const save = backend.save.bind(backend);
    backend.save = async (h, data) => {
      // A slow index write (a remote store's round trip) while packs keep completing.
      if (h.type === "index") await new Promise((r) => setTimeout(r, 200));
      return save(h, data);
    };
    const store = new BlobStore(repo, { packUploads: 4 });
    const ids: string[] = [];
    const add = async (n: number) => {
      for (let i = 0; i < n; i++) ids.push(await store.save(ObjectKind.data, randomBytes(64)));
    };
    await add(20_500); // past the 20,000 blobs after which a checkpoint writes a delta
    const checkpoint = store.checkpoint();
    await add(3_000); // packs written and indexed while the delta is on its way
    await checkpoint;
    await add(100);
    await store.flush();
    backend.close();

    const reopened = await openRepo(dir);
    const fresh = new BlobStore(reopened.repo);
    await fresh.loadIndex();
    const missing = ids.filter((id) => !fresh.index.has(id));
    reopened.backend.close();
    expect(missing.length).toBe(0);
    expect(fresh.index.size).toBe(ids.length);
  }, 60_000);
});
