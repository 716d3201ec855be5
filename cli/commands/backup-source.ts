import { UserError } from "../../src/errors.js";
import { prepareCommand } from "../../src/source/command.js";
import type { PreparedDump } from "../../src/source/dump-source.js";
import { prepareMysql } from "../../src/source/mysql.js";
import { dumpPgDirectory } from "../../src/source/pg-directory.js";
import { type PgFormat, pgFormats, preparePostgres } from "../../src/source/postgres.js";
import { backupTarStream } from "../../src/source/tar-source.js";
import { shownPath, warn } from "../output.js";
import { type RecordArgs, recordBackup, stdinName } from "./record-backup.js";

/** The backup options of database dumps and tar streams (option names shared with `run`). */
export interface SourceArgs {
  postgres?: string;
  mysql?: string;
  command?: string;
  /** `--tar -`: yargs swallows a lone "-", so the option is a flag and "-" is documentation. */
  tar?: boolean;
  "pg-format"?: string;
  "all-databases"?: boolean;
  "stdin-name"?: string;
}

export const sourceOptions = {
  postgres: { type: "string", describe: "dump this PostgreSQL database (postgres://USER@HOST/DB)" },
  mysql: { type: "string", describe: "dump this MariaDB/MySQL database (mysql://USER@HOST/DB)" },
  command: {
    type: "string",
    describe: "run CMD (no shell; see README) and back up its output; needs --stdin-name",
  },
  tar: {
    type: "boolean",
    describe: "--tar -: read a tar stream on stdin; each entry becomes a file",
  },
  "pg-format": { type: "string", choices: pgFormats, describe: "pg_dump format (default custom)" },
  "all-databases": {
    type: "boolean",
    describe: "dump every database (pg_dumpall / --all-databases)",
  },
} as const;

/** True when the arguments ask for a dump or tar source rather than paths or --stdin. */
export function wantsSource(args: SourceArgs): boolean {
  return (
    args.postgres !== undefined ||
    args.mysql !== undefined ||
    args.command !== undefined ||
    args.tar === true
  );
}

async function prepare(args: SourceArgs): Promise<PreparedDump> {
  if (args.postgres !== undefined) {
    return preparePostgres(args.postgres, {
      format: (args["pg-format"] ?? "custom") as PgFormat,
      allDatabases: args["all-databases"] ?? false,
    });
  }
  if (args.mysql !== undefined) {
    return prepareMysql(args.mysql, { allDatabases: args["all-databases"] ?? false });
  }
  return prepareCommand(args.command as string, stdinName(args, "--command"));
}

function checkArgs(args: SourceArgs, paths: readonly string[], stdin: boolean): void {
  const given = ["postgres", "mysql", "command", "tar"].filter(
    (k) => args[k as keyof SourceArgs] !== undefined && args[k as keyof SourceArgs] !== false,
  );
  if (given.length > 1) throw new UserError(`give only one of --${given.join(", --")}`);
  if (paths.length > 0 || stdin) throw new UserError(`--${given[0]} takes no paths and no --stdin`);
  if (args["pg-format"] !== undefined && args.postgres === undefined)
    throw new UserError("--pg-format goes with --postgres");
  if (args["all-databases"] && args.postgres === undefined && args.mysql === undefined)
    throw new UserError("--all-databases goes with --postgres or --mysql");
  if (args["all-databases"] && args["pg-format"] !== undefined && args["pg-format"] !== "plain")
    throw new UserError("--all-databases uses pg_dumpall, which writes plain SQL only");
  if (args.tar && process.stdin.isTTY)
    throw new UserError("--tar - reads a pipe, not the terminal");
}

/**
 * `backup --postgres/--mysql/--command/--tar`: runs the dump as a child (or reads the tar
 * stream), stores it, and records the snapshot only when the source ended well.
 */
export async function backupSource(
  args: SourceArgs & RecordArgs,
  givenPaths: readonly string[],
  stdin: boolean,
): Promise<void> {
  checkArgs(args, givenPaths, stdin);
  await recordBackup(
    args,
    () => false,
    async ({ archiver }) => {
      if (args.tar) {
        const tree = await backupTarStream(archiver, process.stdin, (p, m) => {
          if (!args.quiet) warn(`warning: ${shownPath(p)}: ${m}`);
        });
        return { tree, paths: ["tar:-"], source: { kind: "tar" } };
      }
      if (args.postgres !== undefined && args["pg-format"] === "directory") {
        const dump = await dumpPgDirectory(args.postgres);
        try {
          const tree = await archiver.backupDirAs(dump.name, dump.dir);
          if (archiver.counters.errors > 0)
            throw new UserError(
              "files of the pg_dump directory could not be read; no snapshot saved",
            );
          return { tree, paths: [dump.label], source: dump.source };
        } finally {
          await dump.cleanup();
        }
      }
      const prepared = await prepare(args);
      try {
        const tree = await archiver.backupStream(prepared.fileName, prepared.dump.reader);
        // The dump's exit decides: a truncated dump must never become a snapshot.
        await prepared.dump.finish();
        return { tree, paths: [prepared.label], source: prepared.source };
      } finally {
        await prepared.dump.kill();
        await prepared.cleanup();
      }
    },
  );
}
