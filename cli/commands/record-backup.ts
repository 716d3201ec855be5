import { hostname, userInfo } from "node:os";
import type { ArchiverEvents } from "../../src/archiver/archiver.js";
import { Archiver } from "../../src/archiver/archiver.js";
import { UserError } from "../../src/errors.js";
import type { BlobStore } from "../../src/repo/blob-store.js";
import type { BackupSummary, Snapshot } from "../../src/repo/snapshot.js";
import { saveSnapshot } from "../../src/repo/snapshots.js";
import { ExitCode } from "../exit-codes.js";
import { formatBytes, printJson, shownPath, warn } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";

/**
 * How `coffer run` reuses this handler in-process: it receives the archiver's events and
 * the result, and the handler prints nothing of its own.
 */
export interface BackupObserver
  extends Pick<ArchiverEvents, "onError" | "onWarning" | "onProgress"> {
  onResult(result: { id: string; paths: string[]; summary: BackupSummary }): void;
}

/** The options every kind of backup shares. */
export interface RecordArgs extends RepoArgs {
  tag?: string[];
  host?: string;
  json?: boolean;
  quiet?: boolean;
  observer?: BackupObserver;
}

/** What a backup stored, for its snapshot. */
export interface StoredBackup {
  tree: string;
  paths: string[];
  source: Snapshot["source"];
}

/**
 * What every kind of backup shares: open and lock the repository, start a writer session,
 * let `store` fill the repository through an archiver, flush, record the snapshot, then
 * report it (to the observer of `coffer run`, or on stdout and stderr). A `store` that
 * throws records no snapshot.
 */
export async function recordBackup(
  args: RecordArgs,
  exclude: (path: string) => boolean,
  store: (ctx: { archiver: Archiver; store: BlobStore; host: string }) => Promise<StoredBackup>,
): Promise<void> {
  const started = Date.now();
  const tags = args.tag ?? [];
  if (tags.some((t) => t === "" || t.includes(",")))
    throw new UserError("a tag must be non-empty and have no comma");
  const result = await withRepository(args, { exclusive: false, loadIndex: true }, async (bs) => {
    await bs.repo.beginWrite();
    const archiver = new Archiver(
      bs,
      bs.repo.chunker(),
      args.observer ?? {
        onError: (p, m) => warn(`error: ${shownPath(p)}: ${m}`),
        onWarning: (p, m) => {
          if (!args.quiet) warn(`warning: ${shownPath(p)}: ${m}`);
        },
      },
      { exclude },
    );
    const host = args.host ?? hostname();
    const stored = await store({ archiver, store: bs, host });
    await bs.flush();
    const snapshot: Snapshot = {
      version: 1,
      time: new Date(started).toISOString(),
      hostname: host,
      username: userInfo().username,
      paths: stored.paths,
      tags,
      tree: stored.tree,
      source: stored.source,
      summary: { ...archiver.counters, ...bs.stats, durationMs: Date.now() - started },
    };
    const id = await saveSnapshot(bs.repo, snapshot);
    return { id, paths: snapshot.paths, summary: snapshot.summary };
  });
  if (args.observer) return args.observer.onResult(result);

  const s = result.summary;
  if (args.json) {
    printJson({ snapshot: result.id, ...s });
  } else if (!args.quiet) {
    process.stderr.write(
      `${s.files} files, ${s.dirs} dirs, ${formatBytes(s.bytesRead)} read, ${formatBytes(s.bytesAdded)} added in ${(s.durationMs / 1000).toFixed(1)} s\n`,
    );
  }
  if (!args.json) process.stdout.write(`${result.id}\n`);
  if (s.errors > 0) {
    warn(`${s.errors} files or directories could not be read; the snapshot lacks them`);
    process.exitCode = ExitCode.incomplete;
  }
}

/** The --stdin-name a stream (stdin or a command's output) is stored under: one file name. */
export function stdinName(args: { "stdin-name"?: string }, flag: "--stdin" | "--command"): string {
  const name = args["stdin-name"];
  if (!name || name.includes("/") || name === "." || name === "..") {
    throw new UserError(`${flag} needs --stdin-name NAME, a file name without '/'`);
  }
  return name;
}
