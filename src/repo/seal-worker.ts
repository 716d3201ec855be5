import { parentPort, workerData } from "node:worker_threads";
import type { RepositoryKeys } from "../crypto/keys.js";
import type { BlobKind } from "./blob.js";
import { sealBlob } from "./blob.js";

// A seal worker: compresses and seals blobs off the main thread (see seal-pool.ts).
// It holds the data key of one key generation, for as long as the backup runs.

export interface SealJob {
  job: number;
  kind: BlobKind;
  id: Uint8Array;
  plaintext: Uint8Array;
}

export interface SealResult {
  job: number;
  sealed?: Uint8Array;
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

parentPort?.on("message", (m: SealJob) => {
  try {
    const plaintext = Buffer.from(
      m.plaintext.buffer,
      m.plaintext.byteOffset,
      m.plaintext.byteLength,
    );
    const { sealed } = sealBlob(repoId, workerKeys, m.kind, Buffer.from(m.id), plaintext);
    const result: SealResult = { job: m.job, sealed };
    const transferable = sealed.byteOffset === 0 && sealed.byteLength === sealed.buffer.byteLength;
    parentPort?.postMessage(result, transferable ? [sealed.buffer as ArrayBuffer] : []);
  } catch (err) {
    parentPort?.postMessage({ job: m.job, error: (err as Error).message } satisfies SealResult);
  }
});
