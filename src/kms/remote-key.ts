import type { Decrypter, Encrypter, Identity, Recipient } from "age-encryption";
import { Stanza } from "age-encryption";
import { KeyError } from "../errors.js";
import type { EnvelopeBinding, KeyUnwrapper, KeyWrapper } from "./provider.js";

// A key held by a service (KMS, Vault, HSM) wraps the age file key of an envelope: the
// envelope stays one age file with one custom stanza (docs/FORMAT.md §Key envelopes):
//
//   -> coffer-<service> <key reference> [<key version>]
//   body = the service's ciphertext of the 16-byte file key
//
// The service binds the ciphertext to the repository and envelope id (EnvelopeBinding),
// so a stanza copied into another envelope or repository does not unwrap.

/** What a key service does for one key. Implementations throw KeyError naming the cause. */
export interface RemoteKeyService {
  /** Provider name as users write it in a SPEC: "aws-kms", "vault", ... */
  readonly kind: string;
  /** The age stanza type: "coffer-aws-kms", ... */
  readonly stanzaType: string;
  /** The key reference written to the stanza: no spaces, printable ASCII. */
  readonly reference: string;
  encrypt(
    plaintext: Buffer,
    binding: EnvelopeBinding,
  ): Promise<{ ciphertext: Buffer; version?: string }>;
  decrypt(
    ciphertext: Buffer,
    version: string | undefined,
    binding: EnvelopeBinding,
  ): Promise<Buffer>;
}

/** Stanza args must be non-empty printable ASCII without spaces (age's header grammar). */
export function checkStanzaArg(arg: string, what: string): string {
  if (!/^[\x21-\x7e]+$/.test(arg)) {
    throw new KeyError(
      `${what} "${arg}" cannot be stored in an envelope: use printable ASCII without spaces`,
    );
  }
  return arg;
}

class RemoteRecipient implements Recipient {
  constructor(
    private readonly service: RemoteKeyService,
    private readonly binding: EnvelopeBinding,
  ) {}

  async wrapFileKey(fileKey: Uint8Array): Promise<Stanza[]> {
    const { ciphertext, version } = await this.service.encrypt(Buffer.from(fileKey), this.binding);
    const args = [this.service.stanzaType, this.service.reference];
    if (version !== undefined) args.push(checkStanzaArg(version, "key version"));
    return [new Stanza(args, ciphertext)];
  }
}

class RemoteIdentity implements Identity {
  constructor(
    private readonly service: RemoteKeyService,
    private readonly binding: EnvelopeBinding,
  ) {}

  async unwrapFileKey(stanzas: Stanza[]): Promise<Uint8Array | null> {
    for (const s of stanzas) {
      if (s.args[0] !== this.service.stanzaType || s.args[1] !== this.service.reference) continue;
      if (s.args.length > 3) throw new KeyError(`invalid ${this.service.stanzaType} stanza`);
      const fileKey = await this.service.decrypt(Buffer.from(s.body), s.args[2], this.binding);
      if (fileKey.length !== 16) {
        fileKey.fill(0);
        throw new KeyError(
          `${this.service.kind} ${this.service.reference}: unwrapped a key of the wrong length`,
        );
      }
      return fileKey;
    }
    return null;
  }
}

/** Wraps and unwraps with one key of a key service. */
export class RemoteKeyProvider implements KeyWrapper, KeyUnwrapper {
  readonly kind: string;
  readonly reference: string;

  constructor(readonly service: RemoteKeyService) {
    this.kind = service.kind;
    this.reference = service.reference;
  }

  configureEncrypter(e: Encrypter, binding: EnvelopeBinding): void {
    e.addRecipient(new RemoteRecipient(this.service, binding));
  }

  configureDecrypter(d: Decrypter, binding: EnvelopeBinding): void {
    d.addIdentity(new RemoteIdentity(this.service, binding));
  }
}
