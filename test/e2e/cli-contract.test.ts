import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { hostname } from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { generateX25519Identity, identityToRecipient } from "age-encryption";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Lock } from "../../src/repo/lock.js";
import { listSnapshots, saveSnapshot } from "../../src/repo/snapshots.js";
import {
  coffer,
  initRepo,
  openStore,
  type RunResult,
  repoRoot,
  tempDir,
  testPassphrase,
} from "../helpers.js";
import { repoFiles, waitFor } from "./e2e-helpers.js";

const noPass = { COFFER_PASSPHRASE: undefined, COFFER_PASSPHRASE_FILE: undefined };

/** A fatal error: the given exit code and exactly one line on stderr, no stack trace. */
function expectOneLineError(r: RunResult, code: number, message: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.split("\n").filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/ {4}at /);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(lines[0]).toMatch(/^coffer: /);
  expect(lines[0]).toMatch(message);
}

async function writeAgeIdentity(file: string): Promise<string> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  await fs.writeFile(
    file,
    `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`,
    { mode: 0o600 },
  );
  return recipient;
}

describe("coffer CLI contract", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(() => cleanup());

  it("--version prints coffer's version from any working directory", async () => {
    const own = JSON.parse(await fs.readFile(path.join(repoRoot, "package.json"), "utf8")) as {
      version: string;
    };
    // Another project's package.json in the working directory must not be taken for ours.
    await fs.writeFile(
      path.join(dir, "package.json"),
      JSON.stringify({ name: "other", version: "9.9.9" }),
    );
    const r = await coffer(["--version"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(own.version);
  });

  it("exit codes 10, 12 and 1 with one-line messages; a failed backup writes nothing", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, "f"), "f\n");

    const missing = await coffer(["snapshots", "--repo", path.join(dir, "nope")]);
    expectOneLineError(missing, 10, /no coffer repository at .*nope/);
    const missingBackup = await coffer(["backup", "--repo", path.join(dir, "nope"), src]);
    expectOneLineError(missingBackup, 10, /no coffer repository/);
    await expect(fs.stat(path.join(dir, "nope"))).rejects.toThrow(/ENOENT/);

    await initRepo(repo);
    const again = await coffer(["init", "--repo", repo, "--scrypt-work-factor", "10"]);
    expectOneLineError(again, 1, /is not empty/);
    expect(await repoFiles(repo, "keys")).toHaveLength(1);

    const wrong = await coffer(["snapshots", "--repo", repo], {
      env: { COFFER_PASSPHRASE: "not the passphrase" },
    });
    expectOneLineError(wrong, 12, /wrong passphrase or key/);
    expect(wrong.stderr).not.toContain("not the passphrase");
    const noKey = await coffer(["snapshots", "--repo", repo], { env: noPass });
    expectOneLineError(noKey, 12, /no key given/);

    // A path that does not exist, alone or with one that does: exit 1, nothing written.
    const gone = path.join(dir, "does-not-exist");
    const r1 = await coffer(["backup", "--repo", repo, gone]);
    expectOneLineError(r1, 1, /cannot back up .*does-not-exist: ENOENT/);
    const r2 = await coffer(["backup", "--repo", repo, src, gone]);
    expectOneLineError(r2, 1, /does-not-exist/);
    expect(await repoFiles(repo, "snapshots")).toEqual([]);
    expect(await repoFiles(repo, "index")).toEqual([]);
    expect(await repoFiles(repo, "locks")).toEqual([]);
    const packs = (await fs.readdir(path.join(repo, "data"), { recursive: true })).filter((n) =>
      /[0-9a-f]{64}$/.test(n),
    );
    expect(packs).toEqual([]);
  });

  it("exit 11 while an exclusive lock is held; shared and stale locks do not block", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, "f"), "f\n");
    await initRepo(repo);
    const store = await openStore(repo);

    const exclusive = await Lock.acquire(store.repo, true);
    try {
      const r = await coffer(["backup", "--repo", repo, src]);
      expectOneLineError(r, 11, /repository is locked: exclusive lock by .* pid \d+/);
      expect(r.stderr).toContain(`pid ${process.pid}`);
      expect(await repoFiles(repo, "snapshots")).toEqual([]);
    } finally {
      await exclusive.release();
    }
    const shared = await Lock.acquire(store.repo, false);
    try {
      const r = await coffer(["backup", "--repo", repo, src]);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await shared.release();
    }
    expect(await repoFiles(repo, "locks")).toEqual([]);

    // A lock left by a process that died (same host, dead pid) is stale: ignored.
    const mod = (p: string) => pathToFileURL(path.join(repoRoot, "dist", p)).href;
    const script = `
      const { LocalBackend } = await import(${JSON.stringify(mod("src/backend/local.js"))});
      const { PassphraseProvider } = await import(${JSON.stringify(mod("src/kms/passphrase.js"))});
      const { Repository } = await import(${JSON.stringify(mod("src/repo/repository.js"))});
      const { Lock } = await import(${JSON.stringify(mod("src/repo/lock.js"))});
      const repo = await Repository.open(new LocalBackend(process.argv[1]), [new PassphraseProvider(process.argv[2])]);
      await Lock.acquire(repo, true);
      process.stdout.write("locked\\n");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(
      process.execPath,
      ["--input-type=module", "-e", script, repo, testPassphrase],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise((r) => child.on("exit", r));
    await waitFor(() => out.includes("locked"), 30_000, "the child to take its lock");
    child.kill("SIGKILL");
    await exited;
    expect(await repoFiles(repo, "locks")).toHaveLength(1);

    const after = await coffer(["backup", "--repo", repo, src, "--force"]);
    expect(after.code, after.stderr).toBe(0);
    const unlock = await coffer(["unlock", "--repo", repo]);
    expect(unlock.code, unlock.stderr).toBe(0);
    expect(unlock.stdout).toBe("removed 1 locks\n");
    expect(await repoFiles(repo, "locks")).toEqual([]);
  });

  it("backup --json, snapshots --json, tags, excludes, ls, and snapshot references", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    const files: Record<string, string> = {
      "a.txt": "a\n",
      "b.log": "log\n",
      "sub/c.txt": "c\n",
      "sub/deeper/d.log": "deep log\n",
      "sub/cache/kept.txt": "a cache dir elsewhere is kept\n",
      "cache/gone.bin": "excluded by its absolute path\n",
      "cache/also-gone.txt": "excluded with its directory\n",
    };
    for (const [rel, text] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(src, rel)), { recursive: true });
      await fs.writeFile(path.join(src, rel), text);
    }
    await initRepo(repo);

    const b1 = await coffer([
      "backup",
      "--repo",
      repo,
      src,
      "--json",
      "--tag",
      "daily",
      "--tag",
      "before-upgrade",
      "--exclude",
      "*.log",
      "--exclude",
      `${src}/cache`,
    ]);
    expect(b1.code, b1.stderr).toBe(0);
    const s1 = JSON.parse(b1.stdout);
    expect(s1.snapshot).toMatch(/^[0-9a-f]{64}$/);
    expect(s1.files).toBe(3);
    expect(s1.bytesRead).toBe(
      ["a.txt", "sub/c.txt", "sub/cache/kept.txt"].reduce(
        (n, k) => n + Buffer.byteLength(files[k] as string),
        0,
      ),
    );
    expect(s1.bytesAdded).toBeGreaterThan(0);
    expect(typeof s1.durationMs).toBe("number");
    expect(s1.durationMs).toBeGreaterThanOrEqual(0);

    // ls --json: one object per line; the excluded paths are absent.
    const lsj = await coffer(["ls", "--repo", repo, s1.snapshot, "--json"]);
    expect(lsj.code, lsj.stderr).toBe(0);
    const entries = lsj.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const byPath = new Map(entries.map((e) => [e.path, e]));
    const under = [...byPath.keys()].filter((p) => p.startsWith(`${src}/`)).sort();
    expect(under).toEqual(
      [
        "a.txt",
        "sub",
        "sub/c.txt",
        "sub/cache",
        "sub/cache/kept.txt",
        "sub/deeper", // its only file was excluded; the directory stays
      ]
        .map((p) => `${src}/${p}`)
        .sort(),
    );
    expect(byPath.get(`${src}/a.txt`)).toMatchObject({ type: "file", size: 2, mode: 0o644 });
    expect(byPath.get(`${src}/sub`)).toMatchObject({ type: "dir" });
    expect(byPath.get(src)).toMatchObject({ type: "dir" });
    const st = await fs.stat(path.join(src, "a.txt"));
    expect(Date.parse(byPath.get(`${src}/a.txt`).mtime)).toBe(Math.floor(st.mtimeMs));

    // Plain ls: the same paths, one per line; ls PATH lists only under PATH.
    const ls = await coffer(["ls", "--repo", repo, s1.snapshot]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.trim().split("\n")).toEqual(entries.map((e) => e.path));
    const lsSub = await coffer(["ls", "--repo", repo, "latest", `${src}/sub`]);
    expect(lsSub.stdout.trim().split("\n").sort()).toEqual(
      ["", "/c.txt", "/cache", "/cache/kept.txt", "/deeper"].map((p) => `${src}/sub${p}`).sort(),
    );

    const b2 = await coffer(["backup", "--repo", repo, src, "--json"]);
    expect(b2.code, b2.stderr).toBe(0);
    const s2 = JSON.parse(b2.stdout);
    expect(s2.files).toBe(Object.keys(files).length);

    const snaps = await coffer(["snapshots", "--repo", repo, "--json"]);
    expect(snaps.code, snaps.stderr).toBe(0);
    const list = JSON.parse(snaps.stdout);
    expect(list.map((s: { id: string }) => s.id)).toEqual([s1.snapshot, s2.snapshot]);
    expect(list[0]).toMatchObject({
      id: s1.snapshot,
      paths: [src],
      tags: ["daily", "before-upgrade"],
      hostname: hostname(),
    });
    expect(list[1]).toMatchObject({
      id: s2.snapshot,
      paths: [src],
      tags: [],
      hostname: hostname(),
    });
    for (const s of list) expect(Date.parse(s.time)).not.toBeNaN();

    // Plain snapshots: a table with short ids, tags and a count.
    const table = await coffer(["snapshots", "--repo", repo]);
    expect(table.stdout).toContain(s1.snapshot.slice(0, 8));
    expect(table.stdout).toContain("daily,before-upgrade");
    expect(table.stdout).toMatch(/2 snapshots\n$/);

    // References: full id, unique prefix, latest.
    const logPath = `${src}/b.log`;
    const lsFull = await coffer(["ls", "--repo", repo, s2.snapshot]);
    expect(lsFull.stdout.split("\n")).toContain(logPath);
    const first = s1.snapshot.slice(0, 10);
    const lsPrefix = await coffer(["ls", "--repo", repo, first]);
    expect(lsPrefix.code, lsPrefix.stderr).toBe(0);
    expect(lsPrefix.stdout).toBe(ls.stdout);
    const lsLatest = await coffer(["ls", "--repo", repo, "latest"]);
    expect(lsLatest.stdout).toBe(lsFull.stdout);

    // Unknown and malformed references.
    const unused = "0123456789abcdef"
      .split("")
      .find((c) => !list.some((s: { id: string }) => s.id.startsWith(c)));
    const unknown = await coffer(["ls", "--repo", repo, `${unused}${"0".repeat(11)}`]);
    expectOneLineError(unknown, 1, /no snapshot [0-9a-f]+/);
    const bogus = await coffer(["restore", "--repo", repo, "yesterday", "--target", dir]);
    expectOneLineError(bogus, 1, /"yesterday" is not a snapshot id/);

    // An ambiguous prefix: add snapshots in-process until two ids share a first digit.
    const store = await openStore(repo);
    const [base] = await listSnapshots(store.repo);
    const ids: string[] = list.map((s: { id: string }) => s.id);
    let shared: string | undefined;
    while (shared === undefined) {
      const { id: _id, ...snap } = base as NonNullable<typeof base>;
      const id = await saveSnapshot(store.repo, snap);
      shared = ids.find((other) => other[0] === id[0])?.[0];
      ids.push(id);
    }
    const ambiguous = await coffer(["ls", "--repo", repo, shared]);
    expectOneLineError(ambiguous, 1, /ambiguous/);
  });

  it("backs up stdin and restores it, and a file of a directory snapshot, to stdout", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await initRepo(repo);
    const dump = randomBytes(20 * 1024 * 1024);
    const b = await coffer(
      ["backup", "--repo", repo, "--stdin", "--stdin-name", "dump.sql", "--json"],
      { input: dump },
    );
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ files: 1, bytesRead: dump.length });
    const r = await coffer(["restore", "--repo", repo, "latest", "--stdout"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdoutBytes.length).toBe(dump.length);
    expect(r.stdoutBytes.equals(dump)).toBe(true);
    // Nothing but the bytes: no progress lines and no Node warnings on stderr.
    expect(r.stderr).toBe("");
    const list = JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout);
    expect(list[0].paths).toEqual(["stdin:dump.sql"]);

    const noName = await coffer(["backup", "--repo", repo, "--stdin"], { input: "x" });
    expectOneLineError(noName, 1, /--stdin needs --stdin-name/);

    await fs.mkdir(path.join(src, "nested"), { recursive: true });
    const inner = randomBytes(3 * 1024 * 1024 + 5);
    await fs.writeFile(path.join(src, "nested", "file.bin"), inner);
    await fs.writeFile(path.join(src, "other"), "other\n");
    const d = await coffer(["backup", "--repo", repo, src]);
    expect(d.code, d.stderr).toBe(0);
    const id = d.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const one = await coffer(["restore", "--repo", repo, id, "--stdout", `${src}/nested/file.bin`]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdoutBytes.equals(inner)).toBe(true);
    expect(one.stderr).toBe("");
    const ofDir = await coffer(["restore", "--repo", repo, id, "--stdout", `${src}/nested`]);
    expectOneLineError(ofDir, 1, /is a dir, not a file/);
    const noPath = await coffer(["restore", "--repo", repo, id, "--stdout"]);
    expectOneLineError(noPath, 1, /--stdout needs the PATH of one file/);
    const absent = await coffer(["restore", "--repo", repo, id, "--stdout", `${src}/missing`]);
    expectOneLineError(absent, 1, /is not in the snapshot/);
  });

  it("restore --include restores only matching paths", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    const files = ["a.txt", "b.bin", "sub/c.txt", "sub/deeper/d.txt", "sub/e.bin", "other/f.bin"];
    for (const rel of files) {
      await fs.mkdir(path.dirname(path.join(src, rel)), { recursive: true });
      await fs.writeFile(path.join(src, rel), `${rel}\n`);
    }
    await initRepo(repo);
    expect((await coffer(["backup", "--repo", repo, src])).code).toBe(0);

    const restoredFiles = async (out: string) =>
      (await fs.readdir(path.join(out, src), { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => path.relative(path.join(out, src), path.join(e.parentPath, e.name)))
        .sort();

    const out1 = path.join(dir, "out1");
    const r1 = await coffer([
      "restore",
      "--repo",
      repo,
      "latest",
      "--target",
      out1,
      "--include",
      "*.txt",
    ]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(await restoredFiles(out1)).toEqual(["a.txt", "sub/c.txt", "sub/deeper/d.txt"]);
    expect(await fs.readFile(path.join(out1, src, "sub/deeper/d.txt"), "utf8")).toBe(
      "sub/deeper/d.txt\n",
    );
    // Directories with nothing included are not created.
    await expect(fs.stat(path.join(out1, src, "other"))).rejects.toThrow(/ENOENT/);

    const out2 = path.join(dir, "out2");
    const r2 = await coffer([
      "restore",
      "--repo",
      repo,
      "latest",
      "--target",
      out2,
      "--include",
      `${src}/sub`,
    ]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(await restoredFiles(out2)).toEqual(["sub/c.txt", "sub/deeper/d.txt", "sub/e.bin"]);
  });

  it("--passphrase-file replaces COFFER_PASSPHRASE", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, "f"), "content\n");
    const passFile = path.join(dir, "pass");
    await fs.writeFile(passFile, `${testPassphrase}\n`, { mode: 0o600 });
    const withFile = ["--passphrase-file", passFile];

    const init = await coffer(["init", "--repo", repo, "--scrypt-work-factor", "10", ...withFile], {
      env: noPass,
    });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).toBe("");
    const b = await coffer(["backup", "--repo", repo, src, ...withFile], { env: noPass });
    expect(b.code, b.stderr).toBe(0);
    // The file's passphrase (trailing newline stripped) is the one the env var would give.
    const viaEnv = await coffer(["snapshots", "--repo", repo, "--json"]);
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(JSON.parse(viaEnv.stdout)).toHaveLength(1);

    const wrongFile = path.join(dir, "wrong");
    await fs.writeFile(wrongFile, "wrong\n", { mode: 0o644 });
    const wrong = await coffer(["snapshots", "--repo", repo, "--passphrase-file", wrongFile], {
      env: noPass,
    });
    expect(wrong.code).toBe(12);
    expect(wrong.stderr).toMatch(/readable by group or others: chmod 600 it/);
    expect(wrong.stderr).toMatch(/wrong passphrase or key/);
    const absent = await coffer(["snapshots", "--repo", repo, "--passphrase-file", `${dir}/x`], {
      env: noPass,
    });
    expectOneLineError(absent, 1, /cannot read passphrase file .*: ENOENT/);
  });

  it("an age identity alone opens a repository it created", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await fs.mkdir(src);
    const data = randomBytes(1_500_000);
    await fs.writeFile(path.join(src, "data.bin"), data);
    const idFile = path.join(dir, "identity.txt");
    await writeAgeIdentity(idFile);
    const id = ["--identity", idFile];

    const init = await coffer(["init", "--repo", repo, ...id], { env: noPass });
    expect(init.code, init.stderr).toBe(0);
    expect(await repoFiles(repo, "keys")).toHaveLength(1);
    const b = await coffer(["backup", "--repo", repo, src, ...id], { env: noPass });
    expect(b.code, b.stderr).toBe(0);
    const out = path.join(dir, "out");
    const r = await coffer(["restore", "--repo", repo, "latest", "--target", out, ...id], {
      env: noPass,
    });
    expect(r.code, r.stderr).toBe(0);
    expect((await fs.readFile(path.join(out, src, "data.bin"))).equals(data)).toBe(true);

    // The passphrase was never a key of this repository, and another identity is not either.
    const pass = await coffer(["snapshots", "--repo", repo]);
    expectOneLineError(pass, 12, /wrong passphrase or key/);
    const otherFile = path.join(dir, "other.txt");
    await writeAgeIdentity(otherFile);
    const other = await coffer(["snapshots", "--repo", repo, "--identity", otherFile], {
      env: noPass,
    });
    expectOneLineError(other, 12, /wrong passphrase or key/);
  });

  it("init --recipient plus a passphrase: two envelopes, either opens the repository", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await fs.mkdir(src);
    const data = randomBytes(200_000);
    await fs.writeFile(path.join(src, "data.bin"), data);
    const idFile = path.join(dir, "identity.txt");
    const recipient = await writeAgeIdentity(idFile);

    const init = await coffer([
      "init",
      "--repo",
      repo,
      "--scrypt-work-factor",
      "10",
      "--recipient",
      recipient,
      "--json",
    ]);
    expect(init.code, init.stderr).toBe(0);
    expect(JSON.parse(init.stdout).keys.sort()).toEqual(["age", "passphrase"]);
    expect(await repoFiles(repo, "keys")).toHaveLength(2);

    // Written with the passphrase, read with the identity alone.
    const b = await coffer(["backup", "--repo", repo, src]);
    expect(b.code, b.stderr).toBe(0);
    const out = path.join(dir, "out");
    const r = await coffer(
      ["restore", "--repo", repo, "latest", "--target", out, "--identity", idFile],
      { env: noPass },
    );
    expect(r.code, r.stderr).toBe(0);
    expect((await fs.readFile(path.join(out, src, "data.bin"))).equals(data)).toBe(true);
    const snaps = await coffer(["snapshots", "--repo", repo, "--json"]);
    expect(snaps.code, snaps.stderr).toBe(0);
    expect(JSON.parse(snaps.stdout)).toHaveLength(1);

    const bad = await coffer(["init", "--repo", path.join(dir, "r2"), "--recipient", "age1nope"]);
    expectOneLineError(bad, 1, /age recipient/);
  });
});
