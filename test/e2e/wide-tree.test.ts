import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";
import { compareTrees, walkTree } from "./e2e-helpers.js";

// A tree of 600 directories, with excluded ones and changes between runs, must come back
// exactly as it was; the unchanged part is skipped by metadata and its trees reused.
/** One `coffer backup --json` that must succeed; its summary. */
async function backupJson(args: string[]): Promise<{ files: number; unchangedFiles: number }> {
  const r = await coffer(["backup", "--json", ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { files: number; unchangedFiles: number };
}

describe("a wide, deep tree", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("backs up 200 sibling directories with nested ones, honours --exclude, and restores them byte for byte", async () => {
    const src = path.join(dir, "src");
    for (let i = 0; i < 200; i++) {
      const d = path.join(src, `d${String(i).padStart(3, "0")}`);
      await fs.mkdir(path.join(d, "inner", "deeper"), { recursive: true });
      await fs.writeFile(path.join(d, "file.txt"), `directory ${i}\n`);
      await fs.writeFile(path.join(d, "inner", "deeper", "leaf.txt"), `leaf ${i}\n`.repeat(i));
      if (i % 50 === 0) await fs.mkdir(path.join(d, "skipme", "sub"), { recursive: true });
      if (i % 50 === 0) await fs.writeFile(path.join(d, "skipme", "sub", "x"), "excluded");
    }
    const repo = path.join(dir, "repo");
    await initRepo(repo);
    const backup = () => backupJson(["--repo", repo, "--exclude", "**/skipme", src]);
    expect((await backup()).files).toBe(400);

    // Change a file deep in the tree and add a directory: the re-run sees both.
    await fs.writeFile(path.join(src, "d150", "inner", "deeper", "leaf.txt"), "changed\n");
    await fs.mkdir(path.join(src, "d199", "inner", "new"));
    await fs.writeFile(path.join(src, "d199", "inner", "new", "n.txt"), "new\n");
    const second = await backup();
    expect(second.files).toBe(401);
    expect(second.unchangedFiles).toBe(399);

    // Metadata-only changes (mode, mtime) deep in otherwise unchanged directories: those
    // directories' trees must not be taken for their parent's.
    await fs.chmod(path.join(src, "d042", "file.txt"), 0o600);
    await fs.utimes(
      path.join(src, "d077", "inner", "deeper", "leaf.txt"),
      1_000_000_000,
      1_000_000_000,
    );
    const third = await backup();
    expect(third.files).toBe(401);
    expect(third.unchangedFiles).toBe(399);

    const target = path.join(dir, "restored");
    const r = await coffer(["restore", "--repo", repo, "latest", "--target", target]);
    expect(r.code, r.stderr).toBe(0);
    const before = await walkTree(src);
    for (const k of [...before.keys()]) if (k.includes("skipme")) before.delete(k);
    const after = await walkTree(path.join(target, src));
    expect(compareTrees(before, after)).toEqual([]);
  });

  // The lister hands a directory to the walk in 1 MiB records of the ring it shares with
  // it: a directory of 6,000 long names spans several, which must join to the whole.
  it("backs up a directory too large for one listing record, and re-runs it from the file cache", async () => {
    const src = path.join(dir, "big");
    await fs.mkdir(path.join(src, "sub"), { recursive: true });
    const name = (i: number) => `${String(i).padStart(5, "0")}-${"n".repeat(100)}`;
    for (let i = 0; i < 6000; i++) await fs.writeFile(path.join(src, name(i)), `file ${i}\n`);
    await fs.writeFile(path.join(src, "sub", "after-the-big-one"), "walked after it\n");
    const repo = path.join(dir, "repo-big");
    await initRepo(repo);
    const backup = () => backupJson(["--repo", repo, src]);
    expect((await backup()).files).toBe(6001);
    await fs.writeFile(path.join(src, name(4321)), "changed\n");
    const second = await backup();
    expect(second.files).toBe(6001);
    expect(second.unchangedFiles).toBe(6000);

    const target = path.join(dir, "restored-big");
    const r = await coffer(["restore", "--repo", repo, "latest", "--target", target]);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(await walkTree(src), await walkTree(path.join(target, src)))).toEqual([]);
  });
});
