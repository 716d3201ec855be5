// Hostile snapshots: trees crafted in-process with names and links meant to escape the
// restore target. Restore must refuse them and leave everything outside the target alone.
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CofferError } from "../../src/errors.js";
import type { BlobStore } from "../../src/repo/blob-store.js";
import type { Repository } from "../../src/repo/repository.js";
import type { TreeNode } from "../../src/repo/tree.js";
import {
  dirNode,
  fileNode,
  initRepo,
  type OpenedRepo,
  openStore,
  restoreSnapshot,
  saveData,
  saveTree,
  snapshotOf,
  symlinkNode,
  tempDir,
} from "./inprocess.js";

let base: string;
let repoDir: string;
let target: string;
let outside: string;
let opened: OpenedRepo;
let repo: Repository;
let store: BlobStore;
let payload: { id: string; size: number };

beforeEach(async () => {
  base = await tempDir("coffer-hostile-");
  target = path.join(base, "target");
  outside = path.join(base, "outside");
  await fs.mkdir(target);
  await fs.mkdir(path.join(outside, "sub"), { recursive: true });
  await fs.writeFile(path.join(outside, "sentinel"), "keep me\n");
  await fs.writeFile(path.join(outside, "sub", "victim"), "do not overwrite\n");
  // The repository lives elsewhere: everything under base but the target must stay still.
  repoDir = await tempDir("coffer-hostile-repo-");
  opened = await initRepo(path.join(repoDir, "repo"));
  repo = opened.repo;
  store = await openStore(repo);
  const data = Buffer.from("PWNED\n");
  payload = { id: await saveData(store, data), size: data.length };
});

afterEach(async () => {
  opened.backend.close();
  await fs.rm(base, { recursive: true, force: true });
  await fs.rm(repoDir, { recursive: true, force: true });
});

/** Everything under base except the target: names, types, modes, times and content hashes. */
async function outsideState(): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const name of (await fs.readdir(dir)).sort()) {
      const p = path.join(dir, name);
      if (p === target) continue;
      const st = await fs.lstat(p);
      let what = `${st.mode.toString(8)} ${st.mtimeMs} ${st.size}`;
      if (st.isSymbolicLink()) what += ` -> ${await fs.readlink(p)}`;
      else if (st.isFile()) {
        what += ` ${createHash("sha256")
          .update(await fs.readFile(p))
          .digest("hex")}`;
      }
      out.push(`${path.relative(base, p)} ${what}`);
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk(base);
  return out;
}

/** Saves the nodes as the snapshot's root tree and restores it into the target. */
async function restoreHostile(nodes: TreeNode[], into = target) {
  const tree = await saveTree(store, nodes);
  await store.flush();
  const id = await snapshotOf(repo, tree, ["/hostile"]);
  return restoreSnapshot(store, id, into);
}

function expectRefused(outcome: Awaited<ReturnType<typeof restoreHostile>>): void {
  const errs = [outcome.thrown, ...outcome.errors.map((e) => e.err)].filter(Boolean);
  expect(errs.length, "restore reported no error").toBeGreaterThan(0);
  for (const e of errs) expect(e).toBeInstanceOf(CofferError);
}

async function expectOutsideUnchanged(before: string[]): Promise<void> {
  expect(await outsideState()).toEqual(before);
  expect(await fs.readFile(path.join(outside, "sentinel"), "utf8")).toBe("keep me\n");
  expect(await fs.readFile(path.join(outside, "sub", "victim"), "utf8")).toBe("do not overwrite\n");
}

const file = (name: string): TreeNode => fileNode(name, [payload.id], payload.size);

describe("restore of a hostile snapshot", () => {
  const badNames: [string, TreeNode | (() => TreeNode)][] = [
    ["..", { ...fileNode("..", [], 0) }],
    [".", { ...fileNode(".", [], 0) }],
    ["a/b", { ...fileNode("a/b", [], 0) }],
    ["/abs", { ...fileNode("/abs", [], 0) }],
    ["empty name", { ...fileNode("", [], 0) }],
    ["../outside/sentinel", { ...fileNode("../outside/sentinel", [], 0) }],
    ["NUL in name", { ...fileNode("a\0b", [], 0) }],
    [
      "nameB64 hiding ../outside/pwned",
      {
        ...fileNode("harmless", [], 0),
        nameB64: Buffer.from("../outside/pwned").toString("base64"),
      },
    ],
  ];

  for (const [label, node] of badNames) {
    it(`refuses a file named ${label} and writes nothing outside the target`, async () => {
      const n = typeof node === "function" ? node() : node;
      const withContent: TreeNode = { ...n, content: [payload.id], size: payload.size };
      const before = await outsideState();
      expectRefused(await restoreHostile([withContent]));
      // A directory of that name, holding a file, is refused too.
      const sub = await saveTree(store, [file("pwned")]);
      expectRefused(await restoreHostile([{ ...dirNode(n.name, sub), nameB64: n.nameB64 }]));
      // And the same one level down.
      const inner = await saveTree(store, [withContent]);
      expectRefused(await restoreHostile([dirNode("d", inner)]));
      await expectOutsideUnchanged(before);
      expect(await fs.readdir(base)).toEqual(expect.arrayContaining(["outside", "target"]));
      await expect(fs.stat(path.join(base, "pwned"))).rejects.toThrow();
    });
  }

  it("refuses duplicate names: a symlink x to outside and a directory x holding a file", async () => {
    const before = await outsideState();
    const sub = await saveTree(store, [file("pwned")]);
    for (const nodes of [
      [symlinkNode("x", outside), dirNode("x", sub)],
      [dirNode("x", sub), symlinkNode("x", outside)],
      [symlinkNode("x", path.join(outside, "sentinel")), file("x")],
      [file("x"), symlinkNode("x", path.join(outside, "sentinel"))],
    ]) {
      expectRefused(await restoreHostile(nodes));
    }
    await expectOutsideUnchanged(before);
    await expect(fs.stat(path.join(outside, "pwned"))).rejects.toThrow();
  });

  it("never writes through a symlink to outside restored by an earlier snapshot", async () => {
    const before = await outsideState();
    // First restore: x -> outside (a symlink pointing out is allowed, it is just a link).
    const first = await restoreHostile([symlinkNode("x", outside)]);
    expect(first.thrown).toBeUndefined();
    expect(first.errors).toEqual([]);
    expect(await fs.readlink(path.join(target, "x"))).toBe(outside);
    // Second restore into the same target: a directory x holding sentinel and sub/victim.
    const victimDir = await saveTree(store, [file("victim")]);
    const sub = await saveTree(store, [file("sentinel"), file("pwned"), dirNode("sub", victimDir)]);
    expectRefused(await restoreHostile([dirNode("x", sub)]));
    await expectOutsideUnchanged(before);
    await expect(fs.stat(path.join(outside, "pwned"))).rejects.toThrow();
  });

  it("refuses a pre-existing symlink where the snapshot has a directory", async () => {
    await fs.mkdir(path.join(target, "real"));
    await fs.symlink(outside, path.join(target, "real", "d"));
    const before = await outsideState();
    const victimDir = await saveTree(store, [file("victim")]);
    const d = await saveTree(store, [file("sentinel"), file("pwned"), dirNode("sub", victimDir)]);
    const real = await saveTree(store, [dirNode("d", d)]);
    const outcome = await restoreHostile([dirNode("real", real)]);
    expectRefused(outcome);
    await expectOutsideUnchanged(before);
    await expect(fs.stat(path.join(outside, "pwned"))).rejects.toThrow();
    // The link itself is left as it was.
    expect(await fs.readlink(path.join(target, "real", "d"))).toBe(outside);
  });

  it("replaces a pre-existing symlink where the snapshot has a file, without writing through it", async () => {
    await fs.symlink(path.join(outside, "sentinel"), path.join(target, "f"));
    const before = await outsideState();
    const outcome = await restoreHostile([file("f")]);
    expect(outcome.thrown).toBeUndefined();
    expect(outcome.errors).toEqual([]);
    await expectOutsideUnchanged(before);
    const st = await fs.lstat(path.join(target, "f"));
    expect(st.isFile()).toBe(true);
    expect(await fs.readFile(path.join(target, "f"), "utf8")).toBe("PWNED\n");
  });

  it("a hard-link pair in the snapshot cannot link to a file outside the target", async () => {
    const before = await outsideState();
    const linked = (name: string): TreeNode => ({
      ...file(name),
      links: 2,
      dev: "1",
      inode: "42",
    });
    const sub = await saveTree(store, [linked("b")]);
    const outcome = await restoreHostile([linked("a"), dirNode("d", sub)]);
    expect(outcome.thrown).toBeUndefined();
    expect(outcome.errors).toEqual([]);
    await expectOutsideUnchanged(before);
    const a = await fs.stat(path.join(target, "a"));
    const b = await fs.stat(path.join(target, "d", "b"));
    expect(b.ino).toBe(a.ino);
  });

  it("directory modes and times are applied to directories, never through symlinks", async () => {
    const before = await outsideState();
    const sub = await saveTree(store, [file("inner")]);
    const outcome = await restoreHostile([
      { ...dirNode("d", sub), mode: 0o700, mtime: "1000000000000000000" },
      symlinkNode("l", outside),
    ]);
    expect(outcome.thrown).toBeUndefined();
    await expectOutsideUnchanged(before);
    expect((await fs.stat(path.join(target, "d"))).mode & 0o777).toBe(0o700);
  });

  it("a tree blob that is not a tree, or a dir without a subtree, is an error, not a crash", async () => {
    const bogus = await saveData(store, Buffer.from("not json"));
    expectRefused(await restoreHostile([{ ...dirNode("d", bogus) }]));
    const noSubtree: TreeNode = { name: "d", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: "0" };
    expectRefused(await restoreHostile([noSubtree]));
  });
});
