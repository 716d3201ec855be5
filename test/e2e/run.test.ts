import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parseMetrics } from "../../src/ops/metrics.js";
import { Lock } from "../../src/repo/lock.js";
import { coffer, initRepo, openStore, repoRoot, testPassphrase, useTempDir } from "../helpers.js";
import { cli, hasCommand } from "./e2e-helpers.js";

// `coffer run` through the built CLI: a job from a config file with hooks, retention,
// prune and a sampled verify; its metrics file, JSON log, --json events and --quiet.

interface Setup {
  dir: string;
  repo: string;
  src: string;
  config: string;
  log: string;
  metrics: string;
}

async function setUp(dir: string, jobs: string): Promise<Setup> {
  const s: Setup = {
    dir,
    repo: path.join(dir, "repo"),
    src: path.join(dir, "src"),
    config: path.join(dir, "coffer.yaml"),
    log: path.join(dir, "log", "coffer.log"),
    metrics: path.join(dir, "metrics", "coffer.prom"),
  };
  await mkdir(path.join(s.src, "cache"), { recursive: true });
  await mkdir(path.dirname(s.metrics), { recursive: true });
  await writeFile(path.join(s.src, "a.txt"), "first version\n");
  await writeFile(path.join(s.src, "cache", "x.tmp"), "scratch\n");
  await writeFile(path.join(dir, "passphrase"), `${testPassphrase}\n`, { mode: 0o600 });
  await initRepo(s.repo);
  await writeFile(
    s.config,
    `log_file: ${s.log}
metrics_file: ${s.metrics}
repositories:
  local:
    path: ${s.repo}
    passphrase_file: ${path.join(dir, "passphrase")}
jobs:
${jobs}`,
    { mode: 0o600 },
  );
  return s;
}

/** Runs the CLI with no passphrase in the environment: the config names the secret. */
function run(args: string[]) {
  return coffer(["run", ...args], { env: { COFFER_PASSPHRASE: undefined } });
}

async function snapshots(repo: string): Promise<{ id: string; tags: string[] }[]> {
  return JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout);
}

describe("coffer run", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("runs a job end to end: hooks, backup, forget per policy, prune, sampled verify, metrics and JSON log", async () => {
    const d = path.join(dir, "e2e");
    await mkdir(d);
    const hooksOut = path.join(d, "hooks");
    await mkdir(hooksOut);
    const s = await setUp(
      d,
      `  files:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
        exclude: ["*.tmp"]
    tags: [nightly]
    retention:
      keep_last: 1
    prune:
      max_unused: 0
    verify:
      read_data_subset: "100%"
    hooks:
      before:
        - [sh, -c, 'echo "before $COFFER_JOB" >> ${hooksOut}/before.txt']
      after:
        - [sh, -c, 'echo "$COFFER_JOB_STATUS $COFFER_JOB_EXIT_CODE" >> ${hooksOut}/after.txt']
  other:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
    hooks:
      before:
        - ["false"]
      after:
        - [sh, -c, 'echo "$COFFER_JOB_STATUS $COFFER_JOB_EXIT_CODE" >> ${hooksOut}/other-after.txt']
`,
    );
    const first = await run(["--config", s.config, "files"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^files: backup: .*1 files.*snapshot [0-9a-f]{8}$/m);
    expect(first.stdout).toMatch(/^files: verify: read \d+ of \d+ packs \(100%\): no errors$/m);
    expect(first.stdout).toMatch(/^files: ok \(exit 0\)/m);
    await writeFile(path.join(s.src, "a.txt"), "second version\n");
    const second = await run(["--config", s.config, "files"]);
    expect(second.code, second.stderr).toBe(0);

    // Hooks ran before and after each run, with the job's status.
    expect(await readFile(path.join(hooksOut, "before.txt"), "utf8")).toBe(
      "before files\nbefore files\n",
    );
    expect(await readFile(path.join(hooksOut, "after.txt"), "utf8")).toBe("ok 0\nok 0\n");

    // keep_last 1: the second run's snapshot is the only one, excludes applied; prune
    // left a repository that fully verifies and restores the newest bytes.
    const left = await snapshots(s.repo);
    expect(left).toHaveLength(1);
    expect(left[0]?.tags).toEqual(["nightly"]);
    const ls = (await coffer(["ls", "--repo", s.repo, "latest", s.src])).stdout;
    expect(ls).toContain("a.txt");
    expect(ls).not.toContain("x.tmp");
    expect((await coffer(["verify", "--repo", s.repo, "--read-data"])).code).toBe(0);
    const restored = await coffer([
      "restore",
      "--repo",
      s.repo,
      "latest",
      "--stdout",
      path.join(s.src, "a.txt"),
    ]);
    expect(restored.stdout).toBe("second version\n");

    // Metrics: one series per metric for the job, parsed back.
    const metricsText = await readFile(s.metrics, "utf8");
    const metrics = parseMetrics(metricsText);
    const files = 'job="files",repository="local"';
    const lastSuccess = metrics.get("coffer_last_success_timestamp_seconds")?.get(files);
    expect(lastSuccess).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(metrics.get("coffer_last_exit_code")?.get(files)).toBe(0);
    expect(metrics.get("coffer_files")?.get(files)).toBe(1);
    expect(metrics.get("coffer_errors")?.get(files)).toBe(0);
    expect(metrics.get("coffer_bytes_read")?.get(files)).toBe("second version\n".length);
    expect(metrics.get("coffer_bytes_added")?.get(files)).toBeGreaterThan(0);
    expect(metrics.get("coffer_duration_seconds")?.get(files)).toBeGreaterThan(0);
    expect(metricsText).toContain("# TYPE coffer_last_success_timestamp_seconds gauge");
    expect((await stat(s.metrics)).mode & 0o777).toBe(0o644);
    expect((await readdir(path.dirname(s.metrics))).sort()).toEqual(["coffer.prom"]);

    // The JSON log: every line parses; steps carry run id, job, duration, exit code.
    const logText = await readFile(s.log, "utf8");
    expect(logText).not.toContain(testPassphrase);
    const lines = logText
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const runs = new Set(lines.map((l) => l.run));
    expect(runs.size).toBe(2);
    const steps = lines.filter((l) => l.job === "files").map((l) => l.step);
    expect(steps.slice(0, 9)).toEqual([
      "start",
      "before",
      "open",
      "backup",
      "forget",
      "prune",
      "verify",
      "after",
      "end",
    ]);
    const backupLine = lines.find((l) => l.step === "backup");
    expect(backupLine).toMatchObject({ job: "files", exitCode: 0, files: 1 });
    expect(typeof backupLine.durationMs).toBe("number");
    expect(backupLine.snapshot).toMatch(/^[0-9a-f]{64}$/);
    const forgetLines = lines.filter((l) => l.step === "forget");
    expect(forgetLines.map((l) => l.removed)).toEqual([0, 1]);
    expect(lines.filter((l) => l.step === "end" && l.job === undefined).length).toBe(2);

    // A failing before-hook fails the job: nothing backed up, after-hooks told, exit 1;
    // the metrics keep the other job's series and this job's (absent) last success.
    const failed = await run(["--config", s.config, "other"]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /^coffer: other: before: hook failed: false exited 1 \(exit 1\)$/m,
    );
    expect(await snapshots(s.repo)).toHaveLength(1);
    expect(await readFile(path.join(hooksOut, "other-after.txt"), "utf8")).toBe("failed 1\n");
    const after = parseMetrics(await readFile(s.metrics, "utf8"));
    const other = 'job="other",repository="local"';
    expect(after.get("coffer_last_exit_code")?.get(other)).toBe(1);
    expect(after.get("coffer_last_success_timestamp_seconds")?.get(other)).toBeUndefined();
    expect(after.get("coffer_last_success_timestamp_seconds")?.get(files)).toBe(lastSuccess);

    // --all runs both: the worst exit code wins.
    const all = await run(["--config", s.config, "--all", "--quiet"]);
    expect(all.code).toBe(1);
    expect(all.stdout).toBe("");
    expect(all.stderr.trim().split("\n")).toEqual([
      "coffer: other: before: hook failed: false exited 1 (exit 1)",
    ]);
  });

  it("--json prints one event per line: start, steps, job, summary; --quiet prints nothing on success; the sample crontab and service commands run", async () => {
    const d = path.join(dir, "json");
    await mkdir(d);
    const s = await setUp(
      d,
      `  files:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
    retention: {keep_daily: 1}
    verify: {read_data_subset: "1/1"}
`,
    );
    const r = await run(["--config", s.config, "--all", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ event: "start", jobs: ["files"] });
    expect(events[0].run).toMatch(/^[0-9a-f]{16}$/);
    expect(events.at(-1)).toMatchObject({
      event: "summary",
      run: events[0].run,
      exitCode: 0,
      jobs: [{ job: "files", exitCode: 0, status: "ok" }],
    });
    const steps = events.filter((e) => e.event === "step");
    expect(steps.map((e) => e.step)).toEqual(["open", "backup", "forget", "verify"]);
    const backup = steps[1];
    expect(backup).toMatchObject({ job: "files", exitCode: 0, files: 2, errors: 0 });
    expect(backup.snapshot).toMatch(/^[0-9a-f]{64}$/);
    expect(events.find((e) => e.event === "job")).toMatchObject({
      job: "files",
      repository: "local",
      exitCode: 0,
      status: "ok",
      files: 2,
    });
    for (const e of events) expect(e.run).toBe(events[0].run);

    const quiet = await run(["--config", s.config, "--all", "--quiet"]);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stdout).toBe("");
    expect(quiet.stderr).toBe("");

    // The commands of the sample crontab and systemd service, with the config from
    // COFFER_CONFIG instead of /etc/coffer: their options must stay valid.
    const samples = path.join(repoRoot, "samples/config");
    const cronLine = (await readFile(path.join(samples, "crontab"), "utf8"))
      .split("\n")
      .find((l) => /^\d/.test(l)) as string;
    const execStart = (await readFile(path.join(samples, "coffer.service"), "utf8"))
      .split("\n")
      .find((l) => l.startsWith("ExecStart=")) as string;
    for (const line of [cronLine, execStart]) {
      const argv = line.slice(line.indexOf("/usr/local/bin/coffer ")).split(" ").slice(1);
      const r = await coffer(argv, {
        env: { COFFER_CONFIG: s.config, COFFER_PASSPHRASE: undefined },
      });
      expect(r.code, `${line}\n${r.stderr}`).toBe(0);
      if (argv.includes("--quiet")) expect(r.stdout + r.stderr).toBe("");
      else expect(r.stdout).toMatch(/^files: ok \(exit 0\)/m);
    }
  });

  it("a passphrase from passphrase_env opens the repository and never reaches hooks", async () => {
    const d = path.join(dir, "env");
    await mkdir(d);
    const s = await setUp(
      d,
      `  files:
    repository: fromenv
    sources:
      - paths: [${path.join(d, "src")}]
    hooks:
      after:
        - [sh, -c, 'env > ${d}/hook-env.txt']
`,
    );
    const text = (await readFile(s.config, "utf8")).replace(
      "jobs:",
      `  fromenv:\n    path: ${s.repo}\n    passphrase_env: BACKUP_PASS\njobs:`,
    );
    await writeFile(s.config, text);
    const missing = await coffer(["run", "--config", s.config, "files"], {
      env: { COFFER_PASSPHRASE: undefined, BACKUP_PASS: undefined },
    });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      `${s.config}:9: repositories.fromenv.passphrase_env: BACKUP_PASS is not set`,
    );
    const r = await coffer(["run", "--config", s.config, "files"], {
      env: { COFFER_PASSPHRASE: testPassphrase, BACKUP_PASS: testPassphrase },
    });
    expect(r.code, r.stderr).toBe(0);
    const hookEnv = await readFile(path.join(d, "hook-env.txt"), "utf8");
    expect(hookEnv).toContain("COFFER_JOB=files");
    expect(hookEnv).not.toContain(testPassphrase);
    const wrong = await coffer(["run", "--config", s.config, "files"], {
      env: { BACKUP_PASS: "not the passphrase" },
    });
    expect(wrong.code).toBe(12);
  });

  it("a job's forget touches only its own snapshots: two jobs, two policies, one repository", async () => {
    const d = path.join(dir, "scope");
    await mkdir(d);
    await mkdir(path.join(d, "other"), { recursive: true });
    await writeFile(path.join(d, "other", "b.txt"), "b\n");
    const s = await setUp(
      d,
      `  short:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
    retention: {keep_last: 1}
  long:
    repository: local
    sources:
      - paths: [${path.join(d, "other")}]
      - paths: [${path.join(d, "src")}, ${path.join(d, "other")}]
    retention: {keep_last: 5}
`,
    );
    for (let i = 0; i < 2; i++) {
      const r = await run(["--config", s.config, "long", "short"]);
      expect(r.code, r.stderr).toBe(0);
    }
    const byPaths = new Map<string, number>();
    for (const snap of JSON.parse(
      (await coffer(["snapshots", "--repo", s.repo, "--json"])).stdout,
    ) as { paths: string[] }[]) {
      const key = snap.paths.join(" ");
      byPaths.set(key, (byPaths.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(byPaths)).toEqual({
      [s.src]: 1,
      [path.join(d, "other")]: 2,
      [`${s.src} ${path.join(d, "other")}`]: 2,
    });
  });

  it("a repository locked by another process: exit 11, in the metrics and for the after-hook", async () => {
    const d = path.join(dir, "locked");
    await mkdir(d);
    const s = await setUp(
      d,
      `  files:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
    verify: {read_data_subset: "10%"}
    hooks:
      after:
        - [sh, -c, 'echo "$COFFER_JOB_STATUS $COFFER_JOB_EXIT_CODE" > ${d}/after.txt']
`,
    );
    const store = await openStore(s.repo);
    const lock = await Lock.acquire(store.repo, true);
    try {
      const r = await run(["--config", s.config, "files"]);
      expect(r.code, r.stderr).toBe(11);
      expect(r.stderr).toMatch(/^coffer: files: backup: repository is locked: .*\(exit 11\)$/m);
      // The verify would wait for the same lock: it is skipped.
      expect(r.stderr).not.toContain("verify");
    } finally {
      await lock.release();
    }
    expect(await readFile(path.join(d, "after.txt"), "utf8")).toBe("failed 11\n");
    const m = parseMetrics(await readFile(s.metrics, "utf8"));
    expect(m.get("coffer_last_exit_code")?.get('job="files",repository="local"')).toBe(11);
    expect(await snapshots(s.repo)).toHaveLength(0);
  });

  it("a damaged pack found by the sampled verify: exit 20, the worst of the run", async () => {
    const d = path.join(dir, "damaged");
    await mkdir(d);
    const s = await setUp(
      d,
      `  files:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
    verify: {read_data_subset: "100%"}
  broken-hook:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
    hooks:
      before:
        - ["false"]
`,
    );
    await writeFile(path.join(s.src, "data.bin"), randomBytes(200_000));
    const first = await run(["--config", s.config, "files"]);
    expect(first.code, first.stderr).toBe(0);
    // The largest pack holds data.bin's chunks; flip one byte in its middle.
    const packs: { file: string; size: number }[] = [];
    for (const sub of await readdir(path.join(s.repo, "data"))) {
      for (const f of await readdir(path.join(s.repo, "data", sub))) {
        const file = path.join(s.repo, "data", sub, f);
        packs.push({ file, size: (await stat(file)).size });
      }
    }
    const victim = packs.sort((a, b) => b.size - a.size)[0] as { file: string; size: number };
    const bytes = await readFile(victim.file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    await chmod(victim.file, 0o600);
    await writeFile(victim.file, bytes);

    const r = await run(["--config", s.config, "--all"]);
    expect(r.code, r.stderr).toBe(20);
    expect(r.stderr).toMatch(/^coffer: files: verify: \d+ problems: .*\(exit 20\)$/m);
    expect(r.stderr).toMatch(/^coffer: broken-hook: before: hook failed/m);
    const m = parseMetrics(await readFile(s.metrics, "utf8"));
    expect(m.get("coffer_last_exit_code")?.get('job="files",repository="local"')).toBe(20);
    expect(m.get("coffer_last_exit_code")?.get('job="broken-hook",repository="local"')).toBe(1);
  });

  it("a command source stores its output; a command that fails records nothing and exits 1", async () => {
    const d = path.join(dir, "command");
    await mkdir(d);
    const s = await setUp(
      d,
      `  dump:
    repository: local
    sources:
      - command: [sh, -c, "printf 'dump body'"]
        stdin_name: app.dump
  broken:
    repository: local
    sources:
      - command: [sh, -c, "printf partial; exit 3"]
        stdin_name: broken.dump`,
    );
    const ok = await run(["dump", "--config", s.config]);
    expect(ok.code, ok.stderr).toBe(0);
    const snaps = await snapshots(s.repo);
    expect(snaps).toHaveLength(1);
    const body = await coffer(["restore", "--repo", s.repo, "latest", "--stdout", "app.dump"]);
    expect(body.stdout).toBe("dump body");
    const bad = await run(["broken", "--config", s.config]);
    expect(bad.code).toBe(1);
    expect(await snapshots(s.repo)).toHaveLength(1);
  });

  it("config errors name file, line and key, say what is expected, and exit 1", async () => {
    const d = path.join(dir, "errors");
    await mkdir(d);
    const s = await setUp(
      d,
      `  files:
    repository: local
    sources:
      - paths: [${path.join(d, "src")}]
    retention:
      keep_daily: 7
`,
    );
    const good = await readFile(s.config, "utf8");
    const cases: [string, string][] = [
      [good.replace("  files:", "  files:\n   bad: 1"), `${s.config}:9: invalid YAML: `],
      [
        good.replace("    retention:", "    retain:"),
        `${s.config}:12: jobs.files.retain: unknown key: expected one of repository, sources,`,
      ],
      [
        good.replace("keep_daily: 7", "keep_daily: [7]"),
        `${s.config}:13: jobs.files.retention.keep_daily: expected a number of days, a whole number, got a list`,
      ],
      [
        good.replace(path.join(d, "passphrase"), path.join(d, "missing")),
        `${s.config}:6: repositories.local.passphrase_file: cannot read ${path.join(d, "missing")} (ENOENT): expected a readable file`,
      ],
      [
        good.replace(
          `    passphrase_file: ${path.join(d, "passphrase")}`,
          "    passphrase: hunter2",
        ),
        `${s.config}:6: repositories.local.passphrase: secrets are not written in the config file: use passphrase_file: FILE`,
      ],
    ];
    for (const [text, expected] of cases) {
      await writeFile(s.config, text);
      const r = await run(["--config", s.config, "--all"]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.startsWith(`coffer: ${expected}`), r.stderr).toBe(true);
      expect(r.stderr).not.toContain("hunter2");
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    // The config comes from COFFER_CONFIG too; a readable-by-others file is warned about.
    await writeFile(s.config, good);
    await chmod(s.config, 0o644);
    const viaEnv = await coffer(["run", "--check"], {
      env: { COFFER_CONFIG: s.config, COFFER_PASSPHRASE: undefined },
    });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(viaEnv.stdout).toBe(`${s.config}: ok (1 jobs: files)\n`);
    expect(viaEnv.stderr).toBe(
      `coffer: ${s.config} is readable by group or others and names secret files: chmod 600 ${s.config}\n`,
    );
    const unknownJob = await run(["--config", s.config, "nightly"]);
    expect(unknownJob.code).toBe(1);
    expect(unknownJob.stderr).toContain(
      `no job named nightly in ${s.config}: expected one of files`,
    );
  });
});

// Root reads everything: the unreadable-file event is checked as nobody (setpriv).
const nobody = 65534;
const canDropPrivileges = process.getuid?.() === 0 && hasCommand("setpriv");

describe("coffer run --json as an unprivileged user", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it.skipIf(!canDropPrivileges)(
    "reports each unreadable file as an error event and exits 3 (needs root and setpriv)",
    async () => {
      const s = await setUp(
        dir,
        `  files:
    repository: local
    sources:
      - paths: [${path.join(dir, "src")}]
`,
      );
      await writeFile(path.join(s.src, "secret.txt"), "no one may read this\n");
      execFileSync("chown", ["-R", `${nobody}:${nobody}`, dir]);
      await chmod(path.join(s.src, "secret.txt"), 0o000);
      const r = await cli(["run", "--config", s.config, "files", "--json"], {
        prefix: ["setpriv", `--reuid=${nobody}`, `--regid=${nobody}`, "--clear-groups"],
        env: { COFFER_PASSPHRASE: undefined },
      });
      expect(r.code, r.stderr).toBe(3);
      const events = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      const errors = events.filter((e) => e.event === "error");
      expect(errors).toEqual([
        {
          event: "error",
          run: events[0].run,
          job: "files",
          step: "backup",
          path: path.join(s.src, "secret.txt"),
          message: expect.stringMatching(/^EACCES/),
        },
      ]);
      expect(events.at(-1)).toMatchObject({ event: "summary", exitCode: 3 });
      expect(events.find((e) => e.event === "job")).toMatchObject({ status: "partial", errors: 1 });
    },
  );
});
