import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Identity, Recipient } from "age-encryption";
import { Stanza } from "age-encryption";
import { deriveScryptKey as deriveKey } from "./scrypt-kdf.js";

// age's scrypt recipient stanza (C2SP age §scrypt), with node:crypto's native scrypt and
// ChaCha20-Poly1305 in place of age-encryption's pure-JS ones: the same bytes on disk,
// interoperable both ways, about twice as fast to unwrap.
//
//   -> scrypt <base64 salt (16 bytes)> <log2 N>
//   body = ChaCha20-Poly1305(key, nonce = 12 zero bytes, file key)
//   key  = scrypt(passphrase, "age-encryption.org/v1/scrypt" || salt, N, r = 8, p = 1, 32)

const saltLength = 16;
const fileKeyLength = 16;
const tagLength = 16;
/** age-encryption refuses to unwrap above 2^20; so do we. */
const maxLogN = 20;

/** Canonical unpadded base64, as age requires: anything else is not a valid stanza. */
function decodeBase64NoPad(s: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*$/.test(s)) return null;
  const b = Buffer.from(s, "base64");
  return b.toString("base64").replace(/=+$/, "") === s ? b : null;
}

export class NativeScryptRecipient implements Recipient {
  readonly #passphrase: string;
  readonly #logN: number;

  constructor(passphrase: string, logN: number) {
    this.#passphrase = passphrase;
    this.#logN = logN;
  }

  async wrapFileKey(fileKey: Uint8Array): Promise<Stanza[]> {
    const salt = randomBytes(saltLength);
    const key = await deriveKey(this.#passphrase, salt, this.#logN);
    const cipher = createCipheriv("chacha20-poly1305", key, Buffer.alloc(12), {
      authTagLength: tagLength,
    });
    const body = Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()]);
    key.fill(0);
    const saltText = salt.toString("base64").replace(/=+$/, "");
    return [new Stanza(["scrypt", saltText, String(this.#logN)], body)];
  }
}

export class NativeScryptIdentity implements Identity {
  readonly #passphrase: string;

  constructor(passphrase: string) {
    this.#passphrase = passphrase;
  }

  async unwrapFileKey(stanzas: Stanza[]): Promise<Uint8Array | null> {
    for (const s of stanzas) {
      if (s.args[0] !== "scrypt") continue;
      // age: a scrypt stanza must be the file's only stanza.
      if (stanzas.length !== 1)
        throw new Error("scrypt recipient is not the only one in the header");
      const [, saltText, logNText] = s.args;
      const salt =
        s.args.length === 3 && saltText !== undefined ? decodeBase64NoPad(saltText) : null;
      if (salt === null || salt.length !== saltLength || !/^[1-9][0-9]*$/.test(logNText ?? "")) {
        throw new Error("invalid scrypt stanza");
      }
      const logN = Number(logNText);
      if (logN > maxLogN) throw new Error("scrypt work factor is too high");
      if (s.body.length !== fileKeyLength + tagLength) throw new Error("invalid scrypt stanza");
      const key = await deriveKey(this.#passphrase, salt, logN);
      const body = Buffer.from(s.body);
      const decipher = createDecipheriv("chacha20-poly1305", key, Buffer.alloc(12), {
        authTagLength: tagLength,
      });
      decipher.setAuthTag(body.subarray(fileKeyLength));
      try {
        const fileKey = Buffer.concat([
          decipher.update(body.subarray(0, fileKeyLength)),
          decipher.final(),
        ]);
        return fileKey;
      } catch {
        return null; // another passphrase
      } finally {
        key.fill(0);
      }
    }
    return null;
  }
}
