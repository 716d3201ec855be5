import { createHash, hkdfSync } from "node:crypto";
import { bech32 } from "@scure/base";
import { Decrypter, Encrypter, identityToRecipient } from "age-encryption";
import { KeyError } from "../errors.js";
import { decryptBytes } from "./envelope.js";
import type { RepositoryKeys } from "./keys.js";
import { keyLength } from "./keys.js";

// Writer-only keys (docs/FORMAT.md §Writer records and sessions, docs/KEYS.md).
//
// A writer record holds what backing up needs and nothing that reads old data: the
// chunker, id, metadata and config keys of one generation and the repository's reader
// recipient, but not the data key. A writer seals its blobs under a fresh random session
// data key, and leaves that key in a session file (keys/<name>, an age file) wrapped to
// the reader recipient, whose identity only a holder of the repository secret derives:
//
//   reader scalar = HKDF-SHA256(secret, salt = repository id, "coffer/v1 reader x25519", 32)
//   CKW1 record  = "CKW1" || repository id (32) || generation u32 || chunker key || id key
//                  || metadata key || config key || recipient length u8 || recipient (ASCII)
//   CKS1 record  = "CKS1" || repository id (32) || session generation u32
//                  || base generation u32 || session data key (32)
//   session file name = hex SHA-256("coffer/v1 session" || session generation u32)
//
// Session generations are ≥ 2^31 and name, in every sealed object's header, which
// session's data key sealed it.

const writerMagic = Buffer.from("CKW1", "ascii");
const sessionMagic = Buffer.from("CKS1", "ascii");
export const firstSessionGeneration = 0x8000_0000;

export function isSessionGeneration(g: number): boolean {
  return g >= firstSessionGeneration;
}

export function readerIdentity(secret: Buffer, repositoryId: Buffer): string {
  const scalar = new Uint8Array(
    hkdfSync("sha256", secret, repositoryId, "coffer/v1 reader x25519", keyLength),
  );
  try {
    return bech32.encodeFromBytes("AGE-SECRET-KEY-", scalar).toUpperCase();
  } finally {
    scalar.fill(0);
  }
}

export function readerRecipient(secret: Buffer, repositoryId: Buffer): Promise<string> {
  return identityToRecipient(readerIdentity(secret, repositoryId));
}

export interface WriterRecord {
  repositoryId: Buffer;
  generation: number;
  chunker: Buffer;
  id: Buffer;
  metadata: Buffer;
  config: Buffer;
  recipient: string;
}

export function isWriterRecord(b: Buffer): boolean {
  return b.subarray(0, 4).equals(writerMagic);
}

export function isSessionRecord(b: Buffer): boolean {
  return b.subarray(0, 4).equals(sessionMagic);
}

export function encodeWriterRecord(r: WriterRecord): Buffer {
  const recipient = Buffer.from(r.recipient, "ascii");
  return Buffer.concat([
    writerMagic,
    r.repositoryId,
    u32(r.generation),
    r.chunker,
    r.id,
    r.metadata,
    r.config,
    Buffer.from([recipient.length]),
    recipient,
  ]);
}

export function decodeWriterRecord(b: Buffer): WriterRecord {
  const fixed = 4 + 32 + 4 + 4 * keyLength + 1;
  if (!isWriterRecord(b) || b.length < fixed || b.length !== fixed + (b[fixed - 1] as number)) {
    throw new KeyError("key envelope does not hold a coffer writer record");
  }
  const key = (i: number) => Buffer.from(b.subarray(40 + i * keyLength, 40 + (i + 1) * keyLength));
  return {
    repositoryId: Buffer.from(b.subarray(4, 36)),
    generation: b.readUInt32LE(36),
    chunker: key(0),
    id: key(1),
    metadata: key(2),
    config: key(3),
    recipient: b.subarray(fixed).toString("ascii"),
  };
}

/** The keys a writer holds for its base generation: reading any blob of it is refused. */
export function writerBaseKeys(r: WriterRecord): RepositoryKeys {
  const keys = {
    generation: r.generation,
    chunker: r.chunker,
    id: r.id,
    metadata: r.metadata,
    config: r.config,
  } as RepositoryKeys;
  Object.defineProperty(keys, "data", {
    enumerable: true,
    get() {
      throw new KeyError(
        "this is a writer-only key: it can back up but cannot read file contents, trees or old data; use a full key (passphrase, identity or --kms of an admin envelope)",
      );
    },
  });
  return keys;
}

/** A session's keys: its own data key on top of its base generation's other keys. */
export function sessionKeys(
  base: RepositoryKeys,
  generation: number,
  data: Buffer,
): RepositoryKeys {
  return {
    generation,
    chunker: base.chunker,
    id: base.id,
    metadata: base.metadata,
    config: base.config,
    data,
  };
}

export function sessionFileName(generation: number): string {
  return createHash("sha256").update("coffer/v1 session").update(u32(generation)).digest("hex");
}

export async function wrapSession(
  repositoryId: Buffer,
  generation: number,
  baseGeneration: number,
  data: Buffer,
  recipient: string,
): Promise<Buffer> {
  const plain = Buffer.concat([
    sessionMagic,
    repositoryId,
    u32(generation),
    u32(baseGeneration),
    data,
  ]);
  try {
    const e = new Encrypter();
    e.addRecipient(recipient);
    return Buffer.from(await e.encrypt(plain));
  } finally {
    plain.fill(0);
  }
}

/** Opens a session file with the reader identity; null when it is not one for this repository. */
export async function unwrapSession(
  file: Buffer,
  identities: readonly string[],
  repositoryId: Buffer,
): Promise<{ generation: number; baseGeneration: number; data: Buffer } | null> {
  const d = new Decrypter();
  for (const i of identities) d.addIdentity(i);
  let plain: Buffer;
  try {
    plain = Buffer.from(await decryptBytes(d, file));
  } catch {
    return null;
  }
  try {
    if (plain.length !== 4 + 32 + 8 + keyLength || !isSessionRecord(plain)) return null;
    if (!plain.subarray(4, 36).equals(repositoryId)) return null;
    const generation = plain.readUInt32LE(36);
    if (!isSessionGeneration(generation)) return null;
    return {
      generation,
      baseGeneration: plain.readUInt32LE(40),
      data: Buffer.from(plain.subarray(44)),
    };
  } finally {
    plain.fill(0);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
