// PKCS#11 envelopes against a real SoftHSM2 token, initialised in a temp dir: the file key
// is sealed with AES-GCM by a non-extractable AES key that stays on the token.
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import * as graphene from "graphene-pk11";
import { beforeAll, describe, expect, it } from "vitest";
import { coffer, useTempDir } from "../helpers.js";

const module = [
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
].find((p) => {
  try {
    execFileSync("test", ["-f", p]);
    return true;
  } catch {
    return false;
  }
}) as string;
const pin = "472913";

let dir = "";
useTempDir((d) => {
  dir = d;
});
let conf = "";

/** Makes a non-extractable, sensitive AES-256 key on the token, as an HSM admin would. */
function generateKey(label: string): void {
  const mod = graphene.Module.load(module, "SoftHSM");
  mod.initialize();
  try {
    const slot = mod.getSlots(true).items(0);
    const session = slot.open(
      graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION,
    );
    session.login(pin, graphene.UserType.USER);
    const key = session.generateKey(graphene.KeyGenMechanism.AES, {
      class: graphene.ObjectClass.SECRET_KEY,
      token: true,
      label,
      valueLen: 32,
      encrypt: true,
      decrypt: true,
      extractable: false,
      sensitive: true,
    });
    expect(key.getAttribute({ extractable: null }).extractable).toBe(false);
    session.logout();
    session.close();
  } finally {
    mod.finalize();
  }
}

beforeAll(async () => {
  expect(module, "SoftHSM2 is not installed: apt-get install softhsm2").toBeDefined();
  const tokens = path.join(dir, "tokens");
  await mkdir(tokens);
  conf = path.join(dir, "softhsm2.conf");
  await writeFile(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env.SOFTHSM2_CONF = conf;
  execFileSync(
    "softhsm2-util",
    ["--init-token", "--free", "--label", "coffer-test", "--pin", pin, "--so-pin", "90210"],
    {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      stdio: "ignore",
    },
  );
  generateKey("backup-key");
});

function env(extra: Record<string, string | undefined> = {}) {
  return { COFFER_PASSPHRASE: undefined, SOFTHSM2_CONF: conf, COFFER_PKCS11_PIN: pin, ...extra };
}

describe("pkcs11 envelopes on a SoftHSM2 token", () => {
  it("init --kms pkcs11:..., back up, key rotate, restore; the PIN from a file works too", async () => {
    const repo = path.join(dir, "repo");
    const spec = ["--kms", `pkcs11:token=coffer-test;key=backup-key;module=${module}`];
    const src = path.join(dir, "src");
    await mkdir(src);
    await writeFile(path.join(src, "f.txt"), "hsm-wrapped\n");
    const init = await coffer(["init", "--repo", repo, ...spec], { env: env() });
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    expect((await coffer(["backup", "--repo", repo, ...spec, src], { env: env() })).code).toBe(0);
    const list = JSON.parse(
      (await coffer(["key", "list", "--repo", repo, ...spec, "--json"], { env: env() })).stdout,
    );
    expect(list.keys[0]).toMatchObject({
      provider: "pkcs11",
      reference: "token=coffer-test;key=backup-key",
      generation: 1,
    });

    // Re-wrapping decrypts and encrypts in one run: the PIN is read once for both.
    const rotated = await coffer(["key", "rotate", "--repo", repo, ...spec], { env: env() });
    expect(rotated.stderr).toBe("");
    expect(rotated.code).toBe(0);

    const pinFile = path.join(dir, "pin");
    await writeFile(pinFile, `${pin}\n`, { mode: 0o600 });
    const out = path.join(dir, "out");
    const r = await coffer(["restore", "--repo", repo, ...spec, "latest", "--target", out], {
      env: env({ COFFER_PKCS11_PIN: undefined, COFFER_PKCS11_PIN_FILE: pinFile }),
    });
    expect(r.code).toBe(0);
    expect(await readFile(path.join(out, src, "f.txt"), "utf8")).toBe("hsm-wrapped\n");
  });

  it("a wrong PIN, an unknown key label and an unknown token: one-line errors, exit 12, nothing written", async () => {
    const repo = path.join(dir, "repo-pin");
    const spec = ["--kms", `pkcs11:token=coffer-test;key=backup-key;module=${module}`];
    expect((await coffer(["init", "--repo", repo, ...spec], { env: env() })).code).toBe(0);
    const wrong = await coffer(["snapshots", "--repo", repo, ...spec], {
      env: env({ COFFER_PKCS11_PIN: "000000" }),
    });
    expect(wrong.code).toBe(12);
    expect(wrong.stderr).toBe(
      "coffer: pkcs11 token=coffer-test;key=backup-key: decrypt failed: wrong PIN (CKR_PIN_INCORRECT)\n",
    );

    const fresh = path.join(dir, "repo-nokey");
    const noKey = await coffer(
      ["init", "--repo", fresh, "--kms", `pkcs11:token=coffer-test;key=other;module=${module}`],
      { env: env() },
    );
    expect(noKey.code).toBe(12);
    expect(noKey.stderr).toMatch(/no secret key labelled "other" on the token/);
    const noToken = await coffer(
      ["init", "--repo", fresh, "--kms", `pkcs11:token=nope;key=backup-key;module=${module}`],
      { env: env() },
    );
    expect(noToken.code).toBe(12);
    expect(noToken.stderr).toMatch(/no such token/);
    const { readdir } = await import("node:fs/promises");
    await expect(readdir(fresh)).rejects.toThrow(/ENOENT/);
  });
});
