import { formatBytes, printJson, shownPath, warn } from "../output.js";

// What `coffer run` shows while it works: a progress line on a terminal and a summary
// (human), one JSON object per event (--json), or errors only (--quiet). Errors always
// go to stderr, one line each, so cron mails them whatever the mode.

export type StepName = "before" | "open" | "backup" | "forget" | "prune" | "verify" | "after";

export interface StepResult {
  step: StepName;
  exitCode: number;
  durationMs: number;
  /** One line: what the step did, or why it failed. */
  message: string;
  detail?: Record<string, unknown>;
}

export interface JobResult {
  job: string;
  repository: string;
  exitCode: number;
  status: "ok" | "partial" | "failed";
  /** ms since the epoch */
  startedAt: number;
  durationMs: number;
  bytesRead: number;
  bytesAdded: number;
  files: number;
  errors: number;
  snapshots: string[];
  steps: StepResult[];
}

export interface Progress {
  files: number;
  bytes: number;
  errors: number;
  elapsedMs: number;
  /** From the scan beside the backup (terminal only); final once totalsDone. */
  totalFiles?: number;
  totalBytes?: number;
  totalsDone?: boolean;
}

export interface RunReporter {
  /** Whether progress totals are worth a scan of the sources (a terminal is watching). */
  readonly wantsTotals: boolean;
  start(runId: string, jobs: string[]): void;
  progress(job: string, p: Progress): void;
  /** The backup step of job ended: a progress line is cleared. */
  progressDone(job: string): void;
  fileError(job: string, path: string, message: string): void;
  warning(job: string, path: string, message: string): void;
  step(job: string, r: StepResult): void;
  jobEnd(r: JobResult): void;
  end(runId: string, exitCode: number, durationMs: number, jobs: JobResult[]): void;
}

function failedStep(job: string, r: StepResult): void {
  warn(`${job}: ${r.step}: ${r.message} (exit ${r.exitCode})`);
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** The progress line: files, bytes (of the total when known), rate and ETA. */
export function progressLine(job: string, p: Progress): string {
  const rate = p.elapsedMs > 0 ? (p.bytes * 1000) / p.elapsedMs : 0;
  let line = `${job}: ${p.files.toLocaleString("en")} files`;
  if (p.totalFiles !== undefined && p.totalsDone)
    line += ` of ${p.totalFiles.toLocaleString("en")}`;
  line += `, ${formatBytes(p.bytes)}`;
  if (p.totalBytes !== undefined && p.totalsDone) line += ` of ${formatBytes(p.totalBytes)}`;
  line += `, ${formatBytes(rate)}/s`;
  if (p.totalBytes !== undefined && p.totalsDone && rate > 0 && p.totalBytes >= p.bytes) {
    line += `, ETA ${duration(((p.totalBytes - p.bytes) / rate) * 1000)}`;
  }
  if (p.errors > 0) line += `, ${p.errors} errors`;
  return line;
}

/** Human output: summary lines on stdout; on a terminal, a progress line on stderr. */
export class HumanReporter implements RunReporter {
  readonly wantsTotals: boolean;
  readonly #tty: NodeJS.WriteStream | null;
  #shown = false;
  #lastDraw = 0;

  constructor(stderr: NodeJS.WriteStream = process.stderr) {
    this.#tty = stderr.isTTY ? stderr : null;
    this.wantsTotals = this.#tty !== null;
  }

  #clear(): void {
    if (this.#shown) this.#tty?.write("\r\x1b[K");
    this.#shown = false;
  }

  start(): void {}

  progress(job: string, p: Progress): void {
    const now = Date.now();
    if (this.#tty === null || now - this.#lastDraw < 200) return;
    this.#lastDraw = now;
    const width = (this.#tty.columns || 80) - 1;
    this.#tty.write(`\r\x1b[K${progressLine(job, p).slice(0, width)}`);
    this.#shown = true;
  }

  progressDone(): void {
    this.#clear();
  }

  fileError(job: string, path: string, message: string): void {
    this.#clear();
    warn(`${job}: error: ${shownPath(path)}: ${message}`);
  }

  warning(job: string, path: string, message: string): void {
    this.#clear();
    warn(`${job}: warning: ${shownPath(path)}: ${message}`);
  }

  step(job: string, r: StepResult): void {
    this.#clear();
    if (r.exitCode !== 0 && r.exitCode !== 3) failedStep(job, r);
    else if (r.step !== "open") process.stdout.write(`${job}: ${r.step}: ${r.message}\n`);
  }

  jobEnd(r: JobResult): void {
    process.stdout.write(
      `${r.job}: ${r.status} (exit ${r.exitCode}) in ${(r.durationMs / 1000).toFixed(1)} s\n`,
    );
  }

  end(_runId: string, exitCode: number, _ms: number, jobs: JobResult[]): void {
    if (jobs.length > 1) process.stdout.write(`${jobs.length} jobs, exit ${exitCode}\n`);
  }
}

/** --quiet: errors only, on stderr. */
export class QuietReporter implements RunReporter {
  readonly wantsTotals = false;
  start(): void {}
  progress(): void {}
  progressDone(): void {}
  fileError(job: string, path: string, message: string): void {
    warn(`${job}: error: ${shownPath(path)}: ${message}`);
  }
  warning(): void {}
  step(job: string, r: StepResult): void {
    if (r.exitCode !== 0 && r.exitCode !== 3) failedStep(job, r);
  }
  jobEnd(): void {}
  end(): void {}
}

/** --json: one object per line on stdout; progress at most every 5 s. */
export class JsonReporter implements RunReporter {
  readonly wantsTotals = false;
  #runId = "";
  #lastProgress = 0;
  start(runId: string, jobs: string[]): void {
    this.#runId = runId;
    printJson({ event: "start", run: runId, time: new Date().toISOString(), jobs });
  }
  progress(job: string, p: Progress): void {
    const now = Date.now();
    if (now - this.#lastProgress < 5000) return;
    this.#lastProgress = now;
    printJson({
      event: "progress",
      run: this.#runId,
      job,
      files: p.files,
      bytes: p.bytes,
      errors: p.errors,
      bytesPerSecond: p.elapsedMs > 0 ? Math.round((p.bytes * 1000) / p.elapsedMs) : 0,
      elapsedSeconds: Math.round(p.elapsedMs / 1000),
    });
  }
  progressDone(): void {}
  fileError(job: string, path: string, message: string): void {
    printJson({ event: "error", run: this.#runId, job, step: "backup", path, message });
  }
  warning(job: string, path: string, message: string): void {
    printJson({ event: "warning", run: this.#runId, job, step: "backup", path, message });
  }
  step(job: string, r: StepResult): void {
    if (r.exitCode !== 0 && r.exitCode !== 3) failedStep(job, r);
    const { detail, ...rest } = r;
    printJson({ event: "step", run: this.#runId, job, ...rest, ...detail });
  }
  jobEnd(r: JobResult): void {
    const { steps: _steps, ...rest } = r;
    printJson({ event: "job", run: this.#runId, ...rest });
  }
  end(runId: string, exitCode: number, durationMs: number, jobs: JobResult[]): void {
    printJson({
      event: "summary",
      run: runId,
      exitCode,
      durationMs,
      jobs: jobs.map((j) => ({ job: j.job, exitCode: j.exitCode, status: j.status })),
    });
  }
}
