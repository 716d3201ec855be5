#!/usr/bin/env node
// coffer benchmark harness: coffer vs restic vs borg on the shared corpus. See bench/README.md.
//
//   node bench/run.mjs [--corpus DIR] [--small] [--only coffer,restic,borg] [--out FILE]
//                      [--scratch DIR] [--keep]
import { existsSync, rmSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { duBytes, filesystemOf, logPath, runMeasured, runPlain } from "./lib/measure.mjs";
import { BUSY_LOAD, markdown, ROWS, ratios } from "./lib/report.mjs";
import { ensurePeers, makeTool, restoredRoot } from "./lib/tools.mjs";
import { compareManifests, makeMutationDeterministic, manifest, treeStats } from "./lib/tree.mjs";

const repoRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const datasetSh = path.resolve(repoRoot, "..", "shared", "bench", "dataset.sh");
const ALL_TOOLS = ["coffer", "restic", "borg", "coffer-s3", "restic-s3"];

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

function usage() {
  return `usage: node bench/run.mjs [options]
  --corpus DIR     use DIR as the pristine corpus (never modified); default: build one with
                   ../shared/bench/dataset.sh under the scratch dir and reuse it next time
  --small          the small corpus (~130 MB, ~9k files) instead of the full one (~1.5 GB)
  --only LIST      comma-separated subset of ${ALL_TOOLS.join(",")} (default: all)
  --out FILE       JSON results (a Markdown copy goes to FILE with .md); default:
                   <scratch>/latest.json
  --scratch DIR    scratch dir (default: ${path.join(os.tmpdir(), "coffer-bench")})
  --keep           keep each tool's repository and cache after its run`;
}

function parseCli() {
  const { values } = parseArgs({
    options: {
      corpus: { type: "string" },
      small: { type: "boolean", default: false },
      only: { type: "string" },
      out: { type: "string" },
      scratch: { type: "string" },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }
  const tools = values.only ? values.only.split(",").map((s) => s.trim()) : ALL_TOOLS;
  for (const t of tools) {
    if (!ALL_TOOLS.includes(t)) throw new Error(`--only: unknown tool ${t}\n${usage()}`);
  }
  const scratch = path.resolve(values.scratch ?? path.join(os.tmpdir(), "coffer-bench"));
  return {
    ...values,
    tools,
    scratch,
    out: path.resolve(values.out ?? path.join(scratch, "latest.json")),
  };
}

/** The pristine corpus: --corpus as given, or dataset.sh's output, built once and reused. */
async function prepareCorpus(opts) {
  if (opts.corpus) {
    const dir = path.resolve(opts.corpus);
    if (!existsSync(dir)) throw new Error(`--corpus ${dir} does not exist`);
    return { kind: "custom", path: dir };
  }
  const kind = opts.small ? "small" : "full";
  const dir = path.join(opts.scratch, `corpus-${kind}`);
  const done = `${dir}.done`; // written only after dataset.sh succeeded
  if (existsSync(dir) && existsSync(done)) {
    log(`reusing corpus ${dir}`);
    return { kind, path: dir };
  }
  log(`building ${kind} corpus in ${dir} with ${datasetSh} ...`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(opts.scratch, { recursive: true });
  runPlain(["bash", datasetSh, dir, ...(opts.small ? ["small"] : [])]);
  await writeFile(done, `${new Date().toISOString()}\n`);
  return { kind, path: dir };
}

/**
 * Moves DIR out of the way instead of deleting it; the trash goes when the run ends. On
 * ext4 without a journal (the scratch file system of this project's machines) a freed
 * inode is stepped over when files are created for a minute after its deletion, six
 * while its inode-table block is dirty (and creating files dirties them): after one
 * tool's 66,000 restored files were deleted, the next tool's restore spent 30 s of system
 * time in `recently_deleted` (`perf`) and took 21 s instead of 9. Deleting between tools
 * made each tool's rows pay for the one before it.
 */
let trashCount = 0;
async function discard(opts, dir) {
  if (!existsSync(dir)) return;
  const trash = path.join(opts.scratch, "trash");
  await mkdir(trash, { recursive: true });
  await rename(dir, path.join(trash, `${trashCount++}-${path.basename(dir)}`));
}

async function emptyTrash(opts) {
  await rm(path.join(opts.scratch, "trash"), { recursive: true, force: true });
}

/**
 * One run per scratch dir. Two runs share work/ and trash/: one's corpus copy or clean-up
 * deletes what the other is backing up (seen: 13,715 files vanished under a first backup,
 * which failed) and its load marks the other's rows busy. A lock left by a run that died
 * (its pid is gone) is taken over.
 */
async function lockScratch(scratch) {
  const file = path.join(scratch, "run.lock");
  for (;;) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: "wx" });
      process.on("exit", () => rmSync(file, { force: true }));
      return;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
    const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      console.error(
        `bench: another run (pid ${pid}) is using ${scratch}: wait for it, or give --scratch`,
      );
      process.exit(2);
    }
    await rm(file, { force: true });
  }
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

function fail(row, r, why) {
  return { ...row, ok: false, error: why ?? r.stderrTail.trim().split("\n").slice(-5).join("\n") };
}

/** One tool's five rows on a fresh working copy of the corpus. */
async function benchTool(tool, opts, corpus, reference) {
  const base = path.join(opts.scratch, "run", tool.name);
  const d = {
    repo: path.join(base, "repo"),
    cache: path.join(base, "cache"),
    data: path.join(opts.scratch, "work", "data"), // same absolute path for every tool
  };
  const logDir = path.join(opts.scratch, "logs");
  const env = { ...process.env, ...tool.env(d) };
  const result = { name: tool.name, version: tool.version, rows: [] };
  if (tool.expectVersion && !tool.version.startsWith(tool.expectVersion)) {
    log(`warning: expected ${tool.expectVersion}, found ${tool.version}`);
  }

  await discard(opts, base);
  await discard(opts, d.data);
  await mkdir(d.cache, { recursive: true });
  await mkdir(logDir, { recursive: true });
  await mkdir(path.dirname(d.data), { recursive: true });
  if (tool.setup) await tool.setup(d); // the S3 tools start their server here
  log(`${tool.name}: copying corpus to ${d.data}`);
  runPlain(["cp", "-a", corpus.path, d.data]);
  try {
    runPlain(tool.init(d), { env });
  } catch (e) {
    result.error = `init failed: ${e.message}`;
    log(`${tool.name}: ${result.error}`);
    return result;
  }

  const measure = async (rowName, argv, extra = {}) => {
    runPlain(["sync"]); // earlier rows' writeback must not land in this row's time
    log(`${tool.name}: ${rowName} ...`);
    const countsBefore = await tool.requestCounts?.();
    const r = await runMeasured(argv, {
      env,
      cwd: extra.cwd,
      logBase: logPath(logDir, tool.name, rowName),
    });
    const row = {
      row: rowName,
      ok: r.code === 0,
      code: r.code,
      wallS: Math.round(r.wallS * 1000) / 1000,
      cpuS: Math.round(r.cpuS * 100) / 100,
      // cores' worth of CPU that other processes used during the row: above ~0.2 the
      // machine was shared and the time is suspect
      otherLoad: Math.round((r.otherCpuS / r.wallS) * 100) / 100,
      rssKiB: r.rssKiB,
      timeRssKiB: r.timeRssKiB,
      treeRssKiB: r.treeRssKiB,
      repoBytes: duBytes(d.repo),
    };
    if (countsBefore) {
      const after = await tool.requestCounts();
      row.requests = Object.fromEntries(
        Object.entries(after).map(([k, v]) => [k, v - (countsBefore[k] ?? 0)]),
      );
    }
    log(
      `${tool.name}: ${rowName}: exit ${r.code}, ${row.wallS.toFixed(2)} s, ` +
        `${(row.rssKiB / 1024).toFixed(0)} MiB RSS, repo ${(row.repoBytes / 2 ** 20).toFixed(1)} MiB` +
        `, other load ${row.otherLoad.toFixed(2)}`,
    );
    if (row.otherLoad > BUSY_LOAD) {
      log(`warning: other processes used ${row.otherLoad} cores during this row: time is suspect`);
    }
    return { row, r };
  };

  const backupRow = async (rowName, n) => {
    const { row, r } = await measure(rowName, tool.backup(d, n));
    if (!row.ok && tool.backupWarnCodes.includes(r.code)) {
      row.ok = true;
      row.warning = `exit ${r.code}`;
    }
    if (tool.parseBackup && r.code === 0) row.output = tool.parseBackup(r.stdout);
    return row.ok ? row : fail(row, r);
  };

  const skipRest = (from, why) => {
    for (const rowName of ROWS.slice(from))
      result.rows.push({ row: rowName, ok: false, skipped: true });
    result.error = why;
    log(`${tool.name}: ${why}`);
  };

  // A failed backup leaves nothing meaningful to time after it
  for (const [i, n] of [
    [0, 1],
    [1, 2],
  ]) {
    result.rows.push(await backupRow(ROWS[i], n));
    if (!result.rows[i].ok) {
      skipRest(i + 1, `${ROWS[i]} failed`);
      return result;
    }
  }

  runPlain(["bash", datasetSh, "--mutate", d.data]);
  await makeMutationDeterministic(d.data);
  const expected = await manifest(d.data);
  if (reference.entries === undefined) reference.entries = expected.entries;
  else if (!sameEntries(reference.entries, expected.entries)) {
    log(`warning: ${tool.name}'s mutated working copy differs from the first tool's`);
    result.workingCopyDiffers = true;
  }

  result.rows.push(await backupRow(ROWS[2], 3));
  if (!result.rows[2].ok) {
    skipRest(3, `${ROWS[2]} failed`);
    return result;
  }

  const target = path.join(base, "restore");
  await discard(opts, target);
  await mkdir(target, { recursive: true });
  const rs = tool.restore(d, target, 3);
  const { row: restoreRow, r: rr } = await measure(ROWS[3], rs.argv, { cwd: rs.cwd });
  if (restoreRow.ok) {
    const root = restoredRoot(tool.name, target, d.data);
    const got = existsSync(root) ? await manifest(root) : { entries: new Map(), mtimes: new Map() };
    restoreRow.restoreCheck = compareManifests(expected, got);
    const c = restoreRow.restoreCheck;
    if (!c.ok) {
      restoreRow.ok = false;
      restoreRow.error = `restore mismatch under ${root}`;
      log(
        `!!!!! ${tool.name}: RESTORE MISMATCH: ${c.missing} missing, ${c.extra} extra, ${c.differ} differ`,
      );
      for (const p of c.problems) log(`!!!!!   ${p}`);
    } else {
      log(
        `${tool.name}: restore matches the working copy (${c.entries} entries, ${c.mtimeDiffer} mtimes differ)`,
      );
    }
  }
  result.rows.push(restoreRow.ok || restoreRow.restoreCheck ? restoreRow : fail(restoreRow, rr));
  await discard(opts, target);

  const { row: verifyRow, r: vr } = await measure(ROWS[4], tool.verify(d));
  result.rows.push(verifyRow.ok ? verifyRow : fail(verifyRow, vr));

  result.cacheBytes = duBytes(d.cache);
  if (!opts.keep) await discard(opts, base);
  return result;
}

function sameEntries(a, b) {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

async function main() {
  const opts = parseCli();
  await mkdir(opts.scratch, { recursive: true });
  await lockScratch(opts.scratch);
  if (existsSync(path.join(opts.scratch, "trash"))) {
    log("emptying the trash of an earlier run: restores in the next 6 minutes may be slower");
    await emptyTrash(opts);
  }
  ensurePeers([...new Set(opts.tools.map((t) => t.replace(/-s3$/, "")))], log);
  const corpus = await prepareCorpus(opts);
  Object.assign(corpus, await treeStats(corpus.path));
  log(`corpus: ${corpus.files} files, ${(corpus.bytes / 2 ** 20).toFixed(0)} MiB`);

  const results = {
    schema: 1,
    date: new Date().toISOString(),
    argv: process.argv.slice(2),
    host: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "unknown",
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      kernel: os.release(),
      scratchFs: filesystemOf(opts.scratch),
    },
    corpus,
    tools: [],
  };
  const reference = {};
  for (const name of opts.tools) {
    const tool = makeTool(name, { repoRoot });
    if (tool.skip) {
      log(`skipping ${name}: ${tool.skip}`);
      results.tools.push({ name, skip: tool.skip, rows: [] });
      continue;
    }
    try {
      const result = await benchTool(tool, opts, corpus, reference);
      const failed = result.rows.find((r) => !r.ok && !r.skipped);
      if (tool.unavailableOnFailure && (failed || result.error)) {
        const why = (failed?.error ?? result.error ?? "").split("\n")[0];
        result.unavailable = `${failed?.row ?? "init"} failed: ${why}`;
        log(`${name}: peer unavailable: ${result.unavailable}`);
      }
      results.tools.push(result);
    } catch (e) {
      log(`${name}: harness error: ${e.stack}`);
      results.tools.push({
        name,
        version: tool.version,
        error: `harness error: ${e.message}`,
        rows: [],
      });
    } finally {
      await tool.teardown?.();
    }
  }
  await discard(opts, path.join(opts.scratch, "work"));
  await emptyTrash(opts);
  if (results.host.scratchFs?.includes("no journal")) {
    log("trash emptied: on ext4 without a journal, wait 6 minutes before the next run");
  }

  results.ratios = ratios(results);
  results.ok = results.tools.every(
    (t) => t.skip || t.unavailable || (!t.error && t.rows.every((r) => r.ok)),
  );
  const md = markdown(results);
  await mkdir(path.dirname(opts.out), { recursive: true });
  await writeFile(opts.out, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(opts.out.replace(/(\.json)?$/, ".md"), md);
  console.log(md);
  log(`results: ${opts.out} (and .md)`);
  if (!results.ok) {
    log("FAILED: some rows failed or a restore did not match; see the tables above");
    process.exitCode = 1;
  }
}

main().catch((e) => {
  log(e.stack ?? String(e));
  process.exit(2);
});
