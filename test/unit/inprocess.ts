// In-process helpers for unit and property tests: create, open, back up into and restore
// from repositories without spawning the CLI (each spawn costs about a second).
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach } from "vitest";
import { Archiver } from "../../src/archiver/archiver.js";
import { LocalBackend } from "../../src/backend/local.js";
import { type CheckReport, checkRepository } from "../../src/checker/checker.js";
import type { ChunkerParams } from "../../src/chunker/fastcdc.js";
import { ObjectKind } from "../../src/crypto/seal.js";
import { PassphraseProvider } from "../../src/kms/passphrase.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { encodeConfig } from "../../src/repo/config.js";
import { Repository } from "../../src/repo/repository.js";
import type { Snapshot } from "../../src/repo/snapshot.js";
import { emptySummary } from "../../src/repo/snapshot.js";
import { loadSnapshot, saveSnapshot } from "../../src/repo/snapshots.js";
import type { TreeNode } from "../../src/repo/tree.js";
import { encodeTree } from "../../src/repo/tree.js";
import { Restorer } from "../../src/restore/restorer.js";
import { rootNode } from "../../src/restore/tree-walk.js";

export const passphrase = "in-process test passphrase";

export async function tempDir(prefix = "coffer-unit-"): Promise<string> {
  return fs.mkdtemp(path.join(tmpdir(), prefix));
}

/** A tempDir that is removed after the test that made it (registers an afterEach). */
export function tempDirPerTest(): () => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
  });
  return async () => {
    const d = await tempDir();
    dirs.push(d);
    return d;
  };
}

export interface OpenedRepo {
  repo: Repository;
  backend: LocalBackend;
}

/**
 * Creates a repository (scrypt work factor 10). With packSize or chunker given, the config
 * is rewritten and re-authenticated with the repository's own config key, then reopened.
 */
export async function initRepo(
  dir: string,
  opts: { packSize?: number; chunker?: ChunkerParams; passphrase?: string } = {},
): Promise<OpenedRepo> {
  const pw = opts.passphrase ?? passphrase;
  const backend = new LocalBackend(dir);
  const repo = await Repository.init(backend, [new PassphraseProvider(pw, 10)]);
  if (opts.packSize === undefined && opts.chunker === undefined) return { repo, backend };
  const config = {
    ...repo.config,
    packSize: opts.packSize ?? repo.config.packSize,
    chunker: opts.chunker ?? repo.config.chunker,
  };
  await backend.save({ type: "config", name: "" }, encodeConfig(config, repo.current.config));
  backend.close();
  return openRepo(dir, pw);
}

export async function openRepo(dir: string, pw = passphrase): Promise<OpenedRepo> {
  const backend = new LocalBackend(dir);
  const repo = await Repository.open(backend, [new PassphraseProvider(pw, 10)]);
  return { repo, backend };
}

export async function openStore(repo: Repository): Promise<BlobStore> {
  const store = new BlobStore(repo);
  await store.loadIndex();
  return store;
}

/** Backs up absolute paths as the CLI does; returns the snapshot id and root tree. */
export async function backup(
  repo: Repository,
  paths: string[],
  parentTree?: string,
): Promise<{ id: string; tree: string }> {
  const started = Date.now();
  const store = await openStore(repo);
  const errors: string[] = [];
  const archiver = new Archiver(
    store,
    repo.chunker(),
    { onError: (p, m) => errors.push(`${p}: ${m}`), onWarning: () => {} },
    { exclude: () => false },
  );
  const tree = await archiver.backupPaths(paths, parentTree);
  await store.flush();
  if (errors.length > 0) throw new Error(`backup errors: ${errors.join("; ")}`);
  const id = await snapshotOf(repo, tree, paths, started);
  return { id, tree };
}

export async function snapshotOf(
  repo: Repository,
  tree: string,
  paths: string[],
  started = Date.now(),
): Promise<string> {
  const snapshot: Snapshot = {
    version: 1,
    time: new Date(started).toISOString(),
    hostname: "test",
    username: "test",
    paths,
    tags: [],
    tree,
    source: { kind: "files" },
    summary: emptySummary(),
  };
  return saveSnapshot(repo, snapshot);
}

/** Stores hand-made tree nodes as one tree blob; flush the store before use. */
export async function saveTree(store: BlobStore, nodes: TreeNode[]): Promise<string> {
  return store.save(ObjectKind.tree, encodeTree({ nodes }));
}

export async function saveData(store: BlobStore, data: Buffer): Promise<string> {
  return store.save(ObjectKind.data, data);
}

export function fileNode(name: string, content: string[], size: number): TreeNode {
  return { name, type: "file", mode: 0o644, uid: 0, gid: 0, mtime: "0", content, size };
}

export function dirNode(name: string, subtree: string): TreeNode {
  return { name, type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: "0", subtree };
}

export function symlinkNode(name: string, target: string): TreeNode {
  return { name, type: "symlink", mode: 0o777, uid: 0, gid: 0, mtime: "0", target };
}

export interface RestoreOutcome {
  /** Thrown by Restorer.restore (or by loading the snapshot), if anything was. */
  thrown: unknown;
  /** Paths reported through onError. */
  errors: { path: string; err: Error }[];
}

/** Restores a whole snapshot into target; never throws. */
export async function restoreSnapshot(
  store: BlobStore,
  snapshotId: string,
  target: string,
): Promise<RestoreOutcome> {
  const errors: { path: string; err: Error }[] = [];
  try {
    const snap = await loadSnapshot(store.repo, snapshotId);
    const restorer = new Restorer(
      store,
      { onError: (p, err) => errors.push({ path: p, err }), onWarning: () => {} },
      null,
    );
    await restorer.restore(rootNode(snap.tree), [], target);
    return { thrown: undefined, errors };
  } catch (err) {
    return { thrown: err, errors };
  }
}

export async function check(dir: string, readData = true): Promise<CheckReport> {
  const { repo, backend } = await openRepo(dir);
  try {
    return await checkRepository(new BlobStore(repo), { readData });
  } finally {
    backend.close();
  }
}

/** Every entry under dir by relative path: file bytes, symlink targets and directories. */
export async function readTree(dir: string): Promise<Map<string, string | Buffer>> {
  const out = new Map<string, string | Buffer>();
  async function walk(rel: string): Promise<void> {
    for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      const abs = path.join(dir, r);
      if (e.isSymbolicLink()) out.set(r, `-> ${await fs.readlink(abs)}`);
      else if (e.isDirectory()) {
        out.set(r, "dir");
        await walk(r);
      } else if (e.isFile()) out.set(r, await fs.readFile(abs));
      else out.set(r, "other");
    }
  }
  await walk("");
  return out;
}

/** Random bytes with repetitive stretches, so some chunks compress and some do not. */
export function mixedData(size: number, seed = randomBytes(4096)): Buffer {
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += 64 * 1024) {
    const piece =
      (o / (64 * 1024)) % 3 === 0 ? Buffer.alloc(64 * 1024, o & 0xff) : randomBytes(64 * 1024);
    piece.copy(out, o);
  }
  seed.copy(out, 0, 0, Math.min(seed.length, size));
  return out;
}

/** Flips one bit of a file in place. */
export async function flipBit(file: string, bit: number): Promise<void> {
  const b = await fs.readFile(file);
  const byte = Math.floor(bit / 8);
  b[byte] = (b[byte] as number) ^ (1 << (bit % 8));
  await fs.writeFile(file, b);
}

/** Path of a pack file in a local repository. */
export function packPath(repoDir: string, packId: string): string {
  return path.join(repoDir, "data", packId.slice(0, 2), packId);
}
