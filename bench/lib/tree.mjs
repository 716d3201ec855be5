// A manifest of a directory tree (type, permission bits, size, SHA-256 or link target per
// entry) and a comparison of two manifests: how the harness proves a restore is exact.
import { createCipheriv, createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import path from "node:path";

const SMALL_FILE = 8 << 20; // read whole below this, stream above
const HASH_CONCURRENCY = 4;

async function sha256File(file, size) {
  if (size < SMALL_FILE)
    return createHash("sha256")
      .update(await readFile(file))
      .digest("hex");
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk);
  return h.digest("hex");
}

/** Every path under root (relative, '/'-separated), depth first, root itself excluded. */
async function walk(root) {
  const out = [];
  const stack = [""];
  while (stack.length > 0) {
    const rel = stack.pop();
    const entries = await readdir(path.join(root, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      out.push(r);
      if (e.isDirectory()) stack.push(r);
    }
  }
  return out;
}

/**
 * Counts entries and bytes under root without hashing. bytes counts every hard link's size
 * (what a tool reads if it ignores links); uniqueBytes counts each inode once (du -sb).
 */
export async function treeStats(root) {
  let files = 0;
  let bytes = 0;
  let uniqueBytes = 0;
  let dirs = 0;
  let symlinks = 0;
  const seen = new Set();
  for (const rel of await walk(root)) {
    const st = await lstat(path.join(root, rel));
    if (st.isFile()) {
      files++;
      bytes += st.size;
      const id = `${st.dev}:${st.ino}`;
      if (!seen.has(id)) uniqueBytes += st.size;
      seen.add(id);
    } else if (st.isDirectory()) dirs++;
    else if (st.isSymbolicLink()) symlinks++;
  }
  return { files, bytes, uniqueBytes, dirs, symlinks };
}

/**
 * Map from relative path to a record string. With hash=false regular files are described by
 * size only. mtimes (whole seconds) are kept apart: a mismatch there is reported, not fatal.
 */
export async function manifest(root, { hash = true } = {}) {
  const rels = await walk(root);
  const entries = new Map();
  const mtimes = new Map();
  let next = 0;
  async function worker() {
    while (next < rels.length) {
      const rel = rels[next++];
      const abs = path.join(root, rel);
      const st = await lstat(abs);
      const mode = (st.mode & 0o7777).toString(8);
      let rec;
      if (st.isFile()) {
        rec = `file ${mode} ${st.size} ${hash ? await sha256File(abs, st.size) : ""}`;
        mtimes.set(rel, Math.floor(st.mtimeMs / 1000));
      } else if (st.isDirectory()) rec = `dir ${mode}`;
      else if (st.isSymbolicLink()) rec = `symlink -> ${await readlink(abs)}`;
      else rec = `other ${st.mode.toString(8)}`;
      entries.set(rel, rec);
    }
  }
  await Promise.all(Array.from({ length: HASH_CONCURRENCY }, worker));
  return { entries, mtimes };
}

/** Differences between expected and actual manifests; ok is false on any content change. */
export function compareManifests(expected, actual, maxShown = 10) {
  const problems = [];
  let missing = 0;
  let extra = 0;
  let differ = 0;
  let mtimeDiffer = 0;
  for (const [rel, rec] of expected.entries) {
    const got = actual.entries.get(rel);
    if (got === undefined) {
      missing++;
      if (problems.length < maxShown) problems.push(`missing: ${rel}`);
    } else if (got !== rec) {
      differ++;
      if (problems.length < maxShown) problems.push(`differs: ${rel}: want ${rec}, got ${got}`);
    } else if (expected.mtimes.get(rel) !== actual.mtimes.get(rel)) mtimeDiffer++;
  }
  for (const rel of actual.entries.keys()) {
    if (!expected.entries.has(rel)) {
      extra++;
      if (problems.length < maxShown) problems.push(`extra: ${rel}`);
    }
  }
  return {
    ok: missing + extra + differ === 0,
    entries: expected.entries.size,
    missing,
    extra,
    differ,
    mtimeDiffer,
    problems,
  };
}

/**
 * dataset.sh --mutate writes its new-files/blob-*.bin from /dev/urandom, so two tools would
 * see different bytes. Rewrite them with the same length from a fixed AES-CTR keystream:
 * still incompressible and unique, but identical for every tool and every run.
 */
export async function makeMutationDeterministic(dir) {
  const blobDir = path.join(dir, "new-files");
  let names;
  try {
    names = await readdir(blobDir);
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names.filter((x) => /^blob-\d+\.bin$/.test(x)).sort()) {
    const file = path.join(blobDir, name);
    const { size } = await lstat(file);
    const key = createHash("sha256").update(`coffer-bench ${name}`).digest();
    const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
    await writeFile(file, Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]));
    n++;
  }
  return n;
}
