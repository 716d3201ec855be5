import { readFile, stat } from "node:fs/promises";
import { UserError } from "../src/errors.js";
import { AgeIdentityProvider, AgeRecipientProvider } from "../src/kms/age-identity.js";
import { PassphraseProvider } from "../src/kms/passphrase.js";
import type { KeyUnwrapper, KeyWrapper } from "../src/kms/provider.js";
import type { RemoteKeyProvider } from "../src/kms/remote-key.js";
import { parseKmsSpec } from "../src/kms/spec.js";
import { warn } from "./output.js";
import { readPassphraseFromTerminal } from "./prompt.js";

export interface KeyArgs {
  "passphrase-file"?: string;
  identity?: string[];
  recipient?: string[];
  "scrypt-work-factor"?: number;
  /** Key service SPECs (docs/KEYS.md); COFFER_KMS holds one when none is given. */
  kms?: string[];
}

/** The key services given with --kms (repeatable) or COFFER_KMS. */
export function kmsProviders(args: KeyArgs): RemoteKeyProvider[] {
  const specs = [...(args.kms ?? [])];
  if (specs.length === 0 && process.env.COFFER_KMS) specs.push(process.env.COFFER_KMS);
  return specs.map(parseKmsSpec);
}

async function readSecretFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    const st = await stat(file);
    if ((st.mode & 0o077) !== 0) {
      warn(`${file} is readable by group or others: chmod 600 it (it holds a ${what})`);
    }
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UserError(
      `cannot read ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  return text;
}

/**
 * The passphrase, from (in order) --passphrase-file, COFFER_PASSPHRASE_FILE,
 * COFFER_PASSPHRASE, or a prompt on the terminal. The environment variable is removed
 * once read, so child processes (dump commands, hooks) do not inherit it.
 */
export async function passphrase(args: KeyArgs): Promise<string | null> {
  const file = args["passphrase-file"] ?? process.env.COFFER_PASSPHRASE_FILE;
  const fromEnv = process.env.COFFER_PASSPHRASE;
  delete process.env.COFFER_PASSPHRASE;
  if (file !== undefined && file !== "") {
    const text = await readSecretFile(file, "passphrase");
    return text.replace(/\r?\n$/, "");
  }
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return null;
}

async function identities(args: KeyArgs): Promise<AgeIdentityProvider[]> {
  const files = [...(args.identity ?? [])];
  if (files.length === 0 && process.env.COFFER_IDENTITY_FILE)
    files.push(process.env.COFFER_IDENTITY_FILE);
  const out: AgeIdentityProvider[] = [];
  for (const f of files) {
    out.push(await AgeIdentityProvider.fromFileText(await readSecretFile(f, "age identity"), f));
  }
  return out;
}

/** What opens an existing repository. Prompts for a passphrase when nothing else is given. */
export async function unwrappers(args: KeyArgs): Promise<KeyUnwrapper[]> {
  const out: KeyUnwrapper[] = [...kmsProviders(args), ...(await identities(args))];
  let pass = await passphrase(args);
  if (pass === null && out.length === 0 && process.stdin.isTTY) {
    pass = await readPassphraseFromTerminal("repository passphrase: ");
  }
  if (pass !== null) out.push(new PassphraseProvider(pass));
  return out;
}

/** What init wraps the new repository secret for: one key envelope each. */
export async function wrappers(args: KeyArgs): Promise<KeyWrapper[]> {
  const out: KeyWrapper[] = [...kmsProviders(args)];
  for (const id of await identities(args)) out.push(id);
  for (const r of args.recipient ?? []) out.push(new AgeRecipientProvider(r));
  let pass = await passphrase(args);
  if (pass === null && out.length === 0 && process.stdin.isTTY) {
    pass = await readPassphraseFromTerminal("new repository passphrase: ");
    const again = await readPassphraseFromTerminal("repeat passphrase: ");
    if (again !== pass) throw new UserError("the passphrases do not match: run init again");
  }
  if (pass !== null) out.push(new PassphraseProvider(pass, args["scrypt-work-factor"]));
  if (out.length === 0) {
    throw new UserError(
      "no key given: set COFFER_PASSPHRASE or --passphrase-file, or give --identity FILE, --recipient AGE1... or --kms SPEC",
    );
  }
  return out;
}
