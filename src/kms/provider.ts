import type { Decrypter, Encrypter } from "age-encryption";

// Key providers wrap and unwrap the repository secret inside an age-format key envelope.
// Each provider contributes an age Recipient (to wrap) and/or Identity (to unwrap); the
// KMS and HSM providers plug in as custom stanza types (docs/FORMAT.md §Key envelopes).

/**
 * What one envelope is bound to. Remote providers pass it to the key service as
 * encryption context / associated data, so a wrapped file key only unwraps for the
 * repository and envelope it was made for (and the service's audit log names both).
 */
export interface EnvelopeBinding {
  repositoryId: Buffer;
  /** The envelope's object name under keys/ (64 hex digits). */
  envelopeId: string;
}

export interface KeyWrapper {
  /** Provider kind as shown to users: "passphrase", "age", "aws-kms", ... */
  readonly kind: string;
  /** A non-secret reference users recognise (a recipient, a key id). */
  readonly reference: string;
  configureEncrypter(e: Encrypter, binding: EnvelopeBinding): void | Promise<void>;
}

export interface KeyUnwrapper {
  readonly kind: string;
  configureDecrypter(d: Decrypter, binding: EnvelopeBinding): void | Promise<void>;
}

/** The associated data remote services bind a wrapped file key to (FORMAT §Key envelopes). */
export function envelopeAssociatedData(b: EnvelopeBinding): Buffer {
  return Buffer.concat([
    Buffer.from("coffer/v1 key envelope\0", "ascii"),
    b.repositoryId,
    Buffer.from(b.envelopeId, "hex"),
  ]);
}

/** The same binding as a key/value encryption context (AWS KMS). */
export function envelopeContext(b: EnvelopeBinding): Record<string, string> {
  return { "coffer:repository": b.repositoryId.toString("hex"), "coffer:envelope": b.envelopeId };
}
