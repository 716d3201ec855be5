// Full round trip through the built CLI against a real S3-compatible server (s3rver)
// behind a TLS proxy whose certificate a test CA signed: init, backup, second backup
// (dedup), restore (bytes equal), verify --read-data; plus what coffer sends (Content-MD5,
// SSE, storage class, Object Lock) and the local cache of index and snapshot objects.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareTrees, pseudoRandom, walkTree } from "./e2e-helpers.js";
import { directBackend, type S3Stack, s3cli, startS3Stack } from "./s3-helpers.js";

let stack: S3Stack;
let src: string;

beforeAll(async () => {
  stack = await startS3Stack();
  src = path.join(stack.dir, "src");
  await fs.mkdir(path.join(src, "sub"), { recursive: true });
  await fs.writeFile(path.join(src, "big.bin"), pseudoRandom(3 * 1024 * 1024 + 5, 1));
  await fs.writeFile(path.join(src, "sub", "small.txt"), "hello over TLS\n");
  for (let i = 0; i < 20; i++) {
    await fs.writeFile(path.join(src, "sub", `f${i}`), pseudoRandom(10_000 + i, 100 + i));
  }
});
afterAll(() => stack.close());

describe("S3 round trip over TLS (s3rver behind a TLS proxy, test CA via --ca-file)", () => {
  const prefix = "round/trip";

  it("init, backup, second backup, restore and verify --read-data", async () => {
    const init = await s3cli(stack, prefix, ["init", "--scrypt-work-factor", "10"]);
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(`s3://coffer-test/${prefix}`);

    const first = await s3cli(stack, prefix, ["backup", src, "--json"]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const firstAdded = JSON.parse(first.stdout).bytesAdded as number;
    expect(firstAdded).toBeGreaterThan(3 * 1024 * 1024);

    // One new file: the second backup adds little more than that file.
    await fs.writeFile(path.join(src, "sub", "new.bin"), pseudoRandom(50_000, 7));
    const second = await s3cli(stack, prefix, ["backup", src, "--json"]);
    expect(second.code).toBe(0);
    const secondAdded = JSON.parse(second.stdout).bytesAdded as number;
    expect(secondAdded).toBeGreaterThan(50_000);
    expect(secondAdded).toBeLessThan(200_000);

    const target = path.join(stack.dir, "restore");
    const restore = await s3cli(stack, prefix, ["restore", "latest", "--target", target]);
    expect(restore.stderr).not.toContain("coffer:");
    expect(restore.code).toBe(0);
    const diffs = compareTrees(await walkTree(src), await walkTree(path.join(target, src)));
    expect(diffs).toEqual([]);

    const verify = await s3cli(stack, prefix, ["verify", "--read-data"]);
    expect(verify.stderr).not.toContain("coffer:");
    expect(verify.code).toBe(0);

    // The objects are where docs/FORMAT.md says, under the prefix.
    const backend = directBackend(stack, prefix);
    let packs = 0;
    for await (const p of backend.list("data")) packs += p.size > 0 ? 1 : 0;
    expect(packs).toBeGreaterThanOrEqual(2);
    expect(await backend.exists()).toBe(true);
  });

  it("every PUT carries Content-MD5, and the SSE, storage class and Object Lock asked for", async () => {
    const p = "headers";
    await s3cli(stack, p, ["init", "--scrypt-work-factor", "10"]);
    const before = stack.faults.requests.length;
    const r = await s3cli(stack, p, [
      "backup",
      src,
      "--s3-sse",
      "AES256",
      "--s3-storage-class",
      "STANDARD_IA",
      "--s3-object-lock-days",
      "30",
      "--s3-object-lock-mode",
      "COMPLIANCE",
    ]);
    expect(r.code).toBe(0);
    const puts = stack.faults.requests.slice(before).filter((q) => q.method === "PUT");
    expect(puts.length).toBeGreaterThan(0);
    for (const q of puts) {
      expect(q.headers["content-md5"]).toMatch(/^[A-Za-z0-9+/]{22}==$/);
      expect(q.headers["x-amz-server-side-encryption"]).toBe("AES256");
      expect(q.headers["x-amz-storage-class"]).toBe("STANDARD_IA");
    }
    const locked = puts.filter((q) => /\/(data|snapshots)\//.test(q.path));
    const unlocked = puts.filter((q) => /\/(index|locks)\//.test(q.path));
    expect(locked.length).toBeGreaterThanOrEqual(2);
    expect(unlocked.length).toBeGreaterThanOrEqual(1);
    for (const q of locked) {
      expect(q.headers["x-amz-object-lock-mode"]).toBe("COMPLIANCE");
      const until = Date.parse(String(q.headers["x-amz-object-lock-retain-until-date"]));
      expect(until - Date.now()).toBeGreaterThan(29 * 86_400_000);
    }
    // Locks and index deltas are deleted by later runs: they must not be locked.
    for (const q of unlocked) expect(q.headers["x-amz-object-lock-mode"]).toBeUndefined();
  });

  it("init refuses a prefix that already holds objects", async () => {
    const r = await s3cli(stack, prefix, ["init", "--scrypt-work-factor", "10"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `coffer: s3://coffer-test/${prefix} is not empty: choose a new or empty prefix for the repository\n`,
    );
  });

  it("without AWS credentials: one line saying what to set", async () => {
    const r = await s3cli(stack, prefix, ["snapshots"], {
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_PROFILE: undefined,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^coffer: HEAD s3:\/\/coffer-test\/round\/trip\/config: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role\n$/,
    );
  });

  it("a missing repository is exit 10, naming the URL", async () => {
    const r = await s3cli(stack, "nothing/here", ["snapshots"]);
    expect(r.code).toBe(10);
    expect(r.stderr).toContain("no coffer repository at s3://coffer-test/nothing/here");
  });

  it("snapshots come from the local cache on the next run; a damaged entry is fetched again", async () => {
    const config = await directBackend(stack, prefix).load({ type: "config", name: "" });
    const repoId = JSON.parse(config.toString()).id as string;
    const snapDir = path.join(stack.dir, "cache", "coffer", repoId, "snapshot");
    const cached = await fs.readdir(snapDir);
    expect(cached.length).toBeGreaterThanOrEqual(2);
    expect((await fs.stat(snapDir)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(path.join(snapDir, cached[0] as string))).mode & 0o777).toBe(0o600);

    const countGets = async (run: () => Promise<unknown>) => {
      const before = stack.faults.requests.length;
      await run();
      return stack.faults.requests
        .slice(before)
        .filter((q) => q.method === "GET" && /\/snapshots\/[0-9a-f]{64}(\?|$)/.test(q.path)).length;
    };
    const listSnapshots = () => s3cli(stack, prefix, ["snapshots", "--json"]);
    expect(await countGets(listSnapshots)).toBe(0);
    // Without the cache each run fetches every snapshot: the counter does see GETs.
    expect(await countGets(() => s3cli(stack, prefix, ["snapshots", "--json", "--no-cache"]))).toBe(
      cached.length,
    );

    // Flip a byte in one cached snapshot: it is dropped and fetched, not reported as damage.
    const victim = path.join(snapDir, cached[0] as string);
    const bytes = await fs.readFile(victim);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
    await fs.writeFile(victim, bytes);
    let result: Awaited<ReturnType<typeof listSnapshots>> | undefined;
    expect(
      await countGets(async () => {
        result = await listSnapshots();
      }),
    ).toBe(1);
    expect(result?.code).toBe(0);
    expect(JSON.parse(result?.stdout ?? "[]")).toHaveLength(2);
    expect(await fs.readFile(victim)).not.toEqual(bytes);
    expect(await countGets(listSnapshots)).toBe(0);
  });
});
