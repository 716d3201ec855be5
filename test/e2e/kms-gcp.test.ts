// Google Cloud KMS envelopes: the real @google-cloud/kms (REST fallback) inside the CLI,
// against a local stand-in of KeyManagementService encrypt/decrypt (test/servers).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coffer, useTempDir } from "../helpers.js";
import { GcpKmsStandIn } from "../servers/gcp-kms-standin.js";

const keyName = "projects/coffer-test/locations/europe-west3/keyRings/backup/cryptoKeys/repo";
let gcp: GcpKmsStandIn;
let dir = "";
useTempDir((d) => {
  dir = d;
});
const creds: Record<string, string> = {};

function env(account: string) {
  return {
    COFFER_PASSPHRASE: undefined,
    GOOGLE_APPLICATION_CREDENTIALS: creds[account],
    COFFER_GCP_KMS_ENDPOINT: gcp.url,
    COFFER_KMS_ATTEMPTS: "2",
  };
}

beforeAll(async () => {
  gcp = await new GcpKmsStandIn().start();
  gcp.createKey(keyName);
  for (const [name, allow] of [
    ["admin", ["encrypt", "decrypt"]],
    ["writer", ["encrypt"]],
  ] as const) {
    const file = path.join(dir, `${name}.json`);
    await writeFile(
      file,
      gcp.addServiceAccount(`${name}@coffer-test.iam.gserviceaccount.com`, [...allow]),
      { mode: 0o600 },
    );
    creds[name] = file;
  }
});
afterAll(() => gcp.close());

describe("gcp-kms envelopes against a local stand-in", () => {
  it("init --kms gcp-kms:..., new primary version, key rotate, restore; disabled old version no longer matters (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo");
    const spec = ["--kms", `gcp-kms:${keyName}`];
    const src = path.join(dir, "src");
    await mkdir(src);
    await writeFile(path.join(src, "f.txt"), "gcp-wrapped\n");
    const init = await coffer(["init", "--repo", repo, ...spec], { env: env("admin") });
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    expect(
      (await coffer(["backup", "--repo", repo, ...spec, src], { env: env("admin") })).code,
    ).toBe(0);
    const list1 = JSON.parse(
      (await coffer(["key", "list", "--repo", repo, ...spec, "--json"], { env: env("admin") }))
        .stdout,
    );
    expect(list1.keys[0]).toMatchObject({
      provider: "gcp-kms",
      reference: keyName,
      keyVersion: "1",
    });

    gcp.rotate(keyName);
    expect(
      (await coffer(["key", "rotate", "--repo", repo, ...spec], { env: env("admin") })).code,
    ).toBe(0);
    gcp.setVersionState(keyName, 1, "DISABLED");
    const list2 = JSON.parse(
      (await coffer(["key", "list", "--repo", repo, ...spec, "--json"], { env: env("admin") }))
        .stdout,
    );
    expect(list2.keys[0]).toMatchObject({ keyVersion: "2" });
    const out = path.join(dir, "out");
    const r = await coffer(["restore", "--repo", repo, ...spec, "latest", "--target", out], {
      env: env("admin"),
    });
    expect(r.code).toBe(0);
    expect(await readFile(path.join(out, src, "f.txt"), "utf8")).toBe("gcp-wrapped\n");
  });

  it("an encrypt-only account and a disabled version: one-line errors naming the cause, exit 12 (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo2");
    const spec = ["--kms", `gcp-kms:${keyName}`];
    expect((await coffer(["init", "--repo", repo, ...spec], { env: env("writer") })).code).toBe(0);
    const denied = await coffer(["snapshots", "--repo", repo, ...spec], { env: env("writer") });
    expect(denied.code).toBe(12);
    expect(denied.stderr).toBe(
      `coffer: gcp-kms ${keyName}: decrypt failed: permission denied (check roles/cloudkms.cryptoKeyEncrypter / Decrypter on this key)\n`,
    );
    gcp.setVersionState(keyName, 2, "DISABLED");
    const disabled = await coffer(["snapshots", "--repo", repo, ...spec], { env: env("admin") });
    gcp.setVersionState(keyName, 2, "ENABLED");
    expect(disabled.code).toBe(12);
    expect(disabled.stderr).toMatch(/decrypt failed: the key version is disabled or destroyed/);
  });
});
