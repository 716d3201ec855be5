import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { RepositoryKeys } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { BlobKind } from "./blob.js";
import type { BlobSlice } from "./blob-check.js";
import type { BlobBatch } from "./seal-batch.js";
import type { OpenJob, SealJob, SealResult } from "./seal-worker.js";

/** Jobs waiting at the least busy worker before another worker is started. */
export const queuedPerWorker = 2;

/** Seal workers a pool starts with no count given: one per core, at most four. */
export function defaultSealWorkers(cores = availableParallelism()): number {
  return Math.min(4, cores);
}

/** A worker keeps no state but its keys and zstd context: a small heap is plenty. */
const workerLimits = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 48 };

/**
 * Worker threads that compress and seal large blobs while the main thread reads, chunks
 * and hashes: zstd is the most expensive step of a first backup, and one thread cannot
 * keep both cores busy. Small blobs travel in batches (seal-batch.ts): one thread round
 * trip per small blob would cost more than sealing it.
 */
export class SealPool {
  readonly #workers: Worker[] = [];
  readonly #spawn: () => Worker;
  readonly #max: number;
  readonly #waiting = new Map<
    number,
    { resolve: (r: SealResult & { sealed: Uint8Array }) => void; reject: (e: Error) => void }
  >();
  /**
   * Jobs per worker. A worker keeps the process alive only while it has jobs: an idle
   * pool must not stop the CLI from exiting, a busy one must not let it exit early.
   */
  readonly #jobs = new Map<Worker, number>();
  /** Workers that have answered at least one job: started up and running. */
  readonly #ready = new Set<Worker>();
  #next = 0;

  private constructor(spawn: () => Worker, max: number) {
    this.#spawn = spawn;
    this.#max = max;
  }

  /** The most workers this pool runs (it starts them one at a time, as work needs them). */
  get size(): number {
    return this.#max;
  }

  /**
   * A pool of up to n workers for the compiled build (by default one per core, at most 4:
   * the main thread's reads, chunking and hashing then share a core with a worker, and the
   * scheduler keeps every core busy); null when the worker script is not there (tests run
   * from TypeScript sources) or n is 0. Workers start as jobs arrive that find every
   * started worker running and a full queue at the least busy one (needsAnotherWorker):
   * a re-run that seals a few megabytes mostly runs one worker, not n (each costs tens of
   * MiB of memory and ~0.1 s of CPU to start).
   */
  static start(
    repositoryId: Buffer,
    keys: RepositoryKeys,
    n = defaultSealWorkers(),
  ): SealPool | null {
    const url = new URL("./seal-worker.js", import.meta.url);
    if (!existsSync(fileURLToPath(url))) return null;
    if (n < 1) return null;
    const workerData = {
      repositoryId,
      keys: { generation: keys.generation, data: keys.data, id: keys.id },
    };
    return new SealPool(() => new Worker(url, { workerData, resourceLimits: workerLimits }), n);
  }

  private addWorker(): Worker {
    const w = this.#spawn();
    w.on("message", (r: SealResult) => {
      const waiter = this.#waiting.get(r.job);
      if (waiter === undefined) return;
      this.#waiting.delete(r.job);
      this.#ready.add(w);
      this.release(w);
      if (r.error === undefined) waiter.resolve({ ...r, sealed: r.sealed ?? new Uint8Array(0) });
      else if (r.integrity) waiter.reject(new IntegrityError(r.error));
      else waiter.reject(new Error(`seal worker: ${r.error}`));
    });
    w.on("error", (err) => this.failAll(err));
    w.unref();
    this.#workers.push(w);
    this.#jobs.set(w, 0);
    return w;
  }

  async seal(kind: BlobKind, id: Buffer, plaintext: Buffer): Promise<Buffer> {
    const data = movable(plaintext);
    const r = await this.post({ job: 0, kind, id, plaintext: data }, [data.buffer as ArrayBuffer]);
    return Buffer.from(r.sealed.buffer, r.sealed.byteOffset, r.sealed.byteLength);
  }

  /** Seals a batch of small blobs; their sealed forms come back in the batch's order. */
  async sealBatch(batch: BlobBatch): Promise<Buffer[]> {
    // Only the plaintexts move; kinds, ids and lengths are copied, as the caller needs them.
    const r = await this.post({ job: 0, batch }, [batch.data.buffer as ArrayBuffer]);
    const lengths = r.lengths ?? new Uint32Array(0);
    const all = Buffer.from(r.sealed.buffer, r.sealed.byteOffset, r.sealed.byteLength);
    const out: Buffer[] = [];
    let offset = 0;
    for (const length of lengths) {
      out.push(all.subarray(offset, offset + length));
      offset += length;
    }
    return out;
  }

  /**
   * Opens and checks the blobs of a pack slice on the least busy worker; resolves to one
   * message per failure, and the slice's memory (moved to the worker and back) for reuse.
   */
  async verifySlice(slice: BlobSlice): Promise<{ problems: string[]; data: Uint8Array | null }> {
    const data = movable(slice.data);
    const r = await this.post({ job: 0, verify: { ...slice, data } }, [data.buffer as ArrayBuffer]);
    return { problems: r.problems ?? [], data: r.data ?? null };
  }

  /** Opens one sealed blob (authenticated, decompressed, id re-checked). */
  async open(job: OpenJob): Promise<Buffer> {
    const data = movable(job.sealed);
    const r = await this.post({ job: 0, open: { ...job, sealed: data } }, [
      data.buffer as ArrayBuffer,
    ]);
    const p = r.plaintext ?? new Uint8Array(0);
    return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  }

  /** Sends a job to the least busy worker, starting another when every one is busy. */
  private post(
    message: SealJob,
    transfer: ArrayBuffer[],
  ): Promise<SealResult & { sealed: Uint8Array }> {
    const job = this.#next++;
    let worker: Worker | undefined;
    for (const w of this.#workers) {
      if (worker === undefined || (this.#jobs.get(w) ?? 0) < (this.#jobs.get(worker) ?? 0)) {
        worker = w;
      }
    }
    if (worker === undefined || this.needsAnotherWorker(this.#jobs.get(worker) ?? 0)) {
      worker = this.addWorker();
    }
    const chosen = worker;
    return new Promise((resolve, reject) => {
      this.#waiting.set(job, { resolve, reject });
      const n = this.#jobs.get(chosen) ?? 0;
      if (n === 0) chosen.ref();
      this.#jobs.set(chosen, n + 1);
      chosen.postMessage({ ...message, job }, transfer);
    });
  }

  /**
   * Another worker starts only once every started one has answered a job and the least
   * busy still has a full queue. A worker costs ~0.1 s of CPU to start: a re-run that
   * seals a few changed files started two at once, and they took that CPU from the walk.
   */
  private needsAnotherWorker(leastBusyJobs: number): boolean {
    return (
      this.#workers.length < this.#max &&
      this.#ready.size === this.#workers.length &&
      leastBusyJobs >= queuedPerWorker
    );
  }

  private release(worker: Worker): void {
    const n = (this.#jobs.get(worker) ?? 1) - 1;
    this.#jobs.set(worker, n);
    if (n === 0) worker.unref();
  }

  private failAll(err: Error): void {
    for (const w of this.#waiting.values()) w.reject(err);
    this.#waiting.clear();
    for (const w of this.#workers) {
      this.#jobs.set(w, 0);
      w.unref();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

/**
 * Memory that can be transferred to a worker: b itself when it owns its whole ArrayBuffer,
 * else a copy (a slice of Node's shared pool must never be detached).
 */
export function movable(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);
}
