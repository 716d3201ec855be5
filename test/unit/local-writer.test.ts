import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { LocalBackend } from "../../src/backend/local.js";
import { tempDirPerTest } from "./inprocess.js";

// A local object written in pieces (packs, as they fill): invisible until committed, then
// whole and private; an aborted one leaves nothing behind, not even its temp file.

const newDir = tempDirPerTest();
const name = "ab".repeat(32);
const handle = { type: "data" as const, name };

async function filesUnder(dir: string): Promise<string[]> {
  return (await fs.readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe("local backend: objects written in pieces", () => {
  it("pieces written out of order and at once read back whole after commit, mode 0600", async () => {
    const backend = new LocalBackend(await newDir());
    await backend.create();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const w = await backend.openWriter(handle);
    const cuts = [0, 1000, 1_500_000, 2_000_001, data.length];
    const pieces = cuts.slice(1).map((end, i) => [cuts[i] as number, end] as const);
    await Promise.all(pieces.reverse().map(([s, e]) => w.write(data.subarray(s, e), s)));
    expect(await backend.stat(handle)).toBeNull();
    const listed = [];
    for await (const o of backend.list("data")) listed.push(o.name);
    expect(listed).toEqual([]);
    await w.commit();
    expect((await backend.load(handle)).equals(data)).toBe(true);
    const file = path.join(backend.location, "data", "ab", name);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await filesUnder(path.join(backend.location, "data"))).length).toBe(1);
    backend.close();
  });

  it("an aborted object leaves no file, and its name stays free", async () => {
    const backend = new LocalBackend(await newDir());
    await backend.create();
    const w = await backend.openWriter(handle);
    await w.write(randomBytes(4096), 0);
    await w.abort();
    await w.abort();
    expect(await backend.stat(handle)).toBeNull();
    expect(await filesUnder(path.join(backend.location, "data"))).toEqual([]);
    await backend.save(handle, Buffer.from("whole"));
    expect((await backend.load(handle)).toString()).toBe("whole");
    backend.close();
  });
});

describe("local backend: small reads of a pack", () => {
  it("return exactly the bytes asked for, across block boundaries and at the end; past the end is an IntegrityError", async () => {
    const backend = new LocalBackend(await newDir());
    await backend.create();
    const data = randomBytes(700 * 1024 + 5);
    await backend.save(handle, data);
    const block = 256 * 1024;
    const reads = [
      [0, 100],
      [block - 10, 20],
      [2 * block - 64 * 1024 + 1, 64 * 1024],
      [123_456, 4096],
      [data.length - 7, 7],
    ] as const;
    for (const [at, n] of reads) {
      expect((await backend.load(handle, at, n)).equals(data.subarray(at, at + n))).toBe(true);
    }
    // Reads of the same blocks again, after other blocks, still give the same bytes.
    for (const [at, n] of [...reads].reverse()) {
      expect((await backend.load(handle, at, n)).equals(data.subarray(at, at + n))).toBe(true);
    }
    await expect(backend.load(handle, data.length - 7, 8)).rejects.toThrow(
      /is truncated: wanted 8 bytes at offset 716798, got 7/,
    );
    // A removed pack's cached blocks go with it.
    await backend.remove(handle);
    const other = randomBytes(1000);
    await backend.save(handle, other);
    expect((await backend.load(handle, 0, 100)).equals(other.subarray(0, 100))).toBe(true);
    const missing = { type: "data" as const, name: "cd".repeat(32) };
    await expect(backend.load(missing, 0, 100)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
