import { lstatSync, readdirSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import type { ListerMessage, Listing } from "./listing.js";
import { statFields } from "./listing.js";

// A directory lister: reads directories and lstats their entries ahead of the archiver's
// walk (see dir-lister.ts), so the walk's syscalls run on another core. Requests are kept
// on a stack: the walk is depth-first and asks for a directory's subdirectories when it
// enters it, so the newest requests are the ones it needs next.

const { maxAhead } = workerData as { maxAhead: number };
const stack: Buffer[] = [];
let ahead = 0;
let scheduled = false;

function list(dir: Buffer): { listing: Listing; transfer: ArrayBuffer[] } {
  const names = readdirSync(dir, { encoding: "buffer" });
  names.sort(Buffer.compare);
  const nameEnds = new Uint32Array(names.length);
  const stats = new BigInt64Array(names.length * statFields);
  const slash = dir.length > 0 && dir[dir.length - 1] === 0x2f ? "" : "/";
  const prefix = Buffer.concat([dir, Buffer.from(slash)]);
  let end = 0;
  names.forEach((name, i) => {
    end += name.length;
    nameEnds[i] = end;
    const st = lstatSync(Buffer.concat([prefix, name]), { bigint: true, throwIfNoEntry: false });
    if (st === undefined) return;
    const o = i * statFields;
    stats[o] = st.mode;
    stats[o + 1] = st.uid;
    stats[o + 2] = st.gid;
    stats[o + 3] = st.size;
    stats[o + 4] = st.mtimeNs;
    stats[o + 5] = st.ctimeNs;
    stats[o + 6] = BigInt.asIntN(64, st.dev);
    stats[o + 7] = BigInt.asIntN(64, st.ino);
    stats[o + 8] = st.nlink;
    stats[o + 9] = BigInt.asIntN(64, st.rdev);
  });
  const all = Buffer.concat(names);
  const bytes = new Uint8Array(all.length);
  bytes.set(all);
  // A copy of dir: a pooled Buffer would send its whole 8 KiB slab along.
  const listing = { dir: new Uint8Array(dir), names: bytes, nameEnds, stats, failed: false };
  return { listing, transfer: [bytes.buffer, nameEnds.buffer, stats.buffer] };
}

function listed(dir: Buffer): { listing: Listing; transfer: ArrayBuffer[] } {
  try {
    return list(dir);
  } catch {
    // readdir failed, or an lstat other than ENOENT did: the walk lists it and reports why
    const listing: Listing = {
      dir: new Uint8Array(dir),
      names: new Uint8Array(0),
      nameEnds: new Uint32Array(0),
      stats: new BigInt64Array(0),
      failed: true,
    };
    return { listing, transfer: [] };
  }
}

function send(dir: Buffer): void {
  const { listing, transfer } = listed(dir);
  ahead++;
  parentPort?.postMessage(listing, transfer);
}

function work(): void {
  scheduled = false;
  while (ahead < maxAhead) {
    const dir = stack.pop();
    if (dir === undefined) return;
    send(dir);
    // Let new requests (deeper directories, wanted sooner) in between listings.
    if (stack.length > 0) {
      scheduled = true;
      setImmediate(work);
      return;
    }
  }
}

parentPort?.on("message", (m: ListerMessage) => {
  if ("consumed" in m) ahead -= m.consumed;
  else if ("urgent" in m) send(Buffer.from(m.urgent));
  else
    for (let i = m.dirs.length - 1; i >= 0; i--) stack.push(Buffer.from(m.dirs[i] as Uint8Array));
  if (!scheduled) work();
});
