// Faults between coffer and a real S3 server (s3rver behind the fault-injection proxy and
// the TLS proxy): dropped connections mid-upload, 503 SlowDown bursts, slow and stalled
// responses, a byte flipped in an upload, GET bodies cut short. Each backup either
// completes or fails cleanly (exit 1, one line); the repository verifies afterwards; and
// nothing is reported as stored that was not: every pack an index names is there, whole,
// with an authentic header listing exactly the indexed blobs.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { headerLocation, openPackHeader, packTrailerLength } from "../../src/repo/pack.js";
import { compareTrees, pseudoRandom, startCli, walkTree } from "./e2e-helpers.js";
import {
  directBackend,
  openS3Store,
  type S3Stack,
  s3cli,
  s3Env,
  s3Flags,
  spoolFiles,
  startS3Stack,
  userLines,
} from "./s3-helpers.js";

let stack: S3Stack;
let src: string;
const debug = { COFFER_DEBUG: "1" };
const dataPut = { method: "PUT", path: /\/data\/[0-9a-f]{2}\/[0-9a-f]{64}/ };
const dataGet = { method: "GET", path: /\/data\/[0-9a-f]{2}\/[0-9a-f]{64}/ };

beforeAll(async () => {
  stack = await startS3Stack();
  src = path.join(stack.dir, "src");
  await fs.mkdir(src, { recursive: true });
  await fs.writeFile(path.join(src, "a.bin"), pseudoRandom(2 * 1024 * 1024, 11));
  await fs.writeFile(path.join(src, "b.bin"), pseudoRandom(1024 * 1024 + 3, 12));
  for (let i = 0; i < 10; i++) {
    await fs.writeFile(path.join(src, `s${i}.txt`), `small file ${i}\n`.repeat(i * 50 + 1));
  }
});
afterAll(() => stack.close());
beforeEach(() => {
  stack.faults.rules = [];
});

async function initAt(prefix: string): Promise<void> {
  const r = await s3cli(stack, prefix, ["init", "--scrypt-work-factor", "10"]);
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
}

/**
 * With no faults: verify --read-data passes, and every pack named by an index exists, is
 * as long as its authenticated header says, and lists exactly the indexed blobs.
 */
async function expectSound(prefix: string): Promise<void> {
  stack.faults.rules = [];
  const verify = await s3cli(stack, prefix, ["verify", "--read-data"]);
  expect(userLines(verify).filter((l) => l.startsWith("coffer:"))).toEqual([]);
  expect(verify.code).toBe(0);
  const backend = directBackend(stack, prefix);
  const store = await openS3Store(backend);
  for (const name of await store.repo.listIds("index")) {
    for (const p of await store.loadIndexFile(name)) {
      const packId = p.packId.toString("hex");
      const st = await backend.stat({ type: "data", name: packId });
      expect(st, `pack ${packId} named by index ${name}`).not.toBeNull();
      const size = st?.size ?? 0;
      const trailer = await backend.load(
        { type: "data", name: packId },
        size - packTrailerLength,
        packTrailerLength,
      );
      const at = headerLocation(size, trailer, `pack ${packId}`);
      const sealed = await backend.load({ type: "data", name: packId }, at.offset, at.length);
      const header = openPackHeader(
        store.repo.id,
        (s, w) => store.repo.keysForSealed(s, w),
        p.packId,
        sealed,
      );
      expect(header.map((e) => e.id.toString("hex")).sort()).toEqual(
        p.entries.map((e) => e.id.toString("hex")).sort(),
      );
      expect(Math.max(...p.entries.map((e) => e.offset + e.length))).toBe(at.offset);
    }
  }
  backend.close();
}

async function snapshotCount(prefix: string): Promise<number> {
  let n = 0;
  for await (const _ of directBackend(stack, prefix).list("snapshot")) n++;
  return n;
}

async function expectRestoresEqual(prefix: string, extraEnv = {}): Promise<void> {
  const target = await fs.mkdtemp(path.join(stack.dir, "restore-"));
  const r = await s3cli(stack, prefix, ["restore", "latest", "--target", target], extraEnv);
  expect(r.code, r.stderr).toBe(0);
  expect(compareTrees(await walkTree(src), await walkTree(path.join(target, src)))).toEqual([]);
}

describe("S3 faults on upload (fault proxy between coffer and s3rver)", () => {
  it("connections dropped mid-upload are retried and the backup completes", async () => {
    await initAt("f/drop");
    stack.faults.rules = [{ kind: "drop-upload", ...dataPut, times: 2 }];
    const r = await s3cli(stack, "f/drop", ["backup", src], debug);
    expect(r.code, r.stderr).toBe(0);
    expect(stack.faults.injected()).toBeGreaterThanOrEqual(2);
    expect(r.stderr).toMatch(/debug: PUT s3:\/\/coffer-test\/f\/drop\/data\/.* retrying in \d+ ms/);
    expect(await snapshotCount("f/drop")).toBe(1);
    // Each attempt streamed the pack again from its spool file, and the files are gone.
    expect(await spoolFiles(stack)).toEqual([]);
    await expectSound("f/drop");
    await expectRestoresEqual("f/drop");
  });

  it("a burst of 503 SlowDown on every kind of request is retried", async () => {
    await initAt("f/slowdown");
    stack.faults.rules = [{ kind: "slow-down", times: 4 }];
    const r = await s3cli(stack, "f/slowdown", ["backup", src], debug);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/failed \((HTTP )?503( SlowDown)?\); retrying/);
    expect(stack.faults.rules[0]?.times).toBe(0);
    await expectSound("f/slowdown");
  });

  it("slow responses only slow the backup; a stalled one times out and is retried", async () => {
    await initAt("f/slow");
    stack.faults.rules = [
      { kind: "stall", ...dataPut, times: 1 },
      { kind: "slow", delayMs: 300, times: 8 },
    ];
    const r = await s3cli(stack, "f/slow", ["backup", src, "--s3-request-timeout", "2"], debug);
    expect(r.code, r.stderr).toBe(0);
    expect(stack.faults.rules.map((f) => f.times)).toEqual([0, 0]);
    expect(r.stderr).toMatch(/debug: PUT .*\/data\/.* failed \(.*\); retrying/);
    await expectSound("f/slow");
    await expectRestoresEqual("f/slow");
  });

  it("a byte flipped on the way up is caught by the ETag check and uploaded again", async () => {
    await initAt("f/corrupt");
    stack.faults.rules = [{ kind: "corrupt-upload", ...dataPut, times: 1 }];
    const r = await s3cli(stack, "f/corrupt", ["backup", src], debug);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("is not the MD5 of the data sent");
    await expectSound("f/corrupt");
    await expectRestoresEqual("f/corrupt");
  });

  it("uploads that never get through fail the backup cleanly: exit 1, one line, no snapshot", async () => {
    await initAt("f/down");
    stack.faults.rules = [{ kind: "drop-upload", ...dataPut, times: Number.POSITIVE_INFINITY }];
    const r = await s3cli(stack, "f/down", ["backup", src, "--s3-max-attempts", "2"]);
    expect(r.code).toBe(1);
    const lines = userLines(r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^coffer: PUT s3:\/\/coffer-test\/f\/down\/data\/[0-9a-f]{2}\/[0-9a-f]{64}: (ECONNRESET|EPIPE|socket hang up).* \(after 2 attempts\)$/,
    );
    expect(await snapshotCount("f/down")).toBe(0);
    expect(await spoolFiles(stack)).toEqual([]);
    await expectSound("f/down");
    // The next run, with the network back, completes.
    const again = await s3cli(stack, "f/down", ["backup", src]);
    expect(again.code, again.stderr).toBe(0);
    await expectSound("f/down");
    await expectRestoresEqual("f/down");
  });
});

describe("S3 spool (packs on their way up)", () => {
  it("a TMPDIR that cannot take the spool fails the backup in one line naming it, exit 1", async () => {
    await initAt("f/spool");
    const missing = path.join(stack.dir, "no-such-dir");
    const r = await s3cli(stack, "f/spool", ["backup", src], { TMPDIR: missing });
    expect(r.code).toBe(1);
    const lines = userLines(r);
    expect(lines).toEqual([
      `coffer: cannot spool a pack in ${missing} (ENOENT): set TMPDIR to a writable folder with room for a few packs`,
    ]);
    expect(await snapshotCount("f/spool")).toBe(0);
  });

  it("a backup killed (SIGKILL) while a pack is on its way up leaves no spool file in TMPDIR", async () => {
    await initAt("f/kill");
    // Every pack upload hangs, so the backup is surely mid-upload when it is killed.
    stack.faults.rules = [{ kind: "stall", ...dataPut, times: Number.POSITIVE_INFINITY }];
    const seen = stack.faults.requests.length;
    const run = startCli(["backup", src, ...s3Flags(stack, "f/kill")], { env: s3Env(stack) });
    const deadline = Date.now() + 30_000;
    const packPut = () =>
      stack.faults.requests
        .slice(seen)
        .some((r) => r.method === "PUT" && dataPut.path.test(r.path));
    while (!packPut() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(packPut()).toBe(true);
    run.child.kill("SIGKILL");
    const res = await run.done;
    expect(res.signal).toBe("SIGKILL");
    expect(await spoolFiles(stack)).toEqual([]);
    expect(await snapshotCount("f/kill")).toBe(0);
  });
});

describe("S3 faults on download (fault proxy between coffer and s3rver)", () => {
  it("GET bodies cut short are detected and fetched again by restore and verify", async () => {
    await initAt("f/trunc");
    const b = await s3cli(stack, "f/trunc", ["backup", src]);
    expect(b.code, b.stderr).toBe(0);
    stack.faults.rules = [{ kind: "truncate-body", ...dataGet, times: 3 }];
    await expectRestoresEqual("f/trunc", debug);
    expect(stack.faults.rules[0]?.times).toBe(0);
    stack.faults.rules = [{ kind: "truncate-body", ...dataGet, times: 3 }];
    const v = await s3cli(stack, "f/trunc", ["verify", "--read-data"], debug);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/debug: GET .*\/data\/.* failed \((.*body .*)\); retrying/);
    expect(stack.faults.rules[0]?.times).toBe(0);
  });

  it("GET bodies cut short every time are a one-line failure (exit 1), never damage (exit 20)", async () => {
    stack.faults.rules = [{ kind: "truncate-body", ...dataGet, times: Number.POSITIVE_INFINITY }];
    const v = await s3cli(stack, "f/trunc", ["verify", "--read-data", "--s3-max-attempts", "2"]);
    stack.faults.rules = [];
    expect(v.code).toBe(1);
    const lines = userLines(v).filter((l) => l.startsWith("coffer:"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^coffer: GET s3:\/\/coffer-test\/f\/trunc\/data\/.*\(after 2 attempts\)$/,
    );
  });
});
