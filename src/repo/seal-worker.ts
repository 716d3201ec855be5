import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import type { RepositoryKeys } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { BlobKind } from "./blob.js";
import { openBlob, sealBlob } from "./blob.js";
import { BlobChecker, type BlobSlice } from "./blob-check.js";
import type { BlobBatch } from "./seal-batch.js";
import { sealEach } from "./seal-batch.js";
import { collectYoung, YoungBuffers, youngCollectBytes } from "./young-gc.js";

// A seal worker: compresses and seals blobs off the main thread (see seal-pool.ts), and
// opens and checks the blobs of pack slices for verify --read-data. It holds the data key
// of one key generation for sealing; a verify job brings the keys of the generations it
// needs.

/** One blob to open, with the keys of the generation it claims. */
export interface OpenJob {
  sealed: Uint8Array;
  kind: BlobKind;
  id: Uint8Array;
  rawLength: number;
  keys: { generation: number; data: Uint8Array; id: Uint8Array };
}

export type SealJob =
  | { job: number; kind: BlobKind; id: Uint8Array; plaintext: Uint8Array }
  | { job: number; batch: BlobBatch }
  | { job: number; verify: BlobSlice }
  | { job: number; open: OpenJob };

export interface SealResult {
  job: number;
  sealed?: Uint8Array;
  /** For a batch: the sealed blobs back to back in `sealed`, this many bytes each. */
  lengths?: Uint32Array;
  /** For a verify job: one message per blob that failed. */
  problems?: string[];
  /** For a verify job: the slice's memory, handed back for the next slice. */
  data?: Uint8Array;
  /** For an open job: the blob's plaintext. */
  plaintext?: Uint8Array;
  error?: string;
  /** The error is an IntegrityError: the data is damaged, not the worker. */
  integrity?: boolean;
}

/**
 * The walk, reads, chunking and hashing run on one thread, the main one; sealing is spread
 * over the workers. When they compete for a core, the main thread should win: a worker can
 * catch up on idle time later, the main thread cannot. On Linux a thread's nice value is
 * its own, and setPriority with no pid sets the calling thread's: +10 here gave first
 * backups ~5% faster on 2 cores (5.82 -> 5.55 s over 6 runs each). On a host busy with
 * other work, sealing yields to it too. Where the call is refused, nothing changes.
 */
const workerNiceness = 10;
try {
  setPriority(Math.min(19, getPriority() + workerNiceness));
} catch {
  // not permitted or not supported: run at the main thread's priority
}

const { repositoryId, keys } = workerData as { repositoryId: Uint8Array; keys: RepositoryKeys };
const repoId = Buffer.from(repositoryId);
const workerKeys: RepositoryKeys = {
  ...keys,
  data: Buffer.from(keys.data),
  id: Buffer.from(keys.id),
  chunker: Buffer.alloc(0),
  metadata: Buffer.alloc(0),
  config: Buffer.alloc(0),
};

function view(a: Uint8Array, offset = 0, length = a.byteLength - offset): Buffer {
  return Buffer.from(a.buffer, a.byteOffset + offset, length);
}

function sealOne(kind: BlobKind, id: Buffer, plaintext: Buffer): Buffer {
  return sealBlob(repoId, workerKeys, kind, id, plaintext).sealed;
}

function sealBatch(b: BlobBatch): SealResult & { sealed: Uint8Array } {
  const sealed = sealEach(repoId, workerKeys, b);
  return {
    job: 0,
    sealed: Buffer.concat(sealed),
    lengths: Uint32Array.from(sealed, (s) => s.length),
  };
}

function readKeys(k: OpenJob["keys"]): RepositoryKeys {
  return { ...workerKeys, generation: k.generation, data: view(k.data), id: view(k.id) };
}

function openOne(o: OpenJob): Buffer {
  return openBlob(repoId, readKeys(o.keys), o.kind, view(o.id), view(o.sealed), o.rawLength);
}

function ownsMemory(b: Uint8Array): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
}

/** Plaintexts received and blobs sealed die young here (see young-gc.ts). */
const young = new YoungBuffers(youngCollectBytes);

/** Created on the first verify job: a sealing worker needs no scratch buffers. */
let checker: BlobChecker | null = null;

parentPort?.on("message", (m: SealJob) => {
  try {
    if ("verify" in m) {
      checker ??= new BlobChecker(repoId);
      const problems = checker.checkSlice(m.verify);
      collectYoung();
      const data = m.verify.data;
      parentPort?.postMessage(
        { job: m.job, problems, data } satisfies SealResult,
        ownsMemory(data) ? [data.buffer as ArrayBuffer] : [],
      );
      return;
    }
    if ("open" in m) {
      const plaintext = openOne(m.open);
      const result: SealResult = { job: m.job, plaintext };
      parentPort?.postMessage(
        result,
        ownsMemory(plaintext) ? [plaintext.buffer as ArrayBuffer] : [],
      );
      return;
    }
    const result: SealResult & { sealed: Uint8Array } =
      "batch" in m
        ? { ...sealBatch(m.batch), job: m.job }
        : { job: m.job, sealed: sealOne(m.kind, Buffer.from(m.id), view(m.plaintext)) };
    const sealed = result.sealed;
    // Counted before the transfer, which leaves `sealed` empty here.
    young.allocated(
      sealed.byteLength + ("batch" in m ? m.batch.data.byteLength : m.plaintext.byteLength),
    );
    parentPort?.postMessage(result, ownsMemory(sealed) ? [sealed.buffer as ArrayBuffer] : []);
  } catch (err) {
    parentPort?.postMessage({
      job: m.job,
      error: (err as Error).message,
      integrity: err instanceof IntegrityError,
    } satisfies SealResult);
  }
});
