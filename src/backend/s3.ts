// A repository in an S3 bucket under a prefix, with the same layout as a local one
// (docs/FORMAT.md §Layout): PREFIX/config, PREFIX/keys/ID, PREFIX/data/XX/ID, ...
// Every object is written once by one PUT (multipart above a threshold; packs streamed
// from a spool file, s3-spool.ts) with Content-MD5, and a 200 is not taken on trust: the
// ETag must be the MD5 of what was sent and, for packs, a HEAD must show the full size.
// Every request goes through retry.ts.
import type { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type ServerSideEncryption,
  type StorageClass,
} from "@aws-sdk/client-s3";
import { IntegrityError, UserError } from "../errors.js";
import type { Backend, FileType, Handle, ObjectInfo, ObjectWriter } from "./backend.js";
import { type ReadWindowOptions, ReadWindows } from "./read-windows.js";
import { debugLog, defaultRetryPolicy, type RetryPolicy, retrying } from "./retry.js";
import {
  classifyS3Error,
  describeS3Failure,
  isNotFound,
  S3RequestError,
  statusOf,
  TransientError,
} from "./s3-errors.js";
import { md5, uploadMultipart } from "./s3-multipart.js";
import { openSpool } from "./s3-spool.js";

export interface S3StorageOptions {
  /** Server-side encryption, as defence in depth (the data is sealed already). */
  sse?: "AES256" | "aws:kms";
  sseKmsKeyId?: string;
  storageClass?: string;
  /** Object Lock retention for packs and snapshots (the bucket must have Object Lock on). */
  objectLock?: { days: number; mode: "GOVERNANCE" | "COMPLIANCE" };
  /** Objects larger than this go up as multipart uploads of partSize parts. */
  multipartThreshold?: number;
  partSize?: number;
  /** Keys per ListObjectsV2 page (S3's maximum is 1000). */
  listPageSize?: number;
  retry?: RetryPolicy;
  /** Read-ahead for small reads of packs (read-windows.ts); blockBytes 0 turns it off. */
  readAhead?: ReadWindowOptions;
}

const MiB = 1024 * 1024;
const folders: Record<Exclude<FileType, "config">, string> = {
  key: "keys",
  data: "data",
  index: "index",
  snapshot: "snapshots",
  lock: "locks",
};
const idPattern = /^[0-9a-f]{64}$/;

/** A GET's body, and the object's full size when the response said (ranged GETs do). */
interface Fetched {
  data: Buffer;
  total?: number;
}

/** Parses s3://BUCKET[/PREFIX]; the prefix has no leading or trailing slash. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new UserError(`${url} is not an S3 repository URL: use s3://BUCKET/PREFIX`);
  const bucket = m[1] as string;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UserError(
      `${url}: "${bucket}" is not a valid bucket name (3-63 lower-case letters, digits, dots, hyphens)`,
    );
  }
  const parts = (m[2] ?? "").split("/").filter((p) => p !== "");
  if (parts.some((p) => p === "." || p === "..")) {
    throw new UserError(`${url}: the prefix must not contain . or .. segments`);
  }
  return { bucket, prefix: parts.join("/") };
}

/** The MD5 in an ETag, or null when the ETag is not one (multipart, SSE-KMS). */
function etagMd5(etag: string | undefined): string | null {
  const m = /^"?([0-9a-f]{32})"?$/i.exec(etag ?? "");
  return m ? (m[1] as string).toLowerCase() : null;
}

export class S3Backend implements Backend {
  readonly location: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #host: string;
  readonly #o: S3StorageOptions;
  readonly #retry: RetryPolicy;
  /** Requests sent, retries included (reported under COFFER_DEBUG). */
  requests = 0;
  readonly #windows: ReadWindows | null;

  constructor(client: S3Client, url: string, host: string, o: S3StorageOptions = {}) {
    const { bucket, prefix } = parseS3Url(url);
    this.#client = client;
    this.#bucket = bucket;
    this.#prefix = prefix;
    this.#host = host;
    this.#o = o;
    this.#retry = o.retry ?? defaultRetryPolicy;
    this.location = `s3://${bucket}${prefix ? `/${prefix}` : ""}`;
    const ra = o.readAhead ?? { blockBytes: MiB, blocks: 32, ahead: 4 };
    this.#windows = ra.blockBytes > 0 ? new ReadWindows(ra) : null;
  }

  private base(): string {
    return this.#prefix ? `${this.#prefix}/` : "";
  }

  private keyOf(h: Handle): string {
    if (h.type === "config") return `${this.base()}config`;
    if (!idPattern.test(h.name)) throw new Error(`s3: internal error: bad name ${h.name}`);
    const folder = folders[h.type];
    if (h.type === "data") return `${this.base()}${folder}/${h.name.slice(0, 2)}/${h.name}`;
    return `${this.base()}${folder}/${h.name}`;
  }

  /** One operation with retries; a final failure becomes a one-line error naming `what`. */
  private async call<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await retrying(what, this.#retry, classifyS3Error, () => {
        this.requests++;
        return op();
      });
    } catch (err) {
      if (isNotFound(err)) throw err;
      throw describeS3Failure(what, this.#host, err);
    }
  }

  /** Headers every new object gets: SSE, storage class, and Object Lock for packs/snapshots. */
  private writeHeaders(h: Handle) {
    const o = this.#o;
    const lock = o.objectLock && (h.type === "data" || h.type === "snapshot") ? o.objectLock : null;
    return {
      ServerSideEncryption: o.sse as ServerSideEncryption | undefined,
      SSEKMSKeyId: o.sse === "aws:kms" ? o.sseKmsKeyId : undefined,
      StorageClass: o.storageClass as StorageClass | undefined,
      ObjectLockMode: lock?.mode,
      ObjectLockRetainUntilDate: lock ? new Date(Date.now() + lock.days * 86_400_000) : undefined,
    };
  }

  /** Under SSE-KMS the ETag is not the MD5 of the object, so it cannot be checked. */
  private checkEtag(what: string, etag: string | undefined, digest: Buffer): void {
    if (this.#o.sse === "aws:kms") return;
    const got = etagMd5(etag);
    if (got !== null && got !== digest.toString("hex")) {
      throw new TransientError(`${what}: the server's ETag ${got} is not the MD5 of the data sent`);
    }
  }

  /** A HEAD after the write: the object must be there, whole. */
  private async checkStored(what: string, key: string, size: number): Promise<void> {
    const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
    if (head.ContentLength !== size) {
      throw new TransientError(`${what}: stored ${head.ContentLength} bytes of ${size}`);
    }
  }

  async save(h: Handle, data: Buffer): Promise<void> {
    if (data.length > this.multipartThreshold()) {
      await this.putMultipart(h, data.length, async (o, n) => data.subarray(o, o + n));
      return;
    }
    await this.put(h, () => data, data.length, md5(data));
  }

  /**
   * Packs are spooled to a temp file as they fill, then streamed up (s3-spool.ts); one
   * above the multipart threshold (a pack size configured that large) goes up in parts
   * read from the file one at a time.
   */
  openWriter(h: Handle): Promise<ObjectWriter> {
    return openSpool(async (body) => {
      if (body.size <= this.multipartThreshold()) {
        return this.put(h, () => body.stream(), body.size, body.md5);
      }
      await this.putMultipart(h, body.size, (o, n) => body.read(o, n));
    });
  }

  /** "PUT s3://bucket/prefix/data/xx/id": a request as messages name it. */
  private requestName(method: string, key: string): string {
    return `${method} ${this.location}/${key.slice(this.base().length)}`;
  }

  private multipartThreshold(): number {
    return this.#o.multipartThreshold ?? 64 * MiB;
  }

  private async putMultipart(
    h: Handle,
    size: number,
    part: (offset: number, length: number) => Promise<Buffer>,
  ): Promise<void> {
    const key = this.keyOf(h);
    await uploadMultipart(
      {
        client: this.#client,
        bucket: this.#bucket,
        call: (w, op) => this.call(w, op),
        checkEtag: (w, etag, digest) => this.checkEtag(w, etag, digest),
        checkStored: (w, k, n) => this.checkStored(w, k, n),
      },
      {
        key,
        what: this.requestName("PUT", key),
        size,
        part,
        partSize: this.#o.partSize ?? 16 * MiB,
        headers: this.writeHeaders(h),
      },
    );
  }

  /** One PUT, retried with a fresh body each attempt, its ETag and (for packs) size checked. */
  private async put(
    h: Handle,
    body: () => Buffer | Readable,
    size: number,
    digest: Buffer,
  ): Promise<void> {
    const key = this.keyOf(h);
    const what = this.requestName("PUT", key);
    await this.call(what, async () => {
      const out = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          Body: body(),
          ContentLength: size,
          ContentMD5: digest.toString("base64"),
          ...this.writeHeaders(h),
        }),
      );
      this.checkEtag(what, out.ETag, digest);
      // Packs are large and the point of a backup: confirm the size. Small metadata
      // objects are read back (and authenticated) by every later run anyway.
      if (h.type === "data") await this.checkStored(what, key, size);
    });
  }

  async load(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const name = h.name || "config";
    if (length === 0) return Buffer.alloc(0);
    const windows = this.#windows;
    const body =
      windows && h.type === "data" && length !== undefined
        ? await windows.read(h.name, offset, length, async (at, max) => {
            const r = await this.fetch(h, at, max);
            if (r.total !== undefined) windows.noteSize(h.name, r.total);
            return r.data;
          })
        : (await this.fetch(h, offset, length)).data;
    if (length !== undefined && body.length !== length) {
      throw new IntegrityError(
        `${h.type} ${name} is truncated: wanted ${length} bytes at offset ${offset}, got ${body.length}`,
      );
    }
    return body;
  }

  /** Up to `length` bytes from offset (fewer only at the end of the object). */
  private async fetch(h: Handle, offset: number, length?: number): Promise<Fetched> {
    const key = this.keyOf(h);
    const name = h.name || "config";
    const range =
      offset > 0 || length !== undefined
        ? `bytes=${offset}-${length === undefined ? "" : offset + length - 1}`
        : undefined;
    const what = `${this.requestName("GET", key)}${range ? ` ${range}` : ""}`;
    let body: Fetched;
    try {
      body = await this.call(what, () => this.getBody(key, range, what));
    } catch (err) {
      if (isNotFound(err)) throw new S3RequestError(`${h.type} ${name} is missing`, "ENOENT");
      if (statusOf(err) === 416 || /InvalidRange/.test(String(err))) {
        throw new IntegrityError(`${h.type} ${name} is shorter than expected`);
      }
      throw err;
    }
    return body;
  }

  /**
   * One GET, its body read whole. A body that ends before its Content-Length (a cut
   * connection, a misbehaving proxy) is a TransientError, so the GET is retried.
   */
  private async getBody(key: string, range: string | undefined, what: string): Promise<Fetched> {
    const out = await this.#client.send(
      new GetObjectCommand({ Bucket: this.#bucket, Key: key, Range: range }),
    );
    const expected = out.ContentLength;
    const stream = out.Body as Readable | undefined;
    if (!stream) throw new TransientError(`${what}: response without a body`);
    const chunks: Buffer[] = [];
    let got = 0;
    try {
      for await (const c of stream) {
        chunks.push(c as Buffer);
        got += (c as Buffer).length;
      }
    } catch (err) {
      throw new TransientError(
        `${what}: body cut off after ${got} bytes (${(err as Error).message})`,
      );
    }
    if (expected !== undefined && got !== expected) {
      throw new TransientError(`${what}: body has ${got} bytes, Content-Length said ${expected}`);
    }
    const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, got);
    // "bytes 0-1048575/16777216": the object's size, so read-ahead never asks past its end.
    const total = /\/(\d+)$/.exec(out.ContentRange ?? "")?.[1];
    return { data, total: total === undefined ? undefined : Number(total) };
  }

  async stat(h: Handle): Promise<ObjectInfo | null> {
    const key = this.keyOf(h);
    try {
      const out = await this.call(this.requestName("HEAD", key), () =>
        this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key })),
      );
      return { name: h.name, size: out.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async *list(type: FileType): AsyncIterable<ObjectInfo> {
    if (type === "config") {
      const st = await this.stat({ type, name: "" });
      if (st) yield st;
      return;
    }
    const prefix = `${this.base()}${folders[type]}/`;
    let token: string | undefined;
    do {
      const page = await this.call(`LIST ${this.location}/${folders[type]}/`, () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: prefix,
            ContinuationToken: token,
            MaxKeys: this.#o.listPageSize ?? 1000,
          }),
        ),
      );
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(o.Key.lastIndexOf("/") + 1) ?? "";
        if (idPattern.test(name)) yield { name, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async remove(h: Handle): Promise<void> {
    const key = this.keyOf(h);
    this.#windows?.forget(h.name);
    try {
      await this.call(this.requestName("DELETE", key), () =>
        this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key })),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async exists(): Promise<boolean> {
    return (await this.stat({ type: "config", name: "" })) !== null;
  }

  async create(): Promise<void> {
    const page = await this.call(`LIST ${this.location}/`, () =>
      this.#client.send(
        new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.base(), MaxKeys: 1 }),
      ),
    );
    if ((page.KeyCount ?? page.Contents?.length ?? 0) > 0) {
      throw new UserError(
        `${this.location} is not empty: choose a new or empty prefix for the repository`,
      );
    }
  }

  close(): void {
    debugLog(`${this.location}: ${this.requests} S3 requests`);
    this.#client.destroy();
  }
}
