import { chmod, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, findConfigFile, loadConfig } from "../../src/config/load.js";
import { repoRoot, useTempDir } from "../helpers.js";

/** The problems loadConfig reports for a file with this text, one string each. */
async function problems(file: string, text: string): Promise<string[]> {
  await writeFile(file, text, { mode: 0o600 });
  try {
    await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("coffer.yaml validation", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  const good = (secret: string) => `# a comment
repositories:
  local:
    path: /srv/backup
    passphrase_file: ${secret}
jobs:
  system:
    repository: local
    sources:
      - paths: [/etc]
        exclude: ["*.tmp"]
    retention:
      keep_daily: 7
`;

  it("accepts a valid file, and warns when a file naming secret files is readable by others", async () => {
    const secret = path.join(dir, "pass");
    await writeFile(secret, "pw\n", { mode: 0o600 });
    const file = path.join(dir, "ok.yaml");
    await writeFile(file, good(secret), { mode: 0o600 });
    const warnings: string[] = [];
    const loaded = await loadConfig(file, { warn: (m) => warnings.push(m) });
    expect(loaded.config.jobs.system?.retention?.keep_daily).toBe(7);
    expect(warnings).toEqual([]);
    await chmod(file, 0o644);
    await loadConfig(file, { warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([
      `${file} is readable by group or others and names secret files: chmod 600 ${file}`,
    ]);
  });

  it("names file, line and key, and says what is expected", async () => {
    const secret = path.join(dir, "pass");
    await writeFile(secret, "pw\n", { mode: 0o600 });
    const f = path.join(dir, "bad.yaml");
    const cases: [string, string[]][] = [
      // bad YAML: the parser's line
      [
        "repositories:\n  local:\n    path: /x\n   bad: 1\n",
        [`${f}:4: invalid YAML: All mapping items must start at the same column`],
      ],
      // unknown key, on the line of the key, with the allowed keys
      [
        good(secret).replace("    retention:", "    retension:"),
        [
          `${f}:12: jobs.system.retension: unknown key: expected one of repository, sources, tags, host, retention, prune, verify, hooks`,
        ],
      ],
      // wrong type
      [
        good(secret).replace("keep_daily: 7", "keep_daily: seven"),
        [
          `${f}:13: jobs.system.retention.keep_daily: expected a number of days, a whole number, got text`,
        ],
      ],
      // missing secret file
      [
        good(path.join(dir, "no-such-file")),
        [
          `${f}:5: repositories.local.passphrase_file: cannot read ${path.join(dir, "no-such-file")} (ENOENT): expected a readable file`,
        ],
      ],
      // an inline passphrase
      [
        good(secret).replace(
          "    passphrase_file:",
          "    passphrase: hunter2\n    passphrase_file:",
        ),
        [
          `${f}:5: repositories.local.passphrase: secrets are not written in the config file: use passphrase_file: FILE (mode 0600), passphrase_env: VARIABLE, identity_file: FILE or kms: SPEC`,
        ],
      ],
      // a password inside a database URL
      [
        good(secret).replace(
          '      - paths: [/etc]\n        exclude: ["*.tmp"]',
          "      - postgres: postgresql://app:hunter2@db/app",
        ),
        [
          `${f}:10: jobs.system.sources[0].postgres: a password in the URL is a secret: leave it out and use ~/.pgpass or PGPASSFILE`,
        ],
      ],
      // a missing key points at its parent
      [
        good(secret).replace("    repository: local\n", ""),
        [
          `${f}:7: jobs.system.repository: missing: expected the name of a repository under repositories:`,
        ],
      ],
      // a reference to an undefined repository
      [
        good(secret).replace("repository: local", "repository: offsite"),
        [
          `${f}:8: jobs.system.repository: no repository named offsite: expected one of repositories: (local)`,
        ],
      ],
      // a hook written as a shell line
      [
        `${good(secret)}    hooks:\n      before:\n        - systemctl stop app\n`,
        [
          `${f}:16: jobs.system.hooks.before[0]: expected a command as a list, e.g. [systemctl, stop, app] (for a shell line: [sh, -c, '...']), got text`,
        ],
      ],
      // two kinds of source in one entry
      [
        good(secret).replace('exclude: ["*.tmp"]', "mysql: mysql://root@db/app"),
        [
          `${f}:10: jobs.system.sources[0]: expected exactly one of paths:, postgres:, mysql:, command: (found paths, mysql)`,
        ],
      ],
      // an empty retention policy would remove every snapshot
      [
        good(secret).replace("keep_daily: 7", "keep_daily: 0"),
        [
          `${f}:12: jobs.system.retention: expected at least one keep_* rule above 0 (an empty policy would remove all)`,
        ],
      ],
    ];
    for (const [text, expected] of cases) {
      const got = await problems(f, text);
      expect(got.length, `${text}\n${got.join("\n")}`).toBe(expected.length);
      for (let i = 0; i < expected.length; i++) {
        expect(got[i]?.startsWith(expected[i] as string), got[i]).toBe(true);
      }
      // The inline secret is never echoed back.
      expect(got.join("\n")).not.toContain("hunter2");
    }
  });

  it("finds the file from --config, COFFER_CONFIG, then the user's config folder", async () => {
    expect(await findConfigFile("/a.yaml", { COFFER_CONFIG: "/b.yaml" })).toBe("/a.yaml");
    expect(await findConfigFile(undefined, { COFFER_CONFIG: "/b.yaml" })).toBe("/b.yaml");
    const xdg = path.join(dir, "xdg");
    await import("node:fs/promises").then((fs) =>
      fs.mkdir(path.join(xdg, "coffer"), { recursive: true }),
    );
    await writeFile(path.join(xdg, "coffer/coffer.yaml"), "");
    const found = await findConfigFile(undefined, { XDG_CONFIG_HOME: xdg });
    // /etc/coffer/coffer.yaml comes first when this machine has one.
    expect([path.join(xdg, "coffer/coffer.yaml"), "/etc/coffer/coffer.yaml"]).toContain(found);
    await expect(
      findConfigFile(undefined, { XDG_CONFIG_HOME: path.join(dir, "none") }),
    ).rejects.toThrow(/no config file: give --config FILE, set COFFER_CONFIG, or create/);
  });

  it("the README's config example is valid", async () => {
    const readme = await readFile(path.join(repoRoot, "README.md"), "utf8");
    const block = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const file = path.join(dir, "readme.yaml");
    await writeFile(file, block as string, { mode: 0o600 });
    const loaded = await loadConfig(file, { checkFiles: false });
    expect(loaded.config.jobs.files?.sources).toHaveLength(3);
  });

  it("samples/config/coffer.yaml is valid (files it names are on the server, not here)", async () => {
    const loaded = await loadConfig(path.join(repoRoot, "samples/config/coffer.yaml"), {
      checkFiles: false,
    });
    expect(Object.keys(loaded.config.jobs).length).toBeGreaterThan(0);
    const kinds = Object.values(loaded.config.jobs).flatMap((j) =>
      j.sources.map((s) => Object.keys(s)[0]),
    );
    expect(kinds).toEqual(expect.arrayContaining(["paths", "postgres"]));
    expect(Object.values(loaded.config.repositories).some((r) => r.url?.startsWith("s3://"))).toBe(
      true,
    );
  });
});
