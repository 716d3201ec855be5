// AWS KMS envelopes: the real @aws-sdk/client-kms, run inside the built CLI, against a
// local stand-in of the KMS JSON 1.1 protocol (test/servers) that checks SigV4.
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coffer, useTempDir } from "../helpers.js";
import { AwsKmsStandIn, awsRegion } from "../servers/aws-kms-standin.js";

let kms: AwsKmsStandIn;
let dir = "";
useTempDir((d) => {
  dir = d;
});

const admin = { id: "AKIAADMINADMINADMIN1", secret: "admin-secret-0123456789abcdefghijklmnopq" };
const writer = { id: "AKIAWRITERWRITERWRT1", secret: "writer-secret-0123456789abcdefghijklmno" };

function env(cred = admin, extra: Record<string, string | undefined> = {}) {
  return {
    COFFER_PASSPHRASE: undefined,
    AWS_ACCESS_KEY_ID: cred.id,
    AWS_SECRET_ACCESS_KEY: cred.secret,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_REGION: awsRegion,
    AWS_ENDPOINT_URL_KMS: kms.url,
    AWS_CONFIG_FILE: "/nonexistent",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
    AWS_EC2_METADATA_DISABLED: "true",
    COFFER_KMS_ATTEMPTS: "3",
    ...extra,
  };
}

beforeAll(async () => {
  kms = await new AwsKmsStandIn().start();
  kms.addCredential(admin.id, admin.secret, ["Encrypt", "Decrypt"]);
  kms.addCredential(writer.id, writer.secret, ["Encrypt"]);
  kms.createKey("backup");
});
afterAll(() => kms.close());

async function source(name: string): Promise<string> {
  const src = path.join(dir, name);
  await mkdir(src, { recursive: true });
  await writeFile(path.join(src, "a.txt"), `hello from ${name}\n`);
  await writeFile(path.join(src, "b.bin"), Buffer.alloc(100_000, name.length));
  return src;
}

describe("aws-kms envelopes against a local stand-in", () => {
  it("init --kms aws-kms:alias/backup, back up, rotate the KMS key and re-wrap, restore (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo1");
    const spec = ["--kms", "aws-kms:alias/backup"];
    const init = await coffer(["init", "--repo", repo, ...spec], { env: env() });
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    const src = await source("src1");
    expect((await coffer(["backup", "--repo", repo, ...spec, src], { env: env() })).code).toBe(0);

    const listed = await coffer(["key", "list", "--repo", repo, ...spec, "--json"], { env: env() });
    expect(listed.code).toBe(0);
    const before = JSON.parse(listed.stdout);
    expect(before.keys).toHaveLength(1);
    expect(before.keys[0]).toMatchObject({
      provider: "aws-kms",
      reference: "alias/backup",
      generation: 1,
    });

    kmsRotateAll();
    const rotated = await coffer(["key", "rotate", "--repo", repo, ...spec, "--json"], {
      env: env(),
    });
    expect(rotated.stderr).toBe("");
    expect(rotated.code).toBe(0);
    const after = JSON.parse(
      (await coffer(["key", "list", "--repo", repo, ...spec, "--json"], { env: env() })).stdout,
    );
    expect(after.keys).toHaveLength(1);
    expect(after.keys[0].id).not.toBe(before.keys[0].id);
    expect(JSON.parse(rotated.stdout).rotated[0]).toEqual({
      from: before.keys[0].id,
      to: after.keys[0].id,
    });

    const out = path.join(dir, "out1");
    const r = await coffer(["restore", "--repo", repo, ...spec, "latest", "--target", out], {
      env: env(),
    });
    expect(r.stderr).not.toMatch(/coffer:/);
    expect(r.code).toBe(0);
    const restored = await readFile(path.join(out, src, "a.txt"), "utf8");
    expect(restored).toBe("hello from src1\n");
    expect(kms.calls).toContain("TrentService.Encrypt");
    expect(kms.calls).toContain("TrentService.Decrypt");
  });

  it("a wrong AWS secret is refused by the signature check: exit 12, nothing written (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo-badsig");
    const r = await coffer(["init", "--repo", repo, "--kms", "aws-kms:alias/backup"], {
      env: env({ id: admin.id, secret: "not-the-secret" }),
    });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(
      /^coffer: aws-kms alias\/backup: Encrypt failed: credentials refused \(InvalidSignatureException\)\n$/,
    );
    await expect(readdir(repo)).rejects.toThrow(/ENOENT/);
  });

  it("encrypt-only credentials can wrap but not open: access denied, exit 12 (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo-writer");
    expect(
      (
        await coffer(["init", "--repo", repo, "--kms", "aws-kms:alias/backup"], {
          env: env(writer),
        })
      ).code,
    ).toBe(0);
    const r = await coffer(["snapshots", "--repo", repo, "--kms", "aws-kms:alias/backup"], {
      env: env(writer),
    });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/aws-kms alias\/backup: Decrypt failed: access denied/);
    expect(r.stderr.split("\n")).toHaveLength(2);
  });

  it("a disabled key, an unknown key and throttling: one-line errors, exit 12; brief throttling is retried (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo-fail");
    const spec = ["--kms", "aws-kms:alias/backup"];
    expect((await coffer(["init", "--repo", repo, ...spec], { env: env() })).code).toBe(0);

    kms.throttleNext(2);
    const retried = await coffer(["snapshots", "--repo", repo, ...spec], { env: env() });
    expect(retried.stderr).toBe("");
    expect(retried.code).toBe(0);

    kms.throttleNext(100);
    const throttled = await coffer(["snapshots", "--repo", repo, ...spec], {
      env: env(admin, { COFFER_KMS_ATTEMPTS: "2" }),
    });
    kms.throttleNext(0);
    expect(throttled.code).toBe(12);
    expect(throttled.stderr).toMatch(/aws-kms alias\/backup: Decrypt failed: throttled by KMS/);

    const unknown = await coffer(
      ["init", "--repo", path.join(dir, "repo-nokey"), "--kms", "aws-kms:alias/nope"],
      { env: env() },
    );
    expect(unknown.code).toBe(12);
    expect(unknown.stderr).toMatch(/aws-kms alias\/nope: Encrypt failed: no such key/);

    kmsSetEnabled(false);
    const disabled = await coffer(["snapshots", "--repo", repo, ...spec], { env: env() });
    kmsSetEnabled(true);
    expect(disabled.code).toBe(12);
    expect(disabled.stderr).toMatch(/aws-kms alias\/backup: Decrypt failed: the key is disabled/);
  });

  it("an unreachable KMS endpoint: one-line error naming the provider, exit 12 (against a local stand-in)", async () => {
    const r = await coffer(
      ["init", "--repo", path.join(dir, "repo-down"), "--kms", "aws-kms:alias/backup"],
      {
        env: env(admin, { AWS_ENDPOINT_URL_KMS: "http://127.0.0.1:9", COFFER_KMS_ATTEMPTS: "2" }),
      },
    );
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(
      /^coffer: aws-kms alias\/backup: Encrypt failed: unreachable \(ECONNREFUSED\)\n$/,
    );
  });
});

describe("aws-kms writer-only envelope against a local stand-in", () => {
  it("a role allowed to decrypt only the writer envelope backs up and cannot restore (against a local stand-in)", async () => {
    const repo = path.join(dir, "repo-writer-only");
    const spec = ["--kms", "aws-kms:alias/backup"];
    expect((await coffer(["init", "--repo", repo, ...spec], { env: env() })).code).toBe(0);
    const add = await coffer(["key", "add", "--repo", repo, "--writer-only", ...spec, "--json"], {
      env: env(admin, { COFFER_KMS: "aws-kms:alias/backup" }),
    });
    expect(add.stderr).toBe("");
    expect(add.code).toBe(0);
    const writerEnvelope = JSON.parse(add.stdout).added[0];
    const host = { id: "AKIAWRITERHOSTONLY01", secret: "host-secret-0123456789abcdefghijklmnopqr" };
    kms.addCredential(host.id, host.secret, ["Decrypt"], { "coffer:envelope": writerEnvelope });

    const src = await source("src-writer");
    const b = await coffer(["backup", "--repo", repo, ...spec, src], { env: env(host) });
    expect(b.stderr).not.toMatch(/coffer:/);
    expect(b.code).toBe(0);
    const r = await coffer(
      ["restore", "--repo", repo, ...spec, "latest", "--target", path.join(dir, "wo")],
      { env: env(host) },
    );
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/writer-only key/);
    const full = await coffer(
      ["restore", "--repo", repo, ...spec, "latest", "--target", path.join(dir, "wo-admin")],
      { env: env() },
    );
    expect(full.code).toBe(0);
    expect(await readFile(path.join(dir, "wo-admin", src, "a.txt"), "utf8")).toBe(
      "hello from src-writer\n",
    );
  });
});

function kmsRotateAll(): void {
  kms.rotate(kms.keyByAlias("alias/backup"));
}
function kmsSetEnabled(on: boolean): void {
  kms.setEnabled(kms.keyByAlias("alias/backup"), on);
}
