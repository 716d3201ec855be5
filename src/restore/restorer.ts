import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, lchownSync, utimesSync } from "node:fs";
import * as fs from "node:fs/promises";
import { promisify } from "node:util";
import pLimit from "p-limit";
import { type CofferError, IntegrityError, UserError } from "../errors.js";
import type { BlobStore } from "../repo/blob-store.js";
import type { TreeNode } from "../repo/tree.js";
import { rawName, rawTarget } from "../repo/tree.js";
import { joinPath } from "../source/fs-node.js";
import { checkName, checkUniqueNames } from "./safe-path.js";
import { displayPath, loadTree } from "./tree-walk.js";
import type { FileOutcome } from "./write-ops.js";
import { WritePlanner } from "./write-plan.js";
import { startWriteLanes } from "./write-pool.js";

const run = promisify(execFile);

/**
 * Further hard links waiting for their first file at once; past this the walk waits.
 */
const maxLinksWaiting = 256;
/**
 * Symlinks created at once, at the end. Each needs a new inode, which the kernel can take
 * hundreds of microseconds to find on a busy file system: one at a time, the bench
 * corpus's 4,500 links kept one core busy for 1.5 s while the other idled.
 */
const symlinkConcurrency = 8;

export interface RestoreEvents {
  /** A file that could not be restored; integrity errors make the restore exit 20. */
  onError(path: string, err: CofferError | Error): void;
  onWarning(path: string, message: string): void;
}

export interface RestoreCounters {
  files: number;
  dirs: number;
  bytes: number;
  errors: number;
  integrityErrors: number;
}

/**
 * Writes a snapshot's tree under a target directory. Never writes outside it: names are
 * single checked components, every directory entered is one we created or found as a
 * real directory (never a symlink), files are written to a fresh temp name and renamed,
 * and symlinks are created only after everything else.
 */
export class Restorer {
  readonly #store: BlobStore;
  readonly #events: RestoreEvents;
  readonly #include: ((snapshotPath: string) => boolean) | null;
  readonly #asRoot = process.getuid?.() === 0;
  /**
   * dev:inode of hard-linked files in the snapshot → where the first was restored (null
   * when it failed), once it is done.
   */
  readonly #links = new Map<string, Promise<Buffer | null>>();
  /** Further hard links waiting for their first file. */
  readonly #inFlight = new Set<Promise<void>>();
  #planner: WritePlanner | null = null;
  readonly #tmpPrefix = randomBytes(6).toString("hex");
  #tmpCounter = 0;
  readonly #symlinks: { at: Buffer; node: TreeNode; shown: string }[] = [];
  readonly #dirMeta: { at: Buffer; node: TreeNode }[] = [];
  readonly counters: RestoreCounters = {
    files: 0,
    dirs: 0,
    bytes: 0,
    errors: 0,
    integrityErrors: 0,
  };

  constructor(
    store: BlobStore,
    events: RestoreEvents,
    include: ((snapshotPath: string) => boolean) | null,
  ) {
    this.#store = store;
    this.#events = events;
    this.#include = include;
  }

  async restore(node: TreeNode, names: Buffer[], target: string): Promise<void> {
    await fs.mkdir(target, { recursive: true, mode: 0o700 });
    const st = await fs.stat(target);
    if (!st.isDirectory()) throw new UserError(`--target ${target} is not a directory`);
    const base = Buffer.from(target);
    const planner = new WritePlanner(this.#store, startWriteLanes(this.#store.repo.id));
    this.#planner = planner;
    try {
      if (node.type === "dir") {
        await this.restoreDirContents(node, names, base, this.matchesAncestor(names));
      } else {
        const name = names.at(-1) ?? rawName(node);
        await this.restoreNode(node, names, joinPath(base, name), true);
      }
      await this.drain();
    } finally {
      // After an error in the walk, the files already planned are still written.
      await this.drain().catch(() => {});
      await planner.close();
      this.#planner = null;
    }
    const limit = pLimit(symlinkConcurrency);
    await Promise.all(
      this.#symlinks.map((l) => limit(() => this.makeSymlink(l.at, l.node, l.shown))),
    );
    // Directory times last, children before parents, so writing inside does not move them.
    for (const d of this.#dirMeta.reverse()) this.applyMetadata(d.at, d.node);
  }

  /** Waits until every planned file and every waiting hard link is done. */
  private async drain(): Promise<void> {
    while (this.#inFlight.size > 0 || this.#planner?.busy) {
      await this.#planner?.drain();
      await Promise.all(this.#inFlight);
    }
  }

  private matchesAncestor(names: readonly Buffer[]): boolean {
    if (this.#include === null) return true;
    for (let i = 1; i <= names.length; i++) {
      if (this.#include(displayPath(names.slice(0, i)))) return true;
    }
    return false;
  }

  /** Restores a directory's children into `at`; returns whether anything was restored. */
  private async restoreDirContents(
    node: TreeNode,
    names: Buffer[],
    at: Buffer,
    included: boolean,
  ): Promise<boolean> {
    const shown = displayPath(names);
    if (node.subtree === undefined) throw new IntegrityError(`directory ${shown} has no tree`);
    const tree = await loadTree(this.#store, node.subtree);
    const childNames = tree.nodes.map(rawName);
    childNames.forEach((n) => {
      checkName(n, shown);
    });
    checkUniqueNames(childNames, shown);
    let any = false;
    for (const [i, child] of tree.nodes.entries()) {
      const name = childNames[i] as Buffer;
      const childPath = [...names, name];
      const childIncluded =
        included || this.#include === null || this.#include(displayPath(childPath));
      if (await this.restoreNode(child, childPath, joinPath(at, name), childIncluded)) any = true;
    }
    return any;
  }

  private async restoreNode(
    node: TreeNode,
    names: Buffer[],
    at: Buffer,
    included: boolean,
  ): Promise<boolean> {
    const shown = displayPath(names);
    if (node.type === "dir") {
      await this.makeDir(at, shown);
      const any = await this.restoreDirContents(node, names, at, included);
      if (!any && !included) {
        await fs.rmdir(at).catch(() => {});
        return false;
      }
      this.counters.dirs++;
      this.#dirMeta.push({ at, node });
      return true;
    }
    if (!included) return false;
    try {
      switch (node.type) {
        case "file":
          await this.scheduleFile(node, at, shown);
          return true;
        case "symlink":
          this.#symlinks.push({ at, node, shown });
          return true;
        case "fifo":
          await this.replaceWith(at, async () => {
            await run("mkfifo", ["-m", (node.mode & 0o777).toString(8), "--", at.toString()]);
          });
          this.applyMetadata(at, node);
          return true;
        default:
          this.#events.onWarning(shown, `${node.type} not restored`);
          return false;
      }
    } catch (err) {
      this.fail(shown, err);
      return false;
    }
  }

  private fail(shown: string, err: unknown): void {
    this.counters.errors++;
    if (err instanceof IntegrityError) this.counters.integrityErrors++;
    this.#events.onError(shown, err instanceof Error ? err : new Error(String(err)));
  }

  /** Creates a directory, or accepts an existing real one; a symlink in its place is refused. */
  private async makeDir(at: Buffer, shown: string): Promise<void> {
    try {
      await fs.mkdir(at, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const st = await fs.lstat(at);
      if (!st.isDirectory()) {
        throw new UserError(
          `cannot restore ${shown}: ${at.toString()} exists and is not a directory`,
        );
      }
    }
  }

  /**
   * Plans a file (write-plan.ts); its outcome is reported when its batch is written. A
   * further hard link to a file waits for the first and links to it (or, if the first
   * failed, is restored in full).
   */
  private async scheduleFile(node: TreeNode, at: Buffer, shown: string): Promise<void> {
    const linkKey =
      (node.links ?? 1) > 1 && node.inode !== undefined ? `${node.dev}:${node.inode}` : null;
    const first = linkKey !== null ? this.#links.get(linkKey) : undefined;
    if (first === undefined) {
      let placed: (restoredAt: Buffer | null) => void = () => {};
      if (linkKey !== null) {
        this.#links.set(linkKey, new Promise((resolve) => (placed = resolve)));
      }
      try {
        await this.planFile(node, at, shown, placed);
      } catch (err) {
        placed(null);
        throw err;
      }
      return;
    }
    while (this.#inFlight.size >= maxLinksWaiting) {
      // The first files may still sit in the batch being filled.
      await this.#planner?.flush();
      await Promise.race(this.#inFlight);
    }
    const job = (async () => {
      try {
        const linkTo = await first;
        if (linkTo !== null) {
          await this.replaceWith(at, () => fs.link(linkTo, at));
          this.counters.files++;
        } else {
          const done = new Promise<unknown>((resolve) => {
            this.planFile(node, at, shown, resolve).catch((err: unknown) => {
              this.fail(shown, err);
              resolve(null);
            });
          });
          await this.#planner?.flush();
          await done;
        }
      } catch (err) {
        this.fail(shown, err);
      }
    })().finally(() => this.#inFlight.delete(job));
    this.#inFlight.add(job);
  }

  /**
   * Plans the file's write to a temp name in its directory (created O_EXCL|O_NOFOLLOW:
   * never through something an attacker placed there; renamed into place once every
   * chunk has verified). Resolves once planned; placed() gets where the file is once it
   * is in place, or null when it failed (the failure is reported here).
   */
  private async planFile(
    node: TreeNode,
    at: Buffer,
    shown: string,
    placed: (restoredAt: Buffer | null) => void,
  ): Promise<void> {
    const planner = this.#planner;
    if (planner === null) throw new Error("restore: internal error: no planner");
    // One random prefix per run and a counter: names nobody can guess in advance, without
    // a CSPRNG call per file. Not derived from the file's name, so never too long.
    const dir = at.subarray(0, at.lastIndexOf(0x2f) + 1);
    const tmp = Buffer.concat([
      dir,
      Buffer.from(`.coffer-tmp-${this.#tmpPrefix}-${(this.#tmpCounter++).toString(36)}`),
    ]);
    const file = {
      tmp,
      at,
      shown,
      content: node.content ?? [],
      size: node.size,
      mode: node.mode & 0o7777,
      uid: node.uid,
      gid: node.gid,
      chown: this.#asRoot,
      mtime: mtimeSeconds(node),
    };
    await planner.add(file, (o: FileOutcome) => {
      if (o.error !== undefined) {
        this.fail(shown, o.integrity ? new IntegrityError(o.error) : new Error(o.error));
        placed(null);
        return;
      }
      this.counters.files++;
      this.counters.bytes += o.bytes ?? 0;
      placed(at);
    });
  }

  private async makeSymlink(at: Buffer, node: TreeNode, shown: string): Promise<void> {
    try {
      await this.replaceWith(at, () => fs.symlink(rawTarget(node), at));
      if (this.#asRoot) await fs.lchown(at, node.uid, node.gid).catch(() => {});
      const mtime = mtimeSeconds(node);
      await fs.lutimes(at, mtime, mtime).catch(() => {});
      this.counters.files++;
    } catch (err) {
      this.fail(shown, err);
    }
  }

  /** Runs create(); if something not a directory is already there, replaces it. */
  private async replaceWith(at: Buffer, create: () => Promise<unknown>): Promise<void> {
    try {
      await create();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const st = await fs.lstat(at);
      if (st.isDirectory()) throw new UserError(`${at.toString()} exists and is a directory`);
      await fs.unlink(at);
      await create();
    }
  }

  /**
   * Owner, mode and time of a directory or fifo, by path. Synchronous: directories' run at
   * the end, one after another (children first), with nothing else left to do, and a
   * thread-pool round trip per call cost more than the call.
   */
  private applyMetadata(at: Buffer, node: TreeNode): void {
    if (this.#asRoot) {
      try {
        lchownSync(at, node.uid, node.gid);
      } catch {}
    }
    chmodSync(at, node.mode & 0o7777);
    const mtime = mtimeSeconds(node);
    utimesSync(at, mtime, mtime);
  }
}

/**
 * Seconds as the utimes calls want them. They truncate the double to whole microseconds,
 * and µs / 1e6 is often a hair below the true value: half a microsecond more lands on it.
 */
function mtimeSeconds(node: TreeNode): number {
  return (Number(BigInt(node.mtime) / 1000n) + 0.5) / 1e6;
}
