import type { Decrypter, Encrypter } from "age-encryption";
import { UserError } from "../errors.js";
import type { KeyUnwrapper, KeyWrapper } from "./provider.js";

/** age's default; each unwrap costs about 2.5 s of scrypt in age-encryption on this class of CPU. */
export const defaultScryptWorkFactor = 18;
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

  configureEncrypter(e: Encrypter): void {
    e.setPassphrase(this.#passphrase);
    e.setScryptWorkFactor(this.#workFactor);
  }

  configureDecrypter(d: Decrypter): void {
    d.addPassphrase(this.#passphrase);
  }
}
