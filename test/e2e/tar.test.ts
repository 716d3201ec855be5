import { execFileSync } from "node:child_process";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import tar from "tar-stream";
import { beforeAll, describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";
import { compareTrees, pseudoRandom, repoFiles, walkTree } from "./e2e-helpers.js";

// Tar streams both ways, checked against GNU tar (a reader and writer we did not write):
// long names, symlinks, hard links, modes, mtimes and owners survive.

const second = 1_000_000_000n;
const longDir = `${"d".repeat(60)}/${"e".repeat(70)}`;
const longFile = `${"f".repeat(120)}.bin`;

async function makeTree(root: string): Promise<void> {
  await fs.mkdir(path.join(root, longDir), { recursive: true });
  await fs.writeFile(path.join(root, longDir, longFile), pseudoRandom(300_000, 7));
  await fs.writeFile(path.join(root, "small.txt"), "hello tar\n");
  await fs.writeFile(path.join(root, "big.bin"), pseudoRandom(3_000_000, 9));
  await fs.link(path.join(root, "big.bin"), path.join(root, "big-link.bin"));
  await fs.symlink("small.txt", path.join(root, "to-small"));
  await fs.symlink("/nowhere/at/all", path.join(root, "dangling"));
  await fs.writeFile(path.join(root, "empty"), "");
  await fs.mkdir(path.join(root, "private"), { mode: 0o700 });
  await fs.writeFile(path.join(root, "private", "exec.sh"), "#!/bin/sh\n", { mode: 0o751 });
  await fs.chmod(path.join(root, "private", "exec.sh"), 0o4751);
  await fs.writeFile(path.join(root, "ünïcødé 漢字.txt"), "ü\n");
  await fs.chown(path.join(root, "small.txt"), 1234, 5678).catch(() => {});
  let t = 1_600_000_000;
  for (const [rel] of await walkTree(root)) {
    const p = path.join(root, Buffer.from(rel, "latin1").toString());
    await fs.lutimes(p, t, t);
    t += 3601;
  }
}

/** One ustar header block, written by hand so that it can lie (a PAX header of 100 MiB). */
function ustarHeader(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write(type, 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

describe("tar streams", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });
  const repo = () => path.join(dir, "repo");
  const src = () => path.join(dir, "src");

  beforeAll(async () => {
    await initRepo(repo());
    await fs.mkdir(src());
    await makeTree(src());
  });

  it("a GNU tar archive backs up with --tar - and restores as the same tree", async () => {
    const archive = execFileSync("tar", ["--format=pax", "-C", src(), "-cf", "-", "."], {
      maxBuffer: 64 << 20,
    });
    const b = await coffer(["backup", "--repo", repo(), "--tar", "-", "--json"], {
      input: archive,
    });
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    const id = JSON.parse(b.stdout).snapshot;
    const snap = JSON.parse((await coffer(["snapshots", "--repo", repo(), "--json"])).stdout).at(
      -1,
    );
    expect(snap.source).toEqual({ kind: "tar" });
    const out = path.join(dir, "out1");
    const r = await coffer(["restore", "--repo", repo(), id, "--target", out]);
    expect(r.code).toBe(0);
    const want = await walkTree(src());
    const got = await walkTree(out);
    want.delete(""); // the root directory itself: "." in the archive
    got.delete("");
    expect(compareTrees(want, got, { mtimeResolutionNs: second })).toEqual([]);
  });

  it("restore --tar - writes a tar that GNU tar extracts to the same tree", async () => {
    const b = await coffer(["backup", "--repo", repo(), src(), "--json"]);
    expect(b.code).toBe(0);
    const id = JSON.parse(b.stdout).snapshot;
    const t = await coffer(["restore", "--repo", repo(), id, src(), "--tar", "-"]);
    expect(t.code).toBe(0);
    const listing = execFileSync("tar", ["-tvf", "-"], { input: t.stdoutBytes }).toString();
    expect(listing).toContain(`${longDir}/${longFile}`);
    // Sorted by name, big-link.bin comes first: big.bin is the link entry.
    expect(listing).toMatch(/^h.*\/src\/big\.bin link to .*\/src\/big-link\.bin$/m);
    const out = path.join(dir, "out2");
    await fs.mkdir(out);
    execFileSync("tar", ["-C", out, "-xpf", "-"], { input: t.stdoutBytes });
    const top = src().replace(/^\//, "");
    const want = await walkTree(src());
    const got = await walkTree(path.join(out, top));
    expect(compareTrees(want, got, { mtimeResolutionNs: 1000n })).toEqual([]);
  });

  it("export writes tar, tar.zst and tar.zst.age files that tar, zstd and the age CLI open", async () => {
    const key = path.join(dir, "key.txt");
    execFileSync("age-keygen", ["-o", key], { stdio: "ignore" });
    const recipient = execFileSync("age-keygen", ["-y", key]).toString().trim();
    const want = await walkTree(src());
    for (const format of ["tar", "tar.zst", "tar.age", "tar.zst.age"]) {
      const file = path.join(dir, `x.${format}`);
      const args = ["export", "--repo", repo(), "latest", src(), "--format", format, "-o", file];
      if (format.endsWith(".age")) args.push("--recipient", recipient);
      const e = await coffer(args);
      expect(e.code, e.stderr).toBe(0);
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      expect((await fs.readdir(dir)).filter((n) => n.includes("coffer-tmp"))).toEqual([]);
      let cmd = `cat ${file}`;
      if (format.endsWith(".age")) cmd = `age -d -i ${key} ${file}`;
      if (format.includes(".zst")) cmd += " | zstd -d";
      const out = path.join(dir, `out-${format}`);
      await fs.mkdir(out);
      execFileSync("sh", ["-c", `set -o pipefail; ${cmd} | tar -C ${out} -xpf -`], {
        shell: "/bin/bash",
      });
      const got = await walkTree(path.join(out, src().replace(/^\//, "")));
      expect(compareTrees(want, got), format).toEqual([]);
    }
    const noRecipient = await coffer([
      "export",
      "--repo",
      repo(),
      "latest",
      "--format",
      "tar.age",
      "-o",
      path.join(dir, "n.age"),
    ]);
    expect(noRecipient.code).toBe(1);
    expect(noRecipient.stderr).toContain("needs at least one --recipient");
  });

  it("a hostile tar (.., absolute names, a symlink out and a file through it) never writes outside the target", async () => {
    const outside = path.join(dir, "outside");
    await fs.mkdir(outside);
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on("data", (d: unknown) => {
      chunks.push(d as Buffer);
    });
    const ended = new Promise<void>((r) => {
      pack.on("end", () => r());
    });
    pack.entry({ name: "../escape.txt" }, "up one\n");
    pack.entry({ name: "a/../../escape2.txt" }, "up two\n");
    pack.entry({ name: `${outside}/abs.txt` }, "absolute\n");
    pack.entry({ name: "link", type: "symlink", linkname: outside });
    pack.entry({ name: "link/through.txt" }, "through the link\n");
    pack.entry({ name: "hard", type: "link", linkname: "/etc/passwd" });
    pack.finalize();
    await ended;
    const b = await coffer(["backup", "--repo", repo(), "--tar", "-", "--json"], {
      input: Buffer.concat(chunks),
    });
    expect(b.code).toBe(0);
    const id = JSON.parse(b.stdout).snapshot;
    const target = path.join(dir, "hostile-out");
    const r = await coffer(["restore", "--repo", repo(), id, "--target", target]);
    expect(r.code).toBe(0);
    expect(await fs.readdir(outside)).toEqual([]);
    await expect(fs.stat(path.join(dir, "escape.txt"))).rejects.toThrow();
    await expect(fs.stat(path.join(dir, "escape2.txt"))).rejects.toThrow();
    // The entries are kept as data, under names that cannot escape.
    expect(await fs.readFile(path.join(target, "%2E%2E", "escape.txt"), "utf8")).toBe("up one\n");
    expect(await fs.readFile(path.join(target, outside.slice(1), "abs.txt"), "utf8")).toBe(
      "absolute\n",
    );
    expect(await fs.readFile(path.join(target, "link", "through.txt"), "utf8")).toBe(
      "through the link\n",
    );
    expect((await fs.lstat(path.join(target, "link"))).isDirectory()).toBe(true);
    // And a tar written back out has no name that leaves the directory it is extracted in.
    const t = await coffer(["restore", "--repo", repo(), id, "--tar", "-"]);
    expect(t.code).toBe(0);
    const names = execFileSync("tar", ["-tf", "-"], { input: t.stdoutBytes })
      .toString()
      .split("\n");
    for (const n of names.filter((x) => x)) {
      expect(n.startsWith("/")).toBe(false);
      expect(n.split("/")).not.toContain("..");
    }
  });

  it("a tar with a huge PAX header fails the backup with exit 1 and records nothing", async () => {
    const before = await repoFiles(repo(), "snapshots");
    const input = Buffer.concat([
      ustarHeader("PaxHeader/x", 100 * 2 ** 20, "x"),
      Buffer.alloc(4096),
    ]);
    const b = await coffer(["backup", "--repo", repo(), "--tar", "-"], { input });
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(
      /^coffer: --tar -: not a readable tar stream: .*Header exceeds max size\n$/,
    );
    expect(await repoFiles(repo(), "snapshots")).toEqual(before);
  });
});
