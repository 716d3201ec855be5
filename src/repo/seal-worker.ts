import { parentPort, workerData } from "node:worker_threads";
import type { RepositoryKeys } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { BlobKind } from "./blob.js";
import { openBlob, sealBlob } from "./blob.js";
import type { BlobBatch } from "./seal-batch.js";
import { sealEach } from "./seal-batch.js";

// A seal worker: compresses and seals blobs off the main thread (see seal-pool.ts), and
// opens the blobs of whole packs for verify --read-data. It holds the data key of one key
// generation for sealing; a verify job brings the keys of the generations it needs.

/** The blobs of one pack to open and check; problems come back as messages. */
export interface VerifyPack {
  packId: string;
  pack: Uint8Array;
  /** Per blob: 32-byte id, kind, offset, length, raw length, generation. */
  ids: Uint8Array;
  kinds: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  rawLengths: Uint32Array;
  generations: Uint32Array;
  keys: { generation: number; data: Uint8Array; id: Uint8Array }[];
}

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
  | { job: number; verify: VerifyPack }
  | { job: number; open: OpenJob };

export interface SealResult {
  job: number;
  sealed?: Uint8Array;
  /** For a batch: the sealed blobs back to back in `sealed`, this many bytes each. */
  lengths?: Uint32Array;
  /** For a verify job: one message per blob that failed. */
  problems?: string[];
  /** For an open job: the blob's plaintext. */
  plaintext?: Uint8Array;
  error?: string;
  /** The error is an IntegrityError: the data is damaged, not the worker. */
  integrity?: boolean;
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

function verifyPack(v: VerifyPack): string[] {
  const problems: string[] = [];
  const keys = new Map(v.keys.map((k) => [k.generation, readKeys(k)]));
  const pack = view(v.pack);
  for (let i = 0; i < v.kinds.length; i++) {
    const id = view(v.ids, i * 32, 32);
    const offset = v.offsets[i] as number;
    const length = v.lengths[i] as number;
    try {
      if (offset + length > pack.length) throw new IntegrityError(`pack ${v.packId} is truncated`);
      const k = keys.get(v.generations[i] as number);
      if (k === undefined) throw new Error("verify job without the blob's keys");
      const sealed = pack.subarray(offset, offset + length);
      openBlob(repoId, k, v.kinds[i] as BlobKind, id, sealed, v.rawLengths[i] as number);
    } catch (err) {
      const message = (err as Error).message;
      problems.push(message.startsWith("pack ") ? message : `pack ${v.packId}: ${message}`);
    }
  }
  return problems;
}

parentPort?.on("message", (m: SealJob) => {
  try {
    if ("verify" in m) {
      parentPort?.postMessage({ job: m.job, problems: verifyPack(m.verify) } satisfies SealResult);
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
    parentPort?.postMessage(result, ownsMemory(sealed) ? [sealed.buffer as ArrayBuffer] : []);
  } catch (err) {
    parentPort?.postMessage({
      job: m.job,
      error: (err as Error).message,
      integrity: err instanceof IntegrityError,
    } satisfies SealResult);
  }
});
