// A tampering storage provider: blobs swapped between packs, packs swapped, truncated or
// deleted, snapshots and index deltas replaced, key envelopes and config forged.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkRepository } from "../../src/checker/checker.js";
import { IntegrityError, KeyError } from "../../src/errors.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { loadSnapshot } from "../../src/repo/snapshots.js";
import { findNode } from "../../src/restore/tree-walk.js";
import {
  backup,
  check,
  initRepo,
  mixedData,
  type OpenedRepo,
  openRepo,
  openStore,
  packPath,
  passphrase,
  readTree,
  restoreSnapshot,
  tempDir,
} from "./inprocess.js";

let base: string;
let repoDir: string;
let srcDir: string;

beforeEach(async () => {
  base = await tempDir("coffer-tamper-");
  repoDir = path.join(base, "repo");
  srcDir = path.join(base, "src");
  await fs.mkdir(srcDir);
});

afterEach(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

/** Where the content blobs of a file in a snapshot live. */
async function blobsOf(o: OpenedRepo, snapshot: string, file: string) {
  const store = await openStore(o.repo);
  const snap = await loadSnapshot(o.repo, snapshot);
  const { node } = await findNode(store, snap.tree, file);
  return (node.content ?? []).map((id) => ({ id, ...store.lookup(id) }));
}

/**
 * Two snapshots: the first has a.bin, the second also b.bin. Both are random and of equal
 * size, so each is one chunk of the same sealed length, and each backup writes its own pack.
 */
async function twoEqualBlobs() {
  const o = await initRepo(repoDir);
  const a = randomBytes(200_000);
  const b = randomBytes(200_000);
  await fs.writeFile(path.join(srcDir, "a.bin"), a);
  const s1 = await backup(o.repo, [srcDir]);
  await fs.writeFile(path.join(srcDir, "b.bin"), b);
  const s2 = await backup(o.repo, [srcDir], s1.tree);
  const [blobA] = await blobsOf(o, s1.id, `${srcDir}/a.bin`);
  const [blobB] = await blobsOf(o, s2.id, `${srcDir}/b.bin`);
  if (blobA === undefined || blobB === undefined) throw new Error("no blobs");
  expect(blobA.packId).not.toBe(blobB.packId);
  expect(blobA.length).toBe(blobB.length);
  o.backend.close();
  return { a, b, s1, s2, blobA, blobB };
}

async function restoreInto(snapshot: string, name: string) {
  const { repo, backend } = await openRepo(repoDir);
  try {
    const store = await openStore(repo);
    const target = path.join(base, name);
    const outcome = await restoreSnapshot(store, snapshot, target);
    const files = await readTree(path.join(target, srcDir)).catch(() => new Map());
    return { ...outcome, files };
  } finally {
    backend.close();
  }
}

describe("tampering with packs", () => {
  it("a blob copied over another blob of the same length in another pack is caught by restore and verify", async () => {
    const { a, s1, s2, blobA, blobB } = await twoEqualBlobs();
    const sealedA = (await fs.readFile(packPath(repoDir, blobA.packId))).subarray(
      blobA.offset,
      blobA.offset + blobA.length,
    );
    const packB = await fs.readFile(packPath(repoDir, blobB.packId));
    sealedA.copy(packB, blobB.offset);
    await fs.writeFile(packPath(repoDir, blobB.packId), packB);

    const r = await restoreInto(s2.id, "out");
    expect(r.thrown).toBeUndefined();
    expect(r.errors.map((e) => e.path)).toEqual([`${srcDir}/b.bin`]);
    expect(r.errors[0]?.err).toBeInstanceOf(IntegrityError);
    expect(r.files.has("b.bin")).toBe(false);
    expect((r.files.get("a.bin") as Buffer).equals(a)).toBe(true);
    // The snapshot that does not use the damaged blob restores fully.
    const r1 = await restoreInto(s1.id, "out1");
    expect(r1.errors).toEqual([]);

    const report = await check(repoDir, true);
    expect(report.damagedPacks).toEqual([blobB.packId]);
    expect(report.errors.join("\n")).toContain(`pack ${blobB.packId}`);
    expect(report.errors.join("\n")).toMatch(/failed authentication/);
    expect(report.affected).toEqual([{ snapshot: s2.id, paths: [`${srcDir}/b.bin`] }]);
  });

  it("restore's error for a forged blob names the pack it was read from", async () => {
    const { s2, blobA, blobB } = await twoEqualBlobs();
    const packA = await fs.readFile(packPath(repoDir, blobA.packId));
    const packB = await fs.readFile(packPath(repoDir, blobB.packId));
    packA.copy(packB, blobB.offset, blobA.offset, blobA.offset + blobA.length);
    await fs.writeFile(packPath(repoDir, blobB.packId), packB);
    const r = await restoreInto(s2.id, "out");
    expect(r.errors[0]?.err).toBeInstanceOf(IntegrityError);
    expect(r.errors[0]?.err.message).toContain(blobB.packId);
  });

  it("two packs swapped under each other's names are caught by restore and verify", async () => {
    const { s1, s2, blobA, blobB } = await twoEqualBlobs();
    const pa = packPath(repoDir, blobA.packId);
    const pb = packPath(repoDir, blobB.packId);
    await fs.rename(pa, `${pa}.swap`);
    await fs.rename(pb, pa);
    await fs.rename(`${pa}.swap`, pb);

    for (const [snap, name] of [
      [s1.id, "a.bin"],
      [s2.id, "b.bin"],
    ] as const) {
      const r = await restoreInto(snap, `out-${name}`);
      expect(r.errors.map((e) => e.path)).toContain(`${srcDir}/${name}`);
      expect(r.errors.every((e) => e.err instanceof IntegrityError)).toBe(true);
      expect(r.files.has(name)).toBe(false);
    }
    const report = await check(repoDir, true);
    expect(new Set(report.damagedPacks)).toEqual(new Set([blobA.packId, blobB.packId]));
    const text = report.errors.join("\n");
    expect(text).toContain(`pack ${blobA.packId}`);
    expect(text).toContain(`pack ${blobB.packId}`);
    expect(report.affected).toContainEqual({ snapshot: s1.id, paths: [`${srcDir}/a.bin`] });
  });

  it("a pack cut short by 100 bytes is named by verify with the snapshots and files it damages", async () => {
    const o = await initRepo(repoDir);
    await fs.writeFile(path.join(srcDir, "big.bin"), mixedData(2_500_000));
    await fs.writeFile(path.join(srcDir, "small.txt"), "small\n");
    const s = await backup(o.repo, [srcDir]);
    const blobs = await blobsOf(o, s.id, `${srcDir}/big.bin`);
    o.backend.close();
    const packId = blobs[0]?.packId as string;
    const p = packPath(repoDir, packId);
    const size = (await fs.stat(p)).size;
    await fs.truncate(p, size - 100);

    // Without reading data, the structure still looks complete.
    expect((await check(repoDir, false)).errors).toEqual([]);
    const report = await check(repoDir, true);
    expect(report.damagedPacks).toEqual([packId]);
    expect(report.errors.join("\n")).toContain(`pack ${packId}`);
    const affected = report.affected.find((a) => a.snapshot === s.id);
    expect(affected?.paths).toContain(`${srcDir}/big.bin`);
    expect(affected?.paths).toContain(`${srcDir}/small.txt`);
  });

  it("a pack cut into its last blob fails restore of that file with an error naming the pack", async () => {
    const o = await initRepo(repoDir);
    await fs.writeFile(path.join(srcDir, "big.bin"), mixedData(2_500_000));
    const s = await backup(o.repo, [srcDir]);
    const blobs = await blobsOf(o, s.id, `${srcDir}/big.bin`);
    o.backend.close();
    const last = blobs.reduce((x, y) => (y.offset > x.offset ? y : x));
    await fs.truncate(packPath(repoDir, last.packId), last.offset + last.length - 100);
    const r = await restoreInto(s.id, "out");
    expect(r.errors.map((e) => e.path)).toEqual([`${srcDir}/big.bin`]);
    expect(r.errors[0]?.err).toBeInstanceOf(IntegrityError);
    expect(r.errors[0]?.err.message).toContain(last.packId);
    expect(r.files.has("big.bin")).toBe(false);
    const report = await check(repoDir, true);
    expect(report.damagedPacks).toEqual([last.packId]);
    expect(report.affected).toEqual([{ snapshot: s.id, paths: [`${srcDir}/big.bin`] }]);
  });

  it("a deleted pack is reported missing with the snapshots and files that need it", async () => {
    const { a, s1, s2, blobB } = await twoEqualBlobs();
    await fs.rm(packPath(repoDir, blobB.packId));
    for (const readData of [false, true]) {
      const report = await check(repoDir, readData);
      expect(report.errors).toContain(`pack ${blobB.packId} is missing`);
      expect(report.damagedPacks).toEqual([blobB.packId]);
      expect(report.affected).toEqual([{ snapshot: s2.id, paths: [`${srcDir}/b.bin`] }]);
    }
    const r = await restoreInto(s2.id, "out");
    expect(r.errors.map((e) => e.path)).toEqual([`${srcDir}/b.bin`]);
    expect(r.errors[0]?.err).toBeInstanceOf(IntegrityError);
    expect(r.errors[0]?.err.message).toMatch(new RegExp(`pack ${blobB.packId}.*missing`));
    expect((r.files.get("a.bin") as Buffer).equals(a)).toBe(true);
    expect((await restoreInto(s1.id, "out1")).errors).toEqual([]);
  });

  it("a deleted index delta leaves blobs unindexed: verify and restore report it", async () => {
    const { s2 } = await twoEqualBlobs();
    const deltas = await fs.readdir(path.join(repoDir, "index"));
    expect(deltas).toHaveLength(2);
    // Remove the delta of the second backup: the one listing b.bin's pack.
    const { repo, backend } = await openRepo(repoDir);
    const store = new BlobStore(repo);
    const [blobB] = await (async () => {
      await store.loadIndex();
      const snap = await loadSnapshot(repo, s2.id);
      const { node } = await findNode(store, snap.tree, `${srcDir}/b.bin`);
      return node.content ?? [];
    })();
    let victim = "";
    for (const name of deltas) {
      const packs = await store.loadIndexFile(name);
      if (packs.some((p) => p.entries.some((e) => e.id.toString("hex") === blobB))) victim = name;
    }
    backend.close();
    await fs.rm(path.join(repoDir, "index", victim));
    const report = await check(repoDir, false);
    expect(report.errors.length).toBeGreaterThan(0);
    expect(report.affected.map((a) => a.snapshot)).toContain(s2.id);
    // With --read-data the trees are walked while the packs are read, and no pack is
    // damaged: the report must be the same, errors in the same order.
    const withData = await check(repoDir, true);
    expect(withData.errors).toEqual(report.errors);
    expect(withData.affected).toEqual(report.affected);
    expect(withData.damagedPacks).toEqual([]);
    const r = await restoreInto(s2.id, "out");
    expect(r.thrown ?? r.errors[0]?.err).toBeInstanceOf(IntegrityError);
  });
});

describe("tampering with snapshots", () => {
  it("a snapshot file replaced by another snapshot's file fails to open", async () => {
    const { s1, s2 } = await twoEqualBlobs();
    await fs.copyFile(
      path.join(repoDir, "snapshots", s2.id),
      path.join(repoDir, "snapshots", s1.id),
    );
    const { repo, backend } = await openRepo(repoDir);
    try {
      await expect(loadSnapshot(repo, s1.id)).rejects.toThrow(IntegrityError);
      await expect(loadSnapshot(repo, s1.id)).rejects.toThrow(s1.id);
      expect((await loadSnapshot(repo, s2.id)).tree).toBe(s2.tree);
    } finally {
      backend.close();
    }
    const report = await check(repoDir, true);
    expect(report.errors.join("\n")).toContain(`snapshot ${s1.id}`);
    const r = await restoreInto(s1.id, "out");
    expect(r.thrown).toBeInstanceOf(IntegrityError);
  });

  it("a snapshot renamed to a new id fails to open", async () => {
    const { s1 } = await twoEqualBlobs();
    const forged = randomBytes(32).toString("hex");
    await fs.rename(
      path.join(repoDir, "snapshots", s1.id),
      path.join(repoDir, "snapshots", forged),
    );
    const { repo, backend } = await openRepo(repoDir);
    try {
      await expect(loadSnapshot(repo, forged)).rejects.toThrow(IntegrityError);
    } finally {
      backend.close();
    }
  });

  it("an index delta copied over another fails to open", async () => {
    await twoEqualBlobs();
    const [i1, i2] = await fs.readdir(path.join(repoDir, "index"));
    await fs.copyFile(
      path.join(repoDir, "index", i2 as string),
      path.join(repoDir, "index", i1 as string),
    );
    const { repo, backend } = await openRepo(repoDir);
    try {
      await expect(openStore(repo)).rejects.toThrow(IntegrityError);
      const report = await checkRepository(new BlobStore(repo), { readData: false });
      expect(report.errors.join("\n")).toContain(`index ${i1}`);
    } finally {
      backend.close();
    }
  });
});

describe("tampering with keys and config", () => {
  it("a wrong passphrase is a KeyError", async () => {
    (await initRepo(repoDir)).backend.close();
    await expect(openRepo(repoDir, "not the passphrase")).rejects.toThrow(KeyError);
    await expect(openRepo(repoDir, "not the passphrase")).rejects.toThrow(/wrong passphrase/);
  });

  it("a key envelope copied from another repository is a KeyError naming another repository", async () => {
    const other = path.join(base, "other");
    (await initRepo(repoDir)).backend.close();
    (await initRepo(other)).backend.close();
    const keys = path.join(repoDir, "keys");
    for (const k of await fs.readdir(keys)) await fs.rm(path.join(keys, k));
    for (const k of await fs.readdir(path.join(other, "keys"))) {
      await fs.copyFile(path.join(other, "keys", k), path.join(keys, k));
    }
    const err = await openRepo(repoDir, passphrase).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyError);
    expect((err as Error).message).toMatch(/another repository/);
  });

  it("a config with a changed packSize, chunker or creation time fails authentication", async () => {
    (await initRepo(repoDir)).backend.close();
    const configPath = path.join(repoDir, "config");
    const original = await fs.readFile(configPath, "utf8");
    const edits: ((c: Record<string, unknown>) => void)[] = [
      (c) => {
        c.packSize = 1024;
      },
      (c) => {
        c.chunker = { min: 64, avg: 128, max: 256 };
      },
      (c) => {
        c.created = new Date(0).toISOString();
      },
    ];
    for (const edit of edits) {
      const c = JSON.parse(original) as Record<string, unknown>;
      edit(c);
      await fs.writeFile(configPath, JSON.stringify(c, null, 2));
      const err = await openRepo(repoDir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(/config failed authentication/);
    }
    await fs.writeFile(configPath, original);
    (await openRepo(repoDir)).backend.close();
  });

  it("a config claiming another repository id is refused", async () => {
    (await initRepo(repoDir)).backend.close();
    const configPath = path.join(repoDir, "config");
    const c = JSON.parse(await fs.readFile(configPath, "utf8")) as Record<string, unknown>;
    c.id = randomBytes(32).toString("hex");
    await fs.writeFile(configPath, JSON.stringify(c));
    await expect(openRepo(repoDir)).rejects.toThrow(KeyError);
  });
});
