import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";
import { repoFiles, sha256 } from "./e2e-helpers.js";

// backup --command: any dump program, run without a shell. A dump that dies half-way must
// fail the backup and leave no snapshot (the `pg_dump | tool --stdin` trap).

describe("backup --command", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });
  const repo = () => path.join(dir, "repo");

  it("stores the command's output as one file; JSON-array and quoted forms split as documented", async () => {
    await initRepo(repo());
    const b = await coffer([
      "backup",
      "--repo",
      repo(),
      "--command",
      `sh -c 'head -c 3000000 /dev/zero | tr "\\0" "x"; printf "%s" "$0"' "it's a \\"word\\""`,
      "--stdin-name",
      "out.txt",
      "--json",
    ]);
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    const id = JSON.parse(b.stdout).snapshot;
    const r = await coffer(["restore", "--repo", repo(), id, "--stdout"]);
    const want = Buffer.concat([Buffer.alloc(3_000_000, "x"), Buffer.from(`it's a "word"`)]);
    expect(sha256(r.stdoutBytes)).toBe(sha256(want));
    const snap = JSON.parse((await coffer(["snapshots", "--repo", repo(), "--json"])).stdout).at(
      -1,
    );
    expect(snap.source).toEqual({ kind: "command", tool: "sh" });

    const j = await coffer([
      "backup",
      "--repo",
      repo(),
      "--command",
      JSON.stringify(["printf", "%s|", "a b", "$HOME", "*"]),
      "--stdin-name",
      "j.txt",
      "--json",
    ]);
    expect(j.code).toBe(0);
    const out = await coffer([
      "restore",
      "--repo",
      repo(),
      JSON.parse(j.stdout).snapshot,
      "--stdout",
    ]);
    expect(out.stdout).toBe("a b|$HOME|*|");
  });

  it("a command that writes some bytes then exits 1 fails the backup with its stderr, no snapshot", async () => {
    const before = await repoFiles(repo(), "snapshots");
    const r = await coffer([
      "backup",
      "--repo",
      repo(),
      "--command",
      "sh -c 'head -c 2000000 /dev/urandom; echo first line >&2; echo dump broke: disk on fire >&2; exit 1'",
      "--stdin-name",
      "x.dump",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "coffer: sh failed with exit code 1; no snapshot saved: first line | dump broke: disk on fire\n",
    );
    expect(await repoFiles(repo(), "snapshots")).toEqual(before);
  });

  it("a command killed by a signal, or writing nothing, or missing, fails the backup", async () => {
    const before = await repoFiles(repo(), "snapshots");
    const killed = await coffer([
      "backup",
      "--repo",
      repo(),
      "--command",
      "sh -c 'head -c 1000000 /dev/urandom; kill -9 $$'",
      "--stdin-name",
      "x",
    ]);
    expect(killed.code).toBe(1);
    expect(killed.stderr).toContain("sh was killed by SIGKILL; no snapshot saved");
    const empty = await coffer([
      "backup",
      "--repo",
      repo(),
      "--command",
      "true",
      "--stdin-name",
      "x",
    ]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain("true wrote nothing; no snapshot saved");
    const missing = await coffer([
      "backup",
      "--repo",
      repo(),
      "--command",
      "coffer-no-such-program --flag",
      "--stdin-name",
      "x",
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("command not found");
    const noName = await coffer(["backup", "--repo", repo(), "--command", "echo hi"]);
    expect(noName.code).toBe(1);
    expect(noName.stderr).toContain("--command needs --stdin-name");
    expect(await repoFiles(repo(), "snapshots")).toEqual(before);
  });
});
