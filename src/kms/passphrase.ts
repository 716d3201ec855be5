import type { Decrypter, Encrypter } from "age-encryption";
import { UserError } from "../errors.js";
import type { KeyUnwrapper, KeyWrapper } from "./provider.js";
import { NativeScryptIdentity, NativeScryptRecipient } from "./scrypt-stanza.js";

/**
 * 2^17: scrypt then needs 128 MiB and about 0.7 s to unwrap (native scrypt). age's own
 * default is 18 (256 MiB); --scrypt-work-factor raises it up to 20.
 */
export const defaultScryptWorkFactor = 17;
/** age-encryption refuses to unwrap above 2^20. */
export const maxScryptWorkFactor = 20;
export const minScryptWorkFactor = 10;

/** The scrypt passphrase stanza of age. The passphrase is held only in memory. */
export class PassphraseProvider implements KeyWrapper, KeyUnwrapper {
  readonly kind = "passphrase";
  readonly reference = "scrypt";
  readonly #passphrase: string;
  readonly #workFactor: number;

  constructor(passphrase: string, workFactor = defaultScryptWorkFactor) {
    if (passphrase.length === 0)
      throw new UserError("the passphrase is empty: set a non-empty one");
    if (
      !Number.isInteger(workFactor) ||
      workFactor < minScryptWorkFactor ||
      workFactor > maxScryptWorkFactor
    ) {
      throw new UserError(
        `scrypt work factor must be an integer from ${minScryptWorkFactor} to ${maxScryptWorkFactor}`,
      );
    }
    this.#passphrase = passphrase;
    this.#workFactor = workFactor;
  }

  /** The same passphrase at another work factor (key rotate keeps an envelope's factor). */
  withWorkFactor(workFactor: number): PassphraseProvider {
    return new PassphraseProvider(this.#passphrase, workFactor);
  }

  configureEncrypter(e: Encrypter): void {
    e.addRecipient(new NativeScryptRecipient(this.#passphrase, this.#workFactor));
  }

  configureDecrypter(d: Decrypter): void {
    d.addIdentity(new NativeScryptIdentity(this.#passphrase));
  }
}
