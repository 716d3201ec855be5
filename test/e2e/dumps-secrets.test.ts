import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";

// Where a URL's password goes. The real servers here use trust auth and never ask for it,
// so stand-in programs named pg_dump/psql/mariadb-dump/mariadb, first on PATH, record
// what coffer hands them: argv, environment, and the password file (content, mode).

const secret = "Pw-s3cr3t-9q";

function recorder(log: string, output: string): string {
  return `#!/bin/sh
{
  echo "ARGV $*"
  env | grep -q '${secret}' && echo "ENV-HAS-SECRET"
  for a in "$@"; do case "$a" in --defaults-extra-file=*) f="\${a#--defaults-extra-file=}";; esac; done
  [ -n "$PGPASSFILE" ] && f="$PGPASSFILE"
  if [ -n "$f" ]; then echo "FILE $f $(stat -c %a "$f") $(stat -c %a "$(dirname "$f")")"; echo "CONTENT $(cat "$f" | tr '\\n' ' ')"; fi
} >> ${log}
printf '${output}'
`;
}

describe("database passwords stay out of argv, environment and snapshots", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });
  const repo = () => path.join(dir, "repo");
  const bin = () => path.join(dir, "bin");
  const log = () => path.join(dir, "log.txt");

  beforeAll(async () => {
    await initRepo(repo());
    const { mkdir } = await import("node:fs/promises");
    await mkdir(bin());
    const tools: Record<string, string> = {
      psql: "15.9\\tshop\\n",
      pg_dump: "PGDMP fake dump bytes",
      mariadb: "10.11.9-MariaDB\\n",
      "mariadb-dump": "fake mysql dump",
    };
    for (const [name, out] of Object.entries(tools)) {
      await writeFile(path.join(bin(), name), recorder(log(), out));
      await chmod(path.join(bin(), name), 0o755);
    }
  });

  for (const [kind, url] of [
    ["postgres", `postgres://shopuser:${secret}@127.0.0.1:5432/shop`],
    ["mysql", `mysql://shopuser:${secret}@127.0.0.1:3306/shop`],
  ] as const) {
    it(`--${kind}: the password reaches the tools only in a 0600 file, removed afterwards`, async () => {
      await writeFile(log(), "");
      const b = await coffer(["backup", "--repo", repo(), `--${kind}`, url, "--json"], {
        env: { PATH: `${bin()}:${process.env.PATH}` },
      });
      expect(b.stderr).toBe("");
      expect(b.code).toBe(0);
      const lines = (await readFile(log(), "utf8")).trim().split("\n");
      const argv = lines.filter((l) => l.startsWith("ARGV"));
      expect(argv.length).toBeGreaterThanOrEqual(2); // a version query and the dump
      for (const l of argv) expect(l).not.toContain(secret);
      expect(lines).not.toContain("ENV-HAS-SECRET");
      const files = lines.filter((l) => l.startsWith("FILE"));
      expect(files.length).toBe(argv.length);
      for (const f of files) {
        const [, file, mode, dirMode] = f.split(" ");
        expect(mode).toBe("600");
        expect(dirMode).toBe("700");
        await expect(stat(file as string)).rejects.toThrow(); // removed afterwards
      }
      for (const c of lines.filter((l) => l.startsWith("CONTENT"))) expect(c).toContain(secret);
      const snaps = await coffer(["snapshots", "--repo", repo(), "--json"]);
      expect(snaps.stdout).not.toContain(secret);
      expect(snaps.stdout).not.toContain("shopuser");
      expect(JSON.parse(snaps.stdout).at(-1).source).toMatchObject({ kind, databases: ["shop"] });
    });
  }
});
