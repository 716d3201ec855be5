import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { FileOutcome, WriteBatch } from "./write-ops.js";
import { FileWriter } from "./write-ops.js";
import type { WriteResult } from "./write-worker.js";

/** A worker keeps no state but open files and a zstd context: a small heap is plenty. */
const workerLimits = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 48 };

/**
 * Where write batches run: one lane per restore worker, or a single lane on the main
 * thread when there is no worker (one core, or tests running the TypeScript sources).
 * Batches sent to one lane run in the order sent; a file's batches all go to one lane.
 */
export interface WriteLane {
  run(batch: WriteBatch): Promise<FileOutcome[]>;
  close(): Promise<void>;
}

export function startWriteLanes(repositoryId: Buffer, n = defaultLanes()): WriteLane[] {
  const url = new URL("./write-worker.js", import.meta.url);
  if (n < 1 || !existsSync(fileURLToPath(url))) return [new InlineLane(repositoryId)];
  return Array.from({ length: n }, () => new WorkerLane(url, repositoryId));
}

/**
 * One worker per core: the main thread only walks trees and reads packs, the workers
 * decrypt, decompress, re-hash and write (and wait in the kernel while they write).
 */
function defaultLanes(): number {
  const env = Number(process.env.COFFER_RESTORE_LANES);
  if (Number.isInteger(env) && env >= 0) return env;
  return Math.min(4, availableParallelism());
}

class InlineLane implements WriteLane {
  readonly #writer: FileWriter;

  constructor(repositoryId: Buffer) {
    this.#writer = new FileWriter(repositoryId);
  }

  async run(batch: WriteBatch): Promise<FileOutcome[]> {
    return this.#writer.run(batch);
  }

  async close(): Promise<void> {
    this.#writer.close();
  }
}

class WorkerLane implements WriteLane {
  readonly #worker: Worker;
  readonly #waiting = new Map<
    number,
    { resolve: (o: FileOutcome[]) => void; reject: (e: Error) => void }
  >();
  #next = 0;
  #failed: Error | null = null;

  constructor(url: URL, repositoryId: Buffer) {
    this.#worker = new Worker(url, {
      workerData: { repositoryId },
      resourceLimits: workerLimits,
    });
    this.#worker.on("message", (r: WriteResult) => {
      const waiter = this.#waiting.get(r.batch);
      if (waiter === undefined) return;
      this.#waiting.delete(r.batch);
      if (this.#waiting.size === 0) this.#worker.unref();
      if (r.error === undefined) waiter.resolve(r.outcomes ?? []);
      else waiter.reject(new Error(`restore worker: ${r.error}`));
    });
    this.#worker.on("error", (err) => {
      this.#failed = err;
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
      this.#worker.unref();
    });
    this.#worker.unref();
  }

  run(batch: WriteBatch): Promise<FileOutcome[]> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      if (this.#waiting.size === 0) this.#worker.ref();
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage(
        { batch: id, work: batch },
        batch.buffers.map((b) => b.buffer as ArrayBuffer),
      );
    });
  }

  async close(): Promise<void> {
    if (this.#failed === null) {
      // Lets the worker remove temp files of files never finished, then stops it.
      await new Promise<void>((resolve) => {
        this.#worker.ref();
        this.#waiting.set(-1, { resolve: () => resolve(), reject: () => resolve() });
        this.#worker.postMessage({ close: true });
      });
    }
    await this.#worker.terminate();
  }
}
