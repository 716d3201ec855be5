import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Decrypter, Encrypter } from "age-encryption";
import { describe, expect, it } from "vitest";
import { startEarlyUnlock } from "../../cli/early-unlock.js";
import { deriveScryptKey, startScryptKey } from "../../src/kms/scrypt-kdf.js";
import { NativeScryptIdentity, NativeScryptRecipient } from "../../src/kms/scrypt-stanza.js";

const salt = Buffer.alloc(16, 7);

describe("scrypt head start (cli/early-unlock.ts)", () => {
  it("gives the key a fresh derivation would, and only for the same passphrase", async () => {
    const fresh = await deriveScryptKey("right passphrase", salt, 10);
    startScryptKey("right passphrase", salt, 10);
    expect((await deriveScryptKey("right passphrase", salt, 10)).equals(fresh)).toBe(true);

    startScryptKey("right passphrase", salt, 10);
    const other = await deriveScryptKey("wrong passphrase", salt, 10);
    expect(other.equals(fresh)).toBe(false);
    expect(other.equals(await deriveScryptKey("wrong passphrase", salt, 10))).toBe(true);
    // A head start is used once: a later derivation with another salt is computed afresh.
    const salt2 = Buffer.alloc(16, 8);
    expect((await deriveScryptKey("right passphrase", salt2, 10)).equals(fresh)).toBe(false);
  });

  it("a wrong passphrase still fails to open a repository key envelope after a head start", async () => {
    const repo = mkdtempSync(path.join(tmpdir(), "coffer-early-"));
    const e = new Encrypter();
    e.addRecipient(new NativeScryptRecipient("right passphrase", 10));
    const { mkdirSync } = await import("node:fs");
    mkdirSync(path.join(repo, "keys"));
    writeFileSync(path.join(repo, "keys", "a1"), await e.encrypt("secret"));

    startEarlyUnlock(["snapshots", "--repo", repo], { COFFER_PASSPHRASE: "right passphrase" });
    const file = (await import("node:fs")).readFileSync(path.join(repo, "keys", "a1"));
    const ok = new Decrypter();
    ok.addIdentity(new NativeScryptIdentity("right passphrase"));
    expect(await ok.decrypt(file, "text")).toBe("secret");

    startEarlyUnlock([`--repo=${repo}`, "verify"], { COFFER_PASSPHRASE: "right passphrase" });
    const wrong = new Decrypter();
    wrong.addIdentity(new NativeScryptIdentity("wrong passphrase"));
    await expect(wrong.decrypt(file, "text")).rejects.toThrow(/no identity matched/);
  });
});
