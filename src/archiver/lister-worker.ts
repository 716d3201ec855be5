import { lstatSync } from "node:fs";
import { workerData } from "node:worker_threads";
import { excludeMatcher } from "../source/exclude.js";
import { readSortedNames } from "../source/fs-node.js";
import { RecordKind, RingWriter, statFields } from "./listing-ring.js";

// The directory lister: walks the backup's roots depth-first, in the walk's own order
// (names sorted by bytes, a directory's subtree before its next sibling), and writes each
// directory's names and lstat fields into the shared ring (listing-ring.ts). It runs ahead
// of the walk until the ring is full, so the walk's readdir and lstat calls happen on
// another core. It skips what the walk would skip (excluded directories) and never reports
// errors: the walk lists anything it could not, itself, and reports why.

export interface ListerData {
  ring: SharedArrayBuffer;
  roots: Uint8Array[];
  exclude: string[];
}

const S_IFMT = 0o170000n;
const S_IFDIR = 0o040000n;
/**
 * Entries lstat'ed and written to the ring at a time. A directory's names are all held
 * (they must be sorted), as one latin1 string each; its stats and paths only a batch at a
 * time, and the walk takes the first batches while the lister lstats the next.
 */
const batchEntries = 4096;

const data = workerData as ListerData;
const ring = new RingWriter(data.ring);
const excluded = excludeMatcher(data.exclude);

function lstatFields(p: Buffer, into: BigInt64Array, o: number): void {
  try {
    const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
    if (st === undefined) return; // mode stays 0: the walk lstats it and reports the error
    into[o] = st.mode;
    into[o + 1] = st.uid;
    into[o + 2] = st.gid;
    into[o + 3] = st.size;
    into[o + 4] = st.mtimeNs;
    into[o + 5] = st.ctimeNs;
    into[o + 6] = st.dev;
    into[o + 7] = st.ino;
    into[o + 8] = st.nlink;
    into[o + 9] = st.rdev;
  } catch {
    // EACCES and the like: left to the walk, as above
  }
}

function isDir(mode: bigint | undefined): boolean {
  return mode !== undefined && (mode & S_IFMT) === S_IFDIR;
}

/**
 * Lists dir into the ring; returns its subdirectories to walk, in order. Its names are
 * held as latin1 strings (readSortedNames): as Buffers, a directory of 50,000 files took
 * this thread past its heap limit, and the walk waited 2 s for a lister that had died.
 */
function list(dir: Buffer): Buffer[] {
  ring.progress();
  let names: string[];
  try {
    names = readSortedNames(dir);
  } catch {
    ring.write(RecordKind.unreadable, dir, null);
    return [];
  }
  ring.progress();
  // joinPath's rule, on latin1 strings: one string concatenation and one Buffer per entry.
  const prefix = dir.toString("latin1") + (dir[dir.length - 1] === 0x2f ? "" : "/");
  const subdirs: Buffer[] = [];
  const stats = new BigInt64Array(statFields * Math.min(batchEntries, names.length));
  // An empty directory too is one (empty) listing.
  for (let from = 0; from === 0 || from < names.length; from += batchEntries) {
    const to = Math.min(names.length, from + batchEntries);
    stats.fill(0n); // mode 0: lstat failed, the walk lstats that entry itself
    for (let i = from; i < to; i++) {
      const p = Buffer.from(prefix + (names[i] as string), "latin1");
      const o = (i - from) * statFields;
      lstatFields(p, stats, o);
      if (isDir(stats[o]) && !excluded(p.toString())) subdirs.push(p);
    }
    const entries = {
      names: names.slice(from, to),
      stats: stats.subarray(0, (to - from) * statFields),
    };
    ring.write(RecordKind.listed, dir, entries, to < names.length);
  }
  return subdirs;
}

const stack: Buffer[] = [];
for (const root of [...data.roots].reverse()) {
  const p = Buffer.from(root);
  const fields = new BigInt64Array(statFields);
  lstatFields(p, fields, 0);
  if (isDir(fields[0]) && !excluded(p.toString())) stack.push(p);
}
while (stack.length > 0) {
  const subdirs = list(stack.pop() as Buffer);
  for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as Buffer);
}
ring.finish();
