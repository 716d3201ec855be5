import { ObjectKind } from "../crypto/seal.js";
import { IntegrityError } from "../errors.js";
import type { IndexEntry } from "../repo/blob-index.js";
import type { BlobStore } from "../repo/blob-store.js";
import { movable } from "../repo/seal-pool.js";
import type { FileOutcome, WriteBatch, WriteKeys, WriteOp } from "./write-ops.js";
import type { WriteLane } from "./write-pool.js";

// The planning half of a directory restore, on the main thread. Files are gathered into
// batches of about batchBytes of sealed data; a batch's chunks are read with as few reads
// as possible (sorted by pack and offset, neighbours within readGap merged into one read of
// at most maxReadBytes), then the batch goes to a write lane (write-pool.ts) with the bytes
// it needs. A file larger than a batch is split over several, all to the same lane.
// Memory is bounded by maxInFlightBytes of sealed data read and not yet written and by
// maxInFlightFiles planned and not yet written (plus one batch being filled and, in each
// worker, the two scratch buffers chunks are opened into), whatever the restore's size.

const batchBytes = 1024 * 1024;
/** Files per batch: tiny files cost per file, not per byte. */
const batchFiles = 256;
const maxInFlightBytes = 8 * 1024 * 1024;
/**
 * A planned file costs ~1 KB on this thread until its batch is written (ops, paths, its
 * callbacks), whatever its size: 8 MiB of sealed tiny files (~70 bytes each) was 120,000
 * files in flight, and a restore of 200,000 of them (200 directories) peaked at 464-503
 * MiB; 206-217 MiB with this bound. 4,096 files is 16 full batches, 8 for each of two lanes.
 */
const maxInFlightFiles = 4096;
/** Bytes between two chunks of one pack that are read rather than skipped. */
const readGap = 64 * 1024;
const maxReadBytes = 8 * 1024 * 1024;
/** Reads of one batch at once (a remote backend answers them in parallel). */
const readConcurrency = 8;

export interface FileToWrite {
  /** Temp name in the same directory, final name, as raw bytes. */
  tmp: Buffer;
  at: Buffer;
  shown: string;
  content: readonly string[];
  /** Bytes the snapshot says the file has, when it says. */
  size: number | undefined;
  mode: number;
  uid: number;
  gid: number;
  chown: boolean;
  mtime: number;
}

interface Read {
  pack: string;
  offset: number;
  length: number;
  /** Index into the batch's ops of the chunk op this read is for. */
  op: number;
  id: string;
}

interface Pending {
  ops: WriteOp[];
  reads: Read[];
  bytes: number;
  files: number;
  /** The file numbers whose finish op is in this batch. */
  finishing: number[];
  /** The lane this batch must go to (a file continued from the previous batch). */
  lane: number | null;
}

export class WritePlanner {
  readonly #store: BlobStore;
  readonly #lanes: WriteLane[];
  /** Per lane: sealed bytes sent and not yet answered; and the tail of its sends. */
  readonly #laneBytes: number[];
  readonly #laneTail: Promise<unknown>[];
  readonly #outcomes = new Map<number, (o: FileOutcome) => void>();
  readonly #jobs = new Set<Promise<void>>();
  #inFlightBytes = 0;
  #inFlightFiles = 0;
  #nextFile = 0;
  #batch: Pending = emptyBatch(null);
  /** Serializes add(): a file's ops must not interleave with another's. */
  #lock: Promise<void> = Promise.resolve();

  constructor(store: BlobStore, lanes: WriteLane[]) {
    this.#store = store;
    this.#lanes = lanes;
    this.#laneBytes = lanes.map(() => 0);
    this.#laneTail = lanes.map(() => Promise.resolve());
  }

  /**
   * Plans a file; resolves once it is planned (waiting for room when too much is in
   * flight). onDone gets its outcome once its last batch is written.
   */
  add(f: FileToWrite, onDone: (o: FileOutcome) => void): Promise<void> {
    return this.locked(() => this.plan(f, onDone));
  }

  /** Runs fn once every earlier add() and flush() is done: batches are built one at a time. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#lock.then(fn);
    this.#lock = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  private async plan(f: FileToWrite, onDone: (o: FileOutcome) => void): Promise<void> {
    const file = this.#nextFile++;
    this.#outcomes.set(file, onDone);
    // Everything the index can tell is checked before anything is written.
    const entries: IndexEntry[] = [];
    let size = 0;
    try {
      for (const id of f.content) {
        const e = this.#store.lookup(id);
        if (e.kind !== ObjectKind.data)
          throw new IntegrityError(`blob ${id} is indexed with the wrong kind`);
        entries.push(e);
        size += e.rawLength;
      }
      if (f.size !== undefined && size !== f.size) {
        throw new IntegrityError(
          `${f.shown} has ${size} bytes in its chunks, the snapshot says ${f.size}`,
        );
      }
    } catch (err) {
      this.settle({
        file,
        error: (err as Error).message,
        integrity: err instanceof IntegrityError,
      });
      return;
    }
    let b = this.#batch;
    b.ops.push({ t: "begin", file, tmp: f.tmp.toString("latin1") });
    b.files++;
    let pos = 0;
    for (const [i, e] of entries.entries()) {
      const id = f.content[i] as string;
      b.reads.push({ pack: e.packId, offset: e.offset, length: e.length, op: b.ops.length, id });
      b.ops.push({
        t: "chunk",
        file,
        pos,
        buf: -1,
        off: 0,
        len: e.length,
        id,
        kind: e.kind,
        rawLength: e.rawLength,
        generation: 0,
        pack: e.packId,
      });
      pos += e.rawLength;
      b.bytes += e.length;
      if (b.bytes >= batchBytes && i < entries.length - 1) {
        // The file goes on in the next batch, on the same lane.
        const lane = this.dispatch();
        this.#batch = emptyBatch(lane);
        await this.waitForRoom();
        b = this.#batch;
      }
    }
    b.ops.push({
      t: "finish",
      file,
      size,
      mode: f.mode,
      uid: f.uid,
      gid: f.gid,
      chown: f.chown,
      mtime: f.mtime,
      at: f.at.toString("latin1"),
    });
    b.finishing.push(file);
    if (b.bytes >= batchBytes || b.files >= batchFiles) {
      this.send();
      await this.waitForRoom();
    }
  }

  /** Sends the batch being filled, if it holds anything, after the adds before it. */
  flush(): Promise<void> {
    return this.locked(async () => this.send());
  }

  private send(): void {
    if (this.#batch.ops.length === 0) return;
    this.dispatch();
    this.#batch = emptyBatch(null);
  }

  /** True while files are planned and not yet written. */
  get busy(): boolean {
    return this.#jobs.size > 0 || this.#batch.ops.length > 0;
  }

  /** Sends everything planned and waits until every file has its outcome. */
  async drain(): Promise<void> {
    await this.flush();
    while (this.#jobs.size > 0) await Promise.all(this.#jobs);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#jobs);
    await Promise.all(this.#lanes.map((l) => l.close()));
  }

  private async waitForRoom(): Promise<void> {
    while (
      (this.#inFlightBytes > maxInFlightBytes || this.#inFlightFiles > maxInFlightFiles) &&
      this.#jobs.size > 0
    ) {
      await Promise.race(this.#jobs);
    }
  }

  private settle(o: FileOutcome): void {
    const resolve = this.#outcomes.get(o.file);
    this.#outcomes.delete(o.file);
    resolve?.(o);
  }

  /** Reads the current batch's chunks and sends it to a lane; returns the lane. */
  private dispatch(): number {
    const b = this.#batch;
    const lane = b.lane ?? this.leastBusyLane();
    this.#inFlightBytes += b.bytes;
    this.#inFlightFiles += b.files;
    this.#laneBytes[lane] = (this.#laneBytes[lane] ?? 0) + b.bytes;
    const work = this.readBatch(b);
    // Sends to a lane keep their order, whatever order the reads finish in.
    const sent = Promise.all([work, this.#laneTail[lane]]).then(([w]) =>
      (this.#lanes[lane] as WriteLane).run(w),
    );
    this.#laneTail[lane] = sent.catch(() => {});
    const job: Promise<void> = sent
      .then(
        (outcomes) => {
          for (const o of outcomes) this.settle(o);
        },
        (err: unknown) => {
          for (const file of b.finishing) {
            this.settle({ file, error: (err as Error).message, integrity: false });
          }
        },
      )
      .finally(() => {
        this.#inFlightBytes -= b.bytes;
        this.#inFlightFiles -= b.files;
        this.#laneBytes[lane] = (this.#laneBytes[lane] ?? 0) - b.bytes;
        this.#jobs.delete(job);
      });
    this.#jobs.add(job);
    return lane;
  }

  private leastBusyLane(): number {
    let best = 0;
    for (let i = 1; i < this.#laneBytes.length; i++) {
      if ((this.#laneBytes[i] ?? 0) < (this.#laneBytes[best] ?? 0)) best = i;
    }
    return best;
  }

  /**
   * Reads a batch's chunks: one read per run of nearby chunks of a pack. A chunk whose read
   * fails, or whose key generation is not one this repository can open, becomes a fail op.
   */
  private async readBatch(b: Pending): Promise<WriteBatch> {
    const repo = this.#store.repo;
    const reads = [...b.reads].sort((x, y) =>
      x.pack === y.pack ? x.offset - y.offset : x.pack < y.pack ? -1 : 1,
    );
    const groups: Read[][] = [];
    for (const r of reads) {
      const g = groups.at(-1);
      const first = g?.[0];
      const last = g?.at(-1);
      if (
        g !== undefined &&
        first !== undefined &&
        last !== undefined &&
        first.pack === r.pack &&
        r.offset >= last.offset &&
        r.offset <= last.offset + last.length + readGap &&
        r.offset + r.length - first.offset <= maxReadBytes
      ) {
        g.push(r);
      } else groups.push([r]);
    }
    const buffers: Uint8Array[] = [];
    const keys = new Map<number, WriteKeys>();
    const readGroup = async (g: Read[]): Promise<void> => {
      const first = g[0] as Read;
      const start = first.offset;
      const end = Math.max(...g.map((r) => r.offset + r.length));
      let data: Buffer;
      try {
        data = await this.readPack(first.pack, start, end - start, first.id);
      } catch (err) {
        for (const r of g) b.ops[r.op] = failOp(b.ops[r.op] as WriteOp, err);
        return;
      }
      const buf = buffers.length;
      buffers.push(movable(data));
      for (const r of g) {
        const op = b.ops[r.op] as Extract<WriteOp, { t: "chunk" }>;
        try {
          const sealed = data.subarray(r.offset - start, r.offset - start + r.length);
          const k = repo.keysForSealed(sealed, `blob ${r.id}`);
          if (!keys.has(k.generation)) {
            keys.set(k.generation, {
              generation: k.generation,
              data: new Uint8Array(k.data),
              id: new Uint8Array(k.id),
            });
          }
          op.buf = buf;
          op.off = r.offset - start;
          op.generation = k.generation;
        } catch (err) {
          b.ops[r.op] = failOp(op, err);
        }
      }
    };
    for (let i = 0; i < groups.length; i += readConcurrency) {
      await Promise.all(groups.slice(i, i + readConcurrency).map(readGroup));
    }
    return { buffers, keys: [...keys.values()], ops: b.ops };
  }

  private async readPack(
    pack: string,
    offset: number,
    length: number,
    id: string,
  ): Promise<Buffer> {
    try {
      return await this.#store.repo.backend.load({ type: "data", name: pack }, offset, length);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new IntegrityError(`pack ${pack} holding blob ${id} is missing`);
      }
      throw err;
    }
  }
}

function emptyBatch(lane: number | null): Pending {
  return { ops: [], reads: [], bytes: 0, files: 0, finishing: [], lane };
}

function failOp(op: WriteOp, err: unknown): WriteOp {
  return {
    t: "fail",
    file: op.file,
    message: (err as Error).message,
    integrity: err instanceof IntegrityError,
  };
}
