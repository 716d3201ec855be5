import { scrypt, timingSafeEqual } from "node:crypto";

// age's scrypt KDF (C2SP age §scrypt) on node:crypto, and a one-entry head start for it.
// This module imports only Node built-ins: cli/main.ts loads it before the rest of coffer,
// so the ~0.5 s of scrypt for a passphrase repository runs on the thread pool while the
// program's modules load on the main thread.

const label = Buffer.from("age-encryption.org/v1/scrypt", "ascii");

/** age's key for a scrypt stanza: scrypt(passphrase, label || salt, N = 2^logN, r = 8, p = 1). */
function computeKey(passphrase: string, salt: Buffer, logN: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    // scrypt needs 128·r·N bytes; allow that plus slack.
    scrypt(
      passphrase,
      Buffer.concat([label, salt]),
      32,
      { N, r: 8, p: 1, maxmem: 256 * N * 8 },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

interface HeadStart {
  passphrase: Buffer;
  salt: Buffer;
  logN: number;
  key: Promise<Buffer>;
}

let headStart: HeadStart | null = null;

function sameInputs(h: HeadStart, passphrase: string, salt: Buffer, logN: number): boolean {
  const p = Buffer.from(passphrase, "utf8");
  const samePassphrase = p.length === h.passphrase.length && timingSafeEqual(p, h.passphrase);
  p.fill(0);
  return samePassphrase && h.logN === logN && h.salt.equals(salt);
}

/**
 * Starts deriving the key of one scrypt stanza before anyone asks for it. Only the next
 * deriveScryptKey with the same passphrase, salt and logN takes the result; a failure
 * here is dropped (the real derivation reports it).
 */
export function startScryptKey(passphrase: string, salt: Buffer, logN: number): void {
  const key = computeKey(passphrase, salt, logN);
  key.catch(() => {});
  headStart = { passphrase: Buffer.from(passphrase, "utf8"), salt, logN, key };
}

/** The scrypt stanza key: the head start's when it was for these inputs, else computed now. */
export async function deriveScryptKey(
  passphrase: string,
  salt: Buffer,
  logN: number,
): Promise<Buffer> {
  const started = headStart;
  if (started !== null && sameInputs(started, passphrase, salt, logN)) {
    headStart = null;
    started.passphrase.fill(0);
    try {
      return await started.key;
    } catch {
      // fall through: derive again, and let that error speak
    }
  }
  return computeKey(passphrase, salt, logN);
}
