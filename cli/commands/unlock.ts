import type { Argv } from "yargs";
import { removeLocks } from "../../src/repo/lock.js";
import type { RepoArgs } from "../session.js";
import { openRepository } from "../session.js";

export const unlockCommand = {
  command: "unlock",
  describe: "remove stale locks (--remove-all: every lock; only when no coffer is running)",
  builder: (y: Argv) => y.option("remove-all", { type: "boolean", describe: "remove all locks" }),
  handler: async (args: RepoArgs & { "remove-all"?: boolean }) => {
    const repo = await openRepository(args);
    const removed = await removeLocks(repo, args["remove-all"] === true);
    process.stdout.write(`removed ${removed.length} locks\n`);
  },
};
