// Bytes per indexed blob of the in-memory index, measured two ways at several sizes:
// the index's own typed arrays, and the growth of the process's ArrayBuffer memory.
// Usage: npm run build && node bench/index-memory.mjs [MILLIONS...]   (default 1 5 10)
import { randomFillSync } from "node:crypto";
import { BlobIndex } from "../dist/src/repo/blob-index.js";

const sizes = (process.argv.slice(2).length ? process.argv.slice(2) : ["1", "5", "10"]).map((m) =>
  Math.round(Number(m) * 1e6),
);
const packId = "0".repeat(64);
const ids = Buffer.alloc(32 * 65536);
console.log("| blobs | index bytes/blob | arrayBuffers growth/blob | load s |");
console.log("| ---: | ---: | ---: | ---: |");
for (const n of sizes) {
  globalThis.gc?.();
  const before = process.memoryUsage().arrayBuffers;
  const started = process.hrtime.bigint();
  const index = new BlobIndex();
  for (let i = 0; i < n; i++) {
    if (i % 65536 === 0) randomFillSync(ids);
    const id = ids.subarray((i % 65536) * 32, (i % 65536) * 32 + 32);
    index.addRaw(id, packId, { kind: 1, offset: i, length: 100, rawLength: 100 });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  globalThis.gc?.(); // the arrays left behind by growth are garbage, not index
  const grown = process.memoryUsage().arrayBuffers - before;
  console.log(
    `| ${n.toLocaleString("en")} | ${(index.byteSize / index.size).toFixed(1)} | ${(grown / index.size).toFixed(1)} | ${seconds.toFixed(1)} |`,
  );
}
