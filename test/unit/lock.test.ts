import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ObjectKind } from "../../src/crypto/seal.js";
import { LockError } from "../../src/errors.js";
import {
  isStale,
  Lock,
  type LockInfo,
  readLocks,
  removeLocks,
  staleAfterMs,
} from "../../src/repo/lock.js";
import type { Repository } from "../../src/repo/repository.js";
import { initRepo, type OpenedRepo, tempDir } from "./inprocess.js";

let dir: string;
let opened: OpenedRepo;
let repo: Repository;
const held: Lock[] = [];

beforeEach(async () => {
  dir = await tempDir("coffer-lock-");
  opened = await initRepo(path.join(dir, "repo"));
  repo = opened.repo;
});

afterEach(async () => {
  for (const l of held.splice(0)) await l.release();
  opened.backend.close();
  await fs.rm(dir, { recursive: true, force: true });
});

async function acquire(exclusive: boolean): Promise<Lock> {
  const l = await Lock.acquire(repo, exclusive);
  held.push(l);
  return l;
}

/** Writes a lock object as another process (or host) would. */
async function plantLock(info: Partial<LockInfo>): Promise<string> {
  const full: LockInfo = {
    exclusive: false,
    hostname: hostname(),
    username: userInfo().username,
    pid: process.pid,
    time: new Date().toISOString(),
    ...info,
  };
  const id = randomBytes(32).toString("hex");
  const sealed = repo.sealMetadata(
    ObjectKind.lock,
    Buffer.from(id, "hex"),
    Buffer.from(JSON.stringify(full)),
  );
  await repo.backend.save({ type: "lock", name: id }, sealed);
  return id;
}

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  const pid = Number(r.stdout.toString());
  expect(pid).toBeGreaterThan(0);
  return pid;
}

const lockCount = async () => (await fs.readdir(path.join(dir, "repo", "locks"))).length;

describe("locks", () => {
  it("shared locks coexist", async () => {
    await acquire(false);
    await acquire(false);
    await acquire(false);
    expect(await lockCount()).toBe(3);
  });

  it("an exclusive lock conflicts with a shared one, and the other way round", async () => {
    const shared = await acquire(false);
    await expect(Lock.acquire(repo, true)).rejects.toThrow(LockError);
    await expect(Lock.acquire(repo, true)).rejects.toThrow(/shared lock by .* pid \d+/);
    // The failed attempt leaves no lock object behind.
    expect(await lockCount()).toBe(1);
    await shared.release();
    held.splice(0);
    await acquire(true);
    await expect(Lock.acquire(repo, false)).rejects.toThrow(LockError);
    await expect(Lock.acquire(repo, false)).rejects.toThrow(/exclusive lock/);
    expect(await lockCount()).toBe(1);
  });

  it("an exclusive lock conflicts with another exclusive one", async () => {
    await acquire(true);
    await expect(Lock.acquire(repo, true)).rejects.toThrow(LockError);
  });

  it("release removes the lock object and lets an exclusive lock in", async () => {
    const l = await Lock.acquire(repo, false);
    expect(await lockCount()).toBe(1);
    await l.release();
    expect(await lockCount()).toBe(0);
    await acquire(true);
  });

  it("ignores a lock not refreshed for staleAfterMs", async () => {
    await plantLock({
      exclusive: true,
      hostname: "elsewhere",
      time: new Date(Date.now() - staleAfterMs - 60_000).toISOString(),
    });
    await acquire(true);
  });

  it("honours a recent lock from another host even if its pid means nothing here", async () => {
    await plantLock({ exclusive: true, hostname: "elsewhere", pid: deadPid() });
    await expect(Lock.acquire(repo, false)).rejects.toThrow(/elsewhere/);
  });

  it("ignores a lock on this host whose process is gone", async () => {
    await plantLock({ exclusive: true, pid: deadPid() });
    await acquire(true);
  });

  it("honours a lock on this host whose process is alive", async () => {
    await plantLock({ exclusive: false, pid: process.pid });
    await expect(Lock.acquire(repo, true)).rejects.toThrow(LockError);
  });

  it("an unreadable lock object blocks, since whose it is cannot be known", async () => {
    const id = randomBytes(32).toString("hex");
    await repo.backend.save({ type: "lock", name: id }, randomBytes(100));
    const locks = await readLocks(repo);
    expect(locks).toEqual([{ id, info: null }]);
    await expect(Lock.acquire(repo, false)).rejects.toThrow(/unreadable/);
  });

  it("isStale: by age, and by a dead pid only on the same host", () => {
    const now = Date.now();
    const info = (over: Partial<LockInfo>): LockInfo => ({
      exclusive: false,
      hostname: hostname(),
      username: "u",
      pid: process.pid,
      time: new Date(now).toISOString(),
      ...over,
    });
    expect(isStale(info({}), now)).toBe(false);
    expect(isStale(info({ time: new Date(now - staleAfterMs + 1000).toISOString() }), now)).toBe(
      false,
    );
    expect(isStale(info({ time: new Date(now - staleAfterMs - 1000).toISOString() }), now)).toBe(
      true,
    );
    const dead = deadPid();
    expect(isStale(info({ pid: dead }), now)).toBe(true);
    expect(isStale(info({ pid: dead, hostname: "elsewhere" }), now)).toBe(false);
  });

  it("removeLocks removes stale locks only, or every lock with all", async () => {
    const live = await plantLock({ exclusive: false });
    const old = await plantLock({
      hostname: "elsewhere",
      time: new Date(Date.now() - staleAfterMs - 1).toISOString(),
    });
    const dead = await plantLock({ pid: deadPid() });
    expect(new Set(await removeLocks(repo, false))).toEqual(new Set([old, dead]));
    expect((await readLocks(repo)).map((l) => l.id)).toEqual([live]);
    expect(await removeLocks(repo, true)).toEqual([live]);
    expect(await readLocks(repo)).toEqual([]);
  });

  it("readLocks returns what acquire wrote", async () => {
    const l = await acquire(true);
    const [entry] = await readLocks(repo);
    expect(entry?.id).toBe(l.id);
    expect(entry?.info).toMatchObject({
      exclusive: true,
      hostname: hostname(),
      pid: process.pid,
    });
  });
});
