import type { Argv } from "yargs";
import type { CheckReport } from "../../src/checker/checker.js";
import { checkRepository } from "../../src/checker/checker.js";
import { parseSubset } from "../../src/checker/subset.js";
import { IntegrityError } from "../../src/errors.js";
import { printJson, shownPath } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";

export const verifyCommand = {
  command: "verify",
  describe: "check the repository's structure; with --read-data, read and authenticate every blob",
  builder: (y: Argv) =>
    y
      .option("read-data", { type: "boolean", describe: "read and authenticate all data" })
      .option("read-data-subset", {
        type: "string",
        describe: "read and authenticate a subset of packs: K/N (slice K of N) or P%",
      }),
  handler: async (
    args: RepoArgs & {
      "read-data"?: boolean;
      "read-data-subset"?: string;
      json?: boolean;
      quiet?: boolean;
      /** `coffer run` reuses this handler in-process: it gets the report, nothing is printed. */
      observer?: { onResult(report: CheckReport): void };
    },
  ) => {
    const subsetSpec = args["read-data-subset"];
    const packSubset = subsetSpec !== undefined ? parseSubset(subsetSpec) : undefined;
    const readData = args["read-data"] === true || packSubset !== undefined;
    const report = await withRepository(args, { exclusive: false, loadIndex: false }, (store) =>
      checkRepository(store, { readData, packSubset }),
    );
    if (args.observer) return args.observer.onResult(report);
    if (args.json) printJson(report);
    else {
      for (const e of report.errors) process.stderr.write(`error: ${e}\n`);
      for (const a of report.affected) {
        process.stderr.write(`snapshot ${a.snapshot} is damaged in ${a.paths.length} paths:\n`);
        for (const p of a.paths.slice(0, 50)) process.stderr.write(`  ${shownPath(p)}\n`);
        if (a.paths.length > 50) process.stderr.write(`  ... and ${a.paths.length - 50} more\n`);
      }
      if (!args.quiet) {
        const what = readData ? `structure and the data of ${report.packsRead} packs` : "structure";
        process.stderr.write(
          `checked ${what}: ${report.snapshots} snapshots, ${report.packs} packs, ${report.blobs} blobs` +
            (report.unreferencedPacks > 0
              ? `; ${report.unreferencedPacks} packs unreferenced (left by an interrupted backup, harmless)`
              : "") +
            "\n",
        );
      }
    }
    if (report.errors.length > 0) {
      throw new IntegrityError(
        `verify found ${report.errors.length} problems` +
          (report.damagedPacks.length > 0
            ? ` in packs ${report.damagedPacks.map((p) => p.slice(0, 8)).join(", ")}`
            : ""),
      );
    }
    if (!args.json && !args.quiet) process.stdout.write("no errors found\n");
  },
};
