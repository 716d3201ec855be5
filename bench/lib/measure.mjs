// Runs one timed command: wall time from the harness's own clock, peak RSS from GNU time's
// %M (ru_maxrss of the largest process in the tree, in KiB) and from sampling /proc for the
// summed RSS of the whole process tree (catches tools that fan out into child processes).
// It also measures how much CPU everything else on the machine used meanwhile: the
// machine's busy time from /proc/stat minus the tool's own user+sys from GNU time.
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";

export const GNU_TIME = "/usr/bin/time";
const PAGE_KIB = 4; // x86-64 Linux page size: /proc/<pid>/statm counts pages
const SAMPLE_MS = 100;
const USER_HZ = 100; // /proc/stat unit on Linux

/** Busy CPU seconds of the whole machine since boot (all cores). */
function machineBusyS() {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).map(Number);
    // cpu user nice system idle iowait irq softirq steal ...
    return (f[1] + f[2] + f[3] + f[6] + f[7] + f[8]) / USER_HZ;
  } catch {
    return Number.NaN;
  }
}

/** Sum of resident KiB of every descendant of rootPid (not rootPid itself). */
function treeRssKiB(rootPid) {
  const children = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // exited between readdir and read
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parens, so cut at the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(name));
  }
  let total = 0;
  const stack = [...(children.get(rootPid) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop();
    try {
      const resident = Number(readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]);
      total += resident * PAGE_KIB;
    } catch {
      // exited: its RSS is still in GNU time's %M if it was the largest
    }
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/**
 * Runs argv[0] with argv.slice(1) under GNU time. stdout/stderr go to logBase.out/.err.
 * Resolves to { code, wallS, cpuS, otherCpuS, rssKiB, timeRssKiB, treeRssKiB, stdout,
 * stderrTail }: cpuS is the tool's user+sys, otherCpuS what all other processes used.
 */
export function runMeasured(argv, { env, cwd, logBase }) {
  const timeFile = `${logBase}.time`;
  const full = [GNU_TIME, "-f", "%M %U %S", "-o", timeFile, ...argv];
  return new Promise((resolve, reject) => {
    const out = createWriteStream(`${logBase}.out`);
    const err = createWriteStream(`${logBase}.err`);
    const busy0 = machineBusyS();
    const start = process.hrtime.bigint();
    const child = spawn(full[0], full.slice(1), {
      env,
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      out.write(d);
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr.on("data", (d) => {
      err.write(d);
      stderr = (stderr + d).slice(-4000);
    });
    let treePeak = 0;
    const timer = setInterval(() => {
      try {
        treePeak = Math.max(treePeak, treeRssKiB(child.pid));
      } catch {
        // /proc unreadable: GNU time's figure stands alone
      }
    }, SAMPLE_MS);
    child.on("error", (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.on("close", async (code) => {
      clearInterval(timer);
      const wallS = Number(process.hrtime.bigint() - start) / 1e9;
      const busyS = machineBusyS() - busy0;
      out.end();
      err.end();
      let timeRss = 0;
      let cpuS = 0;
      try {
        // GNU time writes "Command exited with non-zero status N" before the format line
        const lines = (await readFile(timeFile, "utf8")).trim().split("\n");
        const [m, u, sys] = lines.at(-1).split(" ").map(Number);
        timeRss = m || 0;
        cpuS = (u || 0) + (sys || 0);
      } catch {
        // no time file: the command could not be started
      }
      resolve({
        code,
        wallS,
        cpuS,
        otherCpuS: Math.max(0, busyS - cpuS),
        rssKiB: Math.max(timeRss, treePeak),
        timeRssKiB: timeRss,
        treeRssKiB: treePeak,
        stdout,
        stderrTail: stderr,
      });
    });
  });
}

/** Runs a command untimed; throws with its stderr when it fails. */
export function runPlain(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), {
    encoding: "utf8",
    maxBuffer: 64 << 20,
    stdio: ["ignore", "pipe", "pipe"],
    ...opts,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    const e = new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr.trim().slice(-2000)}`);
    e.result = r;
    throw e;
  }
  return r.stdout;
}

/** Apparent size in bytes of everything under dir (du -sb), 0 when it does not exist. */
export function duBytes(dir) {
  try {
    return Number(runPlain(["du", "-sb", dir]).split("\t")[0]);
  } catch {
    return 0;
  }
}

/**
 * The filesystem under dir, e.g. "ext4 on /dev/vda, no journal": an ext4 without a journal
 * scans recently freed inodes on every file it creates (the kernel's recently_deleted), so
 * a restore soon after a mass delete spends seconds of system time there, for every tool.
 */
export function filesystemOf(dir) {
  try {
    const [source, type] = runPlain(["df", "--output=source,fstype", dir])
      .trim()
      .split("\n")
      .at(-1)
      .trim()
      .split(/\s+/);
    let desc = `${type} on ${source}`;
    if (type === "ext4") {
      // The kernel names the journal after the device (dm-0, not /dev/mapper/vg-root).
      const dev = path.basename(realpathSync(source));
      desc += existsSync(`/proc/fs/jbd2/${dev}-8`) ? ", journal" : ", no journal";
    }
    return desc;
  } catch {
    return "unknown";
  }
}

export function logPath(logDir, tool, row) {
  return path.join(logDir, `${tool}-${row.replace(/[^a-z0-9]+/gi, "-")}`);
}
