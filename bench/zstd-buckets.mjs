// Would choosing the zstd level per blob pay? Cuts every third file of DIR (64 KiB and
// up) into 1 MiB pieces, puts each piece in a bucket by how well its first 64 KiB
// compress at level 3 (the probe coffer's seal path runs, src/repo/blob.ts), and per
// bucket compares level 3 and level 1: output size and compression time.
//
//   node bench/zstd-buckets.mjs DIR
import zstd from "zstd-napi/binding.js";
import { corpusPieces, pieceLength } from "./lib/corpus-pieces.mjs";

const dir = process.argv[2];
if (dir === undefined) {
  console.error("usage: node bench/zstd-buckets.mjs DIR");
  process.exit(2);
}
const probeLength = 64 * 1024;
const piece = pieceLength;
const { pieces } = corpusPieces(dir, probeLength);

const dst = Buffer.allocUnsafe(zstd.compressBound(piece) + 64);
const context = (level) => {
  const c = new zstd.CCtx();
  c.setParameter(zstd.CParameter.compressionLevel, level);
  return c;
};
const c3 = context(3);
const c1 = context(1);
const timed = (c, p) => {
  const t = process.hrtime.bigint();
  const n = c.compress2(dst, p);
  return [n, Number(process.hrtime.bigint() - t) / 1e9];
};
const buckets = new Map();
for (const p of pieces) {
  if (p.length <= 2 * probeLength) continue;
  const probe = c3.compress2(dst, p.subarray(0, probeLength)) / probeLength;
  if (probe > 0.97) continue; // stored raw by coffer
  const key =
    probe < 0.3 ? "< 0.3" : probe < 0.5 ? "0.3-0.5" : probe < 0.7 ? "0.5-0.7" : "0.7-0.97";
  const [s3, t3] = timed(c3, p);
  const [s1, t1] = timed(c1, p);
  const b = buckets.get(key) ?? { n: 0, raw: 0, s3: 0, s1: 0, t3: 0, t1: 0 };
  b.n++;
  b.raw += p.length;
  b.s3 += s3;
  b.s1 += s1;
  b.t3 += t3;
  b.t1 += t1;
  buckets.set(key, b);
}
const mib = (n) => (n / 2 ** 20).toFixed(1);
console.log("probe ratio | pieces | MiB | level 3 MiB | level 1 MiB | level 3 s | level 1 s");
for (const [k, b] of [...buckets].sort()) {
  console.log(
    `${k} | ${b.n} | ${mib(b.raw)} | ${mib(b.s3)} | ${mib(b.s1)} | ${b.t3.toFixed(2)} | ${b.t1.toFixed(2)}`,
  );
}
