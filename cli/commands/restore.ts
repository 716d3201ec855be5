import type { Argv } from "yargs";
import { IntegrityError, UserError } from "../../src/errors.js";
import { resolveSnapshot } from "../../src/repo/snapshots.js";
import { rawName } from "../../src/repo/tree.js";
import { Restorer } from "../../src/restore/restorer.js";
import { writeFileTo } from "../../src/restore/stdout-writer.js";
import { findNode, loadTree } from "../../src/restore/tree-walk.js";
import { excludeMatcher } from "../../src/source/exclude.js";
import { formatBytes, printJson, shownPath, warn } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";
import {
  type RestoreSourceArgs,
  restoreSource,
  restoreSourceOptions,
  wantsRestoreSource,
} from "./restore-source.js";

interface RestoreArgs extends RepoArgs, RestoreSourceArgs {
  snapshot: string;
  path?: string;
  target?: string;
  include?: string[];
  stdout?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export const restoreCommand = {
  command: "restore <snapshot> [path]",
  describe: "restore a snapshot (or PATH inside it) into --target, or one file to --stdout",
  builder: (y: Argv) =>
    y
      .positional("snapshot", { type: "string", describe: "id, unique id prefix, or latest" })
      .positional("path", { type: "string", describe: "a path inside the snapshot" })
      .option("target", { type: "string", describe: "directory to restore into" })
      .option("include", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "restore only paths matching GLOB",
      })
      .option("stdout", { type: "boolean", describe: "write one file's bytes to standard output" })
      .options(restoreSourceOptions),
  handler: async (args: RestoreArgs) => {
    // Database restores and tar output: cli/commands/restore-source.ts.
    if (wantsRestoreSource(args)) return restoreSource(args);
    if (args.stdout === (args.target !== undefined)) {
      throw new UserError("give exactly one of --target DIR or --stdout");
    }
    await withRepository(args, { exclusive: false, loadIndex: true }, async (store) => {
      const snap = await resolveSnapshot(store.repo, args.snapshot);
      if (args.stdout) {
        let path = args.path;
        if (path === undefined) {
          const root = await loadTree(store, snap.tree);
          const only = root.nodes[0];
          if (root.nodes.length !== 1 || only?.type !== "file") {
            throw new UserError("--stdout needs the PATH of one file in the snapshot");
          }
          path = `/${rawName(only).toString()}`;
        }
        const { node } = await findNode(store, snap.tree, path);
        await writeFileTo(store, node, process.stdout, path);
        return;
      }
      const { node, names } = await findNode(store, snap.tree, args.path ?? "/");
      const include = args.include?.length ? excludeMatcher(args.include) : null;
      const restorer = new Restorer(
        store,
        {
          onError: (p, err) => warn(`error: ${shownPath(p)}: ${err.message}`),
          onWarning: (p, m) => {
            if (!args.quiet) warn(`warning: ${shownPath(p)}: ${m}`);
          },
        },
        include,
      );
      await restorer.restore(node, names, args.target as string);
      const c = restorer.counters;
      if (args.json) printJson({ snapshot: snap.id, ...c });
      else if (!args.quiet) {
        process.stderr.write(
          `restored ${c.files} files, ${c.dirs} dirs, ${formatBytes(c.bytes)} from ${snap.id.slice(0, 8)}\n`,
        );
      }
      if (c.integrityErrors > 0) {
        throw new IntegrityError(
          `${c.integrityErrors} files failed verification and were not restored`,
        );
      }
      if (c.errors > 0) throw new UserError(`${c.errors} files could not be restored`);
    });
  },
};
