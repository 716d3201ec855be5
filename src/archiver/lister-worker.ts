import { lstatSync, readdirSync } from "node:fs";
import { workerData } from "node:worker_threads";
import { excludeMatcher } from "../source/exclude.js";
import { joinPath } from "../source/fs-node.js";
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

/** Lists dir into the ring; returns its subdirectories to walk, in order. */
function list(dir: Buffer): Buffer[] {
  let names: Buffer[];
  try {
    names = readdirSync(dir, { encoding: "buffer" });
  } catch {
    ring.write(RecordKind.unreadable, dir, null);
    return [];
  }
  names.sort(Buffer.compare);
  const stats = new BigInt64Array(statFields * names.length);
  const paths = names.map((name) => joinPath(dir, name));
  for (let i = 0; i < paths.length; i++) lstatFields(paths[i] as Buffer, stats, i * statFields);
  ring.write(RecordKind.listed, dir, { names, stats });
  return paths.filter((p, i) => isDir(stats[i * statFields]) && !excluded(p.toString()));
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
