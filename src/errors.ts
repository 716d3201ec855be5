// Errors are values with a kind; the CLI maps each kind to an exit code in one place
// (cli/exit-codes.ts). Messages are one line and say what to do; they never carry secrets.

export type ErrorKind = "user" | "repo-not-found" | "lock" | "key" | "integrity";

export class CofferError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.kind = kind;
    this.name = new.target.name;
  }
}

/** Bad input or a state the user can fix: a missing path, a non-empty init directory. */
export class UserError extends CofferError {
  constructor(message: string) {
    super("user", message);
  }
}

export class RepoNotFoundError extends CofferError {
  constructor(message: string) {
    super("repo-not-found", message);
  }
}

export class LockError extends CofferError {
  constructor(message: string) {
    super("lock", message);
  }
}

/** Wrong passphrase, identity or key envelope: the repository secret could not be unwrapped. */
export class KeyError extends CofferError {
  constructor(message: string) {
    super("key", message);
  }
}

/** Stored data is damaged, missing or forged. */
export class IntegrityError extends CofferError {
  constructor(message: string) {
    super("integrity", message);
  }
}
