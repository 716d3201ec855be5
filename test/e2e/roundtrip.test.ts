import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { createServer, type Server } from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coffer, initRepo, tempDir } from "../helpers.js";
import { compareTrees, startCli, walkTree } from "./e2e-helpers.js";

const GiB = 1024 * 1024 * 1024;
const isRoot = process.getuid?.() === 0;

/** Builds the awkward tree; returns the unix socket server (close it after use). */
async function buildTree(src: string): Promise<Server> {
  const p = (...parts: string[]) => path.join(src, ...parts);
  await fs.mkdir(src, { recursive: true });
  // Empty and small files, one large enough for the large-file read path.
  await fs.writeFile(p("empty-1"), "");
  await fs.writeFile(p("empty-2"), Buffer.alloc(0));
  await fs.writeFile(p("small.txt"), "hello, world\n");
  await fs.writeFile(p("random-3m.bin"), randomBytes(3 * 1024 * 1024 + 17));

  // A 2 GiB sparse file with 1 MiB of data in the middle and 4 KiB at the end.
  const sparse = await fs.open(p("sparse.img"), "w");
  await sparse.truncate(2 * GiB);
  await sparse.write(randomBytes(1024 * 1024), 0, 1024 * 1024, GiB);
  await sparse.write(randomBytes(4096), 0, 4096, 2 * GiB - 4096);
  await sparse.close();

  // 40 levels deep.
  const deep = p(...Array.from({ length: 40 }, (_, i) => `level-${String(i).padStart(2, "0")}`));
  await fs.mkdir(deep, { recursive: true });
  await fs.writeFile(path.join(deep, "leaf.txt"), "at the bottom\n");

  // Awkward names: spaces, a newline, non-UTF-8 bytes (a file and a directory).
  await fs.writeFile(p("name with  spaces .txt"), "spaces\n");
  await fs.writeFile(p("new\nline"), "newline\n");
  const srcBuf = Buffer.from(src);
  const slash = Buffer.from("/");
  await fs.writeFile(Buffer.concat([srcBuf, slash, Buffer.from([0x66, 0xff, 0x6f])]), "latin\n");
  const badDir = Buffer.concat([srcBuf, slash, Buffer.from([0xc3, 0x28, 0x64])]);
  await fs.mkdir(badDir);
  await fs.writeFile(Buffer.concat([badDir, slash, Buffer.from("inside")]), "inside\n");

  // Symlinks: relative, absolute, dangling, and one whose target is not UTF-8.
  await fs.symlink("small.txt", p("link-relative"));
  await fs.symlink("/etc/hostname", p("link-absolute"));
  await fs.symlink("no/such/target", p("link-dangling"));
  await fs.symlink(
    Buffer.from([0x74, 0xfe, 0x74]),
    Buffer.concat([srcBuf, slash, Buffer.from("link-latin")]),
  );
  await fs.lutimes(p("link-relative"), 1_500_000_000.25, 1_500_000_000.25);

  // Hard links: three names for one inode, one of them in a subdirectory.
  await fs.mkdir(p("sub"));
  await fs.writeFile(p("hard-a"), randomBytes(2000));
  await fs.link(p("hard-a"), p("hard-b"));
  await fs.link(p("hard-a"), p("sub", "hard-c"));
  // A large file with two links takes the concurrent read path.
  await fs.writeFile(p("hard-big-1"), randomBytes(2 * 1024 * 1024));
  await fs.link(p("hard-big-1"), p("sub", "hard-big-2"));

  // Empty directories, one nested in another.
  await fs.mkdir(p("empty-dir"));
  await fs.mkdir(p("empty-outer", "empty-inner"), { recursive: true });

  // Modes.
  for (const [name, mode] of [
    ["mode-0600", 0o600],
    ["mode-0755", 0o755],
    ["mode-4755", 0o4755],
    ["mode-2750", 0o2750],
    ["mode-0000", 0o000],
  ] as const) {
    await fs.writeFile(p(name), `${name}\n`);
    await fs.chmod(p(name), mode);
  }
  await fs.mkdir(p("dir-0700"));
  await fs.writeFile(p("dir-0700", "f"), "f\n");
  await fs.chmod(p("dir-0700"), 0o700);
  await fs.mkdir(p("dir-sticky"));
  await fs.chmod(p("dir-sticky"), 0o1777);

  // Owners (chown needs root).
  if (isRoot) {
    await fs.writeFile(p("owned"), "owned by 1234:5678\n");
    await fs.chown(p("owned"), 1234, 5678);
    await fs.mkdir(p("owned-dir"));
    await fs.chown(p("owned-dir"), 4321, 8765);
    await fs.symlink("owned", p("owned-link"));
    await fs.lchown(p("owned-link"), 1111, 2222);
  }

  // Special files: a fifo (restored) and a unix socket (recorded, not restored).
  execFileSync("mkfifo", ["-m", "0640", p("fifo")]);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(p("socket"), resolve));

  // Explicit mtimes with sub-second parts, on files and directories; set last, since
  // creating entries moves their directory's mtime.
  await fs.utimes(p("small.txt"), 1_234_567_890.123456, 1_234_567_890.123456);
  await fs.utimes(p("empty-1"), 0, 0);
  await fs.utimes(p("sub"), 1_600_000_000.5, 1_600_000_000.5);
  await fs.utimes(path.dirname(deep), 1_700_000_000.654321, 1_700_000_000.654321);
  return server;
}

describe("round trip of an awkward tree", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: Server | undefined;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterAll(async () => {
    server?.close();
    await cleanup();
  });

  it("restores every byte, name, link, mode, owner and time", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    server = await buildTree(src);
    await initRepo(repo);

    // A fifo must be recorded, never opened: a backup that opens it hangs forever.
    const run = startCli(["backup", "--repo", repo, src, "--json"]);
    const timer = setTimeout(() => run.child.kill("SIGKILL"), 90_000);
    const b = await run.done;
    clearTimeout(timer);
    expect(b.signal, "backup hung (on the fifo?) and was killed").toBeNull();
    expect(b.code, b.stderr).toBe(0);
    const summary = JSON.parse(b.stdout);
    expect(summary.errors).toBe(0);
    expect(summary.bytesRead).toBeGreaterThanOrEqual(2 * GiB);

    const before = await walkTree(src);
    server.close();
    server = undefined;

    const out = path.join(dir, "out");
    const r = await coffer(["restore", "--repo", repo, "latest", "--target", out]);
    expect(r.code, r.stderr).toBe(0);
    // The socket is recorded, not restored, and the user is told.
    expect(r.stderr).toMatch(/warning: .*\/socket: socket not restored/);
    const restoredSrc = path.join(out, src);
    const after = await walkTree(restoredSrc);

    expect(compareTrees(before, after, { notRestored: ["socket"] })).toEqual([]);

    // Spot checks that a comparison bug would otherwise hide.
    expect(after.get("socket")).toBeUndefined();
    expect(after.get("fifo")?.type).toBe("fifo");
    expect(after.get("fifo")?.mode).toBe(0o640);
    expect(after.get("mode-4755")?.mode).toBe(0o4755);
    expect(after.get("link-dangling")?.target).toBe("no/such/target");
    expect(after.get("link-absolute")?.target).toBe("/etc/hostname");
    expect(after.get(Buffer.from([0x66, 0xff, 0x6f]).toString("latin1"))?.type).toBe("file");
    expect(after.get("new\nline")?.type).toBe("file");
    const hard = ["hard-a", "hard-b", "sub/hard-c"].map((k) => after.get(k)?.ino);
    expect(new Set(hard).size).toBe(1);
    expect(after.get("hard-big-1")?.ino).toBe(after.get("sub/hard-big-2")?.ino);
    expect(after.get("small.txt")?.mtimeNs).toBe(1_234_567_890_123_456_000n);
    if (isRoot) {
      expect(after.get("owned")).toMatchObject({ uid: 1234, gid: 5678 });
      expect(after.get("owned-dir")).toMatchObject({ uid: 4321, gid: 8765 });
      expect(after.get("owned-link")).toMatchObject({ uid: 1111, gid: 2222 });
    }
    const deepLeaf = [...after.keys()].find((k) => k.endsWith("level-39/leaf.txt"));
    expect(deepLeaf?.split("/").length).toBe(41);

    // The sparse file: same bytes (hashed above), and holes where the zeros were.
    const sp = await fs.stat(path.join(restoredSrc, "sparse.img"));
    expect(sp.size).toBe(2 * GiB);
    expect(sp.blocks * 512).toBeLessThan(64 * 1024 * 1024);
  });
});
