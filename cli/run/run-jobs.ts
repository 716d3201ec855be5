import { randomBytes } from "node:crypto";
import { findConfigFile, loadConfig } from "../../src/config/load.js";
import type { JobConfig } from "../../src/config/schema.js";
import { UserError } from "../../src/errors.js";
import type { JobMetrics } from "../../src/ops/metrics.js";
import { writeMetricsFile } from "../../src/ops/metrics.js";
import type { RunLogger } from "../../src/ops/run-log.js";
import { openRunLog } from "../../src/ops/run-log.js";
import { worstExitCode } from "../exit-codes.js";
import { warn } from "../output.js";
import type { RunContext } from "./job-runner.js";
import { runJob, takeSecretsFromEnvironment } from "./job-runner.js";
import type { JobResult, RunReporter } from "./run-output.js";
import { HumanReporter, JsonReporter, QuietReporter } from "./run-output.js";

/** The options of `coffer run`. */
export interface RunArgs {
  jobs?: string[];
  all?: boolean;
  check?: boolean;
  config?: string;
  "log-file"?: string;
  "metrics-file"?: string;
  "retry-lock"?: number;
  repo?: string;
  "passphrase-file"?: string;
  identity?: string[];
  json?: boolean;
  quiet?: boolean;
}

/** `coffer run`: loads the config, runs the jobs, writes metrics; the worst exit code. */
export async function runJobs(args: RunArgs): Promise<void> {
  if (args.repo !== undefined || args["passphrase-file"] !== undefined || args.identity) {
    throw new UserError(
      "coffer run takes repositories and keys from the config file, not --repo, --passphrase-file or --identity",
    );
  }
  const file = await findConfigFile(args.config);
  const loaded = await loadConfig(file, { warn });
  const all = Object.keys(loaded.config.jobs);
  const names = args.all ? all : (args.jobs ?? []);
  if (args.all && (args.jobs ?? []).length > 0)
    throw new UserError("give job names or --all, not both");
  if (names.length === 0 && !args.check) {
    throw new UserError(
      `no job given: coffer run JOB... or --all (jobs in ${file}: ${all.join(", ") || "none"})`,
    );
  }
  for (const n of names) {
    if (loaded.config.jobs[n] === undefined)
      throw new UserError(`no job named ${n} in ${file}: expected one of ${all.join(", ")}`);
  }
  if (args.check) {
    if (!args.quiet) process.stdout.write(`${file}: ok (${all.length} jobs: ${all.join(", ")})\n`);
    return;
  }

  const runId = randomBytes(8).toString("hex");
  const logFile = args["log-file"] ?? loaded.config.log_file;
  const metricsFile = args["metrics-file"] ?? loaded.config.metrics_file;
  const log: RunLogger | null = logFile ? openRunLog(logFile, runId) : null;
  const reporter: RunReporter = args.json
    ? new JsonReporter()
    : args.quiet
      ? new QuietReporter()
      : new HumanReporter();
  const ctx: RunContext = {
    runId,
    loaded,
    reporter,
    log,
    quiet: args.quiet === true,
    retryLock: args["retry-lock"],
    secrets: takeSecretsFromEnvironment(loaded),
    opened: new Map(),
  };
  const started = Date.now();
  reporter.start(runId, names);
  log?.info({ step: "start", jobs: names, config: file }, "run started");
  const results: JobResult[] = [];
  for (const n of names) results.push(await runJob(n, loaded.config.jobs[n] as JobConfig, ctx));
  let exitCode = worstExitCode(results.map((r) => r.exitCode));

  if (metricsFile) {
    try {
      await writeMetricsFile(metricsFile, results.map(jobMetrics));
    } catch (err) {
      warn(
        `cannot write metrics file ${metricsFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
      exitCode = worstExitCode([exitCode, 1]);
    }
  }
  const durationMs = Date.now() - started;
  log?.info({ step: "end", exitCode, durationMs }, "run finished");
  reporter.end(runId, exitCode, durationMs, results);
  process.exitCode = exitCode;
}

function jobMetrics(r: JobResult): JobMetrics {
  return {
    job: r.job,
    repository: r.repository,
    startedAt: r.startedAt / 1000,
    durationSeconds: r.durationMs / 1000,
    exitCode: r.exitCode,
    success: r.exitCode === 0 || r.exitCode === 3,
    bytesAdded: r.bytesAdded,
    bytesRead: r.bytesRead,
    files: r.files,
    errors: r.errors,
  };
}
