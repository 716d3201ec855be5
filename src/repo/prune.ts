import { ObjectKind } from "../crypto/seal.js";
import { IntegrityError } from "../errors.js";
import type { IndexEntry } from "./blob-index.js";
import type { BlobStore } from "./blob-store.js";
import { encodeIndex, type IndexedPack } from "./index-file.js";
import { randomId } from "./repository.js";
import { listSnapshots } from "./snapshots.js";
import { decodeTree } from "./tree.js";

// Prune (docs/ARCHITECTURE.md §Prune) runs under the exclusive lock, so no backup adds
// blobs meanwhile. Its steps are ordered so a kill at any point leaves a repository that
// verifies and that the next prune finishes:
//   1. copy the live blobs of packs worth repacking into new packs (+ their index delta);
//   2. write an index delta for the packs that stay;
//   3. delete the old index deltas;
//   4. delete unused, repacked and unreferenced packs.
// Before step 1 it removes the temp files that killed writers left (idle for an hour;
// the lock keeps out every live writer).

export interface PrunePlan {
  packsKept: number;
  packsRepacked: number;
  packsDeleted: number;
  unreferencedPacks: number;
  bytesLive: number;
  bytesUnused: number;
  bytesFreed: number;
  /** Temp files of interrupted writes (a killed backup's last packs), in bytesFreed too. */
  tempFiles: number;
}

/**
 * A temp file untouched this long is a dead writer's: backups are locked out while prune
 * runs, and a pack being filled is written to at every MiB.
 */
const tempFileIdleMs = 60 * 60 * 1000;

interface PackUse {
  live: [string, IndexEntry][];
  liveBytes: number;
  deadBytes: number;
}

/** Every blob id any snapshot needs: trees and file contents. */
async function usedBlobs(store: BlobStore): Promise<Set<string>> {
  const used = new Set<string>();
  const walk = async (treeId: string): Promise<void> => {
    if (used.has(treeId)) return;
    used.add(treeId);
    const tree = decodeTree(await store.load(ObjectKind.tree, treeId), `tree ${treeId}`);
    for (const n of tree.nodes) {
      if (n.type === "dir" && n.subtree !== undefined) await walk(n.subtree);
      for (const id of n.content ?? []) used.add(id);
    }
  };
  for (const s of await listSnapshots(store.repo)) await walk(s.tree);
  for (const id of used) {
    if (!store.index.has(id)) {
      throw new IntegrityError(
        `blob ${id} is needed but not indexed: run coffer verify; nothing was pruned`,
      );
    }
  }
  return used;
}

/**
 * Removes data no snapshot needs. A pack is repacked when its unused share is over
 * maxUnusedPercent; packs with nothing live are deleted outright.
 */
export async function prune(
  store: BlobStore,
  opts: { dryRun: boolean; maxUnusedPercent: number },
): Promise<PrunePlan> {
  const repo = store.repo;
  const oldIndexes = await repo.listIds("index");
  const used = await usedBlobs(store);
  const packs = new Map<string, PackUse>();
  for (const [id, e] of store.index.entries()) {
    let p = packs.get(e.packId);
    if (p === undefined) {
      p = { live: [], liveBytes: 0, deadBytes: 0 };
      packs.set(e.packId, p);
    }
    if (used.has(id)) {
      p.live.push([id, e]);
      p.liveBytes += e.length;
    } else p.deadBytes += e.length;
  }
  const present = new Map<string, number>();
  for await (const o of repo.backend.list("data")) present.set(o.name, o.size);

  const plan: PrunePlan = {
    packsKept: 0,
    packsRepacked: 0,
    packsDeleted: 0,
    unreferencedPacks: 0,
    bytesLive: 0,
    bytesUnused: 0,
    bytesFreed: 0,
    tempFiles: 0,
  };
  // Dead writers' temp files are nothing any step needs: removed now (counted in a dry run).
  const temp = await repo.backend.sweepTempFiles?.(!opts.dryRun, tempFileIdleMs);
  if (temp !== undefined) {
    plan.tempFiles = temp.files;
    plan.bytesFreed += temp.bytes;
  }
  const keep: IndexedPack[] = [];
  const repack: [string, PackUse][] = [];
  const remove: string[] = [];
  for (const [packId, p] of packs) {
    plan.bytesLive += p.liveBytes;
    plan.bytesUnused += p.deadBytes;
    const unusedShare = (100 * p.deadBytes) / (p.liveBytes + p.deadBytes || 1);
    if (p.live.length === 0) {
      remove.push(packId);
      plan.packsDeleted++;
      plan.bytesFreed += present.get(packId) ?? 0;
    } else if (p.deadBytes > 0 && unusedShare > opts.maxUnusedPercent) {
      repack.push([packId, p]);
      plan.packsRepacked++;
      plan.bytesFreed += p.deadBytes;
    } else {
      plan.packsKept++;
      keep.push({
        packId: Buffer.from(packId, "hex"),
        entries: p.live.map(([id, e]) => ({ ...e, id: Buffer.from(id, "hex") })),
      });
    }
  }
  for (const [packId, size] of present) {
    if (!packs.has(packId)) {
      remove.push(packId);
      plan.unreferencedPacks++;
      plan.bytesFreed += size;
    }
  }
  if (opts.dryRun) return plan;

  // 1. Copy live blobs out of packs being repacked, authenticating each on the way.
  for (const [packId, p] of repack) {
    const pack = await repo.backend.load({ type: "data", name: packId });
    for (const [id, e] of p.live) {
      const sealed = pack.subarray(e.offset, e.offset + e.length);
      store.open(e, id, sealed);
      await store.addSealed({
        id: Buffer.from(id, "hex"),
        kind: e.kind,
        rawLength: e.rawLength,
        sealed,
      });
    }
    remove.push(packId);
  }
  await store.flush();
  // 2. The packs that stay, in one new index delta.
  if (keep.length > 0) {
    const name = randomId();
    const sealed = repo.sealMetadata(ObjectKind.index, Buffer.from(name, "hex"), encodeIndex(keep));
    await repo.backend.save({ type: "index", name }, sealed);
  }
  // 3. and 4.
  for (const name of oldIndexes) await repo.backend.remove({ type: "index", name });
  for (const packId of remove) await repo.backend.remove({ type: "data", name: packId });
  return plan;
}
