import type { CommandModule } from "yargs";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { CofferError } from "../src/errors.js";
import { backendOptions } from "./backend-options.js";
import { backupCommand } from "./commands/backup.js";
import { exportCommand } from "./commands/export.js";
import { forgetCommand } from "./commands/forget.js";
import { initCommand } from "./commands/init.js";
import { keyCommand } from "./commands/key.js";
import { lsCommand } from "./commands/ls.js";
import { pruneCommand } from "./commands/prune.js";
import { restoreCommand } from "./commands/restore.js";
import { runCommand } from "./commands/run.js";
import { snapshotsCommand } from "./commands/snapshots.js";
import { unlockCommand } from "./commands/unlock.js";
import { verifyCommand } from "./commands/verify.js";
import { ExitCode, exitCodeFor, exitCodeHelp } from "./exit-codes.js";
import { cofferVersion } from "./version.js";

function report(err: unknown): number {
  if (err instanceof CofferError) {
    process.stderr.write(`coffer: ${err.message}\n`);
    return exitCodeFor(err.kind);
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code && typeof e.message === "string") {
    // I/O failures (ENOSPC, EACCES, ...) are not bugs: one line, no stack.
    process.stderr.write(`coffer: ${e.message}\n`);
    return ExitCode.fatal;
  }
  process.stderr.write(`coffer: internal error: ${e?.message ?? String(err)}\n`);
  if (process.env.COFFER_DEBUG) process.stderr.write(`${e?.stack ?? ""}\n`);
  return ExitCode.fatal;
}

const commands = [
  initCommand,
  backupCommand,
  snapshotsCommand,
  lsCommand,
  restoreCommand,
  exportCommand,
  verifyCommand,
  forgetCommand,
  pruneCommand,
  unlockCommand,
  runCommand,
  keyCommand,
];

function wantsHelp(argv: readonly string[]): boolean {
  return argv.some((a) => a === "--help" || a === "-h");
}

async function main(): Promise<void> {
  // `--tar -` names stdin/stdout as tar tools do; yargs takes no "-" as a value, so --tar
  // is a flag and its "-" is dropped here (cli/commands/backup-source.ts, restore-source.ts).
  const argv = hideBin(process.argv).filter((a, i, all) => !(a === "-" && all[i - 1] === "--tar"));
  const cli = yargs(argv)
    .scriptName("coffer")
    .usage("coffer: encrypted, deduplicating backups\n\nUsage: coffer <command> [options]")
    .option("repo", {
      alias: "r",
      type: "string",
      describe: "repository: a directory or s3://BUCKET/PREFIX (or COFFER_REPO)",
      global: true,
    })
    .option("passphrase-file", {
      type: "string",
      describe: "read the passphrase from FILE (or COFFER_PASSPHRASE)",
      global: true,
    })
    .option("identity", {
      alias: "i",
      type: "string",
      array: true,
      nargs: 1,
      describe: "age identity file (age-keygen format)",
      global: true,
    })
    .option("kms", {
      type: "string",
      array: true,
      nargs: 1,
      describe:
        "key service SPEC (or COFFER_KMS): aws-kms:alias/NAME, vault:NAME, gcp-kms:..., pkcs11:...",
      global: true,
    })
    .option("retry-lock", {
      type: "number",
      describe: "if the repository is locked, keep trying for this many seconds",
      global: true,
    })
    .options(backendOptions)
    .option("json", { type: "boolean", describe: "machine-readable output", global: true })
    .option("quiet", { alias: "q", type: "boolean", describe: "print errors only", global: true })
    // Handlers declare their own argument types; yargs checks positionals at run time.
    .command(commands as unknown as CommandModule[])
    .demandCommand(1, "give a command: see coffer --help")
    .strict()
    .epilogue(
      `Environment: COFFER_REPO, COFFER_PASSPHRASE, COFFER_PASSPHRASE_FILE, COFFER_IDENTITY_FILE, COFFER_KMS, COFFER_CONFIG\n\n${exitCodeHelp}`,
    )
    // Help is laid out only when asked for: yargs renders it before every command, and
    // wrapping it costs tens of milliseconds of a run's start-up.
    .wrap(wantsHelp(argv) ? Math.min(100, process.stdout.columns || 100) : null)
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`coffer: ${msg}\n`);
      process.exit(ExitCode.fatal);
    })
    .help()
    .version(cofferVersion());
  await cli.parseAsync();
}

// A closed pipe (`coffer ls ... | head`) ends output quietly, as other Unix tools do.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

main().catch((err) => {
  process.exitCode = report(err);
});
