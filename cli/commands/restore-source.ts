import { UserError } from "../../src/errors.js";
import { resolveSnapshot } from "../../src/repo/snapshots.js";
import { restoreDatabase } from "../../src/restore/db-restore.js";
import { writeTar } from "../../src/restore/tar-writer.js";
import { findNode } from "../../src/restore/tree-walk.js";
import { formatBytes, printJson, shownPath, warn } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";

/** restore's options for databases and tar output. */
export interface RestoreSourceArgs extends RepoArgs {
  snapshot: string;
  path?: string;
  postgres?: string;
  mysql?: string;
  clean?: boolean;
  /** `--tar -`: yargs swallows a lone "-", so the option is a flag. */
  tar?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export const restoreSourceOptions = {
  postgres: { type: "string", describe: "pipe a PostgreSQL dump into pg_restore/psql at URL" },
  mysql: { type: "string", describe: "pipe a MariaDB/MySQL dump into mariadb/mysql at URL" },
  clean: { type: "boolean", describe: "with --postgres: drop objects before re-creating them" },
  tar: {
    type: "boolean",
    describe: "--tar -: write the snapshot (or PATH) as a tar stream to stdout",
  },
} as const;

export function wantsRestoreSource(args: RestoreSourceArgs): boolean {
  return args.postgres !== undefined || args.mysql !== undefined || args.tar === true;
}

export async function restoreSource(
  args: RestoreSourceArgs & { target?: string; stdout?: boolean },
): Promise<void> {
  const given = [args.postgres !== undefined, args.mysql !== undefined, args.tar === true];
  if (given.filter(Boolean).length > 1)
    throw new UserError("give one of --postgres, --mysql, --tar");
  if (args.target !== undefined || args.stdout) {
    throw new UserError("--postgres, --mysql and --tar go without --target and --stdout");
  }
  if (args.clean && args.postgres === undefined)
    throw new UserError("--clean goes with --postgres");
  if (args.tar && process.stdout.isTTY) {
    throw new UserError("--tar - writes a tar stream: redirect it to a file or a pipe");
  }
  await withRepository(args, { exclusive: false, loadIndex: true }, async (store) => {
    const snap = await resolveSnapshot(store.repo, args.snapshot);
    if (args.tar) {
      const { node, names } = await findNode(store, snap.tree, args.path ?? "/");
      const c = await writeTar(
        store,
        node,
        names.map((n) => n.toString()),
        process.stdout,
        (p, m) => {
          if (!args.quiet) warn(`warning: ${shownPath(p)}: ${m}`);
        },
      );
      if (!args.quiet && !args.json) {
        process.stderr.write(
          `wrote ${c.files} files, ${c.dirs} dirs, ${formatBytes(c.bytes)} as tar from ${snap.id.slice(0, 8)}\n`,
        );
      }
      return;
    }
    if (args.path !== undefined) throw new UserError("a database restore takes no PATH");
    const bytes = await restoreDatabase(store, snap, {
      postgres: args.postgres,
      mysql: args.mysql,
      clean: args.clean,
    });
    if (args.json) printJson({ snapshot: snap.id, bytes });
    else if (!args.quiet) {
      process.stderr.write(
        `restored ${formatBytes(bytes)} of ${snap.source.kind} dump from ${snap.id.slice(0, 8)}\n`,
      );
    }
  });
}
