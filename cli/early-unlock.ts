import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import * as path from "node:path";
import { startScryptKey } from "../src/kms/scrypt-kdf.js";

// A head start for the passphrase KDF. scrypt at age's work factors takes about half a
// second, and loading coffer's modules about a third of one: started here, the two
// overlap. Only Node built-ins are imported. This is a guess made before the command line
// is parsed: when it guesses wrong (another passphrase, another key file, an option it
// does not read) the real unlock derives the key itself, so it can cost time, never
// change an outcome. It reads no option that yargs would read differently: only --repo,
// -r, --passphrase-file and the environment, and only for commands that open a repository.

const repositoryCommands = new Set([
  "backup",
  "snapshots",
  "ls",
  "restore",
  "export",
  "verify",
  "forget",
  "prune",
  "key",
]);
/** An age scrypt envelope's header: version line, then the stanza `-> scrypt SALT LOGN`. */
const scryptHeader = /^age-encryption\.org\/v1\n-> scrypt ([A-Za-z0-9+/]{22}) ([1-9][0-9]?)\n/;

function optionValue(argv: readonly string[], names: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") break;
    for (const n of names) {
      if (a === n) value = argv[i + 1];
      else if (a.startsWith(`${n}=`)) value = a.slice(n.length + 1);
    }
  }
  return value;
}

function passphraseFrom(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  const file = optionValue(argv, ["--passphrase-file"]) ?? env.COFFER_PASSPHRASE_FILE;
  if (file !== undefined && file !== "") {
    return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  }
  const text = env.COFFER_PASSPHRASE;
  return text === "" ? undefined : text;
}

/** The first key envelope's header in name order, when it is a scrypt one. */
function firstScryptStanza(repo: string): { salt: Buffer; logN: number } | null {
  const dir = path.join(repo, "keys");
  const names = readdirSync(dir)
    .filter((n) => !n.startsWith("."))
    .sort();
  const first = names[0];
  if (first === undefined) return null;
  const fd = openSync(path.join(dir, first), "r");
  const head = Buffer.alloc(128);
  let n: number;
  try {
    n = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const m = scryptHeader.exec(head.subarray(0, n).toString("latin1"));
  if (m === null) return null;
  const logN = Number(m[2]);
  if (logN < 10 || logN > 20) return null;
  return { salt: Buffer.from(m[1] as string, "base64"), logN };
}

export function startEarlyUnlock(argv: readonly string[], env: NodeJS.ProcessEnv): void {
  try {
    const command = argv.find((a) => !a.startsWith("-"));
    if (command === undefined || !repositoryCommands.has(command)) return;
    if (argv.some((a) => a === "--help" || a === "-h" || a === "--version")) return;
    const repo = optionValue(argv, ["--repo", "-r"]) ?? env.COFFER_REPO;
    // Local repositories only: a remote one's key files cost a round trip to find.
    if (repo === undefined || repo === "" || /^[a-z][a-z0-9+.-]*:\/\//i.test(repo)) return;
    const passphrase = passphraseFrom(argv, env);
    if (passphrase === undefined) return;
    const stanza = firstScryptStanza(repo);
    if (stanza !== null) startScryptKey(passphrase, stanza.salt, stanza.logN);
  } catch {
    // Any surprise: no head start. The real unlock reports problems properly.
  }
}
