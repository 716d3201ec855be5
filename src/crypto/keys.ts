import { hkdfSync } from "node:crypto";

/** Length in bytes of the repository secret, of every derived key and of every id. */
export const keyLength = 32;

/** One key generation's keys, derived from its repository secret (docs/FORMAT.md §Keys). */
export interface RepositoryKeys {
  generation: number;
  /** Seeds the chunker's gear table, so chunk boundaries leak nothing about known files. */
  chunker: Buffer;
  /** Blob ids are HMAC-SHA256(id key, plaintext). */
  id: Buffer;
  /** Per-blob keys are HMAC-SHA256(data key, blob id). */
  data: Buffer;
  /** Seals index deltas, snapshots, pack headers and locks. */
  metadata: Buffer;
  /** Authenticates the config file. */
  config: Buffer;
}

const labels = {
  chunker: "coffer/v1 chunker",
  id: "coffer/v1 blob id",
  data: "coffer/v1 data",
  metadata: "coffer/v1 metadata",
  config: "coffer/v1 config",
} as const;

function derive(secret: Buffer, repositoryId: Buffer, label: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, repositoryId, label, keyLength));
}

export function deriveKeys(
  secret: Buffer,
  repositoryId: Buffer,
  generation: number,
): RepositoryKeys {
  if (secret.length !== keyLength) throw new Error("keys: internal error: secret must be 32 bytes");
  return {
    generation,
    chunker: derive(secret, repositoryId, labels.chunker),
    id: derive(secret, repositoryId, labels.id),
    data: derive(secret, repositoryId, labels.data),
    metadata: derive(secret, repositoryId, labels.metadata),
    config: derive(secret, repositoryId, labels.config),
  };
}

/** Overwrites key material once it is no longer needed (best effort: V8 may hold copies). */
export function wipe(...buffers: Buffer[]): void {
  for (const b of buffers) b.fill(0);
}
