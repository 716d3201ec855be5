import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { Backend, FileType, Handle, ObjectInfo } from "../../src/backend/backend.js";
import { LocalBackend } from "../../src/backend/local.js";
import { checkRepository } from "../../src/checker/checker.js";
import { PassphraseProvider } from "../../src/kms/passphrase.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { prune } from "../../src/repo/prune.js";
import { Repository } from "../../src/repo/repository.js";
import { backup, initRepo, passphrase, readTree, restoreSnapshot, tempDir } from "./inprocess.js";

/** A local backend that dies (throws) at the n-th save or remove: a kill at that instant. */
class DyingBackend implements Backend {
  readonly location: string;
  #left: number;
  constructor(
    readonly inner: LocalBackend,
    steps: number,
  ) {
    this.location = inner.location;
    this.#left = steps;
  }
  private step(): void {
    if (this.#left-- <= 0) throw new Error("killed");
  }
  async save(h: Handle, data: Buffer): Promise<void> {
    this.step();
    return this.inner.save(h, data);
  }
  async remove(h: Handle): Promise<void> {
    this.step();
    return this.inner.remove(h);
  }
  load(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    return this.inner.load(h, offset, length);
  }
  stat(h: Handle): Promise<ObjectInfo | null> {
    return this.inner.stat(h);
  }
  list(type: FileType): AsyncIterable<ObjectInfo> {
    return this.inner.list(type);
  }
  exists(): Promise<boolean> {
    return this.inner.exists();
  }
  create(): Promise<void> {
    return this.inner.create();
  }
}

async function openStore(backend: Backend): Promise<BlobStore> {
  const repo = await Repository.open(backend, [new PassphraseProvider(passphrase, 10)]);
  const store = new BlobStore(repo);
  await store.loadIndex();
  return store;
}

describe("prune killed at any step", () => {
  it("leaves a repository that verifies and restores, and the next prune finishes the job", async () => {
    const dir = await tempDir();
    try {
      const repoDir = path.join(dir, "repo");
      const src = path.join(dir, "src");
      await mkdir(src);
      // Alternate kept and dropped files so that packs end up half used: repacked, not dropped.
      for (let i = 0; i < 8; i++) await writeFile(path.join(src, `f${i}`), randomBytes(200_000));
      // Two 200 kB blobs fit a pack, a third does not: each pack holds a kept and a dropped file.
      const { repo, backend } = await initRepo(repoDir, { packSize: 450 * 1024 });
      const old = await backup(repo, [src]);
      for (let i = 1; i < 8; i += 2) await rm(path.join(src, `f${i}`));
      const kept = await backup(repo, [src]);
      backend.close();
      await rm(path.join(repoDir, "snapshots", old.id));
      const want = await readTree(src);
      const first = new LocalBackend(repoDir);
      const planned = await prune(await openStore(first), { dryRun: true, maxUnusedPercent: 5 });
      expect(planned.packsRepacked).toBeGreaterThan(0);
      first.close();

      // Every save and remove prune makes is a place it can die; try each in turn.
      for (let steps = 0; ; steps++) {
        const inner = new LocalBackend(repoDir);
        let died = false;
        try {
          await prune(await openStore(new DyingBackend(inner, steps)), {
            dryRun: false,
            maxUnusedPercent: 5,
          });
        } catch (err) {
          expect((err as Error).message).toBe("killed");
          died = true;
        }
        const store = await openStore(inner);
        const report = await checkRepository(store, { readData: true });
        expect(report.errors, `after dying at step ${steps}`).toEqual([]);
        const target = path.join(dir, `out-${steps}`);
        const restored = await restoreSnapshot(await openStore(inner), kept.id, target);
        expect(restored.thrown).toBeUndefined();
        expect(await readTree(path.join(target, src))).toEqual(want);
        inner.close();
        if (!died) {
          expect(steps).toBeGreaterThan(4);
          break;
        }
      }
      // Once finished, a prune has nothing left to free; it did repack on the way.
      const inner = new LocalBackend(repoDir);
      const plan = await prune(await openStore(inner), { dryRun: true, maxUnusedPercent: 5 });
      expect(plan.bytesFreed).toBe(0);
      inner.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
