import { closeSync, lstatSync, openSync, readdirSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { joinPath } from "../../src/source/fs-node.js";
import { coffer, initRepo, repoRoot, useTempDir } from "../helpers.js";
import { compareTrees, walkTree } from "./e2e-helpers.js";

/** The built lister (its worker script exists only in dist/). */
async function builtDirLister(): Promise<typeof import("../../src/archiver/dir-lister.js")> {
  const url = pathToFileURL(path.join(repoRoot, "dist/src/archiver/dir-lister.js")).href;
  return (await import(url)) as typeof import("../../src/archiver/dir-lister.js");
}

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

  // The lister thread held a directory's names as Buffers (~265 bytes each) and died of
  // its heap limit between 25,000 and 50,000 entries; the walk then waited 2 s for it and
  // listed that directory and every later one itself.
  it("has the lister hand over a directory of 60,000 entries, names byte for byte in byte order", async () => {
    const wide = path.join(dir, "wide");
    await fs.mkdir(wide);
    const names = Array.from({ length: 60_000 }, (_, i) => `entry-${String(i).padStart(6, "0")}`);
    names.push("z-\xe9t\xe9", "\xff-last"); // not UTF-8: raw bytes from latin1
    for (const n of names) closeSync(openSync(Buffer.from(path.join(wide, n), "latin1"), "w"));
    await fs.mkdir(path.join(wide, "sub"));
    await fs.writeFile(path.join(wide, "sub", "after"), "listed after the wide one\n");

    const { DirLister } = await builtDirLister();
    const lister = DirLister.start([wide], []);
    expect(lister).not.toBeNull();
    try {
      const got = lister?.take(Buffer.from(wide));
      expect(got).toBeTruthy();
      const want = readdirSync(wide, { encoding: "buffer" }).sort(Buffer.compare);
      expect(got?.names.length).toBe(want.length);
      expect(got?.names.every((n, i) => n.equals(want[i] as Buffer))).toBe(true);
      for (const i of [0, 30_000, want.length - 2, want.length - 1]) {
        const st = lstatSync(joinPath(Buffer.from(wide), want[i] as Buffer), { bigint: true });
        expect(got?.stat(i)?.ino).toBe(st.ino);
        expect(got?.stat(i)?.isDirectory()).toBe(st.isDirectory());
      }
      const sub = lister?.take(Buffer.from(path.join(wide, "sub")));
      expect(sub?.names.map((n) => n.toString())).toEqual(["after"]);
    } finally {
      lister?.stop();
    }
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
