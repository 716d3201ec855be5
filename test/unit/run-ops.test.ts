import { readdir, readFile, stat } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ExitCode, worstExitCode } from "../../cli/exit-codes.js";
import { progressLine } from "../../cli/run/run-output.js";
import type { JobMetrics } from "../../src/ops/metrics.js";
import { parseMetrics, writeMetricsFile } from "../../src/ops/metrics.js";
import { openRunLog, scrub, scrubUrls } from "../../src/ops/run-log.js";
import { useTempDir } from "../helpers.js";

function job(over: Partial<JobMetrics>): JobMetrics {
  return {
    job: "files",
    repository: "local",
    startedAt: 1_800_000_000,
    durationSeconds: 12.5,
    exitCode: 0,
    success: true,
    bytesAdded: 1000,
    bytesRead: 5000,
    files: 10,
    errors: 0,
    ...over,
  };
}

describe("worst exit code of a run", () => {
  it("orders integrity > key > lock > not found > fatal > partial > ok", () => {
    const order = [20, 12, 11, 10, 1, 3, 0];
    for (let i = 0; i < order.length; i++) {
      for (let j = i; j < order.length; j++) {
        expect(worstExitCode([order[j] as number, order[i] as number])).toBe(order[i]);
        expect(worstExitCode([order[i] as number, order[j] as number])).toBe(order[i]);
      }
    }
    expect(worstExitCode([])).toBe(ExitCode.ok);
    expect(worstExitCode([3, 3, 0])).toBe(3);
  });
});

describe("metrics file", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("writes every series, keeps last success when a run fails, keeps other jobs' series", async () => {
    const file = path.join(dir, "coffer.prom");
    await writeMetricsFile(file, [job({}), job({ job: 'we"ird\\name', files: 3 })]);
    const first = await readFile(file, "utf8");
    expect(first).toContain(
      'coffer_last_success_timestamp_seconds{job="files",repository="local"} 1800000013\n',
    );
    expect(first).toContain('coffer_files{job="we\\"ird\\\\name",repository="local"} 3\n');
    expect(first).toContain("# TYPE coffer_duration_seconds gauge\n");
    expect((await stat(file)).mode & 0o777).toBe(0o644);

    await writeMetricsFile(file, [
      job({ exitCode: 11, success: false, startedAt: 1_800_086_400, files: 0 }),
    ]);
    const m = parseMetrics(await readFile(file, "utf8"));
    const l = 'job="files",repository="local"';
    expect(m.get("coffer_last_success_timestamp_seconds")?.get(l)).toBe(1_800_000_013);
    expect(m.get("coffer_last_run_timestamp_seconds")?.get(l)).toBe(1_800_086_400);
    expect(m.get("coffer_last_exit_code")?.get(l)).toBe(11);
    expect(m.get("coffer_files")?.get(l)).toBe(0);
    expect(m.get("coffer_files")?.get('job="we\\"ird\\\\name",repository="local"')).toBe(3);
    // Only the file: the temp file was renamed over it.
    expect(await readdir(dir)).toEqual(["coffer.prom"]);
  });

  it("every line is valid exposition format: HELP, TYPE, or name{labels} number", async () => {
    const file = path.join(dir, "format.prom");
    await writeMetricsFile(file, [job({})]);
    for (const line of (await readFile(file, "utf8")).trimEnd().split("\n")) {
      expect(line).toMatch(
        /^(# (HELP|TYPE) coffer_[a-z_]+ .+|coffer_[a-z_]+\{job="[^"]*",repository="[^"]*"\} -?\d+(\.\d+)?)$/,
      );
    }
  });
});

describe("run log", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("scrubs URL user information and secret-named keys at any depth", () => {
    expect(scrubUrls("pg_dump postgresql://app:hunter2@db:5432/app failed")).toBe(
      "pg_dump postgresql://[redacted]@db:5432/app failed",
    );
    expect(scrubUrls("s3://bucket/prefix and https://host/x")).toBe(
      "s3://bucket/prefix and https://host/x",
    );
    expect(
      scrub({ a: { passphrase: "p", nested: [{ Token: "t", url: "mysql://root:pw@h/db" }] } }),
    ).toEqual({
      a: {
        passphrase: "[redacted]",
        nested: [{ Token: "[redacted]", url: "mysql://[redacted]@h/db" }],
      },
    });
  });

  it("writes JSON lines with the run id, mode 0600, and never a secret", async () => {
    const file = path.join(dir, "log", "coffer.log");
    const log = openRunLog(file, "abc123");
    log
      .child({ job: "db" })
      .error(
        { step: "backup", exitCode: 1, password: "hunter2", detail: { token: "t0ken" } },
        "pg_dump postgresql://app:hunter2@db/app exited 1",
      );
    const lines = (await readFile(file, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toEqual([
      expect.objectContaining({
        level: "error",
        run: "abc123",
        job: "db",
        step: "backup",
        exitCode: 1,
        msg: "pg_dump postgresql://[redacted]@db/app exited 1",
      }),
    ]);
    const text = await readFile(file, "utf8");
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("t0ken");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});

describe("progress line", () => {
  it("shows files, bytes, rate, and the ETA once the total is known", () => {
    const mib = 1024 * 1024;
    expect(
      progressLine("files", { files: 1234, bytes: 100 * mib, errors: 0, elapsedMs: 10_000 }),
    ).toBe("files: 1,234 files, 100.0 MiB, 10.0 MiB/s");
    expect(
      progressLine("files", {
        files: 1234,
        bytes: 100 * mib,
        errors: 2,
        elapsedMs: 10_000,
        totalFiles: 5000,
        totalBytes: 700 * mib,
        totalsDone: true,
      }),
    ).toBe("files: 1,234 files of 5,000, 100.0 MiB of 700.0 MiB, 10.0 MiB/s, ETA 1:00, 2 errors");
  });
});
