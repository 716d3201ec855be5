// A writer-only key: backs up (with dedup) but cannot list, restore or read old data; a
// full key reads everything the writer wrote.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { coffer, initRepo, testPassphrase, useTempDir } from "../helpers.js";

let dir = "";
useTempDir((d) => {
  dir = d;
});
const writerPassphrase = "writer only, no reading";

describe("writer-only backup host", () => {
  it("backs up twice with dedup; restore, ls and snapshots are refused with exit 12; a full key restores both", async () => {
    const repo = path.join(dir, "repo");
    await initRepo(repo);
    const src = path.join(dir, "src");
    await mkdir(src);
    const big = randomBytes(3 * 1024 * 1024);
    await writeFile(path.join(src, "big.bin"), big);
    await writeFile(path.join(src, "note.txt"), "first\n");
    // The admin backs up first: the writer dedups against data it cannot read.
    expect((await coffer(["backup", "--repo", repo, src])).code).toBe(0);

    const wfile = path.join(dir, "writer.pass");
    await writeFile(wfile, `${writerPassphrase}\n`, { mode: 0o600 });
    const add = await coffer([
      "key",
      "add",
      "--repo",
      repo,
      "--writer-only",
      "--new-passphrase-file",
      wfile,
      "--scrypt-work-factor",
      "10",
    ]);
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/added writer-only key/);

    const asWriter = { env: { COFFER_PASSPHRASE: writerPassphrase } };
    await writeFile(path.join(src, "note.txt"), "second\n");
    const b1 = await coffer(["backup", "--repo", repo, src, "--json"], asWriter);
    expect(b1.stderr).toBe("");
    expect(b1.code).toBe(0);
    // big.bin is read again (no file cache on a writer) but deduplicated through the index.
    const s1 = JSON.parse(b1.stdout);
    expect(s1.bytesRead).toBeGreaterThan(big.length);
    expect(s1.bytesAdded).toBeLessThan(64 * 1024);
    await writeFile(path.join(src, "note.txt"), "third\n");
    const b2 = await coffer(["backup", "--repo", repo, src, "--json"], asWriter);
    expect(b2.code).toBe(0);
    expect(JSON.parse(b2.stdout).bytesAdded).toBeLessThan(64 * 1024);

    for (const args of [
      ["restore", "--repo", repo, "latest", "--target", path.join(dir, "w-out")],
      ["ls", "--repo", repo, "latest"],
      ["snapshots", "--repo", repo],
    ]) {
      const r = await coffer(args, asWriter);
      expect(r.code, args[0]).toBe(12);
      expect(r.stderr).toMatch(
        /^coffer: this writer-only key cannot read .*: use a full key\n$|^coffer: this is a writer-only key: it can back up but cannot read/,
      );
      expect(r.stdout).toBe("");
    }
    // An older snapshot the admin wrote: its tree is sealed under the data key it lacks.
    const first = JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout)[0].id;
    const old = await coffer(["ls", "--repo", repo, first], asWriter);
    expect(old.code).toBe(12);
    expect(old.stderr).toMatch(/writer-only key/);

    // The full key reads everything; both writer snapshots restore byte for byte.
    const all = JSON.parse(
      (
        await coffer(["snapshots", "--repo", repo, "--json"], {
          env: { COFFER_PASSPHRASE: testPassphrase },
        })
      ).stdout,
    );
    expect(all).toHaveLength(3);
    for (const [i, want] of [
      [1, "second\n"],
      [2, "third\n"],
    ] as const) {
      const out = path.join(dir, `out${i}`);
      const r = await coffer(["restore", "--repo", repo, all[i].id, "--target", out]);
      expect(r.code).toBe(0);
      expect(await readFile(path.join(out, src, "note.txt"), "utf8")).toBe(want);
      expect((await readFile(path.join(out, src, "big.bin"))).equals(big)).toBe(true);
    }
    const v = await coffer(["verify", "--repo", repo, "--read-data"]);
    expect(v.code).toBe(0);

    // Session key files are listed as such and cannot be removed.
    const listed = JSON.parse((await coffer(["key", "list", "--repo", repo, "--json"])).stdout);
    const sessions = listed.keys.filter((k: { provider: string }) => k.provider === "session");
    expect(sessions).toHaveLength(2);
    const rm = await coffer(["key", "remove", "--repo", repo, sessions[0].id.slice(0, 12)]);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toMatch(/holds the data key of a writer-only backup session/);

    // A new key generation keeps sessions readable (older secrets ride along) and leaves
    // the writer envelope stale: the writer is refused until it is re-added.
    const rot = await coffer(["key", "rotate", "--new-generation", "--repo", repo]);
    expect(rot.code).toBe(0);
    expect(rot.stderr.trim().split("\n")).toHaveLength(1);
    const stale = await coffer(["backup", "--repo", repo, src], asWriter);
    expect(stale.code).toBe(12);
    expect(stale.stderr).toMatch(/opens only key generation 1; the repository is at generation 2/);
    const again = await coffer([
      "restore",
      "--repo",
      repo,
      all[2].id,
      "--target",
      path.join(dir, "after-rot"),
    ]);
    expect(again.code).toBe(0);
    expect(await readFile(path.join(dir, "after-rot", src, "note.txt"), "utf8")).toBe("third\n");
  });
});
