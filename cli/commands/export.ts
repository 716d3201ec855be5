import type { Argv } from "yargs";
import { resolveSnapshot } from "../../src/repo/snapshots.js";
import { type ExportFormat, exportArchive, exportFormats } from "../../src/restore/export-file.js";
import { findNode } from "../../src/restore/tree-walk.js";
import { formatBytes, printJson, shownPath, warn } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";

interface ExportArgs extends RepoArgs {
  snapshot: string;
  path?: string;
  format: ExportFormat;
  recipient?: string[];
  output: string;
  json?: boolean;
  quiet?: boolean;
}

export const exportCommand = {
  command: "export <snapshot> [path]",
  describe: "write a snapshot as a tar archive that tar, zstd and age open without coffer",
  builder: (y: Argv) =>
    y
      .positional("snapshot", { type: "string", describe: "id, unique id prefix, or latest" })
      .positional("path", { type: "string", describe: "a path inside the snapshot" })
      .option("format", {
        type: "string",
        choices: exportFormats,
        default: "tar",
        describe: "archive format",
      })
      .option("recipient", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "age recipient (age1...) for .age formats; repeatable",
      })
      .option("output", {
        alias: "o",
        type: "string",
        demandOption: true,
        describe: "file to write (0600, appears only when complete)",
      }),
  handler: async (args: ExportArgs) => {
    await withRepository(args, { exclusive: false, loadIndex: true }, async (store) => {
      const snap = await resolveSnapshot(store.repo, args.snapshot);
      const { node, names } = await findNode(store, snap.tree, args.path ?? "/");
      const c = await exportArchive(
        store,
        node,
        names.map((n) => n.toString()),
        { format: args.format, recipients: args.recipient ?? [], output: args.output },
        (p, m) => {
          if (!args.quiet) warn(`warning: ${shownPath(p)}: ${m}`);
        },
      );
      if (args.json) printJson({ snapshot: snap.id, output: args.output, ...c });
      else if (!args.quiet) {
        process.stderr.write(
          `exported ${c.files} files, ${c.dirs} dirs, ${formatBytes(c.bytes)} to ${args.output}\n`,
        );
      }
    });
  },
};
