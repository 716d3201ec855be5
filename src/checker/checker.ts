import { availableParallelism } from "node:os";
import { CofferError, IntegrityError } from "../errors.js";
import type { IndexEntry } from "../repo/blob-index.js";
import type { BlobStore } from "../repo/blob-store.js";
import { headerLocation, openPackHeader, packTrailerLength } from "../repo/pack.js";
import { SealPool } from "../repo/seal-pool.js";
import type { VerifyPack } from "../repo/seal-worker.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import { loadSnapshot } from "../repo/snapshots.js";
import { rawName } from "../repo/tree.js";
import { loadTree } from "../restore/tree-walk.js";

export interface CheckReport {
  /** One line per problem found; empty when the repository is sound. */
  errors: string[];
  /** Packs whose bytes failed authentication, or that are missing. */
  damagedPacks: string[];
  /** For each snapshot that references damaged or missing data, the paths affected. */
  affected: { snapshot: string; paths: string[] }[];
  snapshots: number;
  packs: number;
  blobs: number;
  /** Packs present in data/ that no index lists: left by an interrupted backup; harmless. */
  unreferencedPacks: number;
  /** Packs read and authenticated blob by blob (all indexed packs, or the subset). */
  packsRead: number;
}

export interface CheckOptions {
  readData: boolean;
  /** With readData, read only the packs this selects (verify --read-data-subset). */
  packSubset?: (packId: string) => boolean;
  onProgress?(message: string): void;
}

/**
 * Verifies a repository: every index delta and snapshot opens; every blob a snapshot
 * needs is indexed in a pack that exists; with readData, every pack is read and every blob
 * in it authenticated and re-hashed, and the damage is traced to snapshots and files.
 */
export async function checkRepository(store: BlobStore, opts: CheckOptions): Promise<CheckReport> {
  const repo = store.repo;
  const report: CheckReport = {
    errors: [],
    damagedPacks: [],
    affected: [],
    snapshots: 0,
    packs: 0,
    blobs: 0,
    unreferencedPacks: 0,
    packsRead: 0,
  };
  const fail = (msg: string) => report.errors.push(msg);

  for (const name of await repo.listIds("index")) {
    try {
      await store.addIndexFile(name);
    } catch (err) {
      fail(describe(err));
    }
  }
  report.blobs = store.index.size;

  const present = new Map<string, number>();
  for await (const o of repo.backend.list("data")) present.set(o.name, o.size);
  report.packs = present.size;
  const indexedPacks = new Set(store.index.packs());
  const badBlobs = new Set<string>();
  const damaged = new Set<string>();
  for (const packId of indexedPacks) {
    if (!present.has(packId)) {
      fail(`pack ${packId} is missing`);
      damaged.add(packId);
    }
  }
  for (const packId of present.keys()) if (!indexedPacks.has(packId)) report.unreferencedPacks++;

  if (opts.readData) {
    const counts = store.index.countsByPack();
    // Blobs are opened by worker threads, one per core, while this thread reads the next
    // packs: at most two packs per worker are in memory at once.
    const pool = SealPool.start(repo.id, repo.current, Math.min(4, availableParallelism()));
    const inFlight = new Set<Promise<void>>();
    // A pack that cannot be fetched stops the check (readPack throws); the first such
    // error is kept and thrown once the packs in flight have settled.
    let fetchError: unknown = null;
    let done = 0;
    try {
      for (const [packId, size] of present) {
        const expected = counts.get(packId);
        if (expected === undefined || (opts.packSubset && !opts.packSubset(packId))) continue;
        report.packsRead++;
        opts.onProgress?.(`reading pack ${++done}`);
        const job = readPack(store, pool, packId, size, expected)
          .then(
            (problems) => {
              if (problems.length > 0) {
                damaged.add(packId);
                for (const p of problems) fail(p);
              }
            },
            (err: unknown) => {
              fetchError ??= err;
            },
          )
          .finally(() => inFlight.delete(job));
        inFlight.add(job);
        while (inFlight.size >= 2 * (pool?.size ?? 0.5)) await Promise.race(inFlight);
        if (fetchError !== null) break;
      }
      await Promise.all(inFlight);
    } finally {
      await pool?.close();
    }
    if (fetchError !== null) throw fetchError;
  }
  for (const packId of damaged) {
    for (const [id] of store.index.entriesOfPack(packId)) badBlobs.add(id);
  }
  report.damagedPacks = [...damaged];

  const snapshotIds = await repo.listIds("snapshot");
  report.snapshots = snapshotIds.length;
  const treeDamage = new Map<string, string[]>();
  for (const id of snapshotIds) {
    let snap: SnapshotWithId;
    try {
      snap = await loadSnapshot(repo, id);
    } catch (err) {
      fail(describe(err));
      continue;
    }
    const paths = await walkTree(store, snap.tree, "", badBlobs, treeDamage, fail);
    if (paths.length > 0) report.affected.push({ snapshot: id, paths });
  }
  return report;
}

/**
 * Reads one pack whole, authenticates its header, and opens every blob the header lists,
 * checking each against the index. When the header itself is unusable, the index's
 * entries for the pack are checked instead.
 */
async function readPack(
  store: BlobStore,
  pool: SealPool | null,
  packId: string,
  size: number,
  indexedCount: number,
): Promise<string[]> {
  const problems: string[] = [];
  const repo = store.repo;
  let pack: Buffer;
  try {
    pack = await repo.backend.load({ type: "data", name: packId });
  } catch (err) {
    // A pack that cannot be fetched (network, access, a service that keeps failing) is
    // not a damaged pack: stop with that error (exit 1) rather than report damage (exit 20).
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    if (!missing && !(err instanceof IntegrityError)) throw err;
    return [describe(err)];
  }
  if (pack.length !== size) problems.push(`pack ${packId} changed size while being read`);
  const toOpen: [string, IndexEntry][] = [];
  try {
    const at = headerLocation(
      pack.length,
      pack.subarray(pack.length - packTrailerLength),
      `pack ${packId}`,
    );
    const header = openPackHeader(
      repo.id,
      (s, what) => repo.keysForSealed(s, what),
      Buffer.from(packId, "hex"),
      pack.subarray(at.offset, at.offset + at.length),
    );
    let matched = 0;
    for (const h of header) {
      const id = h.id.toString("hex");
      const e = store.index.get(id);
      if (e?.packId !== packId) continue; // also stored elsewhere; the index uses the other copy
      matched++;
      if (e.offset !== h.offset || e.length !== h.length || e.kind !== h.kind) {
        problems.push(`pack ${packId}: blob ${id} is at a different place than the index says`);
      }
      toOpen.push([id, e]);
    }
    if (matched !== indexedCount) {
      problems.push(
        `pack ${packId}: the index lists ${indexedCount} blobs in it, its header ${matched}`,
      );
    }
  } catch (err) {
    // An unusable header: check the blobs the index places in this pack instead.
    problems.push(describe(err));
    toOpen.push(...store.index.entriesOfPack(packId));
  }
  problems.push(...(await openBlobs(store, pool, packId, pack, toOpen)));
  return problems;
}

/** Opens each blob (in the pool when there is one); returns one message per failure. */
async function openBlobs(
  store: BlobStore,
  pool: SealPool | null,
  packId: string,
  pack: Buffer,
  blobs: [string, IndexEntry][],
): Promise<string[]> {
  const problems: string[] = [];
  const forPool: { id: string; e: IndexEntry; generation: number }[] = [];
  for (const [id, e] of blobs) {
    try {
      if (e.offset + e.length > pack.length)
        throw new IntegrityError(`pack ${packId} is truncated`);
      const sealed = pack.subarray(e.offset, e.offset + e.length);
      if (pool === null) store.open(e, id, sealed);
      // Generation checks (and key errors) stay here; the worker does the crypto.
      else
        forPool.push({
          id,
          e,
          generation: store.repo.keysForSealed(sealed, `blob ${id}`).generation,
        });
    } catch (err) {
      const message = describe(err);
      problems.push(message.startsWith("pack ") ? message : `pack ${packId}: ${message}`);
    }
  }
  if (pool === null || forPool.length === 0) return problems;
  const generations = new Set(forPool.map((b) => b.generation));
  const job: VerifyPack = {
    packId,
    pack,
    ids: Buffer.concat(forPool.map((b) => Buffer.from(b.id, "hex"))),
    kinds: Uint8Array.from(forPool, (b) => b.e.kind),
    offsets: Uint32Array.from(forPool, (b) => b.e.offset),
    lengths: Uint32Array.from(forPool, (b) => b.e.length),
    rawLengths: Uint32Array.from(forPool, (b) => b.e.rawLength),
    generations: Uint32Array.from(forPool, (b) => b.generation),
    keys: [...generations].map((g) => {
      const k = store.repo.keys(g);
      return { generation: g, data: k.data, id: k.id };
    }),
  };
  problems.push(...(await pool.verifyPack(job)));
  return problems;
}

/** Walks a tree; returns the paths under it that reference bad or missing blobs. */
async function walkTree(
  store: BlobStore,
  treeId: string,
  prefix: string,
  badBlobs: Set<string>,
  cache: Map<string, string[]>,
  fail: (msg: string) => void,
): Promise<string[]> {
  const cached = cache.get(treeId);
  if (cached !== undefined) return cached.map((p) => prefix + p);
  const out: string[] = [];
  const unusable = !store.index.has(treeId) || badBlobs.has(treeId);
  let nodes: Awaited<ReturnType<typeof loadTree>>["nodes"] = [];
  if (unusable) {
    fail(
      `tree ${treeId} at ${prefix || "/"} is ${store.index.has(treeId) ? "damaged" : "missing"}`,
    );
    out.push("/");
  } else {
    try {
      nodes = (await loadTree(store, treeId)).nodes;
    } catch (err) {
      fail(describe(err));
      out.push("/");
    }
  }
  for (const n of nodes) {
    const rel = `/${rawName(n).toString()}`;
    if (n.type === "dir" && n.subtree !== undefined) {
      out.push(
        ...(await walkTree(store, n.subtree, "", badBlobs, cache, fail)).map((p) => rel + p),
      );
    } else if (n.type === "file") {
      const missing = (n.content ?? []).filter((id) => !store.index.has(id));
      for (const id of missing) fail(`blob ${id} of ${rel} is not in the index`);
      if (missing.length > 0 || (n.content ?? []).some((id) => badBlobs.has(id))) out.push(rel);
    }
  }
  cache.set(treeId, out);
  return out.map((p) => prefix + p);
}

function describe(err: unknown): string {
  if (err instanceof CofferError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
