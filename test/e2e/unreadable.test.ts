import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { coffer, useTempDir } from "../helpers.js";
import { cli, hasCommand } from "./e2e-helpers.js";

// Root reads everything, so the CLI runs as nobody (65534) through setpriv (util-linux).
const nobody = 65534;
const asNobody = [
  "setpriv",
  `--reuid=${nobody}`,
  `--regid=${nobody}`,
  "--clear-groups",
  "--inh-caps=-all",
];
const isRoot = process.getuid?.() === 0;
const canDropPrivileges = isRoot && hasCommand("setpriv");

describe("unreadable files", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it.skipIf(!canDropPrivileges)(
    "exit 3, each unreadable path named on stderr, the snapshot holds the rest (needs root and setpriv)",
    async () => {
      const repo = path.join(dir, "repo");
      const src = path.join(dir, "src");
      const readable = {
        "a.txt": Buffer.from("readable\n"),
        "big.bin": randomBytes(2 * 1024 * 1024),
        "sub/b.txt": Buffer.from("also readable\n"),
      };
      for (const [rel, data] of Object.entries(readable)) {
        await fs.mkdir(path.dirname(path.join(src, rel)), { recursive: true });
        await fs.writeFile(path.join(src, rel), data);
      }
      await fs.writeFile(path.join(src, "secret.txt"), "no one may read this\n");
      await fs.writeFile(path.join(src, "sub", "big-secret.bin"), randomBytes(2 * 1024 * 1024));
      await fs.mkdir(path.join(src, "closed-dir"));
      await fs.writeFile(path.join(src, "closed-dir", "inside.txt"), "inside\n");
      // Listable but not searchable: names are readable, the entries cannot be lstat'ed.
      await fs.mkdir(path.join(src, "no-search-dir"));
      await fs.writeFile(path.join(src, "no-search-dir", "child.txt"), "child\n");
      execFileSync("chown", ["-R", `${nobody}:${nobody}`, dir]);
      await fs.chmod(path.join(src, "secret.txt"), 0o000);
      await fs.chmod(path.join(src, "sub", "big-secret.bin"), 0o200);
      await fs.chmod(path.join(src, "closed-dir"), 0o000);
      await fs.chmod(path.join(src, "no-search-dir"), 0o444);

      const init = await cli(["init", "--repo", repo, "--scrypt-work-factor", "10"], {
        prefix: asNobody,
      });
      expect(init.code, init.stderr).toBe(0);
      const b = await cli(["backup", "--repo", repo, src, "--json"], { prefix: asNobody });
      expect(b.code, b.stderr).toBe(3);
      const errorLines = b.stderr.split("\n").filter((l) => l.startsWith("coffer: error: "));
      expect(errorLines.sort()).toEqual(
        [
          `${src}/closed-dir`,
          `${src}/no-search-dir/child.txt`,
          `${src}/secret.txt`,
          `${src}/sub/big-secret.bin`,
        ].map((p) => expect.stringMatching(new RegExp(`^coffer: error: ${p}: EACCES`))),
      );
      expect(b.stderr).toMatch(/4 files or directories could not be read; the snapshot lacks them/);
      expect(b.stderr).not.toMatch(/ {4}at /);
      const summary = JSON.parse(b.stdout);
      expect(summary).toMatchObject({ errors: 4, files: 3 });

      // The snapshot exists and holds every readable file, byte for byte.
      const ls = await coffer(["ls", "--repo", repo, summary.snapshot]);
      expect(ls.code, ls.stderr).toBe(0);
      const listed = ls.stdout
        .trim()
        .split("\n")
        .filter((p) => p.startsWith(`${src}/`));
      for (const rel of Object.keys(readable)) expect(listed).toContain(`${src}/${rel}`);
      for (const rel of ["secret.txt", "sub/big-secret.bin", "closed-dir/inside.txt"]) {
        expect(listed).not.toContain(`${src}/${rel}`);
      }
      expect(listed).not.toContain(`${src}/no-search-dir/child.txt`);
      const out = path.join(dir, "out");
      const r = await coffer(["restore", "--repo", repo, summary.snapshot, "--target", out]);
      expect(r.code, r.stderr).toBe(0);
      for (const [rel, data] of Object.entries(readable)) {
        expect((await fs.readFile(path.join(out, src, rel))).equals(data), rel).toBe(true);
      }
      const v = await cli(["verify", "--repo", repo], { prefix: asNobody });
      expect(v.code, v.stderr).toBe(0);
    },
  );
});
