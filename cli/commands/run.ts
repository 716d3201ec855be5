import type { Argv } from "yargs";
import type { RunArgs } from "../run/run-jobs.js";

export const runCommand = {
  command: "run [jobs..]",
  describe: "run jobs from the config file: backup, forget, prune, sampled verify",
  builder: (y: Argv) =>
    y
      .positional("jobs", { type: "string", array: true, describe: "job names from the config" })
      .option("all", { type: "boolean", describe: "run every job, in the config's order" })
      .option("config", {
        type: "string",
        describe:
          "config file (or COFFER_CONFIG; default /etc/coffer/coffer.yaml, then ~/.config/coffer/coffer.yaml)",
      })
      .option("check", { type: "boolean", describe: "validate the config file, run nothing" })
      .option("log-file", { type: "string", describe: "append JSON lines to FILE (or log_file:)" })
      .option("metrics-file", {
        type: "string",
        describe: "write a Prometheus text file (or metrics_file:), for node_exporter",
      }),
  // The config, log and metrics modules (zod, yaml, pino) load only when a job runs: every
  // other command starts without them.
  handler: async (args: RunArgs) => (await import("../run/run-jobs.js")).runJobs(args),
};
