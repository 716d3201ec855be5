import { Decrypter, Encrypter } from "age-encryption";
import { describe, expect, it } from "vitest";
import { NativeScryptIdentity, NativeScryptRecipient } from "../../src/kms/scrypt-stanza.js";

const text = "the repository secret stands in here";

describe("age scrypt stanza over node:crypto", () => {
  it("files it writes open with age-encryption's own passphrase decrypter", async () => {
    const e = new Encrypter();
    e.addRecipient(new NativeScryptRecipient("hunter2 but longer", 10));
    const file = await e.encrypt(text);
    expect(Buffer.from(file).toString("latin1")).toMatch(
      /^age-encryption\.org\/v1\n-> scrypt \S{22} 10\n/,
    );
    const d = new Decrypter();
    d.addPassphrase("hunter2 but longer");
    expect(await d.decrypt(file, "text")).toBe(text);
  });

  it("opens files age-encryption wrote with a passphrase, and refuses another passphrase", async () => {
    const e = new Encrypter();
    e.setPassphrase("hunter2 but longer");
    e.setScryptWorkFactor(10);
    const file = await e.encrypt(text);
    const d = new Decrypter();
    d.addIdentity(new NativeScryptIdentity("hunter2 but longer"));
    expect(await d.decrypt(file, "text")).toBe(text);
    const wrong = new Decrypter();
    wrong.addIdentity(new NativeScryptIdentity("hunter3 but longer"));
    await expect(wrong.decrypt(file, "text")).rejects.toThrow(/no identity matched/);
  });

  it("refuses a work factor above 2^20 before running scrypt", async () => {
    const e = new Encrypter();
    e.addRecipient(new NativeScryptRecipient("p", 10));
    const file = Buffer.from(await e.encrypt(text));
    const forged = Buffer.from(
      file.toString("latin1").replace(/^(-> scrypt \S+) 10$/m, "$1 30"),
      "latin1",
    );
    const d = new Decrypter();
    d.addIdentity(new NativeScryptIdentity("p"));
    await expect(d.decrypt(forged, "text")).rejects.toThrow(/too high/);
  });
});
