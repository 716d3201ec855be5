import type { Backend } from "../src/backend/backend.js";
import { LocalBackend } from "../src/backend/local.js";
import { LockError, UserError } from "../src/errors.js";
import { BlobStore } from "../src/repo/blob-store.js";
import { Lock } from "../src/repo/lock.js";
import { Repository } from "../src/repo/repository.js";
import { type BackendArgs, remoteBackendFor, uploadConcurrency } from "./backend-options.js";
import type { KeyArgs } from "./key-options.js";
import { unwrappers } from "./key-options.js";

export interface RepoArgs extends KeyArgs, BackendArgs {
  repo?: string;
  /** Seconds to keep trying when the repository is locked (cron jobs that collide). */
  "retry-lock"?: number;
  /** A repository already open (`coffer run` opens each once for all of a job's steps). */
  opened?: Repository;
}

/** Takes the lock, retrying for up to retrySeconds with growing pauses (1 s to 30 s). */
async function acquireLock(
  repo: Repository,
  exclusive: boolean,
  retrySeconds: number,
): Promise<Lock> {
  const deadline = Date.now() + retrySeconds * 1000;
  for (let pause = 1000; ; pause = Math.min(pause * 2, 30_000)) {
    try {
      return await Lock.acquire(repo, exclusive);
    } catch (err) {
      if (!(err instanceof LockError) || Date.now() + pause > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

export async function backendFor(args: RepoArgs): Promise<Backend> {
  const repo = args.repo ?? process.env.COFFER_REPO;
  if (repo === undefined || repo === "") {
    throw new UserError("no repository given: use --repo DIR or set COFFER_REPO");
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(repo)) return remoteBackendFor(repo, args);
  return new LocalBackend(repo);
}

export async function openRepository(args: RepoArgs): Promise<Repository> {
  return Repository.open(await backendFor(args), await unwrappers(args));
}

const cleanups = new Set<() => Promise<void>>();
let signalled = false;

/** Releases held locks when the process is interrupted, then exits 130 or 143. */
function installSignalHandlers(): void {
  for (const [sig, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(sig, () => {
      if (signalled) process.exit(code);
      signalled = true;
      process.stderr.write(`coffer: ${sig}: stopping; the repository stays consistent\n`);
      Promise.allSettled([...cleanups].map((c) => c())).finally(() => process.exit(code));
    });
  }
}
installSignalHandlers();

/**
 * Runs fn with the repository open, its index loaded and a lock held; the lock is
 * released however fn ends.
 */
export async function withRepository<T>(
  args: RepoArgs,
  mode: { exclusive: boolean; loadIndex: boolean },
  fn: (store: BlobStore) => Promise<T>,
): Promise<T> {
  const repo = args.opened ?? (await openRepository(args));
  const lock = await acquireLock(repo, mode.exclusive, args["retry-lock"] ?? 0);
  const store = new BlobStore(repo, { packUploads: uploadConcurrency(args, repo.backend) });
  // Stopped or failed: the packs still filling or being stored go (no partial pack stays),
  // then the lock.
  const release = async () => {
    await store.discard();
    await lock.release();
  };
  cleanups.add(release);
  try {
    if (mode.loadIndex) await store.loadIndex();
    return await fn(store);
  } catch (err) {
    await store.discard();
    throw err;
  } finally {
    cleanups.delete(release);
    await lock.release();
  }
}
