#!/usr/bin/env node
// `npm run demo`: a first look at coffer on a fresh checkout. Creates a repository under
// the checkout (demo-repo/) with a built-in demo passphrase, backs up samples/data twice,
// lists, verifies and restores it, and shows that the restore matches byte for byte.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cli = path.join(root, "dist/bundle/main.js");
const repo = path.join(root, "demo-repo");
const target = path.join(root, "demo-restore");
const data = path.join(root, "samples/data");
// A demo passphrase, public on purpose. Never use it for real data.
const env = { ...process.env, COFFER_PASSPHRASE: "coffer demo passphrase (public)" };

function run(args) {
  process.stdout.write(`\n$ coffer ${args.join(" ")}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { env, stdio: "inherit" });
  if (r.status !== 0) {
    process.stderr.write(`demo: coffer ${args[0]} exited ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
}

/** path → type + mode + content hash (or link target), for every entry under dir. */
function describeTree(dir) {
  const out = new Map();
  const walk = (rel) => {
    const abs = path.join(dir, rel);
    const st = lstatSync(abs);
    let what = `${st.mode.toString(8)}`;
    if (st.isSymbolicLink()) what += ` -> ${readlinkSync(abs)}`;
    else if (st.isFile())
      what += ` ${createHash("sha256").update(readFileSync(abs)).digest("hex")}`;
    out.set(rel, what);
    if (st.isDirectory()) for (const n of readdirSync(abs).sort()) walk(path.join(rel, n));
  };
  walk(".");
  return out;
}

rmSync(repo, { recursive: true, force: true });
rmSync(target, { recursive: true, force: true });
// The demo lowers scrypt's cost so each step starts quickly; real repositories keep the default.
run(["init", "--repo", repo, "--scrypt-work-factor", "15"]);
run(["backup", "--repo", repo, data, "--tag", "demo"]);
run(["backup", "--repo", repo, data, "--tag", "demo"]);
run(["snapshots", "--repo", repo]);
run(["ls", "--repo", repo, "latest", path.join(data, "docs")]);
run(["verify", "--repo", repo, "--read-data"]);
run(["restore", "--repo", repo, "latest", "--target", target]);

const before = describeTree(data);
const after = describeTree(path.join(target, data));
const differ = [...before.keys()].filter((k) => before.get(k) !== after.get(k));
const extra = [...after.keys()].filter((k) => !before.has(k));
if (differ.length > 0 || extra.length > 0) {
  process.stderr.write(
    `\ndemo: restore differs from samples/data: ${[...differ, ...extra].join(", ")}\n`,
  );
  process.exit(1);
}
process.stdout.write(
  `\nrestore matches samples/data: ${before.size} entries identical (contents, modes, links).\n` +
    `repository: ${repo}\nrestored to: ${path.join(target, data)}\n`,
);
