import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { Lock } from "../../src/repo/lock.js";
import { coffer, initRepo, openStore, useTempDir } from "../helpers.js";

describe("concurrent backups and prune on one repository", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("two backups (as two hosts) succeed together, waiting with --retry-lock if a prune holds the lock; every snapshot restores", async () => {
    const repo = path.join(dir, "repo");
    await initRepo(repo);
    const sources: string[] = [];
    const shared = randomBytes(4_000_000); // both hosts hold this file: dedup across writers
    for (const host of ["alpha", "beta"]) {
      const src = path.join(dir, host);
      await mkdir(src);
      await writeFile(path.join(src, "shared.bin"), shared);
      await writeFile(path.join(src, "own.bin"), randomBytes(6_000_000));
      sources.push(src);
    }
    const backupAs = (host: string, src: string) =>
      coffer(["backup", "--repo", repo, "--retry-lock", "120", "--host", host, src, "--json"]);
    const [a, b, p] = await Promise.all([
      backupAs("alpha", sources[0] as string),
      backupAs("beta", sources[1] as string),
      coffer(["prune", "--repo", repo, "--json"]),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect([0, 11]).toContain(p.code);
    if (p.code === 11) expect(p.stderr).toMatch(/locked/);

    const snaps = JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout);
    expect(snaps.map((s: { hostname: string }) => s.hostname).sort()).toEqual(["alpha", "beta"]);
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);
    for (const [i, s] of snaps.entries()) {
      const src = sources[s.hostname === "alpha" ? 0 : 1] as string;
      const out = await coffer([
        "restore",
        "--repo",
        repo,
        s.id,
        "--stdout",
        path.join(src, "shared.bin"),
      ]);
      expect(out.stdoutBytes.equals(shared), `snapshot ${i}`).toBe(true);
    }
    // A prune once both are done keeps everything they need.
    expect((await coffer(["prune", "--repo", repo])).code).toBe(0);
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);
  });

  it("--retry-lock waits for an exclusive lock to go; without it the backup exits 11", async () => {
    const repo = path.join(dir, "repo-retry");
    const src = path.join(dir, "retry-src");
    await mkdir(src);
    await writeFile(path.join(src, "a.txt"), "a\n");
    await initRepo(repo);
    const store = await openStore(repo);
    const lock = await Lock.acquire(store.repo, true);
    const refused = await coffer(["backup", "--repo", repo, src]);
    expect(refused.code).toBe(11);
    const waiting = coffer(["backup", "--repo", repo, "--retry-lock", "60", src]);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await lock.release();
    const done = await waiting;
    expect(done.code, done.stderr).toBe(0);
  });
});
