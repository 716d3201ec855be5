import { openWriterOf } from "../backend/buffered-writer.js";
import { blobId } from "../crypto/blob-id.js";
import { ObjectKind } from "../crypto/seal.js";
import { IntegrityError } from "../errors.js";
import type { BlobKind, SealedBlob } from "./blob.js";
import { openBlob, sealBlob } from "./blob.js";
import type { IndexEntry } from "./blob-index.js";
import { BlobIndex } from "./blob-index.js";
import type { IndexedPack } from "./index-file.js";
import { decodeIndex, encodeIndex, forEachIndexedPack } from "./index-file.js";
import { checkPackHeader, forEachCheckedEntry } from "./pack.js";
import { PackStream } from "./pack-stream.js";
import type { Repository } from "./repository.js";
import { randomId } from "./repository.js";
import { SealBatch, sealEach } from "./seal-batch.js";
import { queuedPerWorker, SealPool } from "./seal-pool.js";
import { YoungBuffers, youngCollectBytes } from "./young-gc.js";

/** Index deltas are written at the end of a backup, or sooner once this many blobs wait. */
const maxUnindexedBlobs = 20_000;
/**
 * A pack is closed at the config's pack size or at this many blobs, whichever comes
 * first: tiny blobs (small files) would otherwise put ~200k entries in one open pack.
 */
const maxBlobsPerPack = 10_000;
/** Blobs at least this large go to the seal pool alone; smaller ones go in batches. */
const poolThreshold = 64 * 1024;
/** Packs being stored at once unless the caller says otherwise. One keeps a local disk
 * busy; a remote backend wants more (cli/backend-options.ts: --upload-concurrency). */
const defaultPackUploads = 1;

export interface BlobStoreOptions {
  /** Packs being stored (uploaded) at once. */
  packUploads?: number;
}

/**
 * Blob storage on top of a repository: dedup against the index, sealing into packs,
 * index deltas, and reads of single blobs.
 */
export class BlobStore {
  readonly repo: Repository;
  readonly index = new BlobIndex();
  readonly #packers = new Map<BlobKind, PackStream>();
  /** Blobs sealed into a pack that is not yet written; dedup must see them too. */
  readonly #pending = new Set<string>();
  #unindexed: IndexedPack[] = [];
  #unindexedCount = 0;
  /** Index deltas being saved: flush waits for them, so a snapshot never outruns its index. */
  readonly #indexWrites = new Set<Promise<void>>();
  readonly #uploads = new Set<Promise<void>>();
  /** The packs those uploads are storing, for discard. */
  readonly #storing = new Set<PackStream>();
  #uploadError: unknown = null;
  /** Sealed bytes and blobs this store added to the repository. */
  readonly stats = { bytesAdded: 0, blobsAdded: 0 };
  #pool: SealPool | null | undefined;
  readonly #sealing = new Set<Promise<void>>();
  readonly #batch = new SealBatch(poolThreshold);
  /** A full pack waiting for an upload slot (see addSealed). */
  #fullPack: Promise<void> | null = null;
  /** Chunk copies and sealed blobs pass through here and die young (see young-gc.ts). */
  readonly #young = new YoungBuffers(youngCollectBytes);

  readonly #maxPackUploads: number;
  /** Set by discard: the store takes no more blobs. */
  #discarded = false;

  constructor(repo: Repository, opts: BlobStoreOptions = {}) {
    this.repo = repo;
    this.#maxPackUploads = Math.max(1, opts.packUploads ?? defaultPackUploads);
  }

  /** Loads every index delta. Throws IntegrityError naming the first that fails to open. */
  async loadIndex(): Promise<void> {
    for (const name of await this.repo.listIds("index")) await this.addIndexFile(name);
  }

  /**
   * Adds one index delta's entries straight from its bytes: no object per entry, so an
   * index of millions of blobs loads in a fraction of a second. A delta that fails to open
   * or parse throws before any of its entries is added.
   */
  async addIndexFile(name: string): Promise<void> {
    const what = `index ${name}`;
    const plain = await this.repo.loadMetadata("index", ObjectKind.index, name);
    // Every header is checked before any entry is added, so a bad delta adds nothing.
    const headers: [string, Buffer, number][] = [];
    forEachIndexedPack(plain, what, (packId, header) => {
      headers.push([packId.toString("hex"), header, checkPackHeader(header, what)]);
    });
    // One reservation for the whole delta: the index's arrays grow by an eighth at a
    // time, and a first backup's single delta would otherwise copy them dozens of times.
    this.index.reserve(headers.reduce((n, [, , count]) => n + count, 0));
    for (const [packId, header] of headers) {
      forEachCheckedEntry(header, (kind, at, offset, length, rawLength) =>
        this.index.addAt(header, at, packId, kind, offset, length, rawLength),
      );
    }
  }

  async loadIndexFile(name: string): Promise<IndexedPack[]> {
    const plain = await this.repo.loadMetadata("index", ObjectKind.index, name);
    return decodeIndex(plain, `index ${name}`);
  }

  addIndexedPack(p: IndexedPack): void {
    const packId = p.packId.toString("hex");
    for (const e of p.entries) this.index.addRaw(e.id, packId, e);
  }

  has(id: string): boolean {
    return this.index.has(id) || this.#pending.has(id);
  }

  /**
   * Stores a blob unless one with the same keyed id is already stored. Large blobs are
   * compressed and sealed by the seal pool while the caller goes on; flush() waits for
   * them. The bytes added are counted in `stats`.
   */
  async save(kind: BlobKind, plaintext: Buffer): Promise<string> {
    this.throwUploadError();
    this.#young.allocated(plaintext.length);
    const rawId = blobId(this.repo.current.id, plaintext);
    const id = rawId.toString("hex");
    if (this.index.hasRaw(rawId) || this.#pending.has(id)) return id;
    this.#pending.add(id);
    if (plaintext.length < poolThreshold && this.#pool !== null) {
      // Batched; the pool starts with the first full batch, so a run that adds only a
      // few trees (an unchanged re-run) never starts its threads: flush seals them here.
      this.#batch.add(kind, rawId, plaintext);
      if (this.#batch.full) await this.sendBatch(false);
      return id;
    }
    const pool = this.sealPool();
    if (pool === null) {
      await this.addSealed(sealBlob(this.repo.id, this.repo.current, kind, rawId, plaintext));
      return id;
    }
    const rawLength = plaintext.length;
    await this.startSealing(
      pool
        .seal(kind, rawId, plaintext)
        .then((sealed) => this.addSealed({ id: rawId, kind, rawLength, sealed })),
    );
    return id;
  }

  /**
   * Seals the waiting batch in the pool, started now if need be; the last batch of a run
   * that never started the pool is sealed here (threads cost more than a few trees).
   */
  private async sendBatch(last: boolean): Promise<void> {
    if (this.#batch.size === 0) return;
    const pool = last && this.#pool === undefined ? null : this.sealPool();
    const batch = this.#batch.take();
    const blobs = (sealed: Uint8Array[]) =>
      sealed.map((s, i) => ({
        id: Buffer.from(batch.ids.buffer, i * 32, 32),
        kind: batch.kinds[i] as BlobKind,
        rawLength: batch.lengths[i] as number,
        sealed: s as Buffer,
      }));
    if (pool === null) {
      for (const b of blobs(sealEach(this.repo.id, this.repo.current, batch))) {
        await this.addSealed(b);
      }
      return;
    }
    await this.startSealing(
      pool.sealBatch(batch).then(async (sealed) => {
        for (const b of blobs(sealed)) await this.addSealed(b);
      }),
    );
  }

  /** Waits for room among the jobs in flight, then tracks this one. */
  private async startSealing(work: Promise<void>): Promise<void> {
    const job = work
      .catch((err: unknown) => {
        this.#uploadError ??= err;
      })
      .finally(() => {
        this.#sealing.delete(job);
      });
    this.#sealing.add(job);
    // Jobs (a blob or a batch) per seal worker: one running, one waiting, so a worker never
    // idles while the main thread hashes. Memory: about 2 chunks per worker.
    const limit = queuedPerWorker * (this.#pool?.size ?? 1);
    while (this.#sealing.size >= limit) await Promise.race(this.#sealing);
    this.throwUploadError();
  }

  private sealPool(): SealPool | null {
    if (this.#pool === undefined) this.#pool = SealPool.start(this.repo.id, this.repo.current);
    return this.#pool;
  }

  /**
   * Adds an already sealed blob to the open pack of its kind (prune copies live blobs
   * into new packs this way: sealed blobs are bound to their id and kind, not their pack).
   * A pack is stored before the blob that would take it past the pack size; while a full
   * pack waits for an upload slot, blobs wait behind it, so at most one pack per kind is
   * filling.
   */
  async addSealed(blob: SealedBlob): Promise<void> {
    while (this.#fullPack !== null) await this.#fullPack;
    this.stats.bytesAdded += blob.sealed.length;
    this.stats.blobsAdded++;
    this.#young.allocated(blob.sealed.length);
    const kind = blob.kind;
    const packSize = this.repo.config.packSize;
    const open = this.#packers.get(kind);
    if (
      open !== undefined &&
      open.count > 0 &&
      (open.size + blob.sealed.length > packSize || open.count >= maxBlobsPerPack)
    ) {
      this.#packers.delete(kind);
      const write = this.writePack(open).finally(() => {
        if (this.#fullPack === write) this.#fullPack = null;
      });
      this.#fullPack = write;
      await write;
    }
    let packer = this.#packers.get(kind);
    if (packer === undefined) {
      packer = this.openPack();
      this.#packers.set(kind, packer);
    }
    packer.add(blob);
    const room = packer.room();
    if (room !== null) await room;
  }

  private openPack(): PackStream {
    // Blobs still arriving after discard (a stopped backup winding down) start no new pack.
    if (this.#discarded) throw new Error("the backup was stopped: no more packs are written");
    const backend = this.repo.backend;
    return new PackStream((h) => openWriterOf(backend, h));
  }

  private async writePack(packer: PackStream): Promise<void> {
    this.throwUploadError();
    while (this.#uploads.size >= this.#maxPackUploads) await Promise.race(this.#uploads);
    this.throwUploadError();
    this.#storing.add(packer);
    const upload = packer
      .store(this.repo.id, this.repo.current)
      .then(() => {
        const indexed = { packId: packer.id, entries: packer.entries };
        this.addIndexedPack(indexed);
        for (const e of packer.entries) this.#pending.delete(e.id.toString("hex"));
        this.#unindexed.push(indexed);
        this.#unindexedCount += packer.entries.length;
      })
      .catch((err: unknown) => {
        this.#uploadError ??= err;
      })
      .finally(() => {
        this.#storing.delete(packer);
        this.#uploads.delete(upload);
      });
    this.#uploads.add(upload);
  }

  private throwUploadError(): void {
    if (this.#uploadError !== null) throw this.#uploadError;
  }

  /**
   * Writes every open pack and then an index delta for all packs written so far. After
   * flush resolves, every blob saved before it is durable and indexed.
   */
  async flush(): Promise<void> {
    await this.sendBatch(true);
    await Promise.all(this.#sealing);
    this.throwUploadError();
    for (const [kind, packer] of this.#packers) {
      this.#packers.delete(kind);
      if (packer.count > 0) await this.writePack(packer);
    }
    await Promise.all(this.#uploads);
    this.throwUploadError();
    // Deltas a checkpoint is still saving come first: the snapshot must not outrun them.
    await Promise.all(this.#indexWrites);
    await this.writeIndexDelta();
  }

  /**
   * Drops the packs still filling or being stored, unwritten: a backup that fails or is
   * stopped leaves no partial pack behind (a pack whose store had already finished stays,
   * whole and unreferenced, for prune). The stores being cut short fail; nothing waits for
   * a slow upload.
   */
  async discard(): Promise<void> {
    this.#discarded = true;
    const open = [...this.#packers.values(), ...this.#storing];
    this.#packers.clear();
    await Promise.allSettled(open.map((p) => p.discard()));
  }

  /** Called between files so long backups persist their index as they go. */
  async checkpoint(): Promise<void> {
    if (this.#unindexedCount >= maxUnindexedBlobs) await this.writeIndexDelta();
  }

  /**
   * Writes the packs not yet in an index delta as one delta. They are taken off the list
   * before the save: packs uploaded meanwhile go on the list for the next delta (emptying
   * the list after the save lost those, and left their blobs in no index). A failed save
   * puts them back.
   */
  private async writeIndexDelta(): Promise<void> {
    if (this.#unindexed.length === 0) return;
    const packs = this.#unindexed;
    const count = this.#unindexedCount;
    this.#unindexed = [];
    this.#unindexedCount = 0;
    const write = (async () => {
      const name = randomId();
      const sealed = this.repo.sealMetadata(
        ObjectKind.index,
        Buffer.from(name, "hex"),
        encodeIndex(packs),
      );
      await this.repo.backend.save({ type: "index", name }, sealed);
    })();
    this.#indexWrites.add(write);
    try {
      await write;
    } catch (err) {
      this.#unindexed = packs.concat(this.#unindexed);
      this.#unindexedCount += count;
      throw err;
    } finally {
      this.#indexWrites.delete(write);
    }
  }

  lookup(id: string): IndexEntry {
    const e = this.index.get(id);
    if (e === undefined) throw new IntegrityError(`blob ${id} is not in the index: it is missing`);
    return e;
  }

  /** Reads, authenticates, decompresses and re-checks one blob. */
  async load(kind: BlobKind, id: string): Promise<Buffer> {
    const e = this.lookup(id);
    if (e.kind !== kind) throw new IntegrityError(`blob ${id} is indexed with the wrong kind`);
    const sealed = await this.readSealed(e, id);
    return this.open(e, id, sealed);
  }

  async readSealed(e: IndexEntry, id: string): Promise<Buffer> {
    try {
      return await this.repo.backend.load({ type: "data", name: e.packId }, e.offset, e.length);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new IntegrityError(`pack ${e.packId} holding blob ${id} is missing`);
      }
      throw err;
    }
  }

  /**
   * As load, with the crypto done by a worker of pool when the blob is large enough to be
   * worth a thread round trip (restore keeps the main thread for file I/O).
   */
  async loadWith(pool: SealPool | null, kind: BlobKind, id: string): Promise<Buffer> {
    const e = this.lookup(id);
    if (e.kind !== kind) throw new IntegrityError(`blob ${id} is indexed with the wrong kind`);
    const sealed = await this.readSealed(e, id);
    if (pool === null || e.length < poolThreshold) return this.open(e, id, sealed);
    try {
      const keys = this.repo.keysForSealed(sealed, `blob ${id}`);
      return await pool.open({
        sealed,
        kind,
        id: Buffer.from(id, "hex"),
        rawLength: e.rawLength,
        keys: { generation: keys.generation, data: keys.data, id: keys.id },
      });
    } catch (err) {
      if (err instanceof IntegrityError)
        throw new IntegrityError(`pack ${e.packId}: ${err.message}`);
      throw err;
    }
  }

  /** Opens a sealed blob read from its pack; an IntegrityError names the pack. */
  open(e: IndexEntry, id: string, sealed: Buffer): Buffer {
    try {
      const keys = this.repo.keysForSealed(sealed, `blob ${id}`);
      return openBlob(this.repo.id, keys, e.kind, Buffer.from(id, "hex"), sealed, e.rawLength);
    } catch (err) {
      if (err instanceof IntegrityError)
        throw new IntegrityError(`pack ${e.packId}: ${err.message}`);
      throw err;
    }
  }
}
