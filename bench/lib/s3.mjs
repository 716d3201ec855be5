// S3 rows of the bench: coffer and restic against a local s3rver (the S3-compatible server
// the tests use), through a proxy that counts requests. The server's own CPU shows as
// "other load" in the rows: it is part of the cost of talking S3, not of the tool.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { runPlain } from "./measure.mjs";

const PASSWORD = "bench";
const BUCKET = "bench";
const credentials = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };

/** Spawns a node script that prints {"port":N} once listening; resolves to [child, port]. */
async function spawnServer(args) {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0]).port);
    });
    child.on("exit", (code) => reject(new Error(`${args.at(-2)} exited with ${code}`)));
  });
  return [child, port];
}

async function stopChild(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

/** s3rver as a child on a random port, storing into dir, behind a counting proxy (a child too). */
async function startServer(repoRoot, dir) {
  await mkdir(dir, { recursive: true });
  const main = path.join(repoRoot, "test", "servers", "s3rver-main.mjs");
  // --openssl-legacy-provider: s3rver's continuation tokens use DES (test/servers/s3rver-main.mjs)
  const [s3rver, upstream] = await spawnServer(["--openssl-legacy-provider", main, dir, BUCKET]);
  const counter = path.join(path.dirname(new URL(import.meta.url).pathname), "s3-count-proxy.mjs");
  const [proxy, port] = await spawnServer([counter, String(upstream)]);
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    counts: async () => (await fetch(`${endpoint}/__counts`)).json(),
    stop: async () => {
      await stopChild(proxy);
      await stopChild(s3rver);
    },
  };
}

/** coffer-s3 or restic-s3: the tool objects of tools.mjs, with setup/teardown and counts. */
export function makeS3Tool(name, { repoRoot, cofferMain, version }) {
  let server = null;
  const base = {
    name,
    s3: true,
    setup: async (d) => {
      server = await startServer(repoRoot, d.repo); // the bucket's files: repo size by du
    },
    teardown: async () => {
      await server?.stop();
      server = null;
    },
    requestCounts: () => server.counts(),
  };
  if (name === "coffer-s3") {
    if (!existsSync(cofferMain))
      return { name, skip: `${cofferMain} not built (run npm run build)` };
    const cmd = [process.execPath, cofferMain];
    const flags = () => [
      "--repo",
      `s3://${BUCKET}/coffer`,
      "--s3-endpoint",
      server.endpoint,
      "--insecure-http",
      "--s3-path-style",
    ];
    return {
      ...base,
      version: `${version} (s3rver 3.7.1, http on loopback)`,
      expectVersion: null,
      env: (d) => ({ ...credentials, COFFER_PASSPHRASE: PASSWORD, XDG_CACHE_HOME: d.cache }),
      init: () => [...cmd, "init", ...flags()],
      backup: (d) => [...cmd, "backup", ...flags(), d.data, "--json"],
      backupWarnCodes: [],
      parseBackup: (stdout) => {
        try {
          return JSON.parse(stdout.trim().split("\n").at(-1));
        } catch {
          return {};
        }
      },
      restore: (_d, target) => ({
        argv: [...cmd, "restore", ...flags(), "latest", "--target", target],
      }),
      verify: () => [...cmd, "verify", ...flags(), "--read-data"],
    };
  }
  if (name === "restic-s3") {
    let v = null;
    try {
      v = runPlain(["restic", "version"]).trim().split("\n")[0];
    } catch {
      return { name, skip: "restic not installed (apt-get install restic failed)" };
    }
    const repo = () => `s3:${server.endpoint}/${BUCKET}/restic`;
    return {
      ...base,
      version: `${v} (s3rver 3.7.1, http on loopback)`,
      expectVersion: "restic 0.14.0",
      // restic 0.14's s3 backend fails against s3rver (../shared/NOTES.md): when it does,
      // the run records the peer as unavailable with restic's error instead of failing.
      unavailableOnFailure: true,
      env: (d) => ({ ...credentials, RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: d.cache }),
      init: (d) => ["restic", "init", "--repo", repo(), "--cache-dir", d.cache],
      backup: (d) => ["restic", "backup", "--repo", repo(), "--cache-dir", d.cache, d.data],
      backupWarnCodes: [3],
      restore: (d, target) => ({
        argv: [
          "restic",
          "restore",
          "latest",
          "--repo",
          repo(),
          "--cache-dir",
          d.cache,
          "--target",
          target,
        ],
      }),
      verify: (d) => ["restic", "check", "--read-data", "--repo", repo(), "--cache-dir", d.cache],
    };
  }
  return { name, skip: `unknown tool ${name}` };
}

const MB = 1e6;

/** The S3 table: MB/s of corpus bytes per row and the requests each row sent. */
export function s3Table(results) {
  const tools = results.tools.filter((t) => t.name.endsWith("-s3"));
  if (tools.length === 0) return "";
  const lines = [
    `### S3 (local s3rver; MB/s of the corpus's ${(results.corpus.bytes / MB).toFixed(0)} MB)`,
    "",
    "| tool | row | time (s) | MB/s | requests | GET | PUT | HEAD | MB up | MB down | status |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  const dash = "| – ".repeat(9);
  const mb = (x) => (x === undefined ? "–" : (x / MB).toFixed(1));
  for (const t of tools) {
    if (t.skip || t.unavailable || t.rows.length === 0) {
      lines.push(`| ${t.name} ${dash}| unavailable: ${t.skip ?? t.unavailable ?? t.error} |`);
      continue;
    }
    for (const r of t.rows) {
      const q = r.requests ?? {};
      const mbs = r.ok && r.wallS > 0 ? (results.corpus.bytes / MB / r.wallS).toFixed(1) : "–";
      const status = r.ok ? "ok" : `failed: ${(r.error ?? "").split("\n")[0]}`;
      const cells = [t.name, r.row, r.wallS?.toFixed(2) ?? "–", mbs, q.total, q.GET, q.PUT, q.HEAD];
      lines.push(
        `| ${cells.map((c) => c ?? "–").join(" | ")} | ${mb(q.bytesIn)} | ${mb(q.bytesOut)} | ${status} |`,
      );
    }
  }
  return [...lines, ""].join("\n");
}
