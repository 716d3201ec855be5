import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { EntryStat } from "../source/fs-node.js";
import type { ListerMessage, Listing } from "./listing.js";
import { statFields } from "./listing.js";

/** Listings the worker may have ready and not yet taken: bounds memory to this many dirs. */
const maxAhead = 64;
/** Taken listings are acknowledged this many at a time: a thread message costs ~10 µs. */
const ackEvery = 16;
/** A worker that only runs readdir and lstat needs a small heap. */
const workerLimits = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 };

const S_IFMT = 0o170000n;

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

  constructor(f: BigInt64Array, o: number) {
    this.mode = f[o] as bigint;
    this.uid = f[o + 1] as bigint;
    this.gid = f[o + 2] as bigint;
    this.size = f[o + 3] as bigint;
    this.mtimeNs = f[o + 4] as bigint;
    this.ctimeNs = f[o + 5] as bigint;
    this.dev = BigInt.asUintN(64, f[o + 6] as bigint);
    this.ino = BigInt.asUintN(64, f[o + 7] as bigint);
    this.nlink = f[o + 8] as bigint;
    this.rdev = BigInt.asUintN(64, f[o + 9] as bigint);
  }

  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000n;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000n;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000n;
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === 0o010000n;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === 0o140000n;
  }
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === 0o020000n;
  }
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === 0o060000n;
  }
}

/** One directory's entries, sorted by name bytes, each with its lstat when the lister has it. */
export interface DirEntries {
  names: Buffer[];
  /** undefined: the walk lstats that entry itself (and reports any error). */
  stats: (EntryStat | undefined)[];
}

function toEntries(l: Listing): DirEntries {
  const names: Buffer[] = [];
  const stats: (EntryStat | undefined)[] = [];
  const bytes = Buffer.from(l.names.buffer, l.names.byteOffset, l.names.byteLength);
  let start = 0;
  for (let i = 0; i < l.nameEnds.length; i++) {
    const end = l.nameEnds[i] as number;
    names.push(bytes.subarray(start, end));
    start = end;
    const o = i * statFields;
    stats.push(l.stats[o] === 0n ? undefined : new ListedStat(l.stats, o));
  }
  return { names, stats };
}

/**
 * Lists directories on a worker thread ahead of the archiver's walk: readdir and lstat are
 * most of an unchanged re-run's main-thread time, and the second core is idle then. The
 * walk says which directories it will enter (prefetch) and takes each listing when it gets
 * there (take); a directory it never asked for, or one the lister could not read, it lists
 * itself. Memory: at most maxAhead listings wait.
 */
export class DirLister {
  readonly #worker: Worker;
  readonly #ready = new Map<string, Listing>();
  readonly #waiting = new Map<string, (l: Listing) => void>();
  readonly #requested = new Set<string>();
  #unacknowledged = 0;
  #failed = false;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on("message", (l: Listing) => {
      const key = Buffer.from(l.dir).toString("latin1");
      const waiter = this.#waiting.get(key);
      if (waiter !== undefined) {
        this.#waiting.delete(key);
        waiter(l);
      } else if (this.#requested.has(key) && !this.#ready.has(key)) this.#ready.set(key, l);
      else this.consumed(); // a second listing of a directory asked for twice
    });
    worker.on("error", () => this.fail());
    worker.unref();
  }

  /** A lister for the compiled build; null when the worker script is not there (tests
   * that run from TypeScript sources): the walk then lists every directory itself. */
  static start(): DirLister | null {
    const url = new URL("./lister-worker.js", import.meta.url);
    if (!existsSync(fileURLToPath(url))) return null;
    return new DirLister(
      new Worker(url, { workerData: { maxAhead }, resourceLimits: workerLimits }),
    );
  }

  /** Asks for these directories' listings, in the order the walk will enter them. */
  prefetch(dirs: Buffer[]): void {
    if (this.#failed) return;
    const wanted: Buffer[] = [];
    for (const d of dirs) {
      const key = d.toString("latin1");
      if (this.#requested.has(key)) continue;
      this.#requested.add(key);
      wanted.push(d);
    }
    if (wanted.length === 0) return;
    this.#worker.ref();
    this.#worker.postMessage({ dirs: wanted } satisfies ListerMessage);
  }

  /**
   * The listing of dir (asked for with prefetch first), or null when the lister could not
   * read it: the walk then lists it itself and reports the error.
   */
  async take(dir: Buffer): Promise<DirEntries | null> {
    const key = dir.toString("latin1");
    if (!this.#requested.has(key) || this.#failed) return null;
    let l = this.#ready.get(key);
    if (l !== undefined) this.#ready.delete(key);
    else {
      // Not listed yet: the worker lists it next, even if maxAhead listings wait (they
      // may be ones the walk needs only after this one).
      const listed = new Promise<Listing>((resolve) => this.#waiting.set(key, resolve));
      this.acknowledge();
      this.#worker.postMessage({ urgent: dir } satisfies ListerMessage);
      l = await listed;
    }
    this.#requested.delete(key);
    this.consumed();
    if (this.#requested.size === 0) this.#worker.unref();
    return l.failed ? null : toEntries(l);
  }

  private consumed(): void {
    if (++this.#unacknowledged >= ackEvery) this.acknowledge();
  }

  private acknowledge(): void {
    if (this.#unacknowledged === 0) return;
    this.#worker.postMessage({ consumed: this.#unacknowledged } satisfies ListerMessage);
    this.#unacknowledged = 0;
  }

  private fail(): void {
    this.#failed = true;
    const empty: Listing = {
      dir: new Uint8Array(0),
      names: new Uint8Array(0),
      nameEnds: new Uint32Array(0),
      stats: new BigInt64Array(0),
      failed: true,
    };
    for (const w of this.#waiting.values()) w(empty);
    this.#waiting.clear();
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}
