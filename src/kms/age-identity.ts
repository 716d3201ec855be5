import type { Decrypter, Encrypter } from "age-encryption";
import { identityToRecipient } from "age-encryption";
import { UserError } from "../errors.js";
import type { KeyUnwrapper, KeyWrapper } from "./provider.js";

/** Wraps for an age recipient (`age1...`, `age1pq1...`). Cannot unwrap: least privilege. */
export class AgeRecipientProvider implements KeyWrapper {
  readonly kind = "age";
  readonly reference: string;

  constructor(recipient: string) {
    if (!/^age1[0-9a-z]+$/.test(recipient)) {
      throw new UserError(`not an age recipient: expected "age1..." (from age-keygen -y)`);
    }
    this.reference = recipient;
  }

  configureEncrypter(e: Encrypter): void {
    try {
      e.addRecipient(this.reference);
    } catch (err) {
      throw new UserError(`invalid age recipient ${this.reference}: ${(err as Error).message}`);
    }
  }
}

/** Unwraps with an age identity (`AGE-SECRET-KEY-1...`) and wraps for its recipient. */
export class AgeIdentityProvider implements KeyWrapper, KeyUnwrapper {
  readonly kind = "age";
  readonly reference: string;
  readonly #identities: string[];

  private constructor(identities: string[], recipient: string) {
    this.#identities = identities;
    this.reference = recipient;
  }

  /** Parses an identity file in age-keygen's format: comments, then one key per line. */
  static async fromFileText(text: string, fileName: string): Promise<AgeIdentityProvider> {
    const identities = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l.length > 0 && !l.startsWith("#"));
    const first = identities[0];
    if (
      first === undefined ||
      identities.some((i) => !/^AGE-SECRET-KEY-(PQ-)?1[0-9A-Z]+$/.test(i))
    ) {
      throw new UserError(
        `${fileName} is not an age identity file: expected AGE-SECRET-KEY-1... lines (age-keygen)`,
      );
    }
    let recipient: string;
    try {
      recipient = await identityToRecipient(first);
    } catch {
      throw new UserError(`${fileName} holds an invalid age identity`);
    }
    return new AgeIdentityProvider(identities, recipient);
  }

  configureEncrypter(e: Encrypter): void {
    e.addRecipient(this.reference);
  }

  configureDecrypter(d: Decrypter): void {
    for (const i of this.#identities) d.addIdentity(i);
  }
}
