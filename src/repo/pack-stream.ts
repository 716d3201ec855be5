import { randomBytes } from "node:crypto";
import type { Handle, ObjectWriter } from "../backend/backend.js";
import type { RepositoryKeys } from "../crypto/keys.js";
import type { SealedBlob } from "./blob.js";
import type { PackEntry } from "./pack.js";
import { packTail } from "./pack.js";

// A pack written while it fills, through the backend's ObjectWriter (a local temp file,
// S3's spool file): memory stays at a few write buffers whatever the pack size, where a
// pack built in memory held up to its whole size, and another one while it was written
// out (restic spools its packs to temp files for the same reason).

/** Small blobs are gathered into buffers of this size; larger ones are written as they are. */
const stagingBytes = 1024 * 1024;
/** Bytes handed to writes that have not finished yet; add waits (room) past this. */
const maxPendingBytes = 4 * 1024 * 1024;

export class PackStream {
  readonly id = randomBytes(32);
  readonly entries: PackEntry[] = [];
  readonly #writer: Promise<ObjectWriter>;
  #size = 0;
  /** Blobs not yet handed to a write: staging[0, stagedLength) is the pack from stagedAt. */
  #staging: Buffer | null = null;
  #stagedAt = 0;
  #stagedLength = 0;
  /** Staging buffers whose writes are done, for reuse. */
  readonly #spare: Buffer[] = [];
  readonly #writes = new Set<Promise<void>>();
  #pendingBytes = 0;
  #error: unknown = null;

  constructor(openWriter: (h: Handle) => Promise<ObjectWriter>) {
    this.#writer = openWriter({ type: "data", name: this.id.toString("hex") });
    // A failed open is reported by store(); until then no write is started without it.
    this.#writer.catch(() => {});
  }

  /** Bytes of blobs so far. */
  get size(): number {
    return this.#size;
  }

  get count(): number {
    return this.entries.length;
  }

  add(blob: SealedBlob): void {
    const data = blob.sealed;
    const offset = this.#size;
    this.entries.push({
      kind: blob.kind,
      id: blob.id,
      offset,
      length: data.length,
      rawLength: blob.rawLength,
    });
    this.#size += data.length;
    if (this.#staging !== null && this.#stagedLength + data.length > stagingBytes) {
      this.flushStaging();
    }
    if (data.length >= stagingBytes) {
      // Written from the blob's own memory, which nobody else changes: no copy.
      this.startWrite(data, offset, null);
      return;
    }
    if (this.#staging === null) {
      this.#staging = this.#spare.pop() ?? Buffer.allocUnsafe(stagingBytes);
      this.#stagedAt = offset;
    }
    data.copy(this.#staging, this.#stagedLength);
    this.#stagedLength += data.length;
  }

  /** A promise to wait for before adding more, when writes are behind; else null. */
  room(): Promise<void> | null {
    if (this.#pendingBytes <= maxPendingBytes) return null;
    return this.drain(maxPendingBytes);
  }

  /** Writes the tail and commits; resolves once the pack is durable. Not used afterwards. */
  async store(repositoryId: Buffer, keys: RepositoryKeys): Promise<void> {
    this.flushStaging();
    this.startWrite(packTail(repositoryId, keys, this.id, this.entries), this.#size, null);
    const writer = await this.#writer;
    try {
      await this.drain(0);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    await writer.commit();
  }

  /** Drops the pack unwritten (a backup that failed or was stopped leaves nothing of it). */
  async discard(): Promise<void> {
    const writer = await this.#writer.catch(() => null);
    await writer?.abort();
  }

  /** Waits until at most `bytes` are pending; throws the first write error. */
  private async drain(bytes: number): Promise<void> {
    while (this.#pendingBytes > bytes) await Promise.race(this.#writes);
    if (this.#error !== null) throw this.#error;
  }

  private flushStaging(): void {
    const staging = this.#staging;
    if (staging === null) return;
    this.startWrite(staging.subarray(0, this.#stagedLength), this.#stagedAt, staging);
    this.#staging = null;
    this.#stagedLength = 0;
  }

  /** Writes data at offset; `staging`, when given, is reused once the write is done. */
  private startWrite(data: Buffer, offset: number, staging: Buffer | null): void {
    const write = this.#writer
      .then((w) => w.write(data, offset))
      .then(
        () => {
          if (staging !== null) this.#spare.push(staging);
        },
        (err: unknown) => {
          this.#error ??= err;
        },
      )
      .finally(() => {
        this.#writes.delete(write);
        this.#pendingBytes -= data.length;
      });
    this.#writes.add(write);
    this.#pendingBytes += data.length;
  }
}
