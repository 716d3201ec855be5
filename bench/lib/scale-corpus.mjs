// Builds N× corpora of distinct data from one corpus, for bench/scale.sh:
//
//   node bench/lib/scale-corpus.mjs SRC DEST 1 2 4
//
// gives DEST/1x/c0, DEST/2x/{c0,c1}, DEST/4x/{c0..c3}. c0 is SRC itself (a hard-link tree:
// nothing here or in bench/run.mjs writes to a corpus, and run.mjs copies it with cp -a
// before a tool sees it). Copy i > 0 is `cp -a` of SRC with every byte of every regular
// file XORed with a constant k_i (mtimes and modes kept, hard links kept as links).
//
// Why XOR with a constant: it maps byte values one to one, so every file keeps its byte
// histogram, its repeats and its matches (zstd compresses it to the same size, give or
// take a few bytes of entropy tables), and duplicate files inside a copy stay duplicates;
// yet every byte differs from the same byte in any other copy, so content-defined chunking
// finds new boundaries and no chunk of copy i equals a chunk of another copy. Rewriting a
// few bytes every 512 KiB would not do: with ~1 MiB average chunks most chunks would still
// match. Each copy is built once (a DEST/copies/c<i>.done file marks it) and reused.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, open, readdir, rm, utimes, writeFile } from "node:fs/promises";
import path from "node:path";

/** k_i for copy i (k_0 = 0: the corpus itself). Up to 8 copies. */
const KEYS = [0x00, 0x5a, 0xa5, 0x3c, 0xc3, 0x69, 0x96, 0x0f];

const [src, dest, ...scales] = process.argv.slice(2);
if (!src || !dest || scales.length === 0) {
  console.error("usage: node bench/lib/scale-corpus.mjs SRC DEST N [N...]   (N ≤ 8)");
  process.exit(2);
}
const ns = scales.map(Number);
if (ns.some((n) => !Number.isInteger(n) || n < 1 || n > KEYS.length)) {
  throw new Error(`scales must be integers from 1 to ${KEYS.length}`);
}

const log = (m) => console.error(`[scale-corpus] ${m}`);
const sh = (...argv) => execFileSync(argv[0], argv.slice(1), { stdio: "inherit" });

/** XORs a file's bytes with k in place, 4 MiB at a time; keeps its atime and mtime. */
async function xorFile(file, k, st) {
  const fh = await open(file, "r+");
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    const k32 = (k * 0x01010101) >>> 0;
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      const whole = bytesRead >>> 2;
      for (let i = 0; i < whole; i++) words[i] ^= k32;
      for (let i = whole * 4; i < bytesRead; i++) buf[i] ^= k;
      await fh.write(buf, 0, bytesRead, pos);
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  await utimes(file, st.atime, st.mtime);
}

/** Every regular file under dir, each inode once (hard links share their bytes). */
async function* regularFiles(dir, seen = new Set()) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* regularFiles(p, seen);
    else if (e.isFile()) {
      const st = await lstat(p);
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      yield { p, st };
    }
  }
}

async function buildCopy(i) {
  const dir = path.join(dest, "copies", `c${i}`);
  const done = `${dir}.done`;
  if (existsSync(done)) return dir;
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  log(`copy ${i}: cp -a, then XOR 0x${KEYS[i].toString(16)} over every file`);
  sh("cp", "-a", src, dir);
  let files = 0;
  let bytes = 0;
  for await (const { p, st } of regularFiles(dir)) {
    await xorFile(p, KEYS[i], st);
    files++;
    bytes += st.size;
  }
  // Writing file contents does not touch directory mtimes; nothing else to restore.
  await writeFile(done, `${files} files, ${bytes} bytes, XOR 0x${KEYS[i].toString(16)}\n`);
  log(`copy ${i}: ${files} files, ${(bytes / 2 ** 20).toFixed(0)} MiB`);
  return dir;
}

for (const n of ns) {
  const top = path.join(dest, `${n}x`);
  const done = `${top}.done`;
  if (existsSync(done)) {
    log(`${top} exists`);
    continue;
  }
  await rm(top, { recursive: true, force: true });
  await mkdir(top, { recursive: true });
  for (let i = 0; i < n; i++) {
    const from = i === 0 ? src : await buildCopy(i);
    // A hard-link tree: no bytes copied; cp -a in run.mjs makes the tools' working copy.
    sh("cp", "-al", from, path.join(top, `c${i}`));
  }
  await writeFile(done, `${n} copies of ${src}\n`);
  log(`${top}: ${n} copies`);
}
