import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";

const MiB = 1024 * 1024;
/** Tree blobs of a small snapshot (a handful of directories), sealed: a few KB at most. */
const treeAllowance = 8 * 1024;

async function backupJson(repo: string, args: string[]) {
  const r = await coffer(["backup", "--repo", repo, "--json", ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as {
    snapshot: string;
    files: number;
    bytesRead: number;
    bytesAdded: number;
    unchangedFiles: number;
  };
}

describe("deduplication", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("the same data twice, renamed, or under another path adds almost nothing", async () => {
    const repo = path.join(dir, "repo-same");
    const src = path.join(dir, "same");
    await fs.mkdir(path.join(src, "sub"), { recursive: true });
    let total = 0;
    for (let i = 0; i < 12; i++) {
      const data = randomBytes(i < 4 ? 5 * MiB + i : 20_000 + i * 1000);
      total += data.length;
      await fs.writeFile(path.join(src, i % 2 ? "sub" : "", `f${i}.bin`), data);
    }
    await initRepo(repo);

    const first = await backupJson(repo, [src]);
    expect(first.bytesRead).toBe(total);
    expect(first.bytesAdded).toBeGreaterThan(total * 0.99); // random data: stored in full

    // Unchanged: skipped by metadata, nothing but trees (none here: nothing changed) added.
    const second = await backupJson(repo, [src]);
    expect(second.unchangedFiles).toBe(12);
    expect(second.bytesAdded).toBeLessThan(first.bytesAdded * 0.01 + treeAllowance);

    // Read again in full with --force: the chunks dedup against the index.
    const forced = await backupJson(repo, [src, "--force"]);
    expect(forced.bytesRead).toBe(total);
    expect(forced.bytesAdded).toBeLessThan(first.bytesAdded * 0.01 + treeAllowance);

    // A renamed file and a copy under another path (new inodes and mtimes) dedup too.
    await fs.rename(path.join(src, "f0.bin"), path.join(src, "renamed.bin"));
    const copyDir = path.join(dir, "elsewhere");
    await fs.mkdir(copyDir);
    await fs.copyFile(path.join(src, "f2.bin"), path.join(copyDir, "copy.bin"));
    const moved = await backupJson(repo, [src]);
    expect(moved.bytesRead).toBe(5 * MiB);
    expect(moved.bytesAdded).toBeLessThan(treeAllowance);
    const copied = await backupJson(repo, [copyDir]);
    expect(copied.bytesRead).toBe(5 * MiB + 2);
    expect(copied.bytesAdded).toBeLessThan(treeAllowance);
  });

  it("the file cache finds files by their raw names, UTF-8 or not, even ones that decode alike", async () => {
    const repo = path.join(dir, "repo-names");
    const src = path.join(dir, "names");
    await fs.mkdir(src);
    // f\xff and f\xfe are not UTF-8 and both decode to "f\uFFFD", the third name's text.
    const names = [
      Buffer.from("plain.txt"),
      Buffer.from([0x66, 0xff]),
      Buffer.from([0x66, 0xfe]),
      Buffer.from("f\uFFFD", "utf8"),
    ];
    const at = (name: Buffer) => Buffer.concat([Buffer.from(`${src}/`), name]);
    let total = 0;
    for (const [i, name] of names.entries()) {
      await fs.writeFile(at(name), randomBytes(1000 * (i + 1)));
      total += 1000 * (i + 1);
    }
    // A directory whose name is not UTF-8: its parent tree is found by that name too.
    const subdir = Buffer.concat([at(Buffer.from([0x64, 0xff])), Buffer.from("/")]);
    await fs.mkdir(subdir);
    await fs.writeFile(Buffer.concat([subdir, Buffer.from("inner")]), randomBytes(500));
    total += 500;
    await initRepo(repo);
    expect((await backupJson(repo, [src])).bytesRead).toBe(total);

    const again = await backupJson(repo, [src]);
    expect(again.unchangedFiles).toBe(5);
    expect(again.bytesRead).toBe(0);

    await fs.writeFile(at(names[2] as Buffer), randomBytes(3001));
    const changed = await backupJson(repo, [src]);
    expect(changed.unchangedFiles).toBe(4);
    expect(changed.bytesRead).toBe(3001);
  });

  it("appending 1 MiB to a 50 MiB file adds about the appended bytes, not the file", async () => {
    const repo = path.join(dir, "repo-append");
    const src = path.join(dir, "append");
    await fs.mkdir(src);
    const file = path.join(src, "big.bin");
    const original = randomBytes(50 * MiB);
    await fs.writeFile(file, original);
    await initRepo(repo);
    const first = await backupJson(repo, [src]);
    expect(first.bytesAdded).toBeGreaterThan(50 * MiB);

    const tail = randomBytes(MiB);
    await fs.appendFile(file, tail);
    const second = await backupJson(repo, [src]);
    expect(second.bytesRead).toBe(51 * MiB);
    // The new MiB, plus the old last chunk re-cut (chunks average 1 MiB): a few MiB at most.
    expect(second.bytesAdded).toBeGreaterThan(MiB);
    expect(second.bytesAdded).toBeLessThan(5 * MiB);

    const r = await coffer(["restore", "--repo", repo, second.snapshot, "--stdout", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdoutBytes.equals(Buffer.concat([original, tail]))).toBe(true);
  });
});
