// A sample of a corpus for compression benchmarks: every third file (in walk order) of at
// least minFile bytes, cut into pieces near coffer's average chunk size.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export const pieceLength = 1 << 20;

/** The pieces (views of the files' bytes) and their total length. */
export function corpusPieces(dir, minFile = 0) {
  const files = [];
  (function walk(d) {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  })(dir);
  const pieces = [];
  let total = 0;
  for (let i = 0; i < files.length; i += 3) {
    const b = readFileSync(files[i]);
    if (b.length < minFile) continue;
    for (let o = 0; o < b.length; o += pieceLength) {
      pieces.push(b.subarray(o, Math.min(b.length, o + pieceLength)));
      total += Math.min(b.length - o, pieceLength);
    }
  }
  return { pieces, total };
}
