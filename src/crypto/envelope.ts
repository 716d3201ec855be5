import { randomBytes } from "node:crypto";
import { Decrypter, Encrypter } from "age-encryption";
import { CofferError, KeyError } from "../errors.js";
import type { EnvelopeBinding, KeyUnwrapper, KeyWrapper } from "../kms/provider.js";
import { keyLength } from "./keys.js";

// A key envelope (keys/<id>) is a standard age file; its plaintext is a key record
// (docs/FORMAT.md §Key envelopes). Binding the repository id inside the encrypted record
// makes an envelope copied from another repository fail to open.
//
//   CKY1: magic || repository id (32) || generation u32 || secret (32)            (72 bytes)
//   CKY2: magic || repository id (32) || created ms u64 || count u32
//         || count × (generation u32 || secret (32)), generations ascending; the last one
//         is the record's (current) generation, the others are older generations' secrets
//         so that one envelope reads all data (key rotate --new-generation).

const recordMagicV1 = Buffer.from("CKY1", "ascii");
const recordMagicV2 = Buffer.from("CKY2", "ascii");
export const keyRecordLength = recordMagicV1.length + 32 + 4 + keyLength;
const maxGenerations = 100_000;

export interface GenerationSecret {
  generation: number;
  secret: Buffer;
}

export interface KeyRecord {
  repositoryId: Buffer;
  generation: number;
  secret: Buffer;
  /** When the envelope was written (CKY2 records). */
  created?: Date;
  /** Secrets of earlier generations, ascending (CKY2 records). */
  older?: GenerationSecret[];
}

export function newSecret(): Buffer {
  return randomBytes(keyLength);
}

export function encodeKeyRecord(r: KeyRecord): Buffer {
  const all = [...(r.older ?? []), { generation: r.generation, secret: r.secret }];
  const out = Buffer.alloc(4 + 32 + 8 + 4 + all.length * (4 + keyLength));
  let o = recordMagicV2.copy(out, 0);
  o += r.repositoryId.copy(out, o);
  o = out.writeBigUInt64LE(BigInt((r.created ?? new Date()).getTime()), o);
  o = out.writeUInt32LE(all.length, o);
  for (const g of all) {
    o = out.writeUInt32LE(g.generation, o);
    o += g.secret.copy(out, o);
  }
  return out;
}

export function decodeKeyRecord(b: Buffer): KeyRecord {
  const magic = b.subarray(0, 4);
  if (b.length === keyRecordLength && magic.equals(recordMagicV1)) {
    return {
      repositoryId: Buffer.from(b.subarray(4, 36)),
      generation: b.readUInt32LE(36),
      secret: Buffer.from(b.subarray(40, 40 + keyLength)),
    };
  }
  const bad = new KeyError("key envelope does not hold a coffer key record");
  if (!magic.equals(recordMagicV2) || b.length < 48) throw bad;
  const count = b.readUInt32LE(44);
  if (count < 1 || count > maxGenerations || b.length !== 48 + count * (4 + keyLength)) throw bad;
  const all: GenerationSecret[] = [];
  for (let i = 0, o = 48; i < count; i++, o += 4 + keyLength) {
    const generation = b.readUInt32LE(o);
    if (generation === 0 || (all.length > 0 && generation <= (all.at(-1)?.generation ?? 0))) {
      throw bad;
    }
    all.push({ generation, secret: Buffer.from(b.subarray(o + 4, o + 4 + keyLength)) });
  }
  const current = all.pop() as GenerationSecret;
  return {
    repositoryId: Buffer.from(b.subarray(4, 36)),
    generation: current.generation,
    secret: current.secret,
    created: new Date(Number(b.readBigUInt64LE(36))),
    older: all,
  };
}

/** Overwrites every secret a record holds. */
export function wipeKeyRecord(r: KeyRecord): void {
  r.secret.fill(0);
  for (const g of r.older ?? []) g.secret.fill(0);
}

export async function wrapKeyRecord(
  record: KeyRecord,
  wrapper: KeyWrapper,
  envelopeId: string,
): Promise<Buffer> {
  const e = new Encrypter();
  await wrapper.configureEncrypter(e, { repositoryId: record.repositoryId, envelopeId });
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
  binding: EnvelopeBinding,
): Promise<KeyRecord | null> {
  const buf = await unwrapEnvelope(envelope, unwrappers, binding);
  if (buf === null) return null;
  try {
    // Writer records (CKW1) and sessions (CKS1) hold no repository secret.
    if (/^CKW1|^CKS1/.test(buf.subarray(0, 4).toString("latin1"))) return null;
    return decodeKeyRecord(buf);
  } finally {
    buf.fill(0);
  }
}

/**
 * age's decrypt of whole bytes, collected here: age-encryption's own collection goes through
 * fetch's Response, and loading fetch costs about 20 ms of every command's start-up. The
 * pieces are wiped once copied (they hold key material).
 */
export async function decryptBytes(d: Decrypter, data: Uint8Array): Promise<Uint8Array> {
  const input = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(data);
      c.close();
    },
  });
  const parts: Uint8Array[] = [];
  try {
    for await (const part of await d.decrypt(input)) parts.push(part);
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  } finally {
    for (const p of parts) p.fill(0);
  }
}

/**
 * The plaintext of one envelope, opened with any of the unwrappers; null when none of them
 * matches its stanzas. The caller wipes it.
 */
export async function unwrapEnvelope(
  envelope: Buffer,
  unwrappers: readonly KeyUnwrapper[],
  binding: EnvelopeBinding,
): Promise<Buffer | null> {
  const d = new Decrypter();
  for (const u of unwrappers) await u.configureDecrypter(d, binding);
  let plaintext: Uint8Array;
  try {
    plaintext = await decryptBytes(d, envelope);
  } catch (err) {
    // A key service's failure (access denied, unreachable) is already a one-line KeyError.
    if (err instanceof CofferError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    if (/no identity matched/.test(msg)) return null;
    throw new KeyError(`cannot open key envelope: ${msg}`);
  }
  const buf = Buffer.from(plaintext);
  plaintext.fill(0);
  return buf;
}

/** The age stanzas' type and args ("-> type args..." lines), read from the header without a key. */
export function envelopeStanzas(envelope: Buffer): string[][] {
  const text = envelope.subarray(0, Math.min(envelope.length, 64 * 1024)).toString("latin1");
  const out: string[][] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("---")) break;
    if (line.startsWith("-> ")) out.push(line.slice(3).split(" "));
  }
  return out;
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
