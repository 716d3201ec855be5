import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ObjectKind } from "../../src/crypto/seal.js";
import { coffer, initRepo, openStore, useTempDir } from "../helpers.js";
import { flipBit, packPath } from "../unit/inprocess.js";

// The built CLI opens blobs in worker threads (small ones in batches when backing up,
// slices of packs when verifying): damage must be found there as it is in-process.
describe("damage through the built CLI (worker threads)", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("verify --read-data exits 20 naming the pack and the file; restore of that file exits 20, the rest restores", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await mkdir(path.join(src, "small"), { recursive: true });
    const small = Array.from({ length: 300 }, (_, i) => randomBytes(500 + i * 37));
    for (const [i, b] of small.entries()) await writeFile(path.join(src, "small", `f${i}`), b);
    await writeFile(path.join(src, "big.bin"), randomBytes(3_000_000));
    await initRepo(repo);
    const b = await coffer(["backup", "--repo", repo, src]);
    expect(b.code, b.stderr).toBe(0);
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);

    // Damage the middle of the largest blob: a chunk of big.bin, in a data pack (the
    // structure check reads only trees, so it cannot see this).
    const store = await openStore(repo);
    let largest: { packId: string; offset: number; length: number } | undefined;
    for (const [, e] of store.index.entries()) {
      if (e.kind === ObjectKind.data && e.length > (largest?.length ?? 0)) largest = e;
    }
    if (largest === undefined || largest.length < 500_000) throw new Error("no large blob");
    const victim = largest.packId;
    await flipBit(packPath(repo, victim), 8 * (largest.offset + Math.floor(largest.length / 2)));

    expect((await coffer(["verify", "--repo", repo])).code).toBe(0);
    const v = await coffer(["verify", "--repo", repo, "--read-data"]);
    expect(v.code).toBe(20);
    expect(v.stderr + v.stdout).toContain(victim);
    expect(v.stderr + v.stdout).toContain("big.bin");

    const out = path.join(dir, "out");
    const r = await coffer(["restore", "--repo", repo, "latest", "--target", out]);
    expect(r.code).toBe(20);
    const rest = path.join(dir, "rest");
    const ok = await coffer([
      "restore",
      "--repo",
      repo,
      "latest",
      "--target",
      rest,
      "--include",
      path.join(src, "small", "**"),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    for (const [i, want] of small.entries()) {
      expect((await readFile(path.join(rest, src, "small", `f${i}`))).equals(want)).toBe(true);
    }
  });

  it("verify --read-data finds one flipped bit in a compressed blob deep in a pack, and only that blob", async () => {
    const repo = path.join(dir, "repo2");
    const src = path.join(dir, "src2");
    await mkdir(src, { recursive: true });
    // Hex text: zstd halves it, so its blobs take the decompression path; 9 MB over
    // several chunks fills more than two 2 MiB verify slices of one pack.
    const text = Buffer.from(randomBytes(4_500_000).toString("hex"));
    await writeFile(path.join(src, "words.txt"), text);
    await initRepo(repo);
    const b = await coffer(["backup", "--repo", repo, src]);
    expect(b.code, b.stderr).toBe(0);
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);

    const store = await openStore(repo);
    let last: { id: string; packId: string; offset: number; length: number } | undefined;
    let compressed = 0;
    for (const [id, e] of store.index.entries()) {
      if (e.kind !== ObjectKind.data) continue;
      if (e.rawLength > 1.5 * e.length) compressed++;
      if (e.offset > (last?.offset ?? -1)) last = { id, ...e };
    }
    expect(compressed).toBeGreaterThan(2);
    if (last === undefined || last.offset < 2 * 1024 * 1024)
      throw new Error("no blob deep in a pack");
    await flipBit(packPath(repo, last.packId), 8 * (last.offset + Math.floor(last.length / 3)));

    const v = await coffer(["verify", "--repo", repo, "--read-data"]);
    expect(v.code).toBe(20);
    const out = v.stderr + v.stdout;
    expect(out).toContain(last.packId);
    expect(out).toContain(last.id);
    expect(out).toContain("words.txt");
    expect(out.split("\n").filter((l) => / blob [0-9a-f]{64} /.test(l))).toHaveLength(1);
  });
});
