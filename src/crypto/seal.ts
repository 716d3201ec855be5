import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  type DecipherGCM,
  randomFillSync,
} from "node:crypto";
import { IntegrityError } from "../errors.js";

// Sealed object layout (docs/FORMAT.md §Sealed objects):
//   generation u32 LE || nonce (12) || AES-256-GCM ciphertext || tag (16)
// Associated data binds every object to its repository, format version, kind, id and key
// generation, so an object that is moved, swapped or relabelled fails to open.

export const formatVersion = 1;
export const nonceLength = 12;
export const tagLength = 16;
export const generationLength = 4;
export const sealOverhead = generationLength + nonceLength + tagLength;

export const ObjectKind = {
  data: 1,
  tree: 2,
  packHeader: 3,
  index: 4,
  snapshot: 5,
  lock: 6,
} as const;
export type ObjectKind = (typeof ObjectKind)[keyof typeof ObjectKind];

const aadMagic = Buffer.from("coffer", "ascii");

export function associatedData(
  repositoryId: Buffer,
  kind: ObjectKind,
  id: Buffer,
  generation: number,
): Buffer {
  const aad = Buffer.alloc(aadMagic.length + 1 + 32 + 1 + 32 + 4);
  let o = aadMagic.copy(aad, 0);
  o = aad.writeUInt8(formatVersion, o);
  o += repositoryId.copy(aad, o);
  o = aad.writeUInt8(kind, o);
  o += id.copy(aad, o);
  aad.writeUInt32LE(generation, o);
  return aad;
}

/** The key one blob is sealed under: HMAC-SHA256(data key, blob id). */
export function blobKey(dataKey: Buffer, blobId: Buffer): Buffer {
  return createHmac("sha256", dataKey).update(blobId).digest();
}

/**
 * Nonces come from a pool of CSPRNG output filled 4 KiB at a time: one randomFillSync per
 * small blob costs more than sealing it. Each pool byte is used once.
 */
const randomPool = Buffer.alloc(4096);
let randomOffset = randomPool.length;

function takeRandom(into: Buffer): void {
  if (randomOffset + into.length > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  randomPool.copy(into, 0, randomOffset, randomOffset + into.length);
  randomPool.fill(0, randomOffset, randomOffset + into.length);
  randomOffset += into.length;
}

/** Seals plaintext, given whole or as parts that are sealed as their concatenation. */
export function seal(
  key: Buffer,
  aad: Buffer,
  generation: number,
  plaintext: Buffer | readonly Buffer[],
): Buffer {
  const parts = Buffer.isBuffer(plaintext) ? [plaintext] : plaintext;
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = Buffer.allocUnsafe(sealOverhead + length);
  out.writeUInt32LE(generation, 0);
  const nonce = out.subarray(generationLength, generationLength + nonceLength);
  takeRandom(nonce);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(aad);
  let o = generationLength + nonceLength;
  for (const p of parts) o += cipher.update(p).copy(out, o);
  o += cipher.final().copy(out, o);
  cipher.getAuthTag().copy(out, o);
  return out;
}

/** The generation a sealed object claims; authenticated only once `open` succeeds. */
export function sealedGeneration(sealed: Buffer): number {
  if (sealed.length < sealOverhead) throw new IntegrityError("sealed object is truncated");
  return sealed.readUInt32LE(0);
}

/**
 * Checks a sealed object's framing and generation and returns a decipher for its
 * ciphertext (tag and associated data set): `open`, and verify's scratch-memory checker,
 * run the ciphertext through it.
 */
export function decipherFor(
  key: Buffer,
  aad: Buffer,
  sealed: Buffer,
  what: string,
): { decipher: DecipherGCM; ciphertext: Buffer } {
  if (sealed.length < sealOverhead) throw new IntegrityError(`${what} is truncated`);
  // The generation in the clear must be the one the associated data (last 4 bytes) binds.
  if (!sealed.subarray(0, generationLength).equals(aad.subarray(aad.length - generationLength))) {
    throw new IntegrityError(`${what} names the wrong key generation: it is damaged or forged`);
  }
  const nonce = sealed.subarray(generationLength, generationLength + nonceLength);
  const decipher = createDecipheriv("aes-256-gcm", key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - tagLength));
  return {
    decipher,
    ciphertext: sealed.subarray(generationLength + nonceLength, sealed.length - tagLength),
  };
}

/** Opens a sealed object or throws IntegrityError; `what` names it in the message. */
export function open(key: Buffer, aad: Buffer, sealed: Buffer, what: string): Buffer {
  const { decipher, ciphertext } = decipherFor(key, aad, sealed, what);
  try {
    const head = decipher.update(ciphertext);
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    throw new IntegrityError(`${what} failed authentication (damaged, truncated or forged)`);
  }
}
