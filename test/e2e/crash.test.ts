import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coffer, initRepo, tempDir } from "../helpers.js";
import { compareTrees, repoFiles, startCli, waitFor, walkTree } from "./e2e-helpers.js";

const MiB = 1024 * 1024;

/** About 300 MB of varied data: random, compressible text, repeated blocks, many small files. */
async function generate(src: string): Promise<void> {
  await fs.mkdir(path.join(src, "random"), { recursive: true });
  await fs.mkdir(path.join(src, "text"));
  await fs.mkdir(path.join(src, "small"));
  for (let i = 0; i < 18; i++) {
    await fs.writeFile(path.join(src, "random", `r${i}.bin`), randomBytes(8 * MiB + i * 1000));
  }
  for (let i = 0; i < 16; i++) {
    const line = `${i} the quick brown fox ${randomBytes(6).toString("hex")} jumps over\n`;
    const words = Buffer.from(line.repeat(Math.ceil((5 * MiB) / line.length)));
    // Sprinkle random bytes so the text compresses but does not dedup with itself.
    for (let o = 0; o < words.length; o += 4096) randomBytes(16).copy(words, o);
    await fs.writeFile(path.join(src, "text", `t${i}.txt`), words.subarray(0, 5 * MiB));
  }
  const block = randomBytes(MiB);
  await fs.writeFile(path.join(src, "repeated.bin"), Buffer.concat(Array(30).fill(block)));
  for (let i = 0; i < 1500; i++) {
    const sub = path.join(src, "small", `d${i % 30}`);
    if (i < 30) await fs.mkdir(sub);
    await fs.writeFile(path.join(sub, `f${i}`), randomBytes(1000 + ((i * 7919) % 20000)));
  }
}

/** Starts a backup and returns once it holds a lock it did not hold before. */
async function startBackup(repo: string, src: string) {
  const before = new Set(await repoFiles(repo, "locks"));
  const run = startCli(["backup", "--repo", repo, src]);
  let exited = false;
  void run.done.then(() => {
    exited = true;
  });
  await waitFor(
    async () => exited || (await repoFiles(repo, "locks")).some((l) => !before.has(l)),
    30_000,
    "the backup to take its lock",
  );
  return run;
}

describe("interrupted backups", () => {
  let dir: string;
  let src: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    src = path.join(dir, "src");
    await generate(src);
  });
  afterAll(() => cleanup());

  it("SIGKILL at any point leaves a repository that verifies; the next backup restores exactly", async () => {
    const repo = path.join(dir, "repo-kill");
    await initRepo(repo);
    // Kill points by what the backup has done (timing alone varies too much with load):
    // just after taking its lock, while writing its first pack, after some packs.
    let existing = new Set<string>();
    const newDataFiles = async () =>
      (await fs.readdir(path.join(repo, "data"), { recursive: true })).filter(
        (n) => n.includes("/") && !existing.has(n),
      );
    const killPoints: { what: string; ready: () => Promise<boolean>; delayMs: number }[] = [
      { what: "200 ms after the lock", ready: async () => true, delayMs: 200 },
      {
        what: "during its first pack write",
        ready: async () => (await newDataFiles()).some((n) => n.includes(".tmp-")),
        delayMs: 0,
      },
      {
        what: "after two packs",
        ready: async () =>
          (await newDataFiles()).filter((n) => /\/[0-9a-f]{64}$/.test(n)).length >= 2,
        delayMs: 150,
      },
    ];
    for (const k of killPoints) {
      existing = new Set(await fs.readdir(path.join(repo, "data"), { recursive: true }));
      const run = await startBackup(repo, src);
      const ended = () => run.child.exitCode !== null || run.child.signalCode !== null;
      await waitFor(async () => ended() || (await k.ready()), 60_000, k.what);
      await new Promise((r) => setTimeout(r, k.delayMs));
      run.child.kill("SIGKILL");
      const killed = await run.done;
      expect(killed.signal, `the backup finished before the kill ${k.what}`).toBe("SIGKILL");
      const v = await coffer(["verify", "--repo", repo, "--read-data"]);
      expect(v.code, `verify after a kill ${k.what}: ${v.stderr}`).toBe(0);
      expect(v.stdout).toBe("no errors found\n");
    }
    // Something was really interrupted mid-write: packs exist that no index lists yet.
    const v = await coffer(["verify", "--repo", repo]);
    expect(v.stderr).toMatch(/packs unreferenced/);

    // The killed processes' locks are stale (dead pids on this host): they do not block.
    const b = await coffer(["backup", "--repo", repo, src, "--json"]);
    expect(b.code, b.stderr).toBe(0);
    const { snapshot } = JSON.parse(b.stdout);
    const v2 = await coffer(["verify", "--repo", repo, "--read-data"]);
    expect(v2.code, v2.stderr).toBe(0);
    const out = path.join(dir, "out-kill");
    const r = await coffer(["restore", "--repo", repo, snapshot, "--target", out]);
    expect(r.code, r.stderr).toBe(0);
    const diffs = compareTrees(await walkTree(src), await walkTree(path.join(out, src)), {
      ignoreMtime: true,
    });
    expect(diffs).toEqual([]);
  });

  it("SIGINT stops a backup with exit 130 and releases its lock", async () => {
    const repo = path.join(dir, "repo-int");
    await initRepo(repo);
    const run = await startBackup(repo, src);
    await new Promise((r) => setTimeout(r, 500));
    run.child.kill("SIGINT");
    const res = await run.done;
    expect(res.code, res.stderr).toBe(130);
    expect(res.stderr).toMatch(/SIGINT: stopping/);
    expect(await repoFiles(repo, "locks")).toEqual([]);
    expect(await repoFiles(repo, "snapshots")).toEqual([]);
    // The packs that were filling are gone, not left as partial temp files.
    const data = await fs.readdir(path.join(repo, "data"), { recursive: true });
    expect(data.filter((n) => n.includes(".tmp-"))).toEqual([]);
    const v = await coffer(["verify", "--repo", repo, "--read-data"]);
    expect(v.code, v.stderr).toBe(0);
  });
});
