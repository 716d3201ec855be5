// The three tools under test: how to find each, and the command line for each row.
// Every command is an argv array; `cwd` is only set where a tool restores into its cwd.
import { existsSync } from "node:fs";
import path from "node:path";
import { runPlain } from "./measure.mjs";
import { makeS3Tool } from "./s3.mjs";

const PASSWORD = "bench";

// borg: with SHA-NI in the CPU (AMD EPYC here), `repokey` (HMAC-SHA256 ids) beats
// `repokey-blake2`; see bench/README.md. Override with COFFER_BENCH_BORG_ENCRYPTION.
const BORG_ENCRYPTION = process.env.COFFER_BENCH_BORG_ENCRYPTION || "repokey";

/**
 * Where a restore of `dir` into `target` lands. restic and borg keep the absolute path
 * (borg without its leading '/'); coffer is assumed to do the same. Adjust here if not.
 */
export function restoredRoot(tool, target, dir) {
  switch (tool) {
    case "restic":
    case "borg":
    case "coffer":
    case "coffer-s3":
    case "restic-s3":
      return path.join(target, dir);
    default:
      throw new Error(`restoredRoot: unknown tool ${tool}`);
  }
}

function aptInstall(pkgs, log) {
  try {
    log(`installing ${pkgs.join(" ")} with apt-get ...`);
    runPlain(["apt-get", "update", "-q"]);
    runPlain(["apt-get", "install", "-y", "-q", ...pkgs], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    return true;
  } catch (e) {
    log(`apt-get install ${pkgs.join(" ")} failed: ${e.message.split("\n")[0]}`);
    return false;
  }
}

function versionOf(argv) {
  try {
    return runPlain(argv).trim().split("\n")[0];
  } catch {
    return null;
  }
}

/** Makes sure restic/borg are installed (one apt-get for all missing peers). */
export function ensurePeers(names, log) {
  const pkg = { restic: "restic", borg: "borgbackup" };
  const probe = { restic: ["restic", "version"], borg: ["borg", "--version"] };
  const missing = names.filter((n) => pkg[n] && !versionOf(probe[n]));
  if (missing.length > 0)
    aptInstall(
      missing.map((n) => pkg[n]),
      log,
    );
  if (!existsSync("/usr/bin/time")) aptInstall(["time"], log);
  if (!existsSync("/usr/bin/time")) throw new Error("GNU time (/usr/bin/time) is required");
}

/**
 * The tool object for `name`, or { name, skip: reason }. Command builders take the run's
 * dirs d = { repo, cache, data } and, for backup and restore, the snapshot number n.
 */
export function makeTool(name, { repoRoot }) {
  // The command a user runs (package.json's bin), as `npm run build` makes it.
  const cofferMain = path.join(repoRoot, "dist", "bundle", "main.js");
  if (name === "restic") {
    const version = versionOf(["restic", "version"]);
    if (!version) return { name, skip: "restic not installed (apt-get install restic failed)" };
    return {
      name,
      version,
      expectVersion: "restic 0.14.0",
      env: (d) => ({ RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: d.cache }),
      init: (d) => ["restic", "init", "--repo", d.repo, "--cache-dir", d.cache],
      backup: (d) => ["restic", "backup", "--repo", d.repo, "--cache-dir", d.cache, d.data],
      backupWarnCodes: [3], // 3: some source files could not be read
      restore: (d, target) => ({
        argv: [
          "restic",
          "restore",
          "latest",
          "--repo",
          d.repo,
          "--cache-dir",
          d.cache,
          "--target",
          target,
        ],
      }),
      verify: (d) => ["restic", "check", "--read-data", "--repo", d.repo, "--cache-dir", d.cache],
    };
  }
  if (name === "borg") {
    const version = versionOf(["borg", "--version"]);
    if (!version) return { name, skip: "borg not installed (apt-get install borgbackup failed)" };
    return {
      name,
      version: `${version} (${BORG_ENCRYPTION}, zstd,3)`,
      expectVersion: "borg 1.2.4",
      env: (d) => ({
        BORG_PASSPHRASE: PASSWORD,
        BORG_BASE_DIR: d.cache,
        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
        BORG_RELOCATED_REPO_ACCESS_IS_OK: "yes",
      }),
      init: (d) => ["borg", "init", `--encryption=${BORG_ENCRYPTION}`, d.repo],
      backup: (d, n) => [
        "borg",
        "create",
        "--compression",
        "zstd,3",
        `${d.repo}::snap${n}`,
        d.data,
      ],
      backupWarnCodes: [1], // 1: warning (e.g. file changed while read)
      // borg extract writes into its cwd
      restore: (d, target, n) => ({
        argv: ["borg", "extract", `${d.repo}::snap${n}`],
        cwd: target,
      }),
      verify: (d) => ["borg", "check", "--verify-data", d.repo],
    };
  }
  if (name === "coffer") {
    if (!existsSync(cofferMain))
      return { name, skip: `${cofferMain} not built (run npm run build)` };
    const help = versionOf([process.execPath, cofferMain, "--help"]);
    if (help === null) return { name, skip: `node ${cofferMain} --help fails` };
    const cmd = [process.execPath, cofferMain];
    return {
      name,
      version: versionOf([...cmd, "--version"]) ?? "unknown",
      expectVersion: null,
      env: (d) => ({ COFFER_PASSPHRASE: PASSWORD, COFFER_REPO: d.repo }),
      init: (d) => [...cmd, "init", "--repo", d.repo],
      backup: (d) => [...cmd, "backup", "--repo", d.repo, d.data, "--json"],
      backupWarnCodes: [],
      parseBackup: (stdout) => {
        const line = stdout.trim().split("\n").at(-1);
        try {
          return JSON.parse(line);
        } catch {
          return { unparsed: line?.slice(0, 200) };
        }
      },
      restore: (d, target) => ({
        argv: [...cmd, "restore", "--repo", d.repo, "latest", "--target", target],
      }),
      verify: (d) => [...cmd, "verify", "--repo", d.repo, "--read-data"],
    };
  }
  if (name.endsWith("-s3")) {
    const version = versionOf([process.execPath, cofferMain, "--version"]) ?? "unknown";
    return makeS3Tool(name, {
      repoRoot,
      cofferMain,
      version: name === "coffer-s3" ? `coffer ${version}` : "",
    });
  }
  return { name, skip: `unknown tool ${name}` };
}
