import type { Argv } from "yargs";
import { defaultScryptWorkFactor } from "../../src/kms/passphrase.js";
import { Repository } from "../../src/repo/repository.js";
import { wrappers } from "../key-options.js";
import { printJson } from "../output.js";
import type { RepoArgs } from "../session.js";
import { backendFor } from "../session.js";

export const initCommand = {
  command: "init",
  describe: "create a repository (refuses a non-empty directory)",
  builder: (y: Argv) =>
    y
      .option("recipient", {
        type: "string",
        array: true,
        nargs: 1,
        describe: "also wrap the key for this age recipient (age1...); repeatable",
      })
      .option("scrypt-work-factor", {
        type: "number",
        default: defaultScryptWorkFactor,
        describe: "log2 of scrypt's cost for the passphrase envelope (10-20)",
      }),
  handler: async (args: RepoArgs & { json?: boolean }) => {
    const backend = await backendFor(args);
    const ws = await wrappers(args);
    const repo = await Repository.init(backend, ws);
    if (args.json)
      printJson({
        repository: repo.config.id,
        location: backend.location,
        keys: ws.map((w) => w.kind),
      });
    else
      process.stdout.write(
        `created repository ${repo.config.id.slice(0, 8)} at ${backend.location}\n`,
      );
  },
};
