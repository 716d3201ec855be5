import { availableParallelism } from "node:os";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { CofferError, IntegrityError } from "../errors.js";
import { BlobChecker, type BlobSlice } from "../repo/blob-check.js";
import type { IndexEntry } from "../repo/blob-index.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { PackEntry } from "../repo/pack.js";
import { headerLocation, openPackHeader, packTrailerLength } from "../repo/pack.js";
import { SealPool } from "../repo/seal-pool.js";
import type { SnapshotWithId } from "../repo/snapshot.js";
import { loadSnapshot } from "../repo/snapshots.js";
import { rawName } from "../repo/tree.js";
import { collectYoung } from "../repo/young-gc.js";
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

  // With readData, the snapshots' trees are walked while the packs are read: the walk is
  // this thread's work and the data check mostly the workers', and walked after it the walk
  // left them idle (0.9 s of a 5.5 s verify on 2 cores). The blobs it reports as bad are
  // only known once the data is checked, so this early walk is kept only when the check
  // found no damage; otherwise the trees are walked again with the bad blobs known.
  const earlyErrors: string[] = [];
  const earlyWalk =
    opts.readData && damaged.size === 0
      ? walkSnapshots(store, new Set(), (m) => earlyErrors.push(m), paceWalk())
      : null;
  earlyWalk?.catch(() => {}); // awaited below; a failure is reported there, not twice

  if (opts.readData) {
    const counts = store.index.countsByPack();
    // Packs are read in slices of a few blobs; worker threads (one per core but this
    // thread's) open and check them, and this thread checks a slice itself whenever every
    // worker has its share. Memory is a few slices, whatever the size of packs or repository.
    const pool = SealPool.start(repo.id, repo.current, Math.min(3, availableParallelism() - 1));
    const reader = new PackReader(store, pool);
    const inFlight = new Set<Promise<void>>();
    // A pack that cannot be fetched stops the check (PackReader throws); the first such
    // error is kept and thrown once the slices in flight have settled.
    let fetchError: unknown = null;
    let done = 0;
    try {
      for (const [packId, size] of present) {
        const expected = counts.get(packId);
        if (expected === undefined || (opts.packSubset && !opts.packSubset(packId))) continue;
        report.packsRead++;
        opts.onProgress?.(`reading pack ${++done}`);
        let checked: Promise<string[]>;
        try {
          ({ checked } = await reader.queuePack(packId, size, expected));
        } catch (err) {
          fetchError ??= err;
          break;
        }
        const job = checked
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
        if (fetchError !== null) break;
      }
      await Promise.all(inFlight);
    } finally {
      await pool?.close();
      // Not left running (reading the repository) once this returns or throws.
      await earlyWalk?.then(
        () => {},
        () => {},
      );
    }
    if (fetchError !== null) throw fetchError;
  }
  for (const packId of damaged) {
    for (const [id] of store.index.entriesOfPack(packId)) badBlobs.add(id);
  }
  report.damagedPacks = [...damaged];

  let walk: SnapshotsWalk;
  if (earlyWalk !== null && damaged.size === 0) {
    walk = await earlyWalk;
    for (const m of earlyErrors) fail(m);
  } else {
    walk = await walkSnapshots(store, badBlobs, fail);
  }
  report.snapshots = walk.snapshots;
  report.affected = walk.affected;
  return report;
}

interface SnapshotsWalk {
  snapshots: number;
  affected: { snapshot: string; paths: string[] }[];
}

/** Walks every snapshot's trees: what is missing or unreadable, and the paths it affects. */
async function walkSnapshots(
  store: BlobStore,
  badBlobs: Set<string>,
  fail: (msg: string) => void,
  pace?: () => Promise<void>,
): Promise<SnapshotsWalk> {
  const snapshotIds = await store.repo.listIds("snapshot");
  const affected: SnapshotsWalk["affected"] = [];
  const treeDamage = new Map<string, string[]>();
  for (const id of snapshotIds) {
    let snap: SnapshotWithId;
    try {
      snap = await loadSnapshot(store.repo, id);
    } catch (err) {
      fail(describe(err));
      continue;
    }
    const paths = await walkTree(store, snap.tree, "", badBlobs, treeDamage, fail, pace);
    if (paths.length > 0) affected.push({ snapshot: id, paths });
  }
  return { snapshots: snapshotIds.length, affected };
}

/**
 * A walk beside the data check yields to the event loop every few milliseconds: local
 * reads resolve without it, and a walk that never yields would keep the workers' answers,
 * and so the next slices, waiting until it ends.
 */
function paceWalk(): () => Promise<void> {
  let last = performance.now();
  return async () => {
    const now = performance.now();
    if (now - last < 4) return;
    await yieldToEventLoop();
    last = performance.now();
  };
}

/**
 * A slice is read at up to this many bytes of a pack (or one blob, when a blob is larger):
 * memory for pack data is about this times the slices in flight, whatever the pack size.
 */
const sliceBytes = 2 * 1024 * 1024;
/**
 * Slices being checked or waiting per worker: one in work, three queued behind it, so that
 * the worker keeps busy while this thread checks a slice itself or walks trees (with two
 * and the early walk, the worker idled at 26-86%; with four, verify took 3.84-4.40 s
 * against 3.93-4.89 s before both changes, 9 pairs on 2 cores).
 */
const slicesPerWorker = 4;

/**
 * Reads packs for verify --read-data: the trailer and header, then the blobs in slices
 * that worker threads open and check, or this thread when every worker has its share (or
 * there is no pool). Slice buffers come back from the workers and are reused.
 */
class PackReader {
  readonly #store: BlobStore;
  readonly #pool: SealPool | null;
  #checker: BlobChecker | null = null;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #free: Buffer[] = [];

  constructor(store: BlobStore, pool: SealPool | null) {
    this.#store = store;
    this.#pool = pool;
  }

  /**
   * Authenticates the pack's header and starts checking every blob it lists against the
   * index (the index's entries for the pack when the header is unusable). Resolves once
   * every slice is read and handed on, to a promise of the pack's problems. Throws when
   * the pack cannot be fetched (network, access): that is not damage.
   */
  async queuePack(
    packId: string,
    size: number,
    indexedCount: number,
  ): Promise<{ checked: Promise<string[]> }> {
    const problems: string[] = [];
    const toOpen: [string, IndexEntry][] = [];
    let header: PackEntry[] | string;
    try {
      header = await this.readHeader(packId, size);
    } catch (err) {
      if (err instanceof Unreadable) return { checked: Promise.resolve([err.message]) };
      throw err;
    }
    if (typeof header === "string") {
      // An unusable header: check the blobs the index places in this pack instead.
      problems.push(header);
      toOpen.push(...this.#store.index.entriesOfPack(packId));
    } else {
      let matched = 0;
      for (const h of header) {
        const id = h.id.toString("hex");
        const e = this.#store.index.get(id);
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
    }
    toOpen.sort((a, b) => a[1].offset - b[1].offset);
    const inside = toOpen.filter(([, e]) => e.offset + e.length <= size);
    if (inside.length < toOpen.length) problems.push(`pack ${packId} is truncated`);
    const checks: Promise<void>[] = [];
    try {
      for (let i = 0; i < inside.length; ) {
        const start = (inside[i] as [string, IndexEntry])[1].offset;
        let end = start;
        let j = i;
        for (; j < inside.length; j++) {
          const e = (inside[j] as [string, IndexEntry])[1];
          if (j > i && e.offset + e.length - start > sliceBytes) break;
          end = Math.max(end, e.offset + e.length);
        }
        checks.push(
          (await this.queueSlice(packId, start, end, inside.slice(i, j), problems)).checked,
        );
        i = j;
      }
    } catch (err) {
      if (!(err instanceof Unreadable)) {
        // Let the slices already handed on settle before the caller stops.
        await Promise.allSettled(checks);
        throw err;
      }
      problems.push(err.message);
    }
    return { checked: Promise.all(checks).then(() => problems) };
  }

  /**
   * The pack's header, or why it is unusable. Throws Unreadable when the pack is gone or
   * short, and a fetch error as it is.
   */
  private async readHeader(packId: string, size: number): Promise<PackEntry[] | string> {
    const repo = this.#store.repo;
    const trailer = await this.read(
      packId,
      Math.max(0, size - packTrailerLength),
      Math.min(size, packTrailerLength),
    );
    let at: { offset: number; length: number };
    try {
      at = headerLocation(size, trailer, `pack ${packId}`);
    } catch (err) {
      return describe(err);
    }
    const sealed = await this.read(packId, at.offset, at.length);
    try {
      return openPackHeader(
        repo.id,
        (s, what) => repo.keysForSealed(s, what),
        Buffer.from(packId, "hex"),
        sealed,
      );
    } catch (err) {
      return describe(err);
    }
  }

  /** Waits for room, reads bytes [start, end) of the pack and hands their blobs on. */
  private async queueSlice(
    packId: string,
    start: number,
    end: number,
    blobs: [string, IndexEntry][],
    problems: string[],
  ): Promise<{ checked: Promise<void> }> {
    const data = await this.read(packId, start, end - start, true);
    const repo = this.#store.repo;
    const ok: { id: string; e: IndexEntry; generation: number }[] = [];
    for (const [id, e] of blobs) {
      try {
        const sealed = data.subarray(e.offset - start, e.offset - start + e.length);
        // Generation checks (and key errors) stay here; the worker does the crypto.
        ok.push({ id, e, generation: repo.keysForSealed(sealed, `blob ${id}`).generation });
      } catch (err) {
        const message = describe(err);
        problems.push(message.startsWith("pack ") ? message : `pack ${packId}: ${message}`);
      }
    }
    const generations = [...new Set(ok.map((b) => b.generation))];
    const slice: BlobSlice = {
      packId,
      data,
      ids: Buffer.concat(ok.map((b) => Buffer.from(b.id, "hex"))),
      kinds: Uint8Array.from(ok, (b) => b.e.kind),
      offsets: Uint32Array.from(ok, (b) => b.e.offset - start),
      lengths: Uint32Array.from(ok, (b) => b.e.length),
      rawLengths: Uint32Array.from(ok, (b) => b.e.rawLength),
      generations: Uint32Array.from(ok, (b) => b.generation),
      keys: generations.map((g) => {
        const k = repo.keys(g);
        return { generation: g, data: k.data, id: k.id };
      }),
    };
    const pool = this.#pool;
    if (pool === null || this.#inFlight.size >= slicesPerWorker * pool.size) {
      // Every worker has its share: this thread checks the slice itself.
      this.#checker ??= new BlobChecker(this.#store.repo.id);
      problems.push(...this.#checker.checkSlice(slice));
      collectYoung();
      this.recycle(data);
      // Reads of a local pack never wait for the event loop: yield to it, or the workers'
      // answers would never be seen and this thread would check every slice alone.
      await yieldToEventLoop();
      return { checked: Promise.resolve() };
    }
    const job = pool
      .verifySlice(slice)
      .then((r) => {
        problems.push(...r.problems);
        if (r.data !== null)
          this.recycle(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength));
      })
      .finally(() => this.#inFlight.delete(job));
    this.#inFlight.add(job);
    return { checked: job };
  }

  /** Keeps a slice buffer that came back, for the next slice. */
  private recycle(b: Buffer): void {
    if (
      b.length === sliceBytes &&
      this.#free.length < slicesPerWorker * (this.#pool?.size ?? 1) + 1
    )
      this.#free.push(b);
  }

  /**
   * Reads a range of a pack, with reuse into a reused buffer when the backend can (the
   * result is then longer than asked); a pack that is gone or short is damage (Unreadable).
   */
  private async read(
    packId: string,
    offset: number,
    length: number,
    reuse = false,
  ): Promise<Buffer> {
    const backend = this.#store.repo.backend;
    const h = { type: "data", name: packId } as const;
    try {
      if (!reuse || backend.loadInto === undefined || length > sliceBytes) {
        return await backend.load(h, offset, length);
      }
      // The whole buffer is handed on (its first length bytes are the range), so that it
      // can move to a worker and back without a copy.
      const buffer = this.#free.pop() ?? Buffer.allocUnsafeSlow(sliceBytes);
      await backend.loadInto(h, offset, buffer.subarray(0, length));
      return buffer;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new Unreadable(`pack ${packId} is missing`);
      }
      if (err instanceof IntegrityError) throw new Unreadable(describe(err));
      throw err;
    }
  }
}

/** A pack that vanished or is shorter than listed: damage, reported, not a fetch failure. */
class Unreadable extends Error {}

/** Walks a tree; returns the paths under it that reference bad or missing blobs. */
async function walkTree(
  store: BlobStore,
  treeId: string,
  prefix: string,
  badBlobs: Set<string>,
  cache: Map<string, string[]>,
  fail: (msg: string) => void,
  pace?: () => Promise<void>,
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
      await pace?.();
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
        ...(await walkTree(store, n.subtree, "", badBlobs, cache, fail, pace)).map((p) => rel + p),
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
