// Corpora of shapes the system-files corpus lacks, where per-entry costs dominate: the same
// bytes every time, so runs on any machine compare.
//
//   node bench/shape-corpus.mjs wide DIR   one directory of 200,000 files of 10-70 bytes
//   node bench/shape-corpus.mjs tiny DIR   200 directories of 1,000 files of a few bytes
//
// Both also get 200 files of 8 KiB in DIR/larger: the bench's --mutate step
// (dataset.sh) changes files over 4 KiB, and a corpus without any fails it.
//
// Then, for example: node bench/run.mjs --corpus DIR --only coffer,restic
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

const [shape, dir] = process.argv.slice(2);
if (dir === undefined || (shape !== "wide" && shape !== "tiny")) {
  console.error("usage: node bench/shape-corpus.mjs wide|tiny DIR");
  process.exit(2);
}
if (shape === "wide") {
  const one = path.join(dir, "one");
  mkdirSync(one, { recursive: true });
  for (let i = 0; i < 200_000; i++) {
    const name = `file-${String(i).padStart(7, "0")}.txt`;
    writeFileSync(path.join(one, name), `content ${i}\n`.repeat((i % 7) + 1));
  }
} else {
  for (let d = 0; d < 200; d++) {
    const sub = path.join(dir, `d${String(d).padStart(3, "0")}`);
    mkdirSync(sub, { recursive: true });
    for (let i = 0; i < 1000; i++) {
      writeFileSync(path.join(sub, `f${String(i).padStart(4, "0")}`), `${d} ${i}\n`);
    }
  }
}
const larger = path.join(dir, "larger");
mkdirSync(larger, { recursive: true });
for (let i = 0; i < 200; i++) {
  const line = `line of larger file ${i}, `;
  writeFileSync(
    path.join(larger, `l${String(i).padStart(3, "0")}`),
    line.repeat(Math.ceil(8192 / line.length)).slice(0, 8192),
  );
}
console.log(`${shape} corpus in ${dir}`);
