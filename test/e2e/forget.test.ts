import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";

describe("coffer forget", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("removes what the policy does not keep, shows it first with --dry-run, and refuses an empty policy", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await mkdir(src);
    await initRepo(repo);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      await writeFile(path.join(src, "f.txt"), `version ${i}\n`);
      const b = await coffer(["backup", "--repo", repo, src, "--json"]);
      expect(b.code, b.stderr).toBe(0);
      ids.push(JSON.parse(b.stdout).snapshot);
    }
    const none = await coffer(["forget", "--repo", repo]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no policy given/);

    const dry = await coffer(["forget", "--repo", repo, "--keep-last", "1", "--dry-run", "--json"]);
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout);
    expect(plan.groups[0].keep.map((k: { id: string }) => k.id)).toEqual([ids[2]]);
    expect(plan.groups[0].remove).toHaveLength(2);
    expect(JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout)).toHaveLength(
      3,
    );

    const real = await coffer(["forget", "--repo", repo, "--keep-last", "1"]);
    expect(real.code, real.stderr).toBe(0);
    const left = JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout);
    expect(left.map((s: { id: string }) => s.id)).toEqual([ids[2]]);
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);
    const out = await coffer([
      "restore",
      "--repo",
      repo,
      "latest",
      "--stdout",
      path.join(src, "f.txt"),
    ]);
    expect(out.stdout).toBe("version 2\n");
  });
});

describe("coffer prune", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("after forget, deletes and repacks what no snapshot needs; what is kept still verifies and restores", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await mkdir(src);
    await initRepo(repo);
    const keepBytes = randomBytes(3_000_000);
    await writeFile(path.join(src, "keep.bin"), keepBytes);
    await writeFile(path.join(src, "gone.bin"), randomBytes(6_000_000));
    expect((await coffer(["backup", "--repo", repo, src])).code).toBe(0);
    await rm(path.join(src, "gone.bin"));
    expect((await coffer(["backup", "--repo", repo, src])).code).toBe(0);
    expect((await coffer(["forget", "--repo", repo, "--keep-last", "1"])).code).toBe(0);
    const before = await du(repo);

    const dry = await coffer(["prune", "--repo", repo, "--dry-run", "--json"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout).bytesFreed).toBeGreaterThan(5_000_000);
    expect(await du(repo)).toBe(before);

    const real = await coffer(["prune", "--repo", repo, "--json"]);
    expect(real.code, real.stderr).toBe(0);
    const after = await du(repo);
    expect(before - after).toBeGreaterThan(5_000_000);
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);
    const out = await coffer([
      "restore",
      "--repo",
      repo,
      "latest",
      "--stdout",
      path.join(src, "keep.bin"),
    ]);
    expect(out.stdoutBytes.equals(keepBytes)).toBe(true);
    // A second prune finds nothing more to do.
    const again = JSON.parse((await coffer(["prune", "--repo", repo, "--json"])).stdout);
    expect(again.bytesFreed).toBe(0);
  });

  it("prune removes the temp files a killed backup left, once idle for an hour; --dry-run counts them", async () => {
    const repo = path.join(dir, "repo-temp");
    await initRepo(repo);
    const stale = path.join(repo, "data", "3f", ".tmp-00112233aabbccdd");
    const staleKey = path.join(repo, "keys", ".tmp-0123456789abcdef");
    const fresh = path.join(repo, "data", "a0", ".tmp-ffeeddccbbaa9988");
    await writeFile(stale, randomBytes(100_000));
    await writeFile(staleKey, randomBytes(1_000));
    await writeFile(fresh, randomBytes(50_000));
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    for (const p of [stale, staleKey]) await utimes(p, twoHoursAgo, twoHoursAgo);

    const dry = await coffer(["prune", "--repo", repo, "--dry-run", "--json"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ tempFiles: 2, bytesFreed: 101_000 });
    await stat(stale);

    const real = await coffer(["prune", "--repo", repo]);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/2 temp files of interrupted writes; freed/);
    await expect(stat(stale)).rejects.toThrow(/ENOENT/);
    await expect(stat(staleKey)).rejects.toThrow(/ENOENT/);
    // A temp file written to in the last hour may be a live writer's: it stays.
    expect((await stat(fresh)).size).toBe(50_000);
    expect((await coffer(["verify", "--repo", repo])).code).toBe(0);
  });
});

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(path.join(e.parentPath ?? e.path, e.name))).size;
  }
  return total;
}
