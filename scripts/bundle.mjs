#!/usr/bin/env node
// `npm run build`, second step: bundles tsc's output (dist/) into dist/bundle/, the program
// the `coffer` command runs. Node 20's ES module loader resolves, reads and compiles each
// file on its own: the 225 files a backup loaded (coffer's, age-encryption's curves, yargs)
// cost about 0.2 s of CPU before any work, on every run; bundled it loads 20. One entry per
// thread (the command and the three worker scripts) and shared chunks (splitting): modules
// loaded by `import()` stay in chunks of their own, loaded as late as before.
import { rmSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");

// Chunk names carry content hashes: without this, every build would leave the last one's.
rmSync(path.join(dist, "bundle"), { recursive: true, force: true });

await build({
  entryPoints: {
    // The worker names are the ones src/ starts: new URL("./seal-worker.js", import.meta.url)
    // in any chunk of dist/bundle/ finds dist/bundle/seal-worker.js.
    main: path.join(dist, "cli/main.js"),
    "seal-worker": path.join(dist, "src/repo/seal-worker.js"),
    "write-worker": path.join(dist, "src/restore/write-worker.js"),
    "lister-worker": path.join(dist, "src/archiver/lister-worker.js"),
  },
  outdir: path.join(dist, "bundle"),
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  logLevel: "warning",
  // Left to Node: native addons, packages that read their own files at run time (protos,
  // transport workers), and the cloud SDKs, which load only for the backends and key
  // services that use them.
  external: [
    "zstd-napi",
    "zstd-napi/*",
    "graphene-pk11",
    "pino",
    "@aws-sdk/*",
    "@smithy/*",
    "@google-cloud/*",
  ],
  // CommonJS packages in the bundle (tar-stream's streams, picomatch) call require() for
  // Node built-ins; an ES module has none of its own.
  banner: {
    js: 'import { createRequire as __cofferRequire } from "node:module"; const require = __cofferRequire(import.meta.url);',
  },
});
