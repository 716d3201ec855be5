import { lstat } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import type { Argv } from "yargs";
import { Archiver, absolutePaths } from "../../src/archiver/archiver.js";
import { streamReader } from "../../src/chunker/chunk-reader.js";
import { UserError } from "../../src/errors.js";
import type { Repository } from "../../src/repo/repository.js";
import type { Snapshot, SnapshotWithId } from "../../src/repo/snapshot.js";
import { listSnapshots, resolveSnapshot, saveSnapshot } from "../../src/repo/snapshots.js";
import { excludeMatcher } from "../../src/source/exclude.js";
import { ExitCode } from "../exit-codes.js";
import { formatBytes, printJson, shownPath, warn } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";
import { backupSource, type SourceArgs, sourceOptions, wantsSource } from "./backup-source.js";

interface BackupArgs extends RepoArgs, SourceArgs {
  paths?: string[];
  exclude?: string[];
  tag?: string[];
  host?: string;
  stdin?: boolean;
  parent?: string;
  force?: boolean;
  "stdin-name"?: string;
  json?: boolean;
  quiet?: boolean;
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
    const started = Date.now();
    const paths = args.paths ?? [];
    // Database dumps, --command and --tar: src/source/, cli/commands/backup-source.ts.
    if (wantsSource(args)) return backupSource(args, paths, args.stdin ?? false);
    if (args.stdin) {
      if (paths.length > 0) throw new UserError("--stdin takes no paths");
      const name = args["stdin-name"];
      if (!name || name.includes("/") || name === "." || name === "..") {
        throw new UserError("--stdin needs --stdin-name NAME, a file name without '/'");
      }
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
    const tags = args.tag ?? [];
    if (tags.some((t) => t === "" || t.includes(",")))
      throw new UserError("a tag must be non-empty and have no comma");

    const result = await withRepository(
      args,
      { exclusive: false, loadIndex: true },
      async (store) => {
        const archiver = new Archiver(
          store,
          store.repo.chunker(),
          {
            onError: (p, m) => warn(`error: ${shownPath(p)}: ${m}`),
            onWarning: (p, m) => {
              if (!args.quiet) warn(`warning: ${shownPath(p)}: ${m}`);
            },
          },
          { exclude: excludeMatcher(args.exclude ?? []) },
        );
        const abs = absolutePaths(paths);
        const host = args.host ?? hostname();
        const parent =
          args.stdin || args.force
            ? undefined
            : await findParent(store.repo, args.parent, host, abs);
        const tree = args.stdin
          ? await archiver.backupStream(args["stdin-name"] as string, streamReader(process.stdin))
          : await archiver.backupPaths(abs, parent?.tree);
        await store.flush();
        const snapshot: Snapshot = {
          version: 1,
          time: new Date(started).toISOString(),
          hostname: host,
          username: userInfo().username,
          paths: args.stdin ? [`stdin:${args["stdin-name"]}`] : abs,
          tags,
          tree,
          source: { kind: args.stdin ? "stdin" : "files" },
          summary: { ...archiver.counters, ...store.stats, durationMs: Date.now() - started },
        };
        const id = await saveSnapshot(store.repo, snapshot);
        return { id, summary: snapshot.summary };
      },
    );

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
