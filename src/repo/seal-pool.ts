import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { RepositoryKeys } from "../crypto/keys.js";
import type { BlobKind } from "./blob.js";
import type { SealJob, SealResult } from "./seal-worker.js";

/**
 * Worker threads that compress and seal large blobs while the main thread reads, chunks
 * and hashes: zstd is the most expensive step of a first backup, and one thread cannot
 * keep both cores busy. Small blobs are sealed inline, where a thread round trip would
 * cost more than the work.
 */
/** A worker keeps no state but its keys and zstd context: a small heap is plenty. */
const workerLimits = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 48 };

export class SealPool {
  readonly #workers: Worker[];
  readonly #waiting = new Map<
    number,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void }
  >();
  /**
   * Jobs per worker. A worker keeps the process alive only while it has jobs: an idle
   * pool must not stop the CLI from exiting, a busy one must not let it exit early.
   */
  readonly #jobs = new Map<Worker, number>();
  #next = 0;

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    for (const w of workers) {
      w.on("message", (r: SealResult) => {
        const waiter = this.#waiting.get(r.job);
        if (waiter === undefined) return;
        this.#waiting.delete(r.job);
        this.release(w);
        if (r.sealed)
          waiter.resolve(Buffer.from(r.sealed.buffer, r.sealed.byteOffset, r.sealed.byteLength));
        else waiter.reject(new Error(`seal worker: ${r.error ?? "no result"}`));
      });
      w.on("error", (err) => this.failAll(err));
      w.unref();
    }
  }

  /**
   * A pool for the compiled build; null when the worker script is not there (tests run
   * from TypeScript sources) or there is one core only.
   */
  static start(repositoryId: Buffer, keys: RepositoryKeys): SealPool | null {
    const url = new URL("./seal-worker.js", import.meta.url);
    if (!existsSync(fileURLToPath(url))) return null;
    const n = Math.min(2, availableParallelism() - 1);
    if (n < 1) return null;
    const workerData = {
      repositoryId,
      keys: { generation: keys.generation, data: keys.data, id: keys.id },
    };
    return new SealPool(
      Array.from(
        { length: n },
        () => new Worker(url, { workerData, resourceLimits: workerLimits }),
      ),
    );
  }

  seal(kind: BlobKind, id: Buffer, plaintext: Buffer): Promise<Buffer> {
    const job = this.#next++;
    const worker = this.#workers[job % this.#workers.length] as Worker;
    // Transfer the chunk's memory when it owns its whole ArrayBuffer; copy otherwise.
    const own = plaintext.byteOffset === 0 && plaintext.byteLength === plaintext.buffer.byteLength;
    const data = own ? plaintext : Buffer.from(plaintext);
    const message: SealJob = { job, kind, id, plaintext: data };
    return new Promise((resolve, reject) => {
      this.#waiting.set(job, { resolve, reject });
      const n = this.#jobs.get(worker) ?? 0;
      if (n === 0) worker.ref();
      this.#jobs.set(worker, n + 1);
      worker.postMessage(message, [data.buffer as ArrayBuffer]);
    });
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
