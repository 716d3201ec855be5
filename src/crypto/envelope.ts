import { randomBytes } from "node:crypto";
import { Decrypter, Encrypter } from "age-encryption";
import { KeyError } from "../errors.js";
import type { KeyUnwrapper, KeyWrapper } from "../kms/provider.js";
import { keyLength } from "./keys.js";

// A key envelope (keys/<id>) is a standard age file; its plaintext is the 72-byte key
// record below (docs/FORMAT.md §Key envelopes). Binding the repository id inside the
// encrypted record makes an envelope copied from another repository fail to open.

const recordMagic = Buffer.from("CKY1", "ascii");
export const keyRecordLength = recordMagic.length + 32 + 4 + keyLength;

export interface KeyRecord {
  repositoryId: Buffer;
  generation: number;
  secret: Buffer;
}

export function newSecret(): Buffer {
  return randomBytes(keyLength);
}

export function encodeKeyRecord(r: KeyRecord): Buffer {
  const out = Buffer.alloc(keyRecordLength);
  let o = recordMagic.copy(out, 0);
  o += r.repositoryId.copy(out, o);
  o = out.writeUInt32LE(r.generation, o);
  r.secret.copy(out, o);
  return out;
}

export function decodeKeyRecord(b: Buffer): KeyRecord {
  if (b.length !== keyRecordLength || !b.subarray(0, 4).equals(recordMagic)) {
    throw new KeyError("key envelope does not hold a coffer key record");
  }
  return {
    repositoryId: Buffer.from(b.subarray(4, 36)),
    generation: b.readUInt32LE(36),
    secret: Buffer.from(b.subarray(40, 40 + keyLength)),
  };
}

export async function wrapKeyRecord(record: KeyRecord, wrapper: KeyWrapper): Promise<Buffer> {
  const e = new Encrypter();
  await wrapper.configureEncrypter(e);
  const plaintext = encodeKeyRecord(record);
  try {
    return Buffer.from(await e.encrypt(plaintext));
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Opens one envelope with any of the unwrappers. Returns null when none of them matches
 * the envelope's stanzas (another passphrase or identity); throws KeyError when a stanza
 * matched but the envelope is malformed.
 */
export async function unwrapKeyRecord(
  envelope: Buffer,
  unwrappers: readonly KeyUnwrapper[],
): Promise<KeyRecord | null> {
  const d = new Decrypter();
  for (const u of unwrappers) await u.configureDecrypter(d);
  let plaintext: Uint8Array;
  try {
    plaintext = await d.decrypt(envelope);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/no identity matched/.test(msg)) return null;
    throw new KeyError(`cannot open key envelope: ${msg}`);
  }
  const buf = Buffer.from(plaintext);
  plaintext.fill(0);
  try {
    return decodeKeyRecord(buf);
  } finally {
    buf.fill(0);
  }
}

/** The age stanza types an envelope is wrapped with, read from its header without a key. */
export function envelopeStanzaTypes(envelope: Buffer): string[] {
  const text = envelope.subarray(0, Math.min(envelope.length, 64 * 1024)).toString("latin1");
  const types: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("---")) break;
    const m = /^-> (\S+)/.exec(line);
    if (m?.[1]) types.push(m[1]);
  }
  return types;
}
