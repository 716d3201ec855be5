import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { checkRepository } from "../../src/checker/checker.js";
import { parseSubset } from "../../src/checker/subset.js";
import { ObjectKind } from "../../src/crypto/seal.js";
import { UserError } from "../../src/errors.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { backup, flipBit, initRepo, openRepo, openStore, packPath, tempDir } from "./inprocess.js";

describe("verify --read-data-subset", () => {
  it("K/N slices partition the packs: each pack is read by exactly one of 1/N ... N/N", () => {
    const ids = Array.from({ length: 2000 }, () => randomBytes(32).toString("hex"));
    for (const n of [1, 3, 7]) {
      const slices = Array.from({ length: n }, (_, k) => parseSubset(`${k + 1}/${n}`));
      for (const id of ids) expect(slices.filter((s) => s(id)).length).toBe(1);
    }
    const some = ids.filter(parseSubset("10%")).length;
    expect(some).toBeGreaterThan(100);
    expect(some).toBeLessThan(320);
    for (const bad of ["0/3", "4/3", "3", "0%", "101%", "abc"]) {
      expect(() => parseSubset(bad)).toThrow(UserError);
    }
  });

  it("reads only the selected packs: damage in another slice goes unseen, in its own slice it is found", async () => {
    const dir = await tempDir();
    try {
      const repoDir = path.join(dir, "repo");
      const src = path.join(dir, "src");
      await mkdir(src);
      for (let i = 0; i < 6; i++) await writeFile(path.join(src, `f${i}`), randomBytes(300_000));
      const { repo, backend } = await initRepo(repoDir, { packSize: 256 * 1024 });
      await backup(repo, [src]);
      // The structure check reads every tree whatever the subset, so the victim must be a
      // pack of data blobs only.
      const store = await openStore(repo);
      const treePacks = new Set<string>();
      for (const [, e] of store.index.entries()) {
        if (e.kind === ObjectKind.tree) treePacks.add(e.packId);
      }
      backend.close();
      const packs: string[] = [];
      for (const sub of await readdir(path.join(repoDir, "data"))) {
        for (const f of await readdir(path.join(repoDir, "data", sub))) packs.push(f);
      }
      expect(packs.length).toBeGreaterThan(2);
      const victim = packs.find((p) => !treePacks.has(p)) as string;
      expect(victim).toBeDefined();
      await flipBit(packPath(repoDir, victim), 100);
      const slice = [1, 2].find((k) => parseSubset(`${k}/2`)(victim)) as number;
      const run = async (spec: string) => {
        const opened = await openRepo(repoDir);
        try {
          return await checkRepository(new BlobStore(opened.repo), {
            readData: true,
            packSubset: parseSubset(spec),
          });
        } finally {
          opened.backend.close();
        }
      };
      const other = await run(`${3 - slice}/2`);
      expect(other.errors).toEqual([]);
      const own = await run(`${slice}/2`);
      expect(own.damagedPacks).toEqual([victim]);
      expect(own.packsRead + other.packsRead).toBe(packs.length);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
