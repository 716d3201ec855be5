import { lstat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import type { Argv } from "yargs";
import { absolutePaths } from "../../src/archiver/archiver.js";
import { DirLister, listerPaysOff } from "../../src/archiver/dir-lister.js";
import { buildPathTrie, includedPaths } from "../../src/archiver/path-trie.js";
import { streamReader } from "../../src/chunker/chunk-reader.js";
import { UserError } from "../../src/errors.js";
import type { Repository } from "../../src/repo/repository.js";
import { defaultSealWorkers } from "../../src/repo/seal-pool.js";
import type { SnapshotWithId } from "../../src/repo/snapshot.js";
import { listSnapshots, resolveSnapshot } from "../../src/repo/snapshots.js";
import { excludeMatcher } from "../../src/source/exclude.js";
import { backupSource, type SourceArgs, sourceOptions, wantsSource } from "./backup-source.js";
import { type RecordArgs, recordBackup, stdinName } from "./record-backup.js";

export interface BackupArgs extends RecordArgs, SourceArgs {
  paths?: string[];
  exclude?: string[];
  stdin?: boolean;
  parent?: string;
  force?: boolean;
  "stdin-name"?: string;
}

export const backupCommand = {
  command: "backup [paths..]",
  describe: "back up files and directories, or standard input with --stdin",
  builder: (y: Argv) =>
    y
      .positional("paths", { type: "string", array: true, describe: "files and directories" })
      .option("exclude", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "skip paths matching GLOB; repeatable",
      })
      .option("tag", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "tag the snapshot; repeatable",
      })
      .option("host", { type: "string", describe: "hostname to record (default: this host)" })
      .option("stdin", { type: "boolean", describe: "back up standard input as one file" })
      .option("stdin-name", { type: "string", describe: "file name for --stdin data" })
      .option("parent", {
        type: "string",
        describe:
          "snapshot whose metadata lets unchanged files be skipped (default: latest of same host and paths)",
      })
      .option("force", { type: "boolean", describe: "read every file, even unchanged ones" })
      .options(sourceOptions),
  handler: async (args: BackupArgs) => {
    const paths = args.paths ?? [];
    // Database dumps, --command and --tar: src/source/, cli/commands/backup-source.ts.
    if (wantsSource(args)) return backupSource(args, paths, args.stdin ?? false);
    if (args.stdin) {
      if (paths.length > 0) throw new UserError("--stdin takes no paths");
      stdinName(args, "--stdin");
      if (process.stdin.isTTY) throw new UserError("--stdin reads a pipe, not the terminal");
    } else {
      if (paths.length === 0) throw new UserError("nothing to back up: give paths, or --stdin");
      for (const p of paths) {
        try {
          await lstat(p);
        } catch (err) {
          throw new UserError(`cannot back up ${p}: ${(err as NodeJS.ErrnoException).code ?? err}`);
        }
      }
    }
    const abs = absolutePaths(paths);
    // Started before the repository is opened, so it lists while scrypt runs; stopped
    // once the parent is known if it would not pay off (listerPaysOff).
    const lister = args.stdin
      ? null
      : DirLister.start(includedPaths(buildPathTrie(abs)), args.exclude ?? []);
    try {
      await recordBackup(
        args,
        excludeMatcher(args.exclude ?? []),
        async ({ archiver, store, host }) => {
          // A writer-only key cannot read old trees: no file cache, every file is read again.
          const parent =
            args.stdin || args.force || store.repo.writer !== null
              ? undefined
              : await findParent(store.repo, args.parent, host, abs);
          const useLister =
            lister !== null &&
            listerPaysOff(parent !== undefined, availableParallelism(), defaultSealWorkers());
          if (!useLister) lister?.stop();
          const tree = args.stdin
            ? await archiver.backupStream(args["stdin-name"] as string, streamReader(process.stdin))
            : await archiver.backupPaths(abs, parent?.tree, useLister ? lister : null);
          return {
            tree,
            paths: args.stdin ? [`stdin:${args["stdin-name"]}`] : abs,
            source: { kind: args.stdin ? "stdin" : "files" },
          };
        },
      );
    } finally {
      lister?.stop();
    }
  },
};

/** The parent for the file cache: --parent, else the latest snapshot of this host and paths. */
async function findParent(
  repo: Repository,
  ref: string | undefined,
  host: string,
  paths: readonly string[],
): Promise<SnapshotWithId | undefined> {
  if (ref !== undefined) return resolveSnapshot(repo, ref);
  const key = [...paths].sort().join("\0");
  const same = (await listSnapshots(repo)).filter(
    (s) =>
      s.hostname === host && s.source.kind === "files" && [...s.paths].sort().join("\0") === key,
  );
  return same.at(-1);
}
