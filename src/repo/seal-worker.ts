import { parentPort, workerData } from "node:worker_threads";
import type { RepositoryKeys } from "../crypto/keys.js";
import type { BlobKind } from "./blob.js";
import { sealBlob } from "./blob.js";
import type { BlobBatch } from "./seal-batch.js";

// A seal worker: compresses and seals blobs off the main thread (see seal-pool.ts).
// It holds the data key of one key generation, for as long as the backup runs.

export type SealJob =
  | { job: number; kind: BlobKind; id: Uint8Array; plaintext: Uint8Array }
  | { job: number; batch: BlobBatch };

export interface SealResult {
  job: number;
  sealed?: Uint8Array;
  /** For a batch: the sealed blobs back to back in `sealed`, this many bytes each. */
  lengths?: Uint32Array;
  error?: string;
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
  const sealed: Buffer[] = [];
  const lengths = new Uint32Array(b.lengths.length);
  let offset = 0;
  for (let i = 0; i < b.lengths.length; i++) {
    const length = b.lengths[i] as number;
    const one = sealOne(
      b.kinds[i] as BlobKind,
      view(b.ids, i * 32, 32),
      view(b.data, offset, length),
    );
    sealed.push(one);
    lengths[i] = one.length;
    offset += length;
  }
  return { job: 0, sealed: Buffer.concat(sealed), lengths };
}

parentPort?.on("message", (m: SealJob) => {
  try {
    const result: SealResult & { sealed: Uint8Array } =
      "batch" in m
        ? { ...sealBatch(m.batch), job: m.job }
        : { job: m.job, sealed: sealOne(m.kind, Buffer.from(m.id), view(m.plaintext)) };
    const sealed = result.sealed;
    const transferable = sealed.byteOffset === 0 && sealed.byteLength === sealed.buffer.byteLength;
    parentPort?.postMessage(result, transferable ? [sealed.buffer as ArrayBuffer] : []);
  } catch (err) {
    parentPort?.postMessage({ job: m.job, error: (err as Error).message } satisfies SealResult);
  }
});
