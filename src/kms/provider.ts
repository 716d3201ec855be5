import type { Decrypter, Encrypter } from "age-encryption";

// Key providers wrap and unwrap the repository secret inside an age-format key envelope.
// Each provider contributes an age Recipient (to wrap) and/or Identity (to unwrap); the
// KMS and HSM providers of later releases plug in here as custom stanza types.

export interface KeyWrapper {
  /** Provider kind as shown to users: "passphrase", "age", ... */
  readonly kind: string;
  /** A non-secret reference users recognise (a recipient, a key id). */
  readonly reference: string;
  configureEncrypter(e: Encrypter): void | Promise<void>;
}

export interface KeyUnwrapper {
  readonly kind: string;
  configureDecrypter(d: Decrypter): void | Promise<void>;
}
