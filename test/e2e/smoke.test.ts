import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { coffer, initRepo, useTempDir } from "../helpers.js";

describe("coffer CLI round trip", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("backs up, lists, verifies and restores a directory byte for byte", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await mkdir(path.join(src, "sub"), { recursive: true });
    await writeFile(path.join(src, "a.txt"), "hello\n");
    await writeFile(path.join(src, "sub", "b.bin"), Buffer.alloc(3_000_000, 7));
    await initRepo(repo);
    const b = await coffer(["backup", "--repo", repo, src, "--json"]);
    expect(b.code, b.stderr).toBe(0);
    const summary = JSON.parse(b.stdout);
    expect(summary.files).toBe(2);
    expect(summary.bytesRead).toBe(3_000_006);
    const snaps = JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout);
    expect(snaps).toHaveLength(1);
    expect(snaps[0].id).toBe(summary.snapshot);
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);
    const target = path.join(dir, "out");
    const r = await coffer(["restore", "--repo", repo, "latest", "--target", target]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(target, src, "a.txt"), "utf8")).toBe("hello\n");
    expect(
      (await readFile(path.join(target, src, "sub", "b.bin"))).equals(Buffer.alloc(3_000_000, 7)),
    ).toBe(true);
  });
});
