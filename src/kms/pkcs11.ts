import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { KeyError } from "../errors.js";
import type { EnvelopeBinding } from "./provider.js";
import { envelopeAssociatedData } from "./provider.js";
import type { RemoteKeyService } from "./remote-key.js";

// A PKCS#11 token (HSM, SoftHSM2, YubiHSM, CloudHSM's PKCS#11 library): the file key is
// sealed with CKM_AES_GCM under a secret key that never leaves the token
// (CKA_EXTRACTABLE false, CKA_SENSITIVE true). Body = IV (12) || ciphertext || tag (16);
// AAD = the envelope binding. Single-part C_Encrypt / C_Decrypt calls: multi-part GCM
// decrypt fails on SoftHSM2 (CKR_BUFFER_TOO_SMALL). The PIN comes from COFFER_PKCS11_PIN
// or the file in COFFER_PKCS11_PIN_FILE, never from argv.

export interface Pkcs11Spec {
  module: string;
  token?: string;
  slot?: number;
  key: string;
}

const ivLength = 12;
const tagLength = 16;

let cachedPin: string | undefined;

/** Read once; COFFER_PKCS11_PIN is then removed so child processes do not inherit it. */
function readPin(): string {
  if (cachedPin) return cachedPin;
  const fromEnv = process.env.COFFER_PKCS11_PIN;
  delete process.env.COFFER_PKCS11_PIN;
  if (fromEnv) {
    cachedPin = fromEnv;
    return fromEnv;
  }
  const file = process.env.COFFER_PKCS11_PIN_FILE;
  if (file) {
    try {
      cachedPin = readFileSync(file, "utf8").replace(/\r?\n$/, "");
      return cachedPin;
    } catch (err) {
      throw new KeyError(
        `pkcs11: cannot read COFFER_PKCS11_PIN_FILE ${file}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
  }
  throw new KeyError("pkcs11: no PIN: set COFFER_PKCS11_PIN or COFFER_PKCS11_PIN_FILE");
}

/** The PKCS#11 return code in words, from a pkcs11js error ("CKR_PIN_INCORRECT:160"). */
function pkcs11Cause(err: unknown): string {
  const msg = (err as Error)?.message ?? String(err);
  const code = /CKR_[A-Z_]+/.exec(msg)?.[0];
  switch (code) {
    case "CKR_PIN_INCORRECT":
      return "wrong PIN (CKR_PIN_INCORRECT)";
    case "CKR_PIN_LOCKED":
      return "the PIN is locked (CKR_PIN_LOCKED)";
    case "CKR_ENCRYPTED_DATA_INVALID":
    case "CKR_ENCRYPTED_DATA_LEN_RANGE":
      return "the wrapped key does not decrypt: made for another repository, envelope or key, or damaged";
    case "CKR_KEY_FUNCTION_NOT_PERMITTED":
      return "the key may not do this (check CKA_ENCRYPT / CKA_DECRYPT)";
    case "CKR_MECHANISM_INVALID":
      return "the token has no AES-GCM (CKM_AES_GCM)";
  }
  return code ?? msg.split("\n")[0] ?? "error";
}

export class Pkcs11Service implements RemoteKeyService {
  readonly kind = "pkcs11";
  readonly stanzaType = "coffer-pkcs11";
  readonly reference: string;
  readonly #spec: Pkcs11Spec;

  constructor(spec: Pkcs11Spec) {
    this.#spec = spec;
    const where =
      spec.token !== undefined ? `token=${encodeURIComponent(spec.token)}` : `slot=${spec.slot}`;
    this.reference = `${where};key=${encodeURIComponent(spec.key)}`;
  }

  /** Opens a logged-in session, runs fn with the key, and closes everything again. */
  private async withKey<T>(
    op: string,
    fn: (
      g: typeof import("graphene-pk11"),
      session: import("graphene-pk11").Session,
      key: import("graphene-pk11").SecretKey,
    ) => T,
  ): Promise<T> {
    const fail = (cause: string) =>
      new KeyError(`pkcs11 ${this.reference}: ${op} failed: ${cause}`);
    let g: typeof import("graphene-pk11");
    try {
      g = await import("graphene-pk11");
    } catch {
      throw fail("the graphene-pk11 module is not installed");
    }
    let mod: import("graphene-pk11").Module;
    try {
      mod = g.Module.load(this.#spec.module, "coffer");
      mod.initialize();
    } catch (err) {
      throw fail(`cannot load PKCS#11 module ${this.#spec.module}: ${pkcs11Cause(err)}`);
    }
    try {
      const slots = mod.getSlots(true);
      let slot: import("graphene-pk11").Slot | undefined;
      for (let i = 0; i < slots.length; i++) {
        const s = slots.items(i);
        const match =
          this.#spec.slot !== undefined
            ? i === this.#spec.slot
            : s.getToken().label.trim() === this.#spec.token;
        if (match) {
          slot = s;
          break;
        }
      }
      if (slot === undefined) throw fail("no such token (check token=/slot= and the module)");
      const session = slot.open(g.SessionFlag.SERIAL_SESSION);
      try {
        try {
          session.login(readPin(), g.UserType.USER);
        } catch (err) {
          if (err instanceof KeyError) throw err;
          throw fail(pkcs11Cause(err));
        }
        const found = session.find({ class: g.ObjectClass.SECRET_KEY, label: this.#spec.key });
        if (found.length === 0)
          throw fail(`no secret key labelled "${this.#spec.key}" on the token`);
        if (found.length > 1)
          throw fail(
            `${found.length} secret keys are labelled "${this.#spec.key}": labels must be unique`,
          );
        const key = found.items(0).toType<import("graphene-pk11").SecretKey>();
        try {
          return fn(g, session, key);
        } catch (err) {
          if (err instanceof KeyError) throw err;
          throw fail(pkcs11Cause(err));
        }
      } finally {
        try {
          session.logout();
        } catch {
          // not logged in
        }
        session.close();
      }
    } finally {
      mod.finalize();
    }
  }

  async encrypt(plaintext: Buffer, binding: EnvelopeBinding): Promise<{ ciphertext: Buffer }> {
    return this.withKey("encrypt", (g, session, key) => {
      const iv = randomBytes(ivLength);
      const alg = {
        name: "AES_GCM",
        params: new g.AesGcm240Params(iv, envelopeAssociatedData(binding), 128),
      };
      const out = session
        .createCipher(alg, key)
        .once(plaintext, Buffer.alloc(plaintext.length + tagLength + 16));
      return { ciphertext: Buffer.concat([iv, out]) };
    });
  }

  async decrypt(
    ciphertext: Buffer,
    _version: string | undefined,
    binding: EnvelopeBinding,
  ): Promise<Buffer> {
    if (ciphertext.length < ivLength + tagLength)
      throw new KeyError("invalid coffer-pkcs11 stanza");
    return this.withKey("decrypt", (g, session, key) => {
      const iv = ciphertext.subarray(0, ivLength);
      const alg = {
        name: "AES_GCM",
        params: new g.AesGcm240Params(Buffer.from(iv), envelopeAssociatedData(binding), 128),
      };
      const out = session
        .createDecipher(alg, key)
        .once(Buffer.from(ciphertext.subarray(ivLength)), Buffer.alloc(ciphertext.length));
      return Buffer.from(out);
    });
  }
}
