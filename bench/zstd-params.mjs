// Compares zstd settings on chunk-sized pieces of a corpus: CPU seconds and output size,
// so a change of level or parameters is weighed against the repository-size target.
//
//   node bench/zstd-params.mjs DIR ['[{"compressionLevel":3},{"compressionLevel":2}]']
//
// Every third file of DIR is cut into 1 MiB pieces (near coffer's average chunk); each
// setting compresses all of them with one reused context and output buffer, as the seal
// workers do (src/repo/blob.ts). Pieces that do not shrink count at their own size.
import zstd from "zstd-napi/binding.js";
import { corpusPieces, pieceLength } from "./lib/corpus-pieces.mjs";

const [dir, json = '[{"compressionLevel":3},{"compressionLevel":2},{"compressionLevel":1}]'] =
  process.argv.slice(2);
if (dir === undefined) {
  console.error("usage: node bench/zstd-params.mjs DIR [JSON list of zstd parameter sets]");
  process.exit(2);
}

const { pieces, total } = corpusPieces(dir);
const piece = pieceLength;
console.log(`${pieces.length} pieces, ${(total / 2 ** 20).toFixed(0)} MiB`);

const dst = Buffer.allocUnsafe(zstd.compressBound(piece));
for (const settings of JSON.parse(json)) {
  const c = new zstd.CCtx();
  for (const [k, v] of Object.entries(settings)) {
    c.setParameter(zstd.CParameter[k], k === "strategy" ? zstd.Strategy[v] : v);
  }
  let out = 0;
  const t = process.cpuUsage();
  for (const p of pieces) out += Math.min(c.compress2(dst, p), p.length + 1);
  const u = process.cpuUsage(t);
  console.log(
    `${JSON.stringify(settings)}: ${((u.user + u.system) / 1e6).toFixed(2)} CPU-s, ` +
      `${(out / 2 ** 20).toFixed(2)} MiB (${((100 * out) / total).toFixed(1)}%)`,
  );
}
