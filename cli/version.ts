import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * coffer's version, from its own package.json: the nearest one above this module (cli/,
 * dist/cli/ or dist/bundle/). yargs' own guess searches up from the folder holding
 * node_modules; in the bundle there is none, so it searched from the working directory and
 * printed "unknown", or another project's version.
 */
export function cofferVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; ) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === "coffer" && typeof pkg.version === "string") return pkg.version;
    } catch {}
    const up = dirname(dir);
    if (up === dir) return "unknown";
    dir = up;
  }
}
