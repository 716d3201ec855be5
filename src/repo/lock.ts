import { hostname, userInfo } from "node:os";
import { ObjectKind } from "../crypto/seal.js";
import { LockError } from "../errors.js";
import type { Repository } from "./repository.js";
import { randomId } from "./repository.js";

// Locks (docs/FORMAT.md §Locks): sealed JSON objects under locks/. Backups take shared
// locks, maintenance an exclusive one. A lock is refreshed while held; one whose process
// is gone (same host) or that has not been refreshed for staleAfterMs is ignored.

export const refreshEveryMs = 5 * 60 * 1000;
export const staleAfterMs = 30 * 60 * 1000;

export interface LockInfo {
  exclusive: boolean;
  hostname: string;
  username: string;
  pid: number;
  time: string;
}

export interface LockEntry {
  id: string;
  info: LockInfo | null;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function isStale(info: LockInfo, now = Date.now()): boolean {
  const time = Date.parse(info.time);
  // A time that does not parse can never be refreshed into a live one.
  if (Number.isNaN(time) || now - time > staleAfterMs) return true;
  return info.hostname === hostname() && !processAlive(info.pid);
}

export async function readLocks(repo: Repository): Promise<LockEntry[]> {
  const out: LockEntry[] = [];
  for (const id of await repo.listIds("lock")) {
    try {
      const plain = await repo.loadMetadata("lock", ObjectKind.lock, id);
      out.push({ id, info: JSON.parse(plain.toString("utf8")) as LockInfo });
    } catch {
      // Removed between list and load: it was released. Anything else is unreadable.
      if ((await repo.backend.stat({ type: "lock", name: id })) === null) continue;
      out.push({ id, info: null });
    }
  }
  return out;
}

function describe(l: LockEntry): string {
  if (l.info === null) return `locks/${l.id} (unreadable)`;
  const kind = l.info.exclusive ? "exclusive" : "shared";
  return `${kind} lock by ${l.info.username}@${l.info.hostname} pid ${l.info.pid} since ${l.info.time}`;
}

export class Lock {
  readonly id = randomId();
  readonly #repo: Repository;
  readonly #info: LockInfo;
  #timer: NodeJS.Timeout | null = null;

  private constructor(repo: Repository, exclusive: boolean) {
    this.#repo = repo;
    this.#info = {
      exclusive,
      hostname: hostname(),
      username: userInfo().username,
      pid: process.pid,
      time: new Date().toISOString(),
    };
  }

  /** Takes a lock or throws LockError naming who holds the conflicting one. */
  static async acquire(repo: Repository, exclusive: boolean): Promise<Lock> {
    const lock = new Lock(repo, exclusive);
    await lock.checkConflicts();
    await lock.write();
    // Two processes may have checked at the same moment: look again now ours is visible.
    try {
      await lock.checkConflicts();
    } catch (err) {
      await lock.release();
      throw err;
    }
    lock.#timer = setInterval(() => {
      lock.#info.time = new Date().toISOString();
      lock.write().catch(() => {});
    }, refreshEveryMs);
    lock.#timer.unref();
    return lock;
  }

  private async write(): Promise<void> {
    const sealed = this.#repo.sealMetadata(
      ObjectKind.lock,
      Buffer.from(this.id, "hex"),
      Buffer.from(JSON.stringify(this.#info)),
    );
    await this.#repo.backend.save({ type: "lock", name: this.id }, sealed);
  }

  private async checkConflicts(): Promise<void> {
    for (const l of await readLocks(this.#repo)) {
      if (l.id === this.id) continue;
      if (l.info !== null && isStale(l.info)) continue;
      if (this.#info.exclusive || l.info === null || l.info.exclusive) {
        throw new LockError(
          `repository is locked: ${describe(l)}; if no other coffer is running, run coffer unlock`,
        );
      }
    }
  }

  async release(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#repo.backend.remove({ type: "lock", name: this.id });
  }
}

/** Removes stale locks, or every lock with all=true. Returns the ids removed. */
export async function removeLocks(repo: Repository, all: boolean): Promise<string[]> {
  const removed: string[] = [];
  for (const l of await readLocks(repo)) {
    if (all || (l.info !== null && isStale(l.info))) {
      await repo.backend.remove({ type: "lock", name: l.id });
      removed.push(l.id);
    }
  }
  return removed;
}
