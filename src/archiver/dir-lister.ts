import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { EntryStat } from "../source/fs-node.js";
import type { ListerData } from "./lister-worker.js";
import {
  RecordKind,
  type RingListing,
  RingReader,
  ringBuffer,
  statFields,
} from "./listing-ring.js";

/**
 * Ring size: about 40,000 entries of a typical tree. The lister runs at most this far
 * ahead of the walk, so it is also what the listings can cost in memory.
 */
const ringBytes = 4 * 1024 * 1024;
/** Listings read while looking for another directory, kept until the walk asks. */
const maxStashed = 256;
/**
 * How long the walk waits for a lister that shows no progress (no listing written, no
 * sign of work on one) before it lists a directory itself and stops the lister.
 */
const maxWaitMs = 2000;
/**
 * The lister runs readdir and lstat, and holds one directory's names (about 40 bytes
 * each): 64 MiB is a directory of over a million entries. A larger one ends the lister
 * (out of memory), and the walk, seeing no progress, lists the rest itself.
 */
const workerLimits = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 };

const S_IFMT = 0o170000n;

/**
 * Whether a walk takes its listings from a lister thread. A re-run's walk is mostly lstat
 * calls, and the lister takes them off the main thread. A run that reads every file (no
 * parent snapshot) keeps the main thread and a seal worker per core busy; there a lister
 * only took CPU from sealing (2 cores, first backup of the bench corpus: 5% more CPU,
 * ~30 MiB more memory, no less time), so it runs only when a core is left for it.
 */
export function listerPaysOff(hasParent: boolean, cores: number, sealWorkers: number): boolean {
  return hasParent || cores > sealWorkers + 1;
}

/** lstat fields from the lister, shaped like the part of BigIntStats the walk reads. */
class ListedStat implements EntryStat {
  readonly mode: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly nlink: bigint;
  readonly rdev: bigint;
  readonly #type: bigint;

  constructor(f: BigInt64Array, o: number) {
    this.mode = f[o] as bigint;
    this.uid = f[o + 1] as bigint;
    this.gid = f[o + 2] as bigint;
    this.size = f[o + 3] as bigint;
    this.mtimeNs = f[o + 4] as bigint;
    this.ctimeNs = f[o + 5] as bigint;
    // As Node's own BigIntStats: the same signed 64-bit values its lstat returns.
    this.dev = f[o + 6] as bigint;
    this.ino = f[o + 7] as bigint;
    this.nlink = f[o + 8] as bigint;
    this.rdev = f[o + 9] as bigint;
    this.#type = this.mode & S_IFMT;
  }

  isFile(): boolean {
    return this.#type === 0o100000n;
  }
  isDirectory(): boolean {
    return this.#type === 0o040000n;
  }
  isSymbolicLink(): boolean {
    return this.#type === 0o120000n;
  }
  isFIFO(): boolean {
    return this.#type === 0o010000n;
  }
  isSocket(): boolean {
    return this.#type === 0o140000n;
  }
  isCharacterDevice(): boolean {
    return this.#type === 0o020000n;
  }
  isBlockDevice(): boolean {
    return this.#type === 0o060000n;
  }
}

/** One directory's names, sorted by bytes, each with its lstat when the lister has it. */
export interface DirEntries {
  names: Buffer[];
  /** Entry i's lstat; undefined: the walk lstats that entry itself (and reports any error). */
  stat(i: number): EntryStat | undefined;
}

/**
 * A listing's stats stay in their typed array until the walk reaches each entry: an
 * object of ten bigints per entry, made up front, cost ~300 bytes an entry for as long as
 * the directory was being walked.
 */
function entriesOf(l: RingListing): DirEntries {
  const fields = l.stats;
  return {
    names: l.names,
    stat: (i) => {
      const o = i * statFields;
      return fields[o] === 0n ? undefined : new ListedStat(fields, o);
    },
  };
}

/**
 * The walk's wait for the lister: over once maxWaitMs pass without progress. A thread that
 * is still listing (a directory of a million entries takes seconds) is waited for; one
 * that stopped is not. The walk's wait is synchronous, so a worker's exit or error event
 * would reach it only after the wait: progress is what it can see.
 */
class Patience {
  readonly #ring: RingReader;
  #seen: number;
  #deadline: number;

  constructor(ring: RingReader) {
    this.#ring = ring;
    this.#seen = ring.progress;
    this.#deadline = Date.now() + maxWaitMs;
  }

  exhausted(): boolean {
    const now = Date.now();
    const progress = this.#ring.progress;
    if (progress !== this.#seen) {
      this.#seen = progress;
      this.#deadline = now + maxWaitMs;
    }
    return now > this.#deadline;
  }
}

/**
 * Lists the backup's directories on a worker thread ahead of the walk (lister-worker.ts):
 * readdir and lstat are most of a re-run's main-thread time while the other core idles.
 * The listings come through shared memory, not thread messages, which cost more than the
 * calls they would move. The walk takes each directory's listing as it enters it; one the
 * lister could not read, did not reach in time, or never lists, the walk lists itself.
 */
export class DirLister {
  readonly #worker: Worker;
  readonly #ring: RingReader;
  readonly #stashed = new Map<string, RingListing>();
  #off = false;
  /** The worker has exited: whatever it wrote is in the ring, nothing more will come. */
  #exited = false;

  private constructor(worker: Worker, ring: RingReader) {
    this.#worker = worker;
    this.#ring = ring;
    worker.on("error", () => this.stop());
    worker.on("exit", () => {
      this.#exited = true;
    });
    worker.unref();
  }

  /**
   * A lister for these backup roots (absolute, in the walk's order) and exclude patterns;
   * null when the worker script is not there (tests that run from TypeScript sources).
   */
  static start(roots: readonly string[], exclude: readonly string[]): DirLister | null {
    const url = new URL("./lister-worker.js", import.meta.url);
    if (!existsSync(fileURLToPath(url))) return null;
    const shared = ringBuffer(ringBytes);
    const workerData: ListerData = {
      ring: shared,
      roots: roots.map((r) => new Uint8Array(Buffer.from(r))),
      exclude: [...exclude],
    };
    const worker = new Worker(url, { workerData, resourceLimits: workerLimits });
    return new DirLister(worker, new RingReader(shared));
  }

  /** dir's listing from the lister, or null: the walk then lists dir itself. */
  take(dir: Buffer): DirEntries | null {
    if (this.#off) return null;
    if (this.#stashed.size > 0) {
      const key = dir.toString("latin1");
      const stashed = this.#stashed.get(key);
      if (stashed !== undefined) {
        this.#stashed.delete(key);
        return stashed.kind === RecordKind.listed ? entriesOf(stashed) : null;
      }
    }
    const patience = new Patience(this.#ring);
    for (;;) {
      const l = this.nextListing(patience);
      if (l === null) {
        if (this.#ring.drained || this.#exited || this.#off) return null;
        if (patience.exhausted()) {
          this.stop(); // stuck, or gone (out of memory): the walk lists the rest itself
          return null;
        }
        this.#ring.wait(20);
        continue;
      }
      if (l.path.equals(dir)) return l.kind === RecordKind.listed ? entriesOf(l) : null;
      // Listed ahead of a directory the walk asks for out of the lister's order.
      this.#stashed.set(l.path.toString("latin1"), l);
      if (this.#stashed.size > maxStashed) {
        this.stop();
        return null;
      }
    }
  }

  /** The next directory's listing, its parts (a large directory's) joined; null: none yet. */
  private nextListing(patience: Patience): RingListing | null {
    const first = this.#ring.next();
    if (first === null || first.kind !== RecordKind.listedPart) return first;
    const names = [...first.names];
    const parts = [first.stats];
    for (;;) {
      const part = this.#ring.next();
      if (part === null) {
        if (this.#ring.drained || this.#exited || patience.exhausted()) {
          this.stop();
          return {
            kind: RecordKind.unreadable,
            path: first.path,
            names: [],
            stats: new BigInt64Array(0),
          };
        }
        this.#ring.wait(20);
        continue;
      }
      for (const name of part.names) names.push(name);
      parts.push(part.stats);
      if (part.kind === RecordKind.listedPart) continue;
      const stats = new BigInt64Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        stats.set(p, o);
        o += p.length;
      }
      return { kind: part.kind, path: first.path, names, stats };
    }
  }

  /** Stops the lister; the walk lists whatever it still needs itself. */
  stop(): void {
    this.#off = true;
    this.#stashed.clear();
    void this.#worker.terminate();
  }
}
