// Vault Transit envelopes: the CLI's HTTP client against a local stand-in of Vault's
// Transit API (test/servers) with token checks, key versions and min_decryption_version.
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coffer, useTempDir } from "../helpers.js";
import { VaultStandIn } from "../servers/vault-standin.js";

let vault: VaultStandIn;
let dir = "";
useTempDir((d) => {
  dir = d;
});

function env(token: string | undefined, extra: Record<string, string | undefined> = {}) {
  return {
    COFFER_PASSPHRASE: undefined,
    VAULT_ADDR: vault.url,
    VAULT_TOKEN: token,
    COFFER_VAULT_TOKEN_FILE: path.join(dir, "no-token-file"),
    COFFER_KMS_ATTEMPTS: "3",
    ...extra,
  };
}

async function admin(op: string, body: unknown): Promise<void> {
  const r = await fetch(`${vault.url}/v1/transit/keys/backup/${op}`, {
    method: "POST",
    headers: { "X-Vault-Token": "root-token" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`vault ${op}: ${r.status}`);
}

beforeAll(async () => {
  vault = await new VaultStandIn().start();
  vault.createKey("transit", "backup");
  vault.addToken("root-token", ["*"]);
  vault.addToken("backup-host", ["encrypt:transit/backup", "decrypt:transit/backup"]);
  vault.addToken("encrypt-only", ["encrypt:transit/backup"]);
});
afterAll(() => vault.close());

describe("vault transit envelopes against a local stand-in", () => {
  it("init --kms vault:backup, Vault key rotation, key rotate re-wraps to the newest version, restore (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo1");
    const spec = ["--kms", "vault:backup"];
    const src = path.join(dir, "src1");
    await mkdir(src);
    await writeFile(path.join(src, "f.txt"), "vault-wrapped data\n");
    // The token from a file, as `vault login` leaves it.
    const tokenFile = path.join(dir, "token");
    await writeFile(tokenFile, "backup-host\n", { mode: 0o600 });
    const e = env(undefined, { COFFER_VAULT_TOKEN_FILE: tokenFile });
    const init = await coffer(["init", "--repo", repo, ...spec], { env: e });
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    expect((await coffer(["backup", "--repo", repo, ...spec, src], { env: e })).code).toBe(0);
    const list1 = JSON.parse(
      (await coffer(["key", "list", "--repo", repo, ...spec, "--json"], { env: e })).stdout,
    );
    expect(list1.keys[0]).toMatchObject({
      provider: "vault",
      reference: "transit/keys/backup",
      keyVersion: "1",
    });

    await admin("rotate", {});
    await admin("config", { min_decryption_version: 2 });
    const tooOld = await coffer(["snapshots", "--repo", repo, ...spec], { env: e });
    expect(tooOld.code).toBe(12);
    expect(tooOld.stderr).toMatch(
      /^coffer: vault transit\/keys\/backup: decrypt failed: .*disallowed by policy \(too old\)\n$/,
    );

    await admin("config", { min_decryption_version: 1 });
    const rotated = await coffer(["key", "rotate", "--repo", repo, ...spec], { env: e });
    expect(rotated.stderr).toBe("");
    expect(rotated.code).toBe(0);
    await admin("config", { min_decryption_version: 2 });
    const list2 = JSON.parse(
      (await coffer(["key", "list", "--repo", repo, ...spec, "--json"], { env: e })).stdout,
    );
    expect(list2.keys).toHaveLength(1);
    expect(list2.keys[0]).toMatchObject({ provider: "vault", keyVersion: "2" });

    const out = path.join(dir, "out1");
    const r = await coffer(["restore", "--repo", repo, ...spec, "latest", "--target", out], {
      env: e,
    });
    expect(r.code).toBe(0);
    expect(await readFile(path.join(out, src, "f.txt"), "utf8")).toBe("vault-wrapped data\n");
    await admin("config", { min_decryption_version: 1 });
  });

  it("an encrypt-only token cannot open; no token and a sealed Vault: one-line errors, exit 12 (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo2");
    const spec = ["--kms", "vault:transit/keys/backup"];
    expect(
      (await coffer(["init", "--repo", repo, ...spec], { env: env("encrypt-only") })).code,
    ).toBe(0);
    const denied = await coffer(["snapshots", "--repo", repo, ...spec], {
      env: env("encrypt-only"),
    });
    expect(denied.code).toBe(12);
    expect(denied.stderr).toMatch(
      /^coffer: vault transit\/keys\/backup: decrypt failed: permission denied/,
    );

    const noToken = await coffer(["snapshots", "--repo", repo, ...spec], { env: env(undefined) });
    expect(noToken.code).toBe(12);
    expect(noToken.stderr).toMatch(/^coffer: vault: no token: set VAULT_TOKEN/);

    vault.failNext(1);
    const retried = await coffer(["snapshots", "--repo", repo, ...spec], {
      env: env("backup-host"),
    });
    expect(retried.stderr).toBe("");
    expect(retried.code).toBe(0);

    vault.failNext(10);
    const sealed = await coffer(["snapshots", "--repo", repo, ...spec], {
      env: env("backup-host", { COFFER_KMS_ATTEMPTS: "2" }),
    });
    vault.failNext(0);
    expect(sealed.code).toBe(12);
    expect(sealed.stderr).toMatch(
      /vault transit\/keys\/backup: decrypt failed: Vault is sealed or in standby/,
    );
  });

  it("an envelope copied into another repository does not unwrap: the binding is checked by Vault (against a local stand-in)", async () => {
    const a = path.join(dir, "repo-a");
    const b = path.join(dir, "repo-b");
    const spec = ["--kms", "vault:backup"];
    expect((await coffer(["init", "--repo", a, ...spec], { env: env("backup-host") })).code).toBe(
      0,
    );
    expect((await coffer(["init", "--repo", b, ...spec], { env: env("backup-host") })).code).toBe(
      0,
    );
    const { readdir, rm, copyFile } = await import("node:fs/promises");
    const [ka] = await readdir(path.join(a, "keys"));
    for (const k of await readdir(path.join(b, "keys"))) await rm(path.join(b, "keys", k));
    await copyFile(path.join(a, "keys", ka as string), path.join(b, "keys", ka as string));
    const r = await coffer(["snapshots", "--repo", b, ...spec], { env: env("backup-host") });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/message authentication failed/);
  });
});

describe("vault transit over HTTPS against a local stand-in", () => {
  it("VAULT_CACERT trusts the server's certificate; without it the TLS failure is a one-line error, exit 12 (against a local stand-in)", async () => {
    const key = path.join(dir, "tls.key");
    const cert = path.join(dir, "tls.crt");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    const tlsVault = await new VaultStandIn({
      key: await readFile(key),
      cert: await readFile(cert),
    }).start();
    try {
      tlsVault.createKey("transit", "backup");
      tlsVault.addToken("t", ["*"]);
      const repo = path.join(dir, "repo-tls");
      const spec = ["--kms", "vault:backup"];
      const e = {
        COFFER_PASSPHRASE: undefined,
        VAULT_ADDR: tlsVault.url,
        VAULT_TOKEN: "t",
        COFFER_KMS_ATTEMPTS: "1",
      };
      const untrusted = await coffer(["init", "--repo", repo, ...spec], { env: e });
      expect(untrusted.code).toBe(12);
      expect(untrusted.stderr).toMatch(
        /^coffer: vault transit\/keys\/backup: encrypt failed: .*self[- ]signed certificate/,
      );
      const ok = await coffer(["init", "--repo", repo, ...spec], {
        env: { ...e, VAULT_CACERT: cert },
      });
      expect(ok.stderr).toBe("");
      expect(ok.code).toBe(0);
      expect(
        (
          await coffer(["snapshots", "--repo", repo, ...spec], {
            env: { ...e, VAULT_CACERT: cert },
          })
        ).code,
      ).toBe(0);
    } finally {
      await tlsVault.close();
    }
  });
});
