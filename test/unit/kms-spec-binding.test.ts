// --kms SPEC parsing, and the envelope binding: a key-service stanza only unwraps under
// the envelope name and repository it was made for (checked by the service itself).
import { readdir, rename } from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../../src/backend/local.js";
import { KeyError, UserError } from "../../src/errors.js";
import { parseKmsSpec } from "../../src/kms/spec.js";
import { Repository } from "../../src/repo/repository.js";
import { useTempDir } from "../helpers.js";
import { VaultStandIn } from "../servers/vault-standin.js";

let dir = "";
useTempDir((d) => {
  dir = d;
});
let vault: VaultStandIn;
const saved = { ...process.env };

beforeAll(async () => {
  vault = await new VaultStandIn().start();
  vault.createKey("transit", "k");
  vault.addToken("tok", ["*"]);
  process.env.VAULT_ADDR = vault.url;
  process.env.VAULT_TOKEN = "tok";
});
afterAll(async () => {
  process.env.VAULT_ADDR = saved.VAULT_ADDR;
  await vault.close();
});

describe("--kms SPEC", () => {
  it("parses each provider's SPEC to the stanza reference written to envelopes", () => {
    expect(parseKmsSpec("aws-kms:alias/backup").reference).toBe("alias/backup");
    expect(
      parseKmsSpec(
        "aws-kms:arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      ).kind,
    ).toBe("aws-kms");
    expect(parseKmsSpec("vault:backup").reference).toBe("transit/keys/backup");
    expect(parseKmsSpec("vault:kv-transit/keys/backup").reference).toBe("kv-transit/keys/backup");
    expect(
      parseKmsSpec("gcp-kms:projects/p/locations/global/keyRings/r/cryptoKeys/k").reference,
    ).toBe("projects/p/locations/global/keyRings/r/cryptoKeys/k");
    expect(parseKmsSpec("pkcs11:token=My%20HSM;key=repo;module=/x.so").reference).toBe(
      "token=My%20HSM;key=repo",
    );
  });

  it("refuses malformed SPECs with a message naming the problem", () => {
    expect(() => parseKmsSpec("s3:bucket")).toThrow(UserError);
    expect(() => parseKmsSpec("aws-kms:")).toThrow(/expected aws-kms:alias/);
    expect(() => parseKmsSpec("aws-kms:not a key")).toThrow(KeyError);
    expect(() => parseKmsSpec("gcp-kms:projects/p")).toThrow(/not a key name/);
    expect(() => parseKmsSpec("pkcs11:key=k;module=/x.so")).toThrow(
      /exactly one of token=LABEL or slot=N/,
    );
    expect(() => parseKmsSpec("pkcs11:token=t;key=k;pin=1234;module=/x.so")).toThrow(
      /unknown or repeated field/,
    );
  });
});

describe("envelope binding against a local Vault stand-in", () => {
  it("an envelope renamed under keys/ no longer unwraps: the envelope id is in the associated data", async () => {
    const repo = path.join(dir, "repo");
    const kms = parseKmsSpec("vault:k");
    const created = await Repository.init(new LocalBackend(repo), [kms]);
    const opened = await Repository.open(new LocalBackend(repo), [kms]);
    expect(opened.current.config.equals(created.current.config)).toBe(true);

    const [name] = await readdir(path.join(repo, "keys"));
    const other = (name as string).replace(/^./, (c) => (c === "0" ? "1" : "0"));
    await rename(path.join(repo, "keys", name as string), path.join(repo, "keys", other));
    await expect(Repository.open(new LocalBackend(repo), [kms])).rejects.toThrow(
      /vault transit\/keys\/k: decrypt failed: .*message authentication failed/,
    );
  });
});
