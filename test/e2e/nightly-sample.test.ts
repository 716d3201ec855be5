import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { cliPath, coffer, initRepo, repoRoot, testPassphrase, useTempDir } from "../helpers.js";

describe("samples/nightly/coffer-nightly.sh", () => {
  let dir = "";
  useTempDir((d) => {
    dir = d;
  });

  it("backs up, applies retention, prunes and verifies a slice; its exit status is the worst step's", async () => {
    const repo = path.join(dir, "repo");
    const src = path.join(dir, "src");
    await mkdir(path.join(src, "cache"), { recursive: true });
    await writeFile(path.join(src, "a.txt"), "a\n");
    await writeFile(path.join(src, "cache", "x.tmp"), "tmp\n");
    await initRepo(repo);
    const run = () =>
      spawnSync("bash", [path.join(repoRoot, "samples/nightly/coffer-nightly.sh")], {
        env: {
          ...process.env,
          COFFER: `${process.execPath} ${cliPath}`,
          COFFER_REPO: repo,
          COFFER_PASSPHRASE: testPassphrase,
          BACKUP_PATHS: src,
          BACKUP_EXCLUDES: "*.tmp",
        },
        encoding: "utf8",
      });
    const first = run();
    expect(first.status, first.stderr).toBe(0);
    await writeFile(path.join(src, "b.txt"), "b\n");
    const second = run();
    expect(second.status, second.stderr).toBe(0);
    // keep-daily 7 keeps the newest snapshot of today (the second run's) and, with days
    // left over, the oldest one too (restic's rule for a young history).
    const snaps = JSON.parse((await coffer(["snapshots", "--repo", repo, "--json"])).stdout);
    expect(snaps).toHaveLength(2);
    expect(snaps.map((s: { tags: string[] }) => s.tags)).toEqual([["nightly"], ["nightly"]]);
    const files = (await coffer(["ls", "--repo", repo, "latest", src])).stdout;
    expect(files).toContain("b.txt");
    expect(files).not.toContain("x.tmp");
    expect((await coffer(["verify", "--repo", repo, "--read-data"])).code).toBe(0);

    const broken = spawnSync("bash", [path.join(repoRoot, "samples/nightly/coffer-nightly.sh")], {
      env: {
        ...process.env,
        COFFER: `${process.execPath} ${cliPath}`,
        COFFER_REPO: path.join(dir, "none"),
        BACKUP_PATHS: src,
      },
      encoding: "utf8",
    });
    expect(broken.status).toBe(10);
  });
});
