// The Backend contract of S3Backend, in-process against a real s3rver: multipart uploads,
// ListObjectsV2 pagination, ranged reads, short objects, missing objects, idempotent
// removal, create() on a non-empty prefix, and packs spooled to a file on their way up.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, FileType, Handle } from "../../src/backend/backend.js";
import { S3Backend } from "../../src/backend/s3.js";
import { makeS3Client } from "../../src/backend/s3-client.js";
import { ObjectKind } from "../../src/crypto/seal.js";
import { IntegrityError } from "../../src/errors.js";
import { PassphraseProvider } from "../../src/kms/passphrase.js";
import { BlobStore } from "../../src/repo/blob-store.js";
import { encodeConfig } from "../../src/repo/config.js";
import { Repository } from "../../src/repo/repository.js";
import { type S3TestServer, startS3Server } from "../servers/s3-server.js";

let server: S3TestServer;
beforeAll(async () => {
  server = await startS3Server(["contract"]);
  process.env.AWS_ACCESS_KEY_ID = "S3RVER";
  process.env.AWS_SECRET_ACCESS_KEY = "S3RVER";
});
afterAll(() => server.close());

function backend(prefix: string, o: ConstructorParameters<typeof S3Backend>[3] = {}): S3Backend {
  const client = makeS3Client({
    endpoint: server.endpoint,
    insecureHttp: true,
    pathStyle: true,
    region: "us-east-1",
  });
  return new S3Backend(client, `s3://contract/${prefix}`, "s3rver", o);
}

const id = () => randomBytes(32).toString("hex");

/** This process's open files that are deleted spool files in dir, as /proc/self/fd links. */
async function spoolHandles(dir: string): Promise<string[]> {
  const held: string[] = [];
  for (const fd of await readdir("/proc/self/fd")) {
    const link = `/proc/self/fd/${fd}`;
    const target = await readlink(link).catch(() => "");
    if (target.startsWith(`${dir}/coffer-pack-`) && target.endsWith(" (deleted)")) held.push(link);
  }
  return held;
}

/** V8's full collection: `--expose-gc` gives `gc` to contexts created after it is set. */
function fullGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("S3Backend against s3rver (in-process)", () => {
  it("a pack written in pieces is spooled to a private, nameless file in TMPDIR, sent by one PUT, and the file closed", async () => {
    const spool = await mkdtemp(path.join(tmpdir(), "coffer-spool-test-"));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = spool;
    try {
      const b = backend("spool");
      const data = randomBytes(5 * 1024 * 1024 + 3);
      const h = { type: "data" as const, name: id() };
      const w = await b.openWriter(h);
      const cut = 2_000_001;
      await Promise.all([w.write(data.subarray(cut), cut), w.write(data.subarray(0, cut), 0)]);
      // The spool has no name (a killed process leaves nothing), only this process's handle.
      expect(await readdir(spool)).toEqual([]);
      const held = await spoolHandles(spool);
      expect(held).toHaveLength(1);
      expect((await stat(held[0] as string)).mode & 0o777).toBe(0o600);
      expect(b.requests).toBe(0);
      expect(await b.stat(h)).toBeNull();
      await w.commit();
      expect(b.requests).toBe(2); // the PUT and the HEAD that checks its size
      expect(await spoolHandles(spool)).toEqual([]);
      expect((await b.load(h)).equals(data)).toBe(true);

      const dropped = { type: "data" as const, name: id() };
      const w2 = await b.openWriter(dropped);
      await w2.write(randomBytes(1000), 0);
      await w2.abort();
      expect(await spoolHandles(spool)).toEqual([]);
      expect(await readdir(spool)).toEqual([]);
      expect(await b.stat(dropped)).toBeNull();
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await rm(spool, { recursive: true, force: true });
    }
  });

  it("a spooled pack above the multipart threshold goes up a part at a time, read from its file, which is then removed", async () => {
    const spool = await mkdtemp(path.join(tmpdir(), "coffer-spool-test-"));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = spool;
    const MiB = 1024 * 1024;
    try {
      const b = backend("spool-mp", { multipartThreshold: 6 * MiB, partSize: 5 * MiB });
      const size = 40 * MiB + 5;
      const h = { type: "data" as const, name: id() };
      const w = await b.openWriter(h);
      const written = createHash("sha256");
      for (let at = 0; at < size; at += MiB) {
        const piece = randomBytes(Math.min(MiB, size - at));
        written.update(piece);
        await w.write(piece, at);
      }
      // The upload holds a part or two in memory, never the pack. Buffers count until a GC
      // finds them dead, so each sample collects first.
      const gc = fullGc();
      gc();
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      const sample = setInterval(() => {
        gc();
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      }, 10);
      try {
        await w.commit();
      } finally {
        clearInterval(sample);
      }
      expect(peak - before).toBeLessThan(20 * MiB);
      expect(b.requests).toBe(12); // create, 9 parts, complete, the HEAD that checks the size
      expect(await spoolHandles(spool)).toEqual([]);
      const stored = createHash("sha256")
        .update(await b.load(h))
        .digest("hex");
      expect(stored).toBe(written.digest("hex"));
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await rm(spool, { recursive: true, force: true });
    }
  });

  it("stores a large object by multipart upload and reads it back whole and by range", async () => {
    const b = backend("mp", { multipartThreshold: 6 * 1024 * 1024, partSize: 5 * 1024 * 1024 });
    const data = randomBytes(13 * 1024 * 1024 + 11);
    const h = { type: "data" as const, name: id() };
    await b.save(h, data);
    expect(b.requests).toBeGreaterThanOrEqual(5); // create, 3 parts, complete (+ HEAD)
    expect((await b.stat(h))?.size).toBe(data.length);
    expect((await b.load(h)).equals(data)).toBe(true);
    const at = 5 * 1024 * 1024 - 7;
    expect((await b.load(h, at, 100)).equals(data.subarray(at, at + 100))).toBe(true);
    expect((await b.load(h, data.length - 4)).equals(data.subarray(-4))).toBe(true);
  });

  it("adjacent small reads of one pack are served by one read-ahead GET", async () => {
    const b = backend("readahead", { readAhead: { blockBytes: 1024 * 1024, blocks: 2 } });
    const data = randomBytes(3 * 1024 * 1024);
    const h = { type: "data" as const, name: id() };
    await b.save(h, data);
    const before = b.requests;
    for (let off = 0; off < 1024 * 1024 - 4096; off += 4096) {
      expect((await b.load(h, off, 4096)).equals(data.subarray(off, off + 4096))).toBe(true);
    }
    expect(b.requests - before).toBe(1);
    // A read across two blocks fetches both in one GET; the end of the object is no error.
    const across = 2 * 1024 * 1024 - 50;
    expect((await b.load(h, across, 100)).equals(data.subarray(across, across + 100))).toBe(true);
    expect(b.requests - before).toBe(2);
    const tail = data.length - 100;
    expect((await b.load(h, tail, 100)).equals(data.subarray(tail))).toBe(true);
    expect(b.requests - before).toBe(2);
    // A read past the end of the object is still an IntegrityError.
    await expect(b.load(h, data.length - 10, 20)).rejects.toBeInstanceOf(IntegrityError);
  });

  it("reading a pack forward fetches the next blocks ahead, each byte once", async () => {
    const MiB = 1024 * 1024;
    const b = backend("prefetch", { readAhead: { blockBytes: MiB, blocks: 8, ahead: 2 } });
    const data = randomBytes(5 * MiB - 100);
    const h = { type: "data" as const, name: id() };
    await b.save(h, data);
    const before = b.requests;
    for (let off = 0; off < data.length; off += 64 * 1024) {
      const n = Math.min(64 * 1024, data.length - off);
      expect((await b.load(h, off, n)).equals(data.subarray(off, off + n))).toBe(true);
    }
    // Block 0; blocks 1-2 ahead; then 3 and 4 as the reads move on: 4 GETs for 5 blocks.
    expect(b.requests - before).toBe(4);
  });

  it("lists every object exactly once across pages", async () => {
    const b = backend("list", { listPageSize: 3 });
    const names = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const n = id();
      names.add(n);
      await b.save({ type: "data", name: n }, Buffer.from(`pack ${i}`));
    }
    await b.save({ type: "index", name: id() }, Buffer.from("an index"));
    const before = b.requests;
    const listed: string[] = [];
    for await (const o of b.list("data")) listed.push(o.name);
    expect(listed.sort()).toEqual([...names].sort());
    expect(b.requests - before).toBe(4); // 10 keys, 3 per page
  });

  it("a read past the end of an object is an IntegrityError, a missing object ENOENT", async () => {
    const b = backend("short");
    const h = { type: "data" as const, name: id() };
    await b.save(h, Buffer.alloc(100, 1));
    await expect(b.load(h, 50, 100)).rejects.toBeInstanceOf(IntegrityError);
    await expect(b.load(h, 200, 10)).rejects.toBeInstanceOf(IntegrityError);
    const missing = { type: "snapshot" as const, name: id() };
    await expect(b.load(missing)).rejects.toMatchObject({ code: "ENOENT" });
    expect(await b.stat(missing)).toBeNull();
    await b.remove(h);
    await b.remove(h);
    expect(await b.stat(h)).toBeNull();
  });

  it("create() refuses a prefix that holds objects and accepts an empty one", async () => {
    const b = backend("short");
    await b.save({ type: "key", name: id() }, Buffer.from("k"));
    await expect(b.create()).rejects.toThrow(/is not empty/);
    await expect(backend("fresh").create()).resolves.toBeUndefined();
    expect(await backend("fresh").exists()).toBe(false);
  });

  it("BlobStore keeps at most --upload-concurrency pack uploads in flight", async () => {
    // A repository with 64 KiB packs, so 40 small blobs make a dozen packs.
    const inner = backend("uploads");
    const key = new PassphraseProvider("uploads", 10);
    const made = await Repository.init(inner, [key]);
    const config = { ...made.config, packSize: 64 * 1024 };
    await inner.save({ type: "config", name: "" }, encodeConfig(config, made.current.config));
    for (const limit of [1, 3]) {
      const counting = new InFlightCounter(inner);
      const store = new BlobStore(await Repository.open(counting, [key]), { packUploads: limit });
      for (let i = 0; i < 40; i++) await store.save(ObjectKind.data, randomBytes(20_000));
      await store.flush();
      expect(counting.packs).toBeGreaterThanOrEqual(10);
      expect(counting.maxInFlight).toBeLessThanOrEqual(limit);
      if (limit > 1) expect(counting.maxInFlight).toBeGreaterThan(1);
    }
  });
});

/** Passes everything to a real backend, counting pack writes in flight at once. */
class InFlightCounter implements Backend {
  readonly location: string;
  readonly #inner: Backend;
  inFlight = 0;
  maxInFlight = 0;
  packs = 0;
  constructor(inner: Backend) {
    this.#inner = inner;
    this.location = inner.location;
  }
  async save(h: Handle, data: Buffer): Promise<void> {
    if (h.type !== "data") return this.#inner.save(h, data);
    this.packs++;
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      await this.#inner.save(h, data);
    } finally {
      this.inFlight--;
    }
  }
  load(h: Handle, offset?: number, length?: number) {
    return this.#inner.load(h, offset, length);
  }
  stat(h: Handle) {
    return this.#inner.stat(h);
  }
  list(type: FileType) {
    return this.#inner.list(type);
  }
  remove(h: Handle) {
    return this.#inner.remove(h);
  }
  exists() {
    return this.#inner.exists();
  }
  create() {
    return this.#inner.create();
  }
}
