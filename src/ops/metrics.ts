import { open, readFile, rename, unlink } from "node:fs/promises";
import * as path from "node:path";

// A Prometheus text-format file (exposition format 0.0.4) for node_exporter's textfile
// collector: one series per metric and (job, repository). Written to a temp file in the
// same folder, then renamed over the old one, so the collector never reads half a file;
// the temp name does not end in .prom, so the collector never picks it up either.

export interface JobMetrics {
  job: string;
  repository: string;
  /** Unix seconds the job started. */
  startedAt: number;
  durationSeconds: number;
  exitCode: number;
  /** Exit 0, or 3 (a snapshot was saved without some unreadable files). */
  success: boolean;
  bytesAdded: number;
  bytesRead: number;
  files: number;
  errors: number;
}

const help: Record<string, string> = {
  coffer_last_success_timestamp_seconds:
    "Unix time the job last finished with exit code 0 or 3 (kept from the last file when a run fails)",
  coffer_last_run_timestamp_seconds: "Unix time the job last started",
  coffer_last_exit_code: "Exit code of the job's last run (0 ok, 3 partial, see coffer --help)",
  coffer_duration_seconds: "Duration of the job's last run",
  coffer_bytes_added:
    "Bytes the job's last run added to the repository (after dedup and compression)",
  coffer_bytes_read: "Bytes the job's last run read from its sources",
  coffer_files: "Files the job's last run backed up",
  coffer_errors: "Files and directories the job's last run could not read",
};

type Series = Map<string, Map<string, number>>; // metric → label set → value

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(job: string, repository: string): string {
  return `job="${escapeLabel(job)}",repository="${escapeLabel(repository)}"`;
}

const seriesLine =
  /^(coffer_[a-z_]+)\{(job="(?:[^"\\]|\\.)*",repository="(?:[^"\\]|\\.)*")\} (\S+)$/;

/** The series of a file this module wrote; other lines are ignored. */
export function parseMetrics(text: string): Series {
  const out: Series = new Map();
  for (const line of text.split("\n")) {
    const m = seriesLine.exec(line);
    if (m === null || help[m[1] as string] === undefined) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const metric = out.get(m[1] as string) ?? new Map<string, number>();
    metric.set(m[2] as string, value);
    out.set(m[1] as string, metric);
  }
  return out;
}

export function renderMetrics(series: Series): string {
  let out = "";
  for (const [name, text] of Object.entries(help)) {
    const values = series.get(name);
    if (values === undefined || values.size === 0) continue;
    out += `# HELP ${name} ${text}\n# TYPE ${name} gauge\n`;
    for (const [l, v] of [...values].sort(([a], [b]) => a.localeCompare(b))) {
      out += `${name}{${l}} ${v}\n`;
    }
  }
  return out;
}

/** The previous file's series updated with this run's jobs; other jobs' series are kept. */
export function mergeMetrics(previous: Series, jobs: readonly JobMetrics[]): Series {
  const out: Series = new Map([...previous].map(([k, v]) => [k, new Map(v)]));
  const set = (name: string, l: string, v: number) => {
    const m = out.get(name) ?? new Map<string, number>();
    m.set(l, v);
    out.set(name, m);
  };
  for (const j of jobs) {
    const l = labels(j.job, j.repository);
    const finished = Math.round(j.startedAt + j.durationSeconds);
    if (j.success) set("coffer_last_success_timestamp_seconds", l, finished);
    set("coffer_last_run_timestamp_seconds", l, Math.round(j.startedAt));
    set("coffer_last_exit_code", l, j.exitCode);
    set("coffer_duration_seconds", l, Math.round(j.durationSeconds * 1000) / 1000);
    set("coffer_bytes_added", l, j.bytesAdded);
    set("coffer_bytes_read", l, j.bytesRead);
    set("coffer_files", l, j.files);
    set("coffer_errors", l, j.errors);
  }
  return out;
}

/** Updates the metrics file atomically (temp file + fsync + rename), mode 0644. */
export async function writeMetricsFile(file: string, jobs: readonly JobMetrics[]): Promise<void> {
  let previous = "";
  try {
    previous = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const text = renderMetrics(mergeMetrics(parseMetrics(previous), jobs));
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fh = await open(tmp, "w", 0o644);
  try {
    await fh.writeFile(text);
    await fh.chmod(0o644);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
