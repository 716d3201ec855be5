import type { Argv } from "yargs";
import { UserError } from "../../src/errors.js";
import type { PrunePlan } from "../../src/repo/prune.js";
import { prune } from "../../src/repo/prune.js";
import { formatBytes, printJson } from "../output.js";
import type { RepoArgs } from "../session.js";
import { withRepository } from "../session.js";

export const pruneCommand = {
  command: "prune",
  describe: "delete data no snapshot needs (after forget); takes the exclusive lock",
  builder: (y: Argv) =>
    y
      .option("dry-run", {
        type: "boolean",
        describe: "show what would be deleted, delete nothing",
      })
      .option("max-unused", {
        type: "number",
        default: 5,
        describe: "repack a pack when more than this percent of it is unused",
      }),
  handler: async (
    args: RepoArgs & {
      "dry-run"?: boolean;
      "max-unused": number;
      json?: boolean;
      quiet?: boolean;
      /** `coffer run` reuses this handler in-process: it gets the plan, nothing is printed. */
      observer?: { onResult(plan: PrunePlan): void };
    },
  ) => {
    const maxUnused = args["max-unused"];
    if (!(maxUnused >= 0 && maxUnused <= 100))
      throw new UserError("--max-unused takes a percentage from 0 to 100");
    const plan = await withRepository(args, { exclusive: true, loadIndex: true }, (store) =>
      prune(store, { dryRun: args["dry-run"] === true, maxUnusedPercent: maxUnused }),
    );
    if (args.observer) args.observer.onResult(plan);
    else if (args.json) printJson({ dryRun: args["dry-run"] === true, ...plan });
    else if (!args.quiet) {
      const verb = args["dry-run"] ? "would free" : "freed";
      process.stdout.write(
        `${plan.packsKept} packs kept, ${plan.packsRepacked} repacked, ${plan.packsDeleted + plan.unreferencedPacks} deleted${plan.tempFiles > 0 ? `, ${plan.tempFiles} temp files of interrupted writes` : ""}; ${verb} ${formatBytes(plan.bytesFreed)}\n`,
      );
    }
  },
};
