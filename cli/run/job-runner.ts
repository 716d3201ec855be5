import { hostname } from "node:os";
import type { LoadedConfig } from "../../src/config/load.js";
import type { JobConfig, RepositoryConfig } from "../../src/config/schema.js";
import { CofferError, UserError } from "../../src/errors.js";
import { PassphraseProvider } from "../../src/kms/passphrase.js";
import type { KeyUnwrapper } from "../../src/kms/provider.js";
import { runHook } from "../../src/ops/hooks.js";
import type { RunLogger } from "../../src/ops/run-log.js";
import type { Repository } from "../../src/repo/repository.js";
import { Repository as RepositoryClass } from "../../src/repo/repository.js";
import { ExitCode, exitCodeFor, worstExitCode } from "../exit-codes.js";
import type { KeyArgs } from "../key-options.js";
import { unwrappers } from "../key-options.js";
import type { RepoArgs } from "../session.js";
import { backendFor } from "../session.js";
import type { StepContext } from "./job-steps.js";
import { backupStep, forgetStep, pruneStep, verifyStep } from "./job-steps.js";
import type { JobResult, RunReporter, StepName, StepResult } from "./run-output.js";

// One job of `coffer run`: before-hooks, a backup per source, forget and prune per its
// policy, the sampled verify, after-hooks. Each step reuses a command's handler
// in-process (through its observer) on one opened repository, so the key is unwrapped
// once per repository and run. The job's exit code is the worst of its steps'.

export interface RunContext {
  runId: string;
  loaded: LoadedConfig;
  reporter: RunReporter;
  log: RunLogger | null;
  quiet: boolean;
  /** --retry-lock given on the command line: overrides the repositories' retry_lock. */
  retryLock?: number;
  /** Secrets read (and removed) from the environment when the run started. */
  secrets: Map<string, string>;
  /** Repositories opened by earlier jobs of this run, by name. */
  opened: Map<string, Repository>;
}

/** The repository's CLI options: another backend's options pass through by their CLI name. */
function repoArgs(r: RepositoryConfig, ctx: RunContext): RepoArgs & Record<string, unknown> {
  return {
    repo: r.path ?? r.url,
    "s3-endpoint": r.s3_endpoint,
    "s3-region": r.s3_region,
    "s3-path-style": r.s3_path_style,
    "ca-file": r.ca_file,
    "insecure-http": r.insecure_http,
    "retry-lock": ctx.retryLock ?? r.retry_lock ?? 0,
  };
}

/** The environment variables holding passphrases, read once and removed (hooks never see them). */
export function takeSecretsFromEnvironment(loaded: LoadedConfig): Map<string, string> {
  const out = new Map<string, string>();
  const names = new Set(["COFFER_PASSPHRASE"]);
  for (const r of Object.values(loaded.config.repositories))
    if (r.passphrase_env) names.add(r.passphrase_env);
  for (const n of names) {
    const v = process.env[n];
    if (v !== undefined && v !== "") out.set(n, v);
    delete process.env[n];
  }
  return out;
}

async function openRepo(name: string, r: RepositoryConfig, ctx: RunContext): Promise<Repository> {
  const cached = ctx.opened.get(name);
  if (cached) return cached;
  const keys: KeyUnwrapper[] = [];
  if (r.passphrase_env !== undefined) {
    const pass = ctx.secrets.get(r.passphrase_env);
    if (pass === undefined) {
      throw new UserError(
        `${ctx.loaded.where(["repositories", name, "passphrase_env"])}: ${r.passphrase_env} is not set: expected the passphrase in it`,
      );
    }
    keys.push(new PassphraseProvider(pass));
  }
  const named = r.passphrase_file ?? r.identity_file ?? r.kms;
  if (named !== undefined) {
    const keyArgs: KeyArgs = {
      "passphrase-file": r.passphrase_file,
      identity: r.identity_file ? [r.identity_file] : undefined,
      kms: r.kms ? [r.kms] : undefined,
    };
    keys.push(...(await unwrappers(keyArgs)));
  } else if (keys.length === 0) {
    // Nothing in the config: the environment (COFFER_PASSPHRASE*), as for other commands.
    const ambient = ctx.secrets.get("COFFER_PASSPHRASE");
    keys.push(
      ...(ambient !== undefined ? [new PassphraseProvider(ambient)] : await unwrappers({})),
    );
  }
  const repo = await RepositoryClass.open(await backendFor(repoArgs(r, ctx)), keys);
  ctx.opened.set(name, repo);
  return repo;
}

function errorCode(err: unknown): { exitCode: number; message: string } {
  if (err instanceof CofferError) return { exitCode: exitCodeFor(err.kind), message: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e?.code && typeof e.message === "string")
    return { exitCode: ExitCode.fatal, message: e.message };
  return { exitCode: ExitCode.fatal, message: `internal error: ${e?.message ?? String(err)}` };
}

export async function runJob(name: string, job: JobConfig, ctx: RunContext): Promise<JobResult> {
  const startedAt = Date.now();
  const repoConfig = ctx.loaded.config.repositories[job.repository] as RepositoryConfig;
  const log = ctx.log?.child({ job: name, repository: job.repository }) ?? null;
  const result: JobResult = {
    job: name,
    repository: job.repository,
    exitCode: 0,
    status: "ok",
    startedAt,
    durationMs: 0,
    bytesRead: 0,
    bytesAdded: 0,
    files: 0,
    errors: 0,
    snapshots: [],
    steps: [],
  };
  log?.info({ step: "start" }, "job started");

  const record = (r: StepResult) => {
    result.steps.push(r);
    ctx.reporter.step(name, r);
    const fields = { step: r.step, exitCode: r.exitCode, durationMs: r.durationMs, ...r.detail };
    if (r.exitCode === 0) log?.info(fields, r.message);
    else log?.error(fields, r.message);
  };
  /** Runs one step; an error becomes the step's exit code and message. */
  const step = async (
    stepName: StepName,
    fn: () => Promise<Omit<StepResult, "step" | "durationMs">>,
  ): Promise<StepResult> => {
    const t = Date.now();
    let r: StepResult;
    try {
      r = { step: stepName, durationMs: 0, ...(await fn()) };
    } catch (err) {
      r = { step: stepName, durationMs: 0, ...errorCode(err) };
    }
    r.durationMs = Date.now() - t;
    record(r);
    return r;
  };

  const hookEnv = (extra: Record<string, string>) => ({
    ...process.env,
    COFFER_RUN_ID: ctx.runId,
    COFFER_JOB: name,
    ...extra,
  });
  const runHooks = async (which: "before" | "after", env: NodeJS.ProcessEnv) => {
    for (const argv of job.hooks?.[which] ?? []) {
      const r = await step(which, async () => {
        const h = await runHook(argv, env, { quiet: ctx.quiet });
        return {
          exitCode: h.ok ? 0 : ExitCode.fatal,
          message: h.ok ? `${argv[0]}: ok` : `hook failed: ${h.reason}`,
          detail: { command: argv[0] },
        };
      });
      if (r.exitCode !== 0 && which === "before") return false;
    }
    return true;
  };

  let repo: Repository | undefined;
  if (await runHooks("before", hookEnv({}))) {
    const opened = await step("open", async () => {
      repo = await openRepo(job.repository, repoConfig, ctx);
      return { exitCode: 0, message: `${repoConfig.path ?? repoConfig.url}` };
    });
    if (opened.exitCode === 0 && repo !== undefined) await runSteps(repo);
  }
  const beforeEnd = worstExitCode(result.steps.map((s) => s.exitCode));
  await runHooks(
    "after",
    hookEnv({
      COFFER_JOB_STATUS: status(beforeEnd),
      COFFER_JOB_EXIT_CODE: String(beforeEnd),
    }),
  );
  result.exitCode = worstExitCode(result.steps.map((s) => s.exitCode));
  result.status = status(result.exitCode);
  result.durationMs = Date.now() - startedAt;
  ctx.reporter.jobEnd(result);
  const { steps: _steps, ...fields } = result;
  log?.info({ step: "end", ...fields }, `job ${result.status}`);
  return result;

  async function runSteps(opened: Repository): Promise<void> {
    const c: StepContext = {
      job: name,
      config: job,
      host: job.host ?? hostname(),
      base: { ...repoArgs(repoConfig, ctx), opened, quiet: true, json: false },
      reporter: ctx.reporter,
      log,
      quiet: ctx.quiet,
    };
    const savedPaths: string[][] = [];
    // A step that waited out retry_lock in vain ends the job: later steps would wait as long.
    for (const source of job.sources) {
      const b = await step("backup", () =>
        backupStep(c, source, (saved) => {
          savedPaths.push(saved.paths);
          result.snapshots.push(saved.id);
          result.files += saved.summary.files;
          result.bytesRead += saved.summary.bytesRead;
          result.bytesAdded += saved.summary.bytesAdded;
          result.errors += saved.summary.errors;
        }),
      );
      if (b.exitCode === ExitCode.locked) return;
    }
    // Forget and prune only after a backup saved a snapshot, prune only after forget
    // succeeded; the sampled verify in any case, unless a step found the repository locked.
    let pruneAllowed = savedPaths.length > 0;
    if (pruneAllowed && job.retention !== undefined) {
      const f = await step("forget", () => forgetStep(c, savedPaths));
      if (f.exitCode === ExitCode.locked) return;
      pruneAllowed = f.exitCode === 0;
    }
    if (pruneAllowed && job.prune !== undefined) {
      const p = await step("prune", () => pruneStep(c));
      if (p.exitCode === ExitCode.locked) return;
    }
    const subset = job.verify?.read_data_subset;
    if (subset !== undefined) await step("verify", () => verifyStep(c, subset));
  }
}

function status(code: number): JobResult["status"] {
  return code === 0 ? "ok" : code === ExitCode.incomplete ? "partial" : "failed";
}
