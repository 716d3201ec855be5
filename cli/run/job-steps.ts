import type { JobConfig, SourceConfig } from "../../src/config/schema.js";
import type { RunLogger } from "../../src/ops/run-log.js";
import type { PrunePlan } from "../../src/repo/prune.js";
import type { BackupSummary } from "../../src/repo/snapshot.js";
import { excludeMatcher } from "../../src/source/exclude.js";
import { scanTotals } from "../../src/source/scan.js";
import { backupCommand } from "../commands/backup.js";
import { forgetCommand } from "../commands/forget.js";
import { pruneCommand } from "../commands/prune.js";
import { verifyCommand } from "../commands/verify.js";
import { ExitCode } from "../exit-codes.js";
import { formatBytes } from "../output.js";
import type { RepoArgs } from "../session.js";
import type { RunReporter, StepResult } from "./run-output.js";

// The repository steps of a job. Each calls a command's handler in-process with an
// observer, so it does what the command does and reports instead of printing.

export type StepOutcome = Omit<StepResult, "step" | "durationMs">;

export interface StepContext {
  job: string;
  config: JobConfig;
  host: string;
  /** The repository's options and the opened repository, as the handlers take them. */
  base: RepoArgs & Record<string, unknown>;
  reporter: RunReporter;
  log: RunLogger | null;
  quiet: boolean;
}

/** Calls a handler with an observer's onResult and returns what it reported. */
async function observe<T>(what: string, call: (onResult: (r: T) => void) => Promise<void>) {
  const box: { value?: T } = {};
  await call((r) => {
    box.value = r;
  });
  if (box.value === undefined) throw new Error(`${what} ended without a result`);
  return box.value;
}

/** The backup options a source maps to (database and command options by their CLI names). */
function sourceArgs(s: SourceConfig): Record<string, unknown> {
  if (s.paths !== undefined) return { paths: s.paths, exclude: s.exclude ?? [] };
  return {
    postgres: s.postgres,
    mysql: s.mysql,
    // The config's argv list, in --command's JSON-array form (no shell, no re-splitting).
    command: s.command === undefined ? undefined : JSON.stringify(s.command),
    "stdin-name": s.stdin_name,
    "pg-format": s.pg_format,
    "all-databases": s.all_databases,
  };
}

function describeSource(s: SourceConfig): string {
  if (s.paths) return s.paths.join(" ");
  if (s.postgres) return "postgres";
  if (s.mysql) return "mysql";
  return s.command?.[0] ?? "command";
}

export interface SavedSnapshot {
  id: string;
  paths: string[];
  summary: BackupSummary;
}

/** One source's backup; on a terminal, a scan beside it counts the total for the ETA. */
export async function backupStep(
  c: StepContext,
  source: SourceConfig,
  onSaved: (s: SavedSnapshot) => void,
): Promise<StepOutcome> {
  const started = Date.now();
  const scan = new AbortController();
  let totals: { files: number; bytes: number; done: boolean } | undefined;
  if (c.reporter.wantsTotals && source.paths) {
    void scanTotals(source.paths, excludeMatcher(source.exclude ?? []), scan.signal, (t) => {
      totals = t;
    });
  }
  let saved: SavedSnapshot;
  try {
    saved = await observe<SavedSnapshot>("backup", (onResult) =>
      backupCommand.handler({
        ...c.base,
        ...sourceArgs(source),
        tag: c.config.tags ?? [],
        host: c.host,
        observer: {
          onError: (p, m) => {
            c.reporter.fileError(c.job, p, m);
            c.log?.warn({ step: "backup", path: p }, m);
          },
          onWarning: (p, m) => {
            if (!c.quiet) c.reporter.warning(c.job, p, m);
            c.log?.warn({ step: "backup", path: p }, m);
          },
          onProgress: (p) =>
            c.reporter.progress(c.job, {
              ...p,
              elapsedMs: Date.now() - started,
              totalFiles: totals?.files,
              totalBytes: totals?.bytes,
              totalsDone: totals?.done,
            }),
          onResult,
        },
      }),
    );
  } finally {
    scan.abort();
    c.reporter.progressDone(c.job);
  }
  onSaved(saved);
  const s = saved.summary;
  return {
    exitCode: s.errors > 0 ? ExitCode.incomplete : 0,
    message:
      `${describeSource(source)}: ${s.files} files, ${formatBytes(s.bytesRead)} read, ` +
      `${formatBytes(s.bytesAdded)} added, snapshot ${saved.id.slice(0, 8)}` +
      (s.errors > 0 ? `; ${s.errors} unreadable (named above)` : ""),
    detail: { snapshot: saved.id, ...s },
  };
}

/** Forget by the job's policy, among the snapshots of its host, tags and saved paths. */
export async function forgetStep(c: StepContext, onlyPaths: string[][]): Promise<StepOutcome> {
  const r = c.config.retention ?? {};
  const report = await observe<{ groups: { keep: unknown[]; remove: unknown[] }[] }>(
    "forget",
    (onResult) =>
      forgetCommand.handler({
        ...c.base,
        "keep-last": r.keep_last,
        "keep-hourly": r.keep_hourly,
        "keep-daily": r.keep_daily,
        "keep-weekly": r.keep_weekly,
        "keep-monthly": r.keep_monthly,
        "keep-yearly": r.keep_yearly,
        "keep-tag": r.keep_tag ?? [],
        host: c.host,
        tag: c.config.tags ?? [],
        observer: { onlyPaths, onResult },
      }),
  );
  const kept = report.groups.reduce((n, g) => n + g.keep.length, 0);
  const removed = report.groups.reduce((n, g) => n + g.remove.length, 0);
  return {
    exitCode: 0,
    message: `kept ${kept} snapshots, removed ${removed}`,
    detail: { kept, removed },
  };
}

export async function pruneStep(c: StepContext): Promise<StepOutcome> {
  const plan = await observe<PrunePlan>("prune", (onResult) =>
    pruneCommand.handler({
      ...c.base,
      "max-unused": c.config.prune?.max_unused ?? 5,
      observer: { onResult },
    }),
  );
  return {
    exitCode: 0,
    message: `${plan.packsDeleted + plan.unreferencedPacks} packs deleted, ${plan.packsRepacked} repacked, ${formatBytes(plan.bytesFreed)} freed`,
    detail: { ...plan },
  };
}

/** The sampled verify: a damaged pack in the sample is exit 20. */
export async function verifyStep(c: StepContext, subset: string): Promise<StepOutcome> {
  const r = await observe<{ errors: string[]; packsRead: number; packs: number }>(
    "verify",
    (onResult) =>
      verifyCommand.handler({ ...c.base, "read-data-subset": subset, observer: { onResult } }),
  );
  if (r.errors.length > 0) {
    for (const e of r.errors) c.log?.error({ step: "verify" }, e);
    return {
      exitCode: ExitCode.integrity,
      message: `${r.errors.length} problems: ${r.errors[0]}`,
      detail: { errors: r.errors.length, packsRead: r.packsRead },
    };
  }
  return {
    exitCode: 0,
    message: `read ${r.packsRead} of ${r.packs} packs (${subset}): no errors`,
    detail: { packsRead: r.packsRead, packs: r.packs },
  };
}
